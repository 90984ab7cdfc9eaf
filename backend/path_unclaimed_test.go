package backend

import (
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func (e *testEnv) putUnclaimed(name, provider, secret string) {
	e.t.Helper()
	entry, err := logical.StorageEntryJSON(unclaimedProviderTokenPrefix+name+"/"+provider, &providerTokenEntry{
		Provider: provider, Values: map[string]string{"api_key": secret}, SecretFields: []string{"api_key"}, Version: 1, LegacyName: name})
	require.NoError(e.t, err)
	require.NoError(e.t, e.storage.Put(context.Background(), entry))
}

func TestUnclaimed_operatorsGiveATokenToItsEntityOrDeleteIt(t *testing.T) {
	env := newTestEnv(t)
	dave := env.addUser("dave")
	mallory := env.addUser("mallory")
	admin := env.addUser("admin")
	env.setRole(admin, adminOrg, "admin")
	env.putUnclaimed("dave", "ionq", "dave-ionq-secret-0123456789")
	env.putUnclaimed("dave", "dwave", "dave-dwave-secret-0123456789")

	before := env.storageSnapshot()
	require.Equal(t, 403, env.statusOf(logical.UpdateOperation, "unclaimed/dave/ionq/claim", mallory, map[string]interface{}{"entity_id": mallory}))
	require.Equal(t, 403, env.statusOf(logical.DeleteOperation, "unclaimed/dave/ionq", mallory, nil))
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed/dave/ionq/claim", "", map[string]interface{}{"entity_id": "entity-ghost"}), "no identity entity")
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed/dave/ionq/claim", "", map[string]interface{}{"entity_id": "../x"}), "entity_id")
	require.Equal(t, before, env.storageSnapshot())

	got := env.ok(logical.UpdateOperation, "unclaimed/dave/ionq/claim", admin, map[string]interface{}{"entity_id": dave}).Data
	require.Equal(t, dave, got["entity_id"])
	require.NotContains(t, got, "api_key")
	require.Equal(t, "dave-ionq-secret-0123456789", env.ok(logical.ReadOperation, "resolve/ionq", dave, nil).Data["api_key"])
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "unclaimed/dave/ionq/claim", "", map[string]interface{}{"entity_id": dave}))

	env.putUnclaimed("dave", "ionq", "another-ionq-secret-0123456789")
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed/dave/ionq/claim", "", map[string]interface{}{"entity_id": dave}), "already has")

	env.ok(logical.DeleteOperation, "unclaimed/dave/dwave", "", nil)
	for key := range env.storageSnapshot() {
		require.NotEqual(t, unclaimedProviderTokenPrefix+"dave/dwave", key)
	}
}

// Organization tokens from before organization ids that no organization
// claimed on its own: an operator gives one to an organization's id, or
// deletes it.
func TestUnclaimed_operatorsGiveAnOrganizationTokenToAnOrganizationOrDeleteIt(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	put := func(name, provider, secret string) {
		entry, err := logical.StorageEntryJSON(unclaimedOrgProviderTokenPrefix+name+"/"+provider, &providerTokenEntry{
			Provider: provider, Values: map[string]string{"api_key": secret}, SecretFields: []string{"api_key"}, Version: 1})
		require.NoError(t, err)
		require.NoError(t, env.storage.Put(ctx, entry))
	}
	put("ACME", "ionq", "acme-ionq-secret-0123456789")
	put("ACME", "dwave", "acme-dwave-secret-0123456789")

	before := env.storageSnapshot()
	require.Equal(t, 403, env.statusOf(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", alice, map[string]interface{}{"org_id": testOrgID("acme")}))
	require.Equal(t, 403, env.statusOf(logical.DeleteOperation, "unclaimed-orgs/ACME/ionq", alice, nil))
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": "id-nobody"}), "no organization is registered")
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": "../x"}), "org_id")
	require.Equal(t, before, env.storageSnapshot())

	got := env.ok(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": testOrgID("acme")}).Data
	require.Equal(t, "acme", got["org"])
	require.NotContains(t, got, "api_key")
	require.Equal(t, "acme-ionq-secret-0123456789", env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"}).Data["api_key"])
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": testOrgID("acme")}))

	put("ACME", "ionq", "another-ionq-secret-0123456789")
	require.Contains(t, env.userError(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": testOrgID("acme")}), "already has")

	env.ok(logical.DeleteOperation, "unclaimed-orgs/ACME/dwave", "", nil)
	require.NotContains(t, env.storageSnapshot(), unclaimedOrgProviderTokenPrefix+"ACME/dwave")
}

// Review of issue 21: claiming or deleting a token kept aside (of a user
// name or of an organization name) keeps the counts exact. Before, the
// organization paths deleted the entry without counting it out: the
// inventory went on counting unclaimed tokens that no longer existed until
// a recount.
func TestUnclaimed_claimsAndDeletesKeepTheCountsExact(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	dave := env.addUser("dave")
	for _, key := range []string{
		unclaimedOrgProviderTokenPrefix + "ACME/ionq", unclaimedOrgProviderTokenPrefix + "ACME/dwave",
		unclaimedProviderTokenPrefix + "dave/ionq", unclaimedProviderTokenPrefix + "dave/dwave",
	} {
		provider := key[strings.LastIndex(key, "/")+1:]
		entry, err := logical.StorageEntryJSON(key, &providerTokenEntry{
			Provider: provider, Values: map[string]string{"api_key": "kept-" + provider + "-0123456789"}, SecretFields: []string{"api_key"}, Version: 1})
		require.NoError(t, err)
		require.NoError(t, env.storage.Put(ctx, entry))
	}
	// As the upgrade leaves them: counted.
	require.NoError(t, env.b.recountNow(env.storage, false))
	env.requireCountsExact("before")

	env.ok(logical.ReadOperation, "orgs/acme", alice, nil) // acme is learned
	env.ok(logical.UpdateOperation, "unclaimed-orgs/ACME/ionq/claim", "", map[string]interface{}{"org_id": testOrgID("acme")})
	env.requireCountsExact("after an organization claim")
	env.ok(logical.DeleteOperation, "unclaimed-orgs/ACME/dwave", "", nil)
	env.requireCountsExact("after an organization delete")
	env.ok(logical.UpdateOperation, "unclaimed/dave/ionq/claim", "", map[string]interface{}{"entity_id": dave})
	env.requireCountsExact("after a user claim")
	env.ok(logical.DeleteOperation, "unclaimed/dave/dwave", "", nil)
	env.requireCountsExact("after a user delete")
}
