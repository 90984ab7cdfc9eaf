package backend

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func leak(token, url, source string) map[string]interface{} {
	return map[string]interface{}{"token": token, "url": url, "source": source, "type": "planqk_personal_access_token"}
}

func leaks(items ...map[string]interface{}) map[string]interface{} {
	list := make([]interface{}, len(items))
	for i, item := range items {
		list[i] = item
	}
	return map[string]interface{}{"leaks": list}
}

// leakSetup gives alice a named and a leased PAT, and returns them with a
// garbled copy, one of another prefix and a well-formed one never issued.
func leakSetup(t *testing.T) (env *testEnv, alice string, named, leased, garbled, otherPrefix, unissued string) {
	env = newTestEnv(t)
	alice = env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "15m"})
	named = env.createToken("alice", alice, "laptop", nil)["token"].(string)
	leased = env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	garbled = garble(named)
	var err error
	otherPrefix, err = generateToken("ghp_", rand.Reader)
	require.NoError(t, err)
	unissued, err = generateToken(defaultTokenPrefix, rand.Reader)
	require.NoError(t, err)
	return
}

func TestLeaks_revokesExactlyTheActivePATsAndTellsTheOwner(t *testing.T) {
	env, alice, named, leased, garbled, otherPrefix, unissued := leakSetup(t)
	require.False(t, wellFormedToken(garbled, defaultTokenPrefix))
	env.events.reset()

	resp := env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(
		leak(named, "https://github.com/acme/app/blob/abc/config.py", "content"),
		leak(garbled, "https://github.com/acme/app/blob/abc/x", "content"),
		leak(leased, "https://ci.example.com/jobs/7/log", "ci-log"),
		leak(otherPrefix, "", ""),
		leak(unissued, "", ""),
		leak("not a token at all", "", ""),
	)).Data
	require.Equal(t, []string{leakTruePositive, leakFalsePositive, leakTruePositive, leakFalsePositive, leakInactive, leakFalsePositive}, resp["labels"])
	require.Equal(t, 2, resp["revoked"])
	for _, value := range resp {
		require.NotContains(t, fmt.Sprint(value), "alice", "the answer never says whose a token was")
	}

	require.Equal(t, false, env.verify(named)["active"])
	require.Equal(t, false, env.verify(leased)["active"])
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", alice, nil), "the named token left the index")

	// The owner is told, once per token, with where it leaked.
	events := env.events.sent()
	require.Len(t, events, 2)
	byKind := map[string]map[string]string{}
	for _, event := range events {
		require.Equal(t, vaultEventTypePrefix+eventPATLeaked, event.Type)
		metadata := metadataOf(event)
		for key, value := range metadata {
			for _, secret := range []string{named, leased} {
				require.NotContains(t, value, secret, "event field %s", key)
			}
		}
		byKind[metadata["kind"]] = metadata
	}
	require.Equal(t, alice, byKind[tokenKindNamed]["entity_id"])
	require.Equal(t, "alice", byKind[tokenKindNamed]["user"])
	require.Equal(t, "laptop", byKind[tokenKindNamed]["name"])
	require.Equal(t, "https://github.com/acme/app/blob/abc/config.py", byKind[tokenKindNamed]["url"])
	require.Equal(t, "content", byKind[tokenKindNamed]["source"])
	require.Equal(t, "users/alice/tokens/laptop", byKind[tokenKindNamed]["path"])
	require.Equal(t, "runtime", byKind[tokenKindLease]["name"])
	require.Equal(t, "ci-log", byKind[tokenKindLease]["source"])
	require.NotEmpty(t, byKind[tokenKindLease]["token_id"])

	// The owner sees where each leaked.
	list := env.ok(logical.ListOperation, "users/alice/leaks/", alice, nil).Data
	require.Len(t, list["keys"], 2)
	info := list["key_info"].(map[string]interface{})
	for _, key := range list["keys"].([]string) {
		entry := info[key].(map[string]interface{})
		require.Equal(t, "leaked", entry["revoked_reason"])
		if entry["kind"] == tokenKindNamed {
			require.Equal(t, byKind[tokenKindNamed]["token_id"], key)
			require.Equal(t, "https://github.com/acme/app/blob/abc/config.py", entry["leak_url"])
			require.Equal(t, "laptop", entry["name"])
		}
	}
	for key, value := range env.storageSnapshot() {
		for _, secret := range []string{named, leased, garbled, unissued} {
			require.NotContains(t, value, secret, "value stored at %s", key)
		}
	}

	// Idempotent: the same batch again revokes nothing and tells no one.
	before := env.storageSnapshot()
	again := env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(named, "u", "content"), leak(leased, "", ""))).Data
	require.Equal(t, []string{leakInactive, leakInactive}, again["labels"])
	require.Equal(t, 0, again["revoked"])
	require.Len(t, env.events.sent(), 2)
	require.Equal(t, before, env.storageSnapshot())
}

