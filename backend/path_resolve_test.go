package backend

import (
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
	}, got)

	got = env.ok(logical.ReadOperation, "resolve/ibm-quantum", alice, nil).Data
	require.Equal(t, "alice-own-token", got["token"])
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

// Resolve costs one storage read for the token found first once the
// caller's identity is cached.
func TestResolve_storageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "k"})
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})

	env.storage.reset()
	lookups := env.sys.lookups.Load()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{Gets: 1}, env.storage.counted())
	require.Equal(t, lookups, env.sys.lookups.Load())
}
