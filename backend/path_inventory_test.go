package backend

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// listInventory pages through inventory/tokens with the given filters and
// returns every key_info by key, and how many pages it took.
func (e *testEnv) listInventory(path string, query map[string]interface{}) (map[string]map[string]interface{}, []string, int) {
	e.t.Helper()
	all := make(map[string]map[string]interface{})
	var order []string
	after, pages := "", 0
	for {
		data := map[string]interface{}{"after": after}
		for k, v := range query {
			data[k] = v
		}
		resp := e.ok(logical.ListOperation, path, "", data)
		pages++
		keys, _ := resp.Data["keys"].([]string)
		info, _ := resp.Data["key_info"].(map[string]interface{})
		for _, key := range keys {
			require.NotContains(e.t, all, key, "a key on two pages")
			all[key] = info[key].(map[string]interface{})
			order = append(order, key)
		}
		after = resp.Data["next_after"].(string)
		if after == "" {
			return all, order, pages
		}
		require.Less(e.t, pages, 1000, "paging does not end")
	}
}

func TestInventory_tokensArePagedFilteredAndNeverSecret(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	secrets := []string{}
	for i := 0; i < 7; i++ {
		secrets = append(secrets, env.createToken("alice", alice, fmt.Sprintf("t%d", i), nil)["token"].(string))
	}
	secrets = append(secrets, env.createToken("bob", bob, "short", map[string]interface{}{"ttl": "10h", "scopes": "api"})["token"].(string))
	secrets = append(secrets, env.ok(logical.ReadOperation, "users/bob/creds/runtime", bob, nil).Data["token"].(string))
	env.createToken("bob", bob, "gone", nil)
	env.ageNamedToken(bob, "gone", 800*time.Hour)

	all, order, pages := env.listInventory("inventory/tokens/", map[string]interface{}{"limit": 3})
	require.Len(t, all, 10)
	require.GreaterOrEqual(t, pages, 4)
	require.IsIncreasing(t, order)
	short := all[bob+"/named/short"]
	require.Equal(t, "bob", short["user"])
	require.Equal(t, bob, short["entity_id"])
	require.Equal(t, "active", short["owner_state"])
	require.Equal(t, []string{"api"}, short["scopes"])
	require.Equal(t, "", short["last_used_at"])
	for key, info := range all {
		for _, secret := range secrets {
			require.NotContains(t, fmt.Sprint(info), secret)
			require.NotContains(t, key, secret)
		}
		require.NotRegexp(t, `[0-9a-f]{64}`, fmt.Sprint(info)+key, "no HMAC either")
	}

	count := func(query map[string]interface{}) int {
		got, _, _ := env.listInventory("inventory/tokens/", query)
		return len(got)
	}
	require.Equal(t, 3, count(map[string]interface{}{"user": "bob"}))
	require.Equal(t, 1, count(map[string]interface{}{"kind": "lease"}))
	require.Equal(t, 9, count(map[string]interface{}{"scope": "quantum_tokens"}))
	require.Equal(t, 2, count(map[string]interface{}{"expiring_within": "11h"}), "bob's short PAT and the 1h lease")
	require.Equal(t, 1, count(map[string]interface{}{"expired": "true"}))
	require.Equal(t, 1, count(map[string]interface{}{"unused_for": "720h"}), "only the aged token is old enough")
	require.Equal(t, 0, count(map[string]interface{}{"user": "nobody"}))
	require.Contains(t, env.userError(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"kind": "other"}), "kind")
	require.Contains(t, env.userError(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"limit": 5000}), "limit")
}

// A page costs what a page needs: the owners it reads, not every owner.
func TestInventory_aPageReadsOnlyTheOwnersItShows(t *testing.T) {
	env := newTestEnv(t)
	for u := 0; u < 30; u++ {
		user := fmt.Sprintf("u%02d", u)
		id := env.addUser(user)
		for i := 0; i < 5; i++ {
			env.createToken(user, id, fmt.Sprintf("t%d", i), nil)
		}
	}
	env.storage.reset()
	resp := env.ok(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"limit": 10})
	require.Len(t, resp.Data["keys"], 10)
	require.Equal(t, roundTrips{Gets: 2, Lists: 3}, env.storage.counted(), "the owners list, then two owners' index and leases")

	// The budget bounds a selective page too.
	env.storage.reset()
	resp = env.ok(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"kind": "lease"})
	require.Empty(t, resp.Data["keys"])
	require.LessOrEqual(t, env.storage.counted().Gets, int64(inventoryEntityBudget))
}

