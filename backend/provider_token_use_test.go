package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Whose jobs used an organization's provider token: resolve, the runtime
// read and the exchange note it in memory, the periodic write records
// last_used_at and last_used_by (shown with the live name by reads, lists
// and the inventory), and the organization's owners get one
// provider-token-used notification per member and granule. Never a secret.
func TestProviderTokenUse_recordsWhoseJobsUsedIt(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia := env.addUser("olivia")
	mia := env.addUser("mia")
	max := env.addUser("max")
	env.setRole(olivia, "acme", "owner")
	env.setRole(mia, "acme", "member")
	env.setRole(max, "acme", "maintainer")
	secret := "acme-ibm-token-0123456789"
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": secret})
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)
	miaPAT := env.createToken("mia", mia, "jobs", nil)["token"].(string)

	read := func() map[string]interface{} {
		return env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data
	}
	require.Equal(t, "", read()["last_used_at"], "never used")

	// Max resolves; Mia's job runs through the exchange, twice, and a
	// runtime read: one use each per granule.
	env.ok(logical.ReadOperation, "resolve/ibm-quantum", max, map[string]interface{}{"org": "acme"})
	time.Sleep(10 * time.Millisecond)
	for i := 0; i < 2; i++ {
		resp, err := env.exchange("exchange/ibm-quantum", miaPAT, "acme", false)
		require.NoError(t, err)
		require.Equal(t, secret, resp.Data["token"])
	}
	env.ok(logical.ReadOperation, "users/mia/runtime/jobs", mia, map[string]interface{}{"org": "acme"})
	require.Equal(t, "", read()["last_used_at"], "recorded by the periodic write, not on the request path")

	env.events.reset()
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))
	got := read()
	granule := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	require.Equal(t, granule, got["last_used_at"])
	require.Contains(t, []string{mia, max}, got["last_used_by"], "in one granule either member is the last")
	require.Equal(t, map[string]string{mia: "mia", max: "max"}[got["last_used_by"].(string)], got["last_used_by_name"])

	// One notification per member, naming them; none repeats.
	var used []map[string]string
	for _, event := range env.events.sent() {
		require.Equal(t, "planqk/"+eventProviderTokenUsed, event.Type)
		used = append(used, metadataOf(event))
	}
	require.Len(t, used, 2)
	for _, metadata := range used {
		require.Equal(t, "acme", metadata["org"])
		require.Equal(t, "ibm-quantum", metadata["name"])
		for _, value := range metadata {
			require.NotContains(t, value, secret)
			require.NotContains(t, value, miaPAT)
		}
	}
	env.events.reset()
	_, err := env.exchange("exchange/ibm-quantum", miaPAT, "acme", false)
	require.NoError(t, err)
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))
	require.Empty(t, env.events.sent(), "at most once per token, member and granule")

	// Lists and the inventory show the same, with the live name.
	env.renameEntity(got["last_used_by"].(string), "renamed")
	info := env.ok(logical.ListOperation, "orgs/acme/provider-tokens/", olivia, nil).Data["key_info"].(map[string]interface{})["ibm-quantum"].(map[string]interface{})
	require.Equal(t, granule, info["last_used_at"])
	require.Equal(t, "renamed", info["last_used_by_name"])
	inventory, _, _ := env.listInventory("inventory/provider-tokens/", nil)
	require.Len(t, inventory, 1)
	for _, row := range inventory {
		require.Equal(t, got["last_used_by"], row["last_used_by"])
		require.Equal(t, "renamed", row["last_used_by_name"])
	}
}

// A use of a version replaced before the write is not the new version's;
// a user's own token records its owner and notifies nobody.
func TestProviderTokenUse_onlyTheVersionUsed(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia := env.addUser("olivia")
	env.setRole(olivia, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", olivia, map[string]interface{}{"api_key": "v1-key"})
	env.ok(logical.UpdateOperation, "users/olivia/provider-tokens/dwave", olivia, map[string]interface{}{"token": "own-dwave"})
	env.ok(logical.ReadOperation, "resolve/ionq", olivia, map[string]interface{}{"org": "acme"})
	env.ok(logical.ReadOperation, "resolve/dwave", olivia, nil)
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", olivia, map[string]interface{}{"api_key": "v2-key"})
	env.events.reset()
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))

	require.Equal(t, "", env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", olivia, nil).Data["last_used_at"])
	own := env.ok(logical.ReadOperation, "users/olivia/provider-tokens/dwave", olivia, nil).Data
	require.Equal(t, olivia, own["last_used_by"])
	require.Equal(t, "olivia", own["last_used_by_name"])
	for _, event := range env.events.sent() {
		require.False(t, strings.HasSuffix(event.Type, eventProviderTokenUsed), "no notification for a user's own token or a replaced version")
	}
}