func TestLeaks_badInputIsRefusedAndRevokesNothing(t *testing.T) {
	env, _, named, _, _, _, _ := leakSetup(t)
	before := env.storageSnapshot()
	tooMany := make([]map[string]interface{}, maxLeakBatch+1)
	for i := range tooMany {
		tooMany[i] = leak(named, "", "")
	}
	cases := []struct {
		name string
		data map[string]interface{}
		want string
	}{
		{"no leaks", map[string]interface{}{}, "leaks is required"},
		{"empty list", map[string]interface{}{"leaks": []interface{}{}}, "leaks is required"},
		{"too many", leaks(tooMany...), "at most 100"},
		{"not an object", map[string]interface{}{"leaks": []interface{}{named}}, "leaks[0] must be an object"},
		{"no token", leaks(leak(named, "", ""), map[string]interface{}{"url": "x"}), "leaks[1].token is required"},
		{"token not a string", leaks(leak(named, "", ""), map[string]interface{}{"token": []interface{}{named}}), "leaks[1].token must be a string"},
		{"url too long", leaks(leak(named, strings.Repeat("u", maxLeakURLBytes+1), "")), "leaks[0].url"},
		{"url with a newline", leaks(leak(named, "https://x\n", "")), "leaks[0].url"},
		{"source too long", leaks(leak(named, "", strings.Repeat("s", maxLeakSourceBytes+1))), "leaks[0].source"},
		{"unknown key", leaks(map[string]interface{}{"token": named, "owner": "alice"}), `unknown key "owner"`},
		{"an object, not a list", map[string]interface{}{"leaks": map[string]interface{}{"token": named}}, "leaks must be a list"},
		{"a bare value", map[string]interface{}{"leaks": named}, "leaks must be a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := env.userError(logical.UpdateOperation, "leaks/revoke", "", c.data)
			require.Contains(t, msg, c.want)
			require.NotContains(t, msg, named, "an error never repeats a value")
			require.Equal(t, before, env.storageSnapshot())
		})
	}
	require.Equal(t, true, env.verify(named)["active"])
}

// A url that holds the token (one leaked in a query string) would carry
// the value into the owner's page and the notification: it is withheld.
func TestLeaks_aURLHoldingTheTokenIsWithheld(t *testing.T) {
	env, alice, named, _, _, _, _ := leakSetup(t)
	env.events.reset()
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(named, "https://example.com/api?token="+named, "url")))
	events := env.events.sent()
	require.Len(t, events, 1)
	require.Equal(t, withheldLeakURL, metadataOf(events[0])["url"])
	info := env.ok(logical.ListOperation, "users/alice/leaks/", alice, nil).Data["key_info"].(map[string]interface{})
	for _, entry := range info {
		require.Equal(t, withheldLeakURL, entry.(map[string]interface{})["leak_url"])
	}
}

