package backend

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestResolve_prefersTheOrganizationsTokenForMembers(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", alice, map[string]interface{}{"token": "alice-own-token"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", "", map[string]interface{}{"token": "acme-org-token", "instance": "acme/prod/main"})

	got := env.ok(logical.ReadOperation, "resolve/ibm-quantum", alice, map[string]interface{}{"org": "acme"}).Data
	require.Equal(t, map[string]interface{}{
		"token": "acme-org-token", "instance": "acme/prod/main",
		"source": "organization", "org": "acme", "provider": "ibm-quantum", "version": 1,
		"env": map[string]string{
			"QISKIT_IBM_TOKEN": "acme-org-token", "QISKIT_IBM_INSTANCE": "acme/prod/main", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform",
		},
	}, got)

	got = env.ok(logical.ReadOperation, "resolve/ibm-quantum", alice, nil).Data
	require.Equal(t, "alice-own-token", got["token"])
	require.Equal(t, map[string]string{"QISKIT_IBM_TOKEN": "alice-own-token", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform"}, got["env"])
	require.Equal(t, "user", got["source"])
	require.Equal(t, "", got["org"])

	// The organization has no D-Wave token: the member's own is used.
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave"})
	got = env.ok(logical.ReadOperation, "resolve/dwave", alice, map[string]interface{}{"org": "acme"}).Data
	require.Equal(t, "alice-dwave", got["token"])
	require.Equal(t, "user", got["source"])
}

func TestResolve_refusals(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "acme-ionq"})
	env.ok(logical.UpdateOperation, "users/bob/provider-tokens/ionq", bob, map[string]interface{}{"api_key": "bob-ionq"})

	require.Contains(t, env.refusal(403, logical.ReadOperation, "resolve/ionq", bob, map[string]interface{}{"org": "acme"}), `not a member of organization "acme"`)
	require.Contains(t, env.refusal(404, logical.ReadOperation, "resolve/dwave", alice, map[string]interface{}{"org": "acme"}), `"dwave"`)
	require.Contains(t, env.refusal(404, logical.ReadOperation, "resolve/ionq", alice, nil), `user "alice"`)
	require.Contains(t, env.userError(logical.ReadOperation, "resolve/ionq", "", nil), "identity entity")
	env.disableEntity(bob)
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "resolve/ionq", bob, nil))
}

// A token whose provider was removed from the catalogue still resolves,
// with an empty env and a warning saying why.
func TestResolve_envOfAProviderNoLongerInTheCatalogue(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key", "env": "api_key:RIGETTI_API_KEY"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/rigetti", alice, map[string]interface{}{"api_key": "rk"})
	require.Equal(t, map[string]string{"RIGETTI_API_KEY": "rk"}, env.ok(logical.ReadOperation, "resolve/rigetti", alice, nil).Data["env"])

	env.ok(logical.DeleteOperation, "providers/rigetti", "", nil)
	resp := env.ok(logical.ReadOperation, "resolve/rigetti", alice, nil)
	require.Equal(t, "rk", resp.Data["api_key"])
	require.Equal(t, map[string]string{}, resp.Data["env"])
	require.Equal(t, []string{`provider "rigetti" is no longer in the catalogue: env is empty`}, resp.Warnings)
}

// Resolve costs one storage read for the token found first once the
// caller's identity and the catalogue are cached.
func TestResolve_storageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "k"})
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})

	env.storage.reset()
	env.b.providerTokens.purge()
	lookups := env.sys.lookups.Load()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{Gets: 1}, env.storage.counted(), "a cold token is one read")
	require.Equal(t, lookups, env.sys.lookups.Load())

	env.storage.reset()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{}, env.storage.counted(), "a cached token costs no read")
}

// Warm, resolve makes no round trip to Vault, for the caller's own token
// (no org, the commonest call) as for an organization's: no storage
// operation, no identity lookup, no other system-view call, no event.
// Once identity_cache_ttl has passed, the caller's identity is looked up
// again (two calls), and only that.
func TestResolve_warmCostsNoRoundTrip(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "org-key"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "own-key"})
	calls := env.countVaultCalls()
	for org, want := range map[string]string{"": "own-key", "acme": "org-key"} {
		data := map[string]interface{}{}
		if org != "" {
			data["org"] = org
		}
		env.ok(logical.ReadOperation, "resolve/ionq", alice, data)
		env.refreshIdentity(alice)
		calls()
		for i := 0; i < 5; i++ {
			require.Equal(t, want, env.ok(logical.ReadOperation, "resolve/ionq", alice, data).Data["api_key"])
		}
		require.Equal(t, vaultCalls{System: map[string]int{}}, calls(), "org=%q", org)

		env.ageIdentity(alice)
		require.Equal(t, want, env.ok(logical.ReadOperation, "resolve/ionq", alice, data).Data["api_key"])
		require.Equal(t, vaultCalls{System: map[string]int{"EntityInfo": 1, "GroupsForEntity": 1}}, calls(), "org=%q", org)
	}
}

// resolve's cache never serves a token that was replaced or deleted, here
// or, through Invalidate, on another node.
func TestResolve_cacheFollowsEveryChange(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "maintainer")
	resolve := func() (int, interface{}) {
		resp, err := env.do(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
		require.NoError(t, err)
		if status, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
			return status, nil
		}
		return 200, resp.Data["api_key"]
	}
	_, before := resolve()
	require.Nil(t, before)
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "first"})
	_, got := resolve()
	require.Equal(t, "first", got, "a cached absence gives way to a write")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "second"})
	_, got = resolve()
	require.Equal(t, "second", got)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "own"})
	env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ionq", alice, nil)
	_, got = resolve()
	require.Equal(t, "own", got, "a deleted org token falls back to the user's")

	// Another node replaces the user's token.
	entry, err := getProviderToken(ctx, env.storage, userProviderTokenPrefix(alice), "ionq")
	require.NoError(t, err)
	entry.Values["api_key"] = "from another node"
	stored, err := logical.StorageEntryJSON(userProviderTokenPrefix(alice)+"ionq", entry)
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, stored))
	_, got = resolve()
	require.Equal(t, "own", got, "still cached: nothing told this node")
	env.b.invalidate(ctx, userProviderTokenPrefix(alice)+"ionq")
	_, got = resolve()
	require.Equal(t, "from another node", got)
}