func TestInventory_providerTokensAndCounts(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave-secret-0001"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret-0002"})
	env.registerOrg("ghost")
	env.ok(logical.UpdateOperation, "orgs/ghost/provider-tokens/ionq", "", map[string]interface{}{"api_key": "ghost-ionq-secret-0003"})
	env.createToken("alice", alice, "laptop", nil)
	env.createToken("bob", bob, "laptop", map[string]interface{}{"ttl": "20h"})
	env.deleteEntity(bob)

	all, _, _ := env.listInventory("inventory/provider-tokens/", map[string]interface{}{"limit": 2})
	require.Len(t, all, 3)
	require.Equal(t, "user", all["users/"+alice+"/dwave"]["owner_kind"])
	require.Equal(t, "alice", all["users/"+alice+"/dwave"]["owner"])
	require.Equal(t, "organization", all["orgs/"+testOrgID("acme")+"/ionq"]["owner_kind"])
	for _, info := range all {
		require.NotContains(t, fmt.Sprint(info), "secret")
		require.NotContains(t, fmt.Sprint(info), "****")
	}

	counts := env.ok(logical.ReadOperation, "inventory", "", nil).Data
	tokens := counts["tokens"].(map[string]interface{})
	require.Equal(t, 1, tokens["active_named"])
	require.Equal(t, 1, tokens["of_inactive_owners"], "bob's: his entity is gone")
	require.Equal(t, map[string]int{"168h0m0s": 0, "24h0m0s": 0}, tokens["expiring_within"])
	require.Equal(t, map[string]int{"active": 1, "disabled": 0, "deleted": 1}, counts["owners"])
	orphans := counts["orphans"].(map[string]interface{})
	require.Equal(t, []string{bob}, orphans["deleted_owner_entities"])
	require.Equal(t, []string{"ghost"}, orphans["organizations_without_a_known_member"])
	providers := counts["provider_tokens"].(map[string]interface{})
	require.Equal(t, map[string]int{"dwave": 1, "ionq": 2}, providers["by_provider"])

	// Counts are reused for a minute unless refreshed.
	env.createToken("alice", alice, "ci", nil)
	require.Equal(t, 1, env.ok(logical.ReadOperation, "inventory", "", nil).Data["tokens"].(map[string]interface{})["active_named"])
	require.Equal(t, 2, env.ok(logical.ReadOperation, "inventory", "", map[string]interface{}{"refresh": true}).Data["tokens"].(map[string]interface{})["active_named"])
}

// More owners than a page may read, and filters that match nothing: a
// page reads exactly inventoryEntityBudget owners, says where the next
// starts, and paging reaches the end. Provider tokens page by owner the
// same way. (Without the budget the first page reads all 130 owners.)
func TestInventory_aPageReadsAtMostTheBudgetOfOwners(t *testing.T) {
	env := newTestEnv(t)
	const owners = inventoryEntityBudget + 30
	for u := 0; u < owners; u++ {
		user := fmt.Sprintf("u%03d", u)
		id := env.addUser(user)
		env.createToken(user, id, "laptop", nil)
		env.ok(logical.UpdateOperation, "users/"+user+"/provider-tokens/dwave", id, map[string]interface{}{"token": fmt.Sprintf("dwave-secret-%03d", u)})
	}

	for _, filter := range []map[string]interface{}{
		{"kind": "lease"},
		{"expired": "true"},
		{"scope": "no-such-scope"},
	} {
		env.storage.reset()
		query := map[string]interface{}{"limit": maxInventoryLimit}
		for k, v := range filter {
			query[k] = v
		}
		resp := env.ok(logical.ListOperation, "inventory/tokens/", "", query)
		require.Empty(t, resp.Data["keys"], "%v", filter)
		require.NotEmpty(t, resp.Data["next_after"], "%v: more owners remain", filter)
		// The owners list, then one owner's index and leases list each.
		require.Equal(t, roundTrips{Gets: inventoryEntityBudget, Lists: 1 + inventoryEntityBudget}, env.storage.counted(),
			"%v: exactly %d owners read", filter, inventoryEntityBudget)

		all, _, pages := env.listInventory("inventory/tokens/", query)
		require.Empty(t, all, "%v", filter)
		require.Equal(t, 2, pages, "%v: paging reaches the end", filter)
	}

	// The same for provider tokens: one per owner, a page of 100 owners.
	resp := env.ok(logical.ListOperation, "inventory/provider-tokens/", "", map[string]interface{}{"limit": maxInventoryLimit})
	require.Len(t, resp.Data["keys"], inventoryEntityBudget)
	require.NotEmpty(t, resp.Data["next_after"])
	all, _, pages := env.listInventory("inventory/provider-tokens/", map[string]interface{}{"limit": maxInventoryLimit})
	require.Len(t, all, owners)
	require.Equal(t, 2, pages)
}
