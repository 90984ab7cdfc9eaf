package backend

import (
	"fmt"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

const aliceIBMSecret = "alice-ibm-secret-0123456789"

// The security review's reproduction: alice (entity E1) stores a provider
// token, a PAT and a lease; an admin renames E1 to alice-old and names
// another entity E2 alice. Nothing of E1's may reach E2, and E1 keeps all
// of it under its new name.
func TestOwners_renameAndReuseOfANameHandsNothingOver(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", e1, map[string]interface{}{"token": aliceIBMSecret})
	pat := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", e1, nil).Data["token"].(string)

	env.renameEntity(e1, "alice-old")
	e2 := env.addEntity("entity-second-alice", "alice")

	// E2, now named alice, sees and can touch nothing of E1's.
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "resolve/ibm-quantum", e2, nil))
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", e2, nil))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/tokens/laptop", e2, nil))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/provider-tokens/ibm-quantum", e2, nil))
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", e2, nil))
	env.ok(logical.DeleteOperation, "users/alice/tokens/laptop", e2, nil)
	env.ok(logical.DeleteOperation, "users/alice/provider-tokens/ibm-quantum", e2, nil)
	env.ok(logical.UpdateOperation, "users/alice/revoke-all", e2, nil)

	// E1 finds everything under its new name, and its tokens still verify,
	// reported with its live name and its entity id.
	require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/alice-old/tokens/", e1, nil).Data["keys"])
	require.Equal(t, 200, env.statusOf(logical.ReadOperation, "users/alice-old/provider-tokens/ibm-quantum", e1, nil))
	require.Equal(t, aliceIBMSecret, env.ok(logical.ReadOperation, "resolve/ibm-quantum", e1, nil).Data["token"])
	for _, token := range []string{pat, lease} {
		got := env.verify(token)
		require.Equal(t, true, got["active"])
		require.Equal(t, "alice-old", got["user"])
		require.Equal(t, e1, got["entity_id"])
	}
	// E1 may no longer act under its old name: that name is E2's now.
	require.Equal(t, 403, env.statusOf(logical.ListOperation, "users/alice/tokens/", e1, nil))

	// E2's own tokens are its own.
	own := env.createToken("alice", e2, "laptop", nil)
	require.Equal(t, e2, env.verify(own["token"].(string))["entity_id"])
	require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/alice/tokens/", e2, nil).Data["keys"])
	require.Equal(t, true, env.verify(pat)["active"], "E2's token of the same name is another token")
}

// Operators and platform admins address users by their current name: a
// rename moves the user's tokens to the new name for them too, at once.
func TestOwners_operatorsAndAdminsFollowTheLiveName(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	admin := env.addUser("admin")
	env.setRole(admin, adminOrg, "admin")
	env.createToken("alice", e1, "laptop", nil)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", e1, map[string]interface{}{"token": "t"})

	for _, caller := range []string{"", admin} {
		require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/alice/tokens/", caller, nil).Data["keys"])
	}

	env.renameEntity(e1, "alice-old")
	env.addEntity("entity-second-alice", "alice")
	for _, caller := range []string{"", admin} {
		require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", caller, nil), "the name's new holder owns nothing")
		require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/provider-tokens/dwave", caller, nil))
		require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/alice-old/tokens/", caller, nil).Data["keys"])
		require.Equal(t, []string{"dwave"}, env.ok(logical.ListOperation, "users/alice-old/provider-tokens/", caller, nil).Data["keys"])
		require.Equal(t, e1, env.ok(logical.ReadOperation, "users/alice-old", caller, nil).Data["entity_id"])
	}

	// The pointer was repaired by the first lookup: the next costs one read
	// and one identity lookup (cached here).
	env.storage.reset()
	env.ok(logical.ListOperation, "users/alice-old/tokens/", "", nil)
	require.Equal(t, roundTrips{Gets: 2}, env.storage.counted(), "the owner-name pointer and the index")

	// An operator revokes by the live name.
	env.ok(logical.DeleteOperation, "users/alice-old/tokens/laptop", "", nil)
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice-old/tokens/", e1, nil))
}

