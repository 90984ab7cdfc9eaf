package backend

import (
	"context"
	"slices"
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
	require.Equal(t, mia, got["last_used_by"], "mia's job came after max's resolve")
	require.Equal(t, "mia", got["last_used_by_name"])

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

// providerTokenUsedEvents returns the provider-token-used notifications
// sent since the last reset, by provider.
func providerTokenUsedEvents(env *testEnv) map[string][]map[string]string {
	used := map[string][]map[string]string{}
	for _, event := range env.events.sent() {
		if strings.HasSuffix(event.Type, eventProviderTokenUsed) {
			metadata := metadataOf(event)
			used[metadata["name"]] = append(used[metadata["name"]], metadata)
		}
	}
	return used
}

// An owner replaces the organization's token; a member's job uses the new
// version in the same granule as the old one: the new version's use is
// recorded (and notified) too, not taken for the old version's.
func TestProviderTokenUse_aReplacedTokenIsRecordedInTheSameGranule(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia, members := acmeOwnedByOlivia(env, "mia")
	mia := members[0]
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "v1-token"})
	pat := env.createToken("mia", mia, "jobs", nil)["token"].(string)

	resp, err := env.exchange("exchange/ibm-quantum", pat, "acme", false)
	require.NoError(t, err)
	require.Equal(t, "v1-token", resp.Data["token"])
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))

	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "v2-token"})
	env.events.reset()
	resp, err = env.exchange("exchange/ibm-quantum", pat, "acme", false)
	require.NoError(t, err)
	require.Equal(t, "v2-token", resp.Data["token"])
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))

	got := env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data
	require.Equal(t, time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339), got["last_used_at"], "the new version was used")
	require.Equal(t, mia, got["last_used_by"])
	require.Len(t, providerTokenUsedEvents(env)["ibm-quantum"], 1, "the new version's first use by mia is notified")
}

// Two members' jobs use the organization's token in one granule: the one
// whose job came later is last_used_by, whichever entity id sorts first.
func TestProviderTokenUse_lastUsedByIsTheLaterMember(t *testing.T) {
	for _, later := range []string{"first", "second"} {
		t.Run(later+" entity id later", func(t *testing.T) {
			env := newTestEnv(t)
			ctx := context.Background()
			olivia, members := acmeOwnedByOlivia(env, "mia", "max")
			mia, max := members[0], members[1]
			env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "acme-token"})
			users := []string{mia, max}
			slices.Sort(users)
			if later == "first" {
				slices.Reverse(users)
			}
			for _, user := range users {
				env.ok(logical.ReadOperation, "resolve/ibm-quantum", user, map[string]interface{}{"org": "acme"})
			}
			require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))
			got := env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data
			require.Equal(t, users[1], got["last_used_by"])
		})
	}
}

// A token the environment leaves out (another provider set its variables
// first) was not used: neither recorded nor notified.
func TestProviderTokenUse_aTokenLeftOutOfTheEnvironmentWasNotUsed(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia, members := acmeOwnedByOlivia(env, "mia")
	mia := members[0]
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-cloud", olivia, map[string]interface{}{"api_key": "acme-cloud"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "acme-quantum"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ibm-quantum", mia, map[string]interface{}{"token": "mia-quantum"})
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)
	pat := env.createToken("mia", mia, "jobs", nil)["token"].(string)

	env.events.reset()
	resp, err := env.exchange("exchange", pat, "acme", false)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"ibm-cloud": sourceOrganization}, resp.Data["providers"])
	env.ok(logical.ReadOperation, "users/mia/runtime/jobs", mia, map[string]interface{}{"org": "acme"})
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))

	require.Equal(t, mia, env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-cloud", olivia, nil).Data["last_used_by"])
	require.Equal(t, "", env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data["last_used_at"], "left out: not used")
	require.Equal(t, "", env.ok(logical.ReadOperation, "users/mia/provider-tokens/ibm-quantum", mia, nil).Data["last_used_at"], "left out: not used")
	used := providerTokenUsedEvents(env)
	require.Len(t, used["ibm-cloud"], 1)
	require.Empty(t, used["ibm-quantum"])
}

// A storage error writing one token's use neither loses the other tokens'
// uses of the batch nor its own: the failed one is written by the next
// flush.
func TestProviderTokenUse_aFailedWriteKeepsTheBatch(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia, members := acmeOwnedByOlivia(env, "mia")
	mia := members[0]
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "acme-token"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ibm-quantum", mia, map[string]interface{}{"token": "mia-token"})
	env.ok(logical.ReadOperation, "resolve/ibm-quantum", mia, map[string]interface{}{"org": "acme"})
	env.ok(logical.ReadOperation, "resolve/ibm-quantum", mia, nil)

	lastUsed := func() (org, own interface{}) {
		return env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data["last_used_by"],
			env.ok(logical.ReadOperation, "users/mia/provider-tokens/ibm-quantum", mia, nil).Data["last_used_by"]
	}
	failing := &failingStorage{Storage: env.storage, failAt: 1}
	require.ErrorIs(t, env.b.flushProviderTokenUse(ctx, failing), errInjected)
	org, own := lastUsed()
	require.ElementsMatch(t, []interface{}{"", mia}, []interface{}{org, own}, "the token not hit by the failure is written")

	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))
	org, own = lastUsed()
	require.Equal(t, mia, org, "the failed one is written by the next flush")
	require.Equal(t, mia, own)
}

// The provider-token-used notification is sent once per member and
// granule even across a restart (or a new active node): which members were
// notified is kept with the token, not only in memory.
func TestProviderTokenUse_aRestartWithinTheGranuleNotifiesNoOneAgain(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	olivia, members := acmeOwnedByOlivia(env, "mia", "max")
	mia, max := members[0], members[1]
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, map[string]interface{}{"token": "acme-token"})
	usedBy := func(e *testEnv) []string {
		var who []string
		for _, event := range e.events.sent() {
			if event.Type == "planqk/"+eventProviderTokenUsed {
				who = append(who, metadataOf(event)["used_by"])
			}
		}
		slices.Sort(who)
		return who
	}

	env.ok(logical.ReadOperation, "resolve/ibm-quantum", mia, map[string]interface{}{"org": "acme"})
	env.events.reset()
	require.NoError(t, env.b.flushProviderTokenUse(ctx, env.storage))
	require.Equal(t, []string{mia}, usedBy(env))

	restarted := env.restart()
	restarted.events.reset()
	restarted.ok(logical.ReadOperation, "resolve/ibm-quantum", mia, map[string]interface{}{"org": "acme"})
	restarted.ok(logical.ReadOperation, "resolve/ibm-quantum", max, map[string]interface{}{"org": "acme"})
	require.NoError(t, restarted.b.flushProviderTokenUse(ctx, restarted.storage))
	require.Equal(t, []string{max}, usedBy(restarted), "mia was notified in this granule before the restart; max is new")

	read := restarted.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ibm-quantum", olivia, nil).Data
	require.NotContains(t, read, "use_notified", "what was notified is no response field")
	require.Equal(t, max, read["last_used_by"])
}

// acmeOwnedByOlivia adds olivia as the owner of acme and each of members
// as a member, returning their entity ids.
func acmeOwnedByOlivia(env *testEnv, members ...string) (olivia string, ids []string) {
	olivia = env.addUser("olivia")
	env.setRole(olivia, "acme", "owner")
	for _, name := range members {
		id := env.addUser(name)
		env.setRole(id, "acme", "member")
		ids = append(ids, id)
	}
	return olivia, ids
}