// A url, source or type that holds another live PAT (someone else's,
// not in the batch) would carry that value to this token's owner: anything
// shaped like a PAT of the engine is withheld, not just the value
// reported with it.
func TestLeaks_aURLHoldingAnotherTokenIsWithheld(t *testing.T) {
	env, alice, named, _, _, _, _ := leakSetup(t)
	bob := env.addUser("bob")
	bobs := env.createToken("bob", bob, "ci", nil)["token"].(string)
	env.events.reset()
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(map[string]interface{}{
		"token": named, "url": "https://ci.example.com/log?auth=" + bobs, "source": "ci " + bobs, "type": "x" + bobs,
	}))
	events := env.events.sent()
	require.Len(t, events, 1)
	for key, value := range metadataOf(events[0]) {
		require.NotContains(t, value, bobs, "event field %s", key)
	}
	require.Equal(t, withheldLeakURL, metadataOf(events[0])["url"])
	list := env.ok(logical.ListOperation, "users/alice/leaks/", alice, nil).Data
	for _, entry := range list["key_info"].(map[string]interface{}) {
		for key, value := range entry.(map[string]interface{}) {
			require.NotContains(t, fmt.Sprint(value), bobs, "leaks field %s", key)
		}
	}
	for key, value := range env.storageSnapshot() {
		require.NotContains(t, value, bobs, "value stored at %s", key)
	}
	require.Equal(t, true, env.verify(bobs)["active"], "only reported values are revoked")
	// A url that merely names the prefix is kept.
	second := env.createToken("alice", alice, "second", nil)["token"].(string)
	env.events.reset()
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(second, "https://github.com/o/r/blob/c/plqk_settings.py", "content")))
	require.Equal(t, "https://github.com/o/r/blob/c/plqk_settings.py", metadataOf(env.events.sent()[0])["url"])
}

// An unknown key is named in the refusal only when it is short and plain:
// a caller who sent a token as a key does not see it echoed (Vault's audit
// log keeps errors in clear).
func TestLeaks_anUnknownKeyIsNotEchoedWhenItCouldBeAValue(t *testing.T) {
	env, _, named, _, _, _, _ := leakSetup(t)
	msg := env.userError(logical.UpdateOperation, "leaks/revoke", "", leaks(map[string]interface{}{"token": named, named: "x"}))
	require.Contains(t, msg, "unknown key")
	require.NotContains(t, msg, named[:12])
	msg = env.userError(logical.UpdateOperation, "leaks/revoke", "", leaks(map[string]interface{}{"token": named, named: 1}))
	require.NotContains(t, msg, named[:12])
	require.Contains(t, env.userError(logical.UpdateOperation, "leaks/revoke", "", leaks(map[string]interface{}{"token": named, "owner": "x"})), `unknown key "owner"`)
}

// Only the owner (and platform admins) see where their tokens leaked.
func TestLeaks_ownerListIsTheOwners(t *testing.T) {
	env, alice, named, _, _, _, _ := leakSetup(t)
	bob := env.addUser("bob")
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(named, "u", "content")))
	require.Equal(t, 403, env.statusOf(logical.ListOperation, "users/alice/leaks/", bob, nil))
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/bob/leaks/", bob, nil))
	require.Len(t, env.ok(logical.ListOperation, "users/alice/leaks/", alice, nil).Data["keys"], 1)
}

// A value of the wrong shape costs no storage; an unknown one a read; an
// active named PAT two record reads, the index read and write, the record
// delete, the leak entry and the inventory's counter shard.
func TestLeaks_storageRoundTrips(t *testing.T) {
	env, alice, named, _, garbled, _, unissued := leakSetup(t)
	env.createToken("alice", alice, "other", nil) // so that the index is written, not deleted
	measure := func(token string) roundTrips {
		env.storage.reset()
		env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(token, "", "")))
		return env.storage.counted()
	}
	require.Equal(t, roundTrips{}, measure(garbled))
	require.Equal(t, roundTrips{Gets: 1}, measure(unissued))
	require.Equal(t, roundTrips{Gets: 3, Puts: 3, Deletes: 1}, measure(named))
}

