package backend

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// An organization's owners decide which of its members may have its
// provider tokens used for them; resolve, the runtime read and the
// exchange honour it alike, and a member left out gets their own.
func TestOrgSettings_decideWhoGetsTheOrganizationsTokens(t *testing.T) {
	env := newTestEnv(t)
	olivia := env.addUser("olivia")
	max := env.addUser("max")
	mia := env.addUser("mia")
	env.setRole(olivia, "acme", "owner")
	env.setRole(max, "acme", "maintainer")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "acme-ibm-token"})
	users := map[string]string{"olivia": olivia, "max": max, "mia": mia}
	pats := map[string]string{}
	for name, id := range users {
		env.ok(logical.UpdateOperation, "users/"+name+"/provider-tokens/ibm-quantum", id, map[string]interface{}{"token": name + "-own-ibm"})
		pats[name] = env.createToken(name, id, "jobs", nil)["token"].(string)
	}
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)

	// tokenFor answers whose token each of resolve, runtime and the
	// exchange (both forms) gives name in acme; all must agree.
	tokenFor := func(name string) string {
		t.Helper()
		id := users[name]
		resolved := env.ok(logical.ReadOperation, "resolve/ibm-quantum", id, map[string]interface{}{"org": "acme"}).Data["token"].(string)
		runtime := env.ok(logical.ReadOperation, "users/"+name+"/runtime/jobs", id, map[string]interface{}{"org": "acme"}).Data["env"].(map[string]string)["QISKIT_IBM_TOKEN"]
		exchanged, err := env.exchange("exchange/ibm-quantum", pats[name], "acme", false)
		require.NoError(t, err)
		environment, err := env.exchange("exchange", pats[name], "acme", true)
		require.NoError(t, err)
		require.Equal(t, resolved, runtime, name)
		require.Equal(t, resolved, exchanged.Data["token"], name)
		require.Equal(t, resolved, environment.Data["env"].(map[string]string)["QISKIT_IBM_TOKEN"], name)
		return resolved
	}

	settings := env.ok(logical.ReadOperation, "orgs/acme/settings", mia, nil).Data
	require.Equal(t, "member", settings["provider_tokens_for"], "every member by default")
	for _, name := range []string{"olivia", "max", "mia"} {
		require.Equal(t, "acme-ibm-token", tokenFor(name))
	}

	want := map[string]map[string]string{
		"maintainer": {"olivia": "acme-ibm-token", "max": "acme-ibm-token", "mia": "mia-own-ibm"},
		"owner":      {"olivia": "acme-ibm-token", "max": "max-own-ibm", "mia": "mia-own-ibm"},
		"none":       {"olivia": "olivia-own-ibm", "max": "max-own-ibm", "mia": "mia-own-ibm"},
		"member":     {"olivia": "acme-ibm-token", "max": "acme-ibm-token", "mia": "acme-ibm-token"},
	}
	for _, setting := range []string{"maintainer", "owner", "none", "member"} {
		got := env.ok(logical.UpdateOperation, "orgs/acme/settings", olivia, map[string]interface{}{"provider_tokens_for": setting}).Data
		require.Equal(t, setting, got["provider_tokens_for"])
		require.Equal(t, olivia, got["updated_by"])
		for name, token := range want[setting] {
			require.Equal(t, token, tokenFor(name), "%s with provider_tokens_for=%s", name, setting)
		}
	}
}

// Only owners change the settings; bad values are refused; nothing changes
// when refused.
func TestOrgSettings_onlyOwnersChangeThem(t *testing.T) {
	env := newTestEnv(t)
	olivia := env.addUser("olivia")
	max := env.addUser("max")
	nina := env.addUser("nina")
	env.setRole(olivia, "acme", "owner")
	env.setRole(max, "acme", "maintainer")
	env.setRole(nina, "globex", "owner")
	env.ok(logical.ReadOperation, "orgs/acme/settings", olivia, nil) // learns the organization
	before := env.storageSnapshot()

	require.Contains(t, env.refusal(http.StatusForbidden, logical.UpdateOperation, "orgs/acme/settings", max, map[string]interface{}{"provider_tokens_for": "none"}), "owner")
	env.refusal(http.StatusForbidden, logical.UpdateOperation, "orgs/acme/settings", nina, map[string]interface{}{"provider_tokens_for": "none"})
	env.refusal(http.StatusForbidden, logical.ReadOperation, "orgs/acme/settings", nina, nil)
	for _, bad := range []string{"admin", "everyone", "", "Owner"} {
		env.userError(logical.UpdateOperation, "orgs/acme/settings", olivia, map[string]interface{}{"provider_tokens_for": bad})
	}
	env.userError(logical.UpdateOperation, "orgs/acme/settings", olivia, nil)
	require.Equal(t, before, env.storageSnapshot())
	require.Equal(t, "member", env.ok(logical.ReadOperation, "orgs/acme/settings", max, nil).Data["provider_tokens_for"])
}

// Warm, the setting costs resolve no storage round trip; a change written
// by another node reaches this one's cache through Invalidate.
func TestOrgSettings_cachedAndInvalidated(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia := env.addUser("olivia")
	mia := env.addUser("mia")
	env.setRole(olivia, "acme", "owner")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", olivia, map[string]interface{}{"api_key": "acme-key"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ionq", mia, map[string]interface{}{"api_key": "mia-key"})
	resolve := func() string {
		return env.ok(logical.ReadOperation, "resolve/ionq", mia, map[string]interface{}{"org": "acme"}).Data["api_key"].(string)
	}
	require.Equal(t, "acme-key", resolve())
	env.storage.reset()
	require.Equal(t, "acme-key", resolve())
	require.Equal(t, roundTrips{}, env.storage.counted(), "the settings come from memory")

	// Another node's owner sets "owner": storage changes, then Invalidate.
	orgID := env.ok(logical.ReadOperation, "orgs/acme", olivia, nil).Data["id"].(string)
	require.NoError(t, putOrgSettings(ctx, env.storage, orgID, &orgSettingsEntry{ProviderTokensFor: "owner"}))
	require.Equal(t, "acme-key", resolve(), "not yet invalidated: the cached settings")
	env.b.invalidate(ctx, orgSettingsPath(orgID))
	require.Equal(t, "mia-key", resolve())
}