// A deleted entity's successor under the same name gets nothing, and the
// deleted entity's tokens stop verifying at once.
func TestOwners_aNewEntityWithADeletedOnesNameGetsNothing(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	pat := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", e1, map[string]interface{}{"token": "old-alice-dwave-token"})

	env.deleteEntity(e1)
	e3 := env.addEntity("entity-third-alice", "alice")

	require.Equal(t, false, env.verify(pat)["active"])
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "resolve/dwave", e3, nil))
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", e3, nil))
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", "", nil))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/provider-tokens/dwave", "", nil))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice", "", nil))
}

// An operator cannot store a provider token for a user name the engine has
// never seen: a plugin cannot look entities up by name, and guessing would
// be the flaw this design removes.
func TestOwners_operatorWritesNeedAKnownEntity(t *testing.T) {
	env := newTestEnv(t)
	env.addUser("zoe")
	msg := env.userError(logical.UpdateOperation, "users/zoe/provider-tokens/dwave", "", map[string]interface{}{"token": "t"})
	require.Contains(t, msg, `"zoe"`)
	env.requireStorageUnchanged()
}

func TestOwners_profileShowsEntityAndLiveRoles(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.setRole(alice, "globex", "member")

	got := env.ok(logical.ReadOperation, "users/alice", alice, nil).Data
	require.Equal(t, map[string]interface{}{
		"user": "alice", "entity_id": alice, "admin": false, "disabled": false,
		"organizations": []map[string]interface{}{{"name": "acme", "role": "owner"}, {"name": "globex", "role": "member"}},
	}, got)
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "users/alice", bob, nil))
	require.Contains(t, env.userError(logical.ReadOperation, "users/a..b", bob, nil), "user is not a valid name")
}

func TestOwners_revokeAllRevokesNamedAndLeasedTokens(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	var tokens []string
	for _, name := range []string{"laptop", "ci"} {
		tokens = append(tokens, env.createToken("alice", alice, name, nil)["token"].(string))
	}
	for i := 0; i < 3; i++ {
		tokens = append(tokens, env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string))
	}
	bobs := env.createToken("bob", bob, "laptop", nil)["token"].(string)

	require.Equal(t, 403, env.statusOf(logical.UpdateOperation, "users/alice/revoke-all", bob, nil))
	got := env.ok(logical.UpdateOperation, "users/alice/revoke-all", "", nil).Data
	require.Equal(t, 2, got["named_revoked"])
	require.Equal(t, 3, got["leases_revoked"])
	for _, token := range tokens {
		require.Equal(t, false, env.verify(token)["active"])
	}
	require.Equal(t, true, env.verify(bobs)["active"])
	for key := range env.storageSnapshot() {
		require.NotContains(t, key, entityKeyPrefix(alice)+"leases/")
		require.NotEqual(t, tokenIndexPath(alice), key)
	}

	again := env.ok(logical.UpdateOperation, "users/alice/revoke-all", "", nil).Data
	require.Equal(t, 0, again["named_revoked"])
	require.Equal(t, 0, again["leases_revoked"])
	// The lease count is fresh: alice may take new leases.
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
}

// A name no owner holds (a typo, a user who never used the engine) costs a
// scan of the owners once per identity_cache_ttl, not on every request,
// and stops being "unknown" as soon as an entity of that name registers.
func TestOwners_anUnknownNameIsScannedOncePerIdentityCacheTTL(t *testing.T) {
	env := newTestEnv(t)
	for i := 0; i < 20; i++ {
		user := fmt.Sprintf("u%d", i)
		env.createToken(user, env.addUser(user), "t", nil)
	}
	env.b.identities.purge()
	before := env.sys.lookups.Load()
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/nobody/tokens/", "", nil))
	require.Equal(t, int64(2*20), env.sys.lookups.Load()-before, "the first answer scans the owners")
	env.b.identities.purge()
	before = env.sys.lookups.Load()
	for i := 0; i < 3; i++ {
		env.ok(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"user": "nobody"})
	}
	require.Equal(t, before, env.sys.lookups.Load(), "then the answer is reused")

	nobody := env.addUser("nobody")
	env.createToken("nobody", nobody, "laptop", nil)
	require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/nobody/tokens/", "", nil).Data["keys"])
}