func TestLeaks_tidyForgetsWhereTokensLeakedAfterTheRetention(t *testing.T) {
	env, alice, named, leased, _, _, _ := leakSetup(t)
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(named, "u", "content"), leak(leased, "u", "content")))
	ctx := context.Background()
	ids, err := env.storage.List(ctx, leakedEntityPrefix(alice))
	require.NoError(t, err)
	require.Len(t, ids, 2)
	old, err := getLeakedEntry(ctx, env.storage, alice, ids[0])
	require.NoError(t, err)
	old.RevokedAt = time.Now().Add(-leakRetention - time.Minute)
	require.NoError(t, putLeakedEntry(ctx, env.storage, alice, old))

	require.Len(t, env.ok(logical.ListOperation, "users/alice/leaks/", alice, nil).Data["keys"], 1, "past the retention, not shown")
	status := env.tidy(nil)
	require.Equal(t, 1, status["leaked_pruned"])
	left, err := env.storage.List(ctx, leakedEntityPrefix(alice))
	require.NoError(t, err)
	require.Equal(t, []string{ids[1]}, left)
}

// inventory/tokens?revoked_reason=leaked lists the revoked-for-leak
// tokens of every owner, filtered like live ones.
func TestLeaks_inventoryListsLeakedTokens(t *testing.T) {
	env, alice, named, leased, _, _, _ := leakSetup(t)
	bob := env.addUser("bob")
	bobs := env.createToken("bob", bob, "ci", nil)["token"].(string)
	live := env.createToken("alice", alice, "still-fine", nil)
	env.ok(logical.UpdateOperation, "leaks/revoke", "", leaks(leak(named, "https://x/1", "content"), leak(leased, "https://x/2", "ci-log"), leak(bobs, "https://x/3", "commit")))

	list := func(data map[string]interface{}) ([]string, map[string]interface{}) {
		t.Helper()
		resp := env.ok(logical.ListOperation, "inventory/tokens/", "", data).Data
		keys, _ := resp["keys"].([]string)
		info, _ := resp["key_info"].(map[string]interface{})
		return keys, info
	}
	keys, info := list(map[string]interface{}{"revoked_reason": "leaked"})
	require.Len(t, keys, 3)
	for _, key := range keys {
		require.Contains(t, key, "/leaked/")
		entry := info[key].(map[string]interface{})
		require.Equal(t, "leaked", entry["revoked_reason"])
		require.NotEmpty(t, entry["leak_url"])
		require.NotEqual(t, live["token_id"], entry["token_id"])
	}
	keys, info = list(map[string]interface{}{"revoked_reason": "leaked", "user": "bob"})
	require.Equal(t, []string{bob + "/leaked/" + info[keys[0]].(map[string]interface{})["token_id"].(string)}, keys)
	require.Equal(t, "bob", info[keys[0]].(map[string]interface{})["user"])
	require.Equal(t, "https://x/3", info[keys[0]].(map[string]interface{})["leak_url"])
	keys, _ = list(map[string]interface{}{"revoked_reason": "leaked", "kind": "lease"})
	require.Len(t, keys, 1)
	keys, _ = list(map[string]interface{}{"revoked_reason": "leaked", "limit": 2})
	require.Len(t, keys, 2)

	// Without the filter only live tokens are listed.
	keys, _ = list(nil)
	require.Equal(t, []string{alice + "/named/still-fine"}, keys)

	require.Contains(t, env.userError(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"revoked_reason": "expired"}), "revoked_reason")
	require.Contains(t, env.userError(logical.ListOperation, "inventory/tokens/", "", map[string]interface{}{"revoked_reason": "leaked", "expired": "true"}), "do not apply")
}

// FuzzParseLeakReports: no body makes the parser panic; what it accepts is
// a bounded batch with a token each, whose url and source never hold the
// token.
func FuzzParseLeakReports(f *testing.F) {
	f.Add([]byte(`[{"token":"plqk_a","url":"https://x/plqk_a","source":"content","type":"t"}]`))
	f.Add([]byte(`[{"token":"a"},{"token":"b","url":""}]`))
	f.Add([]byte(`[{"token":1}]`))
	f.Add([]byte(`[[]]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var raw interface{}
		if json.Unmarshal(body, &raw) != nil {
			return
		}
		reports, msg := parseLeakReports(raw)
		if msg != "" {
			if reports != nil {
				t.Fatal("reports with a refusal")
			}
			return
		}
		if len(reports) == 0 || len(reports) > maxLeakBatch {
			t.Fatalf("%d reports accepted", len(reports))
		}
		for _, r := range reports {
			holds := func(field string) bool { return field != withheldLeakURL && strings.Contains(field, r.token) }
			if r.token == "" || holds(r.url) || holds(r.source) || strings.Contains(r.kind, r.token) {
				t.Fatalf("accepted %+v", r)
			}
			if !printable(r.url, maxLeakURLBytes) || !printable(r.source, maxLeakSourceBytes) {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}

// BenchmarkLeaksRevoke_batchOf100 measures one full batch: look-alikes
// (no storage), well-formed values never issued (an HMAC and a read each),
// and active named PATs (revoked, recorded, notified).
func BenchmarkLeaksRevoke_batchOf100(b *testing.B) {
	for _, kind := range []string{"lookalikes", "unissued", "active"} {
		b.Run(kind, func(b *testing.B) {
			env := newTestEnv(b)
			alice := env.addUser("alice")
			env.createToken("alice", alice, "warm", nil)
			batch := func(i int) map[string]interface{} {
				items := make([]map[string]interface{}, maxLeakBatch)
				for j := range items {
					var token string
					switch kind {
					case "lookalikes":
						token, _ = generateToken(defaultTokenPrefix, rand.Reader)
						token = garble(token)
					case "unissued":
						token, _ = generateToken(defaultTokenPrefix, rand.Reader)
					case "active":
						token = env.createToken("alice", alice, fmt.Sprintf("t-%d-%d", i, j), nil)["token"].(string)
					}
					items[j] = leak(token, "https://github.com/o/r/blob/c/f", "content")
				}
				return leaks(items...)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				data := batch(i)
				b.StartTimer()
				env.ok(logical.UpdateOperation, "leaks/revoke", "", data)
			}
		})
	}
}

// Scanners racing over one token: exactly one revokes it and tells the
// owner; the others answer inactive. The storage holds every scanner's
// first read of the record until all have read it, so that all of them
// find the token active before any takes the owner's lock.
func TestLeaks_concurrentReportsRevokeOnce(t *testing.T) {
	env, _, named, _, _, _, _ := leakSetup(t)
	env.events.reset()
	const scanners = 8
	held := &barrierStorage{Storage: env.storage, prefix: tokenRecordPrefix, waiting: scanners, release: make(chan struct{})}
	labels := make(chan string, scanners)
	var wg sync.WaitGroup
	for i := 0; i < scanners; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.UpdateOperation, Path: "leaks/revoke", Storage: held,
				Data: leaks(leak(named, "u", "content")),
			})
			if err != nil || resp.IsError() {
				labels <- fmt.Sprint("error: ", err, resp)
				return
			}
			labels <- resp.Data["labels"].([]string)[0]
		}()
	}
	wg.Wait()
	close(labels)
	count := map[string]int{}
	for label := range labels {
		count[label]++
	}
	require.Equal(t, map[string]int{leakTruePositive: 1, leakInactive: scanners - 1}, count)
	require.Len(t, env.events.sent(), 1)
}

// barrierStorage holds the answers to the first waiting reads under prefix
// until all of them were read; later reads pass.
type barrierStorage struct {
	logical.Storage
	prefix  string
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (s *barrierStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	entry, err := s.Storage.Get(ctx, key)
	if strings.HasPrefix(key, s.prefix) {
		s.mu.Lock()
		hold := s.waiting > 0
		if hold {
			s.waiting--
			if s.waiting == 0 {
				close(s.release)
			}
		}
		s.mu.Unlock()
		if hold {
			<-s.release
		}
	}
	return entry, err
}
