package backend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestTokens_createShowsSecretOnceAndStoresOnlyItsHMAC(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")

	created := env.createToken("alice", alice, "laptop", map[string]interface{}{"ttl": "48h", "description": "CLI on my laptop"})
	token := created["token"].(string)
	require.True(t, strings.HasPrefix(token, "plqk_"))
	require.NotEmpty(t, created["token_id"])
	require.Equal(t, "laptop", created["name"])
	require.Equal(t, "alice", created["user"])
	createdAt, err := time.Parse(time.RFC3339, created["created_at"].(string))
	require.NoError(t, err)
	expiresAt, err := time.Parse(time.RFC3339, created["expires_at"].(string))
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, expiresAt.Sub(createdAt))

	read := env.ok(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil).Data
	require.NotContains(t, read, "token")
	require.Equal(t, created["token_id"], read["token_id"])
	require.Equal(t, "CLI on my laptop", read["description"])
	require.Equal(t, created["expires_at"], read["expires_at"])

	list := env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data
	require.Equal(t, []string{"laptop"}, list["keys"])
	info := list["key_info"].(map[string]interface{})["laptop"].(map[string]interface{})
	require.Equal(t, created["token_id"], info["token_id"])
	require.Equal(t, created["created_at"], info["created_at"])
	require.Equal(t, created["expires_at"], info["expires_at"])

	for key, value := range env.storageSnapshot() {
		require.NotContains(t, value, token, "plaintext token stored at %s", key)
		require.NotContains(t, key, token)
	}
	require.Equal(t, true, env.verify(token)["active"])
}

func TestTokens_createIsRefusedToAnyoneButTheUser(t *testing.T) {
	env := newTestEnv(t)
	env.addUser("alice")
	bob := env.addUser("bob")

	msg := env.userError(logical.UpdateOperation, "users/alice/tokens/laptop", "", nil)
	require.Contains(t, msg, "personal access tokens can only be created for user accounts")

	msg = env.userError(logical.UpdateOperation, "users/alice/tokens/laptop", bob, nil)
	require.Contains(t, msg, `"alice"`)
	require.Contains(t, msg, `"bob"`)

	msg = env.userError(logical.ReadOperation, "users/alice/creds/runtime", "", nil)
	require.Contains(t, msg, "personal access tokens can only be created for user accounts")

	require.Equal(t, 403, env.statusOf(logical.UpdateOperation, "users/alice/tokens/laptop", "entity-ghost", nil))
	env.requireStorageUnchanged()
}

func TestTokens_badInputIsRefusedAndWritesNothing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"max_ttl": "100h", "default_ttl": "10h"})
	env.createToken("alice", alice, "laptop", nil)
	before := env.storageSnapshot()

	cases := []struct {
		name, path string
		data       map[string]interface{}
		wantField  string
	}{
		{"duplicate name", "users/alice/tokens/laptop", nil, "rotate"},
		{"ttl over max", "users/alice/tokens/ci", map[string]interface{}{"ttl": "101h"}, "ttl"},
		{"negative ttl", "users/alice/tokens/ci", map[string]interface{}{"ttl": "-5s"}, "ttl"},
		{"ttl not a duration", "users/alice/tokens/ci", map[string]interface{}{"ttl": "soon"}, "ttl"},
		{"ttl of wrong type", "users/alice/tokens/ci", map[string]interface{}{"ttl": []interface{}{1}}, "ttl"},
		{"description too long", "users/alice/tokens/ci", map[string]interface{}{"description": strings.Repeat("x", maxDescriptionBytes+1)}, "description"},
		{"description too many bytes", "users/alice/tokens/ci", map[string]interface{}{"description": strings.Repeat("é", maxDescriptionBytes/2+1)}, "description"},
		{"description not UTF-8", "users/alice/tokens/ci", map[string]interface{}{"description": "\xff\xfe"}, "description"},
		{"description of wrong type", "users/alice/tokens/ci", map[string]interface{}{"description": map[string]interface{}{"a": 1}}, "description"},
		{"name too long", "users/alice/tokens/" + strings.Repeat("n", MaxNameLength+1), nil, "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := env.userError(logical.UpdateOperation, c.path, alice, c.data)
			require.Contains(t, msg, c.wantField)
			require.Equal(t, before, env.storageSnapshot())
		})
	}
}

func TestTokens_defaultAndCappedTTL(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")

	created := env.createToken("alice", alice, "default", nil)
	require.Equal(t, 720*time.Hour, lifetime(t, created))

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_ttl": "2h", "max_ttl": "3h"})
	require.Equal(t, 2*time.Hour, lifetime(t, env.createToken("alice", alice, "short", nil)))
	require.Equal(t, 3*time.Hour, lifetime(t, env.createToken("alice", alice, "max", map[string]interface{}{"ttl": "3h"})))
}

func lifetime(t *testing.T, data map[string]interface{}) time.Duration {
	t.Helper()
	created, err := time.Parse(time.RFC3339, data["created_at"].(string))
	require.NoError(t, err)
	expires, err := time.Parse(time.RFC3339, data["expires_at"].(string))
	require.NoError(t, err)
	return expires.Sub(created)
}

func TestTokens_deleteRevokesAtOnce(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	keep := env.createToken("alice", alice, "ci", nil)["token"].(string)

	env.ok(logical.DeleteOperation, "users/alice/tokens/laptop", alice, nil)
	require.Equal(t, false, env.verify(token)["active"])
	require.Equal(t, true, env.verify(keep)["active"])
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil))
	require.Equal(t, []string{"ci"}, env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["keys"])

	// Deleting again, or a name that never existed, is not an error.
	require.Equal(t, 204, env.statusOf(logical.DeleteOperation, "users/alice/tokens/laptop", alice, nil))

	// The last token gone, the index goes too.
	env.ok(logical.DeleteOperation, "users/alice/tokens/ci", alice, nil)
	_, hasIndex := env.storageSnapshot()[tokenIndexPath(alice)]
	require.False(t, hasIndex)
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", alice, nil))
}

func TestTokens_rootMayRevokeButOtherUsersMayNot(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	admin := env.addUser("admin")
	env.setRole(admin, adminOrg, "admin")
	env.createToken("alice", alice, "laptop", nil)
	env.createToken("alice", alice, "ci", nil)

	for _, op := range []logical.Operation{logical.ReadOperation, logical.DeleteOperation} {
		require.Equal(t, 403, env.statusOf(op, "users/alice/tokens/laptop", bob, nil), op)
	}
	require.Equal(t, 403, env.statusOf(logical.ListOperation, "users/alice/tokens/", bob, nil))

	env.ok(logical.DeleteOperation, "users/alice/tokens/laptop", "", nil)
	env.ok(logical.DeleteOperation, "users/alice/tokens/ci", admin, nil)
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", alice, nil))
}

func TestTokens_rotateReplacesTheSecret(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	created := env.createToken("alice", alice, "laptop", map[string]interface{}{"ttl": "5h", "description": "d"})
	oldToken := created["token"].(string)

	rotated := env.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", alice, nil).Data
	newToken := rotated["token"].(string)
	require.NotEqual(t, oldToken, newToken)
	require.NotEqual(t, created["token_id"], rotated["token_id"])
	require.Equal(t, "laptop", rotated["name"])
	require.Equal(t, "d", rotated["description"])
	require.Equal(t, 5*time.Hour, lifetime(t, rotated))

	require.Equal(t, false, env.verify(oldToken)["active"])
	verified := env.verify(newToken)
	require.Equal(t, true, verified["active"])
	require.Equal(t, rotated["token_id"], verified["token_id"])
	require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["keys"])

	// One record for the one name: the old one is gone from storage.
	records := 0
	for key := range env.storageSnapshot() {
		if strings.HasPrefix(key, tokenRecordPrefix) {
			records++
		}
	}
	require.Equal(t, 1, records)

	withTTL := env.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", alice, map[string]interface{}{"ttl": "1h"}).Data
	require.Equal(t, time.Hour, lifetime(t, withTTL))

	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "users/alice/tokens/missing/rotate", alice, nil))
	require.Equal(t, 400, env.statusOf(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", bob, nil))
	require.Equal(t, 400, env.statusOf(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", "", nil))
}

func TestTokens_perUserLimit(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	ctx := context.Background()

	index := &tokenIndex{Tokens: make(map[string]*tokenSummary)}
	for i := 0; i < maxTokensPerUser; i++ {
		index.Tokens[fmt.Sprintf("t%d", i)] = &tokenSummary{TokenID: fmt.Sprint(i), Hash: strings.Repeat("0", 64)}
	}
	require.NoError(t, env.b.putTokenIndex(ctx, env.storage, alice, index))
	msg := env.userError(logical.UpdateOperation, "users/alice/tokens/one-too-many", alice, nil)
	require.Contains(t, msg, fmt.Sprint(maxTokensPerUser))
}

// Many goroutines creating, rotating and deleting one user's tokens at once
// lose no index entry, never duplicate a token id and never leave two live
// secrets under one name. Run with -race.
func TestTokens_concurrentWritesForOneUser(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	const workers, perWorker = 16, 12

	var mu sync.Mutex
	secrets := make(map[string][]string) // name -> every secret issued for it
	ids := make(map[string]bool)
	record := func(data map[string]interface{}) {
		mu.Lock()
		defer mu.Unlock()
		id := data["token_id"].(string)
		require.False(t, ids[id], "duplicate token id %s", id)
		ids[id] = true
		name := data["name"].(string)
		secrets[name] = append(secrets[name], data["token"].(string))
	}

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				name := fmt.Sprintf("w%d-t%d", w, i)
				resp, err := env.do(logical.UpdateOperation, "users/alice/tokens/"+name, alice, nil)
				require.NoError(t, err)
				record(resp.Data)
				// Every worker also races on one shared name.
				resp, err = env.do(logical.UpdateOperation, "users/alice/tokens/shared", alice, nil)
				require.NoError(t, err)
				if !resp.IsError() {
					record(resp.Data)
				}
				if i%3 == 0 {
					resp, err = env.do(logical.UpdateOperation, "users/alice/tokens/"+name+"/rotate", alice, nil)
					require.NoError(t, err)
					record(resp.Data)
				}
				if i%4 == 0 {
					_, err = env.do(logical.DeleteOperation, "users/alice/tokens/"+name, alice, nil)
					require.NoError(t, err)
				}
			}
		}(w)
	}
	wg.Wait()

	require.Len(t, secrets["shared"], 1, "two concurrent creates produced two tokens under one name")
	listed := env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["keys"].([]string)
	want := 1 // "shared"
	for w := 0; w < workers; w++ {
		for i := 0; i < perWorker; i++ {
			if i%4 != 0 {
				want++
			}
		}
	}
	require.Len(t, listed, want)

	for name, issued := range secrets {
		deleted := false
		if name != "shared" {
			var w, i int
			_, err := fmt.Sscanf(name, "w%d-t%d", &w, &i)
			require.NoError(t, err)
			deleted = i%4 == 0
		}
		for n, secret := range issued {
			live := !deleted && n == len(issued)-1
			require.Equal(t, live, env.verify(secret)["active"], "token %s secret %d", name, n)
		}
	}
}

// Creating a named token costs one read of the user's index and three
// writes (record, index and the inventory's counter shard) once
// configuration, key and identity are cached; its due entry is written
// only if it is due before the user's earliest one.
func TestTokens_createStorageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "first", nil)

	env.storage.reset()
	lookups := env.sys.lookups.Load()
	env.createToken("alice", alice, "second", nil)
	require.Equal(t, roundTrips{Gets: 1, Puts: 3}, env.storage.counted())
	require.Equal(t, lookups, env.sys.lookups.Load())

	env.storage.reset()
	env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil)
	require.Equal(t, roundTrips{Gets: 1}, env.storage.counted())
}

func TestTokens_scopes(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")

	def := env.createToken("alice", alice, "default", nil)
	require.Equal(t, []string{"api", "quantum_tokens"}, def["scopes"])
	narrow := env.createToken("alice", alice, "narrow", map[string]interface{}{"scopes": "quantum_tokens"})
	require.Equal(t, []string{"quantum_tokens"}, narrow["scopes"])
	require.Equal(t, []string{"quantum_tokens"}, env.verify(narrow["token"].(string))["scopes"])
	require.Equal(t, []string{"quantum_tokens"}, env.ok(logical.ReadOperation, "users/alice/tokens/narrow", alice, nil).Data["scopes"])
	info := env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["key_info"].(map[string]interface{})
	require.Equal(t, []string{"quantum_tokens"}, info["narrow"].(map[string]interface{})["scopes"])

	before := env.storageSnapshot()
	require.Contains(t, env.userError(logical.UpdateOperation, "users/alice/tokens/bad", alice, map[string]interface{}{"scopes": "api,admin"}), `scope "admin"`)
	require.Contains(t, env.userError(logical.UpdateOperation, "users/alice/tokens/narrow/rotate", alice, map[string]interface{}{"scopes": "api"}), "scopes cannot be changed")
	require.Equal(t, before, env.storageSnapshot())

	rotated := env.ok(logical.UpdateOperation, "users/alice/tokens/narrow/rotate", alice, nil).Data
	require.Equal(t, []string{"quantum_tokens"}, rotated["scopes"], "rotate keeps the scopes")

	// The operator's lists: a new scope becomes available, a withdrawn one
	// stops being granted by tokens that carry it.
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"scopes": "api,quantum_tokens,jobs", "default_scopes": "api"})
	require.Equal(t, []string{"api"}, env.createToken("alice", alice, "new-default", nil)["scopes"])
	require.Equal(t, []string{"jobs"}, env.createToken("alice", alice, "jobs", map[string]interface{}{"scopes": "jobs"})["scopes"])
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"scopes": "api,jobs"})
	require.Equal(t, []string{}, env.verify(rotated["token"].(string))["scopes"])
	require.Equal(t, []string{"api"}, env.verify(def["token"].(string))["scopes"])
	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": "quantum_tokens"}), "default_scopes")
}

// A token issued before scopes existed holds the default scopes of the day.
func TestTokens_tokensWithoutScopesHoldTheDefaults(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "old", nil)["token"].(string)
	hmacKey, err := env.b.getSalt(ctx, env.storage, false)
	require.NoError(t, err)
	record, err := getTokenRecord(ctx, env.storage, hmacKey.GetHMAC(token))
	require.NoError(t, err)
	// As v0.1.0 wrote it: neither scopes nor the scoped marker.
	record.Scopes, record.Scoped = nil, false
	require.NoError(t, putTokenRecord(ctx, env.storage, record))
	env.b.records.purge()

	require.Equal(t, []string{"api", "quantum_tokens"}, env.verify(token)["scopes"])
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": "api"})
	require.Equal(t, []string{"api"}, env.verify(token)["scopes"])
}

// An empty scope set is a set: a token issued with no scopes verifies with
// none, through storage, rotation, leases and every cache, and never as the
// default scopes (issue 21, item 2). Each case is one of the review's
// reproductions; each holds no scope, then the operator restores the
// defaults, which must not widen it.
func TestTokens_emptyScopesStayEmpty(t *testing.T) {
	none := []string{}
	cases := map[string]func(env *testEnv, alice string) (token string){
		"rotated after the only scope was withdrawn": func(env *testEnv, alice string) string {
			env.createToken("alice", alice, "narrow", map[string]interface{}{"scopes": "quantum_tokens"})
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"scopes": "api", "default_scopes": "api"})
			rotated := env.ok(logical.UpdateOperation, "users/alice/tokens/narrow/rotate", alice, nil).Data
			require.Equal(t, none, rotated["scopes"])
			return rotated["token"].(string)
		},
		"a lease of a role whose only scope was withdrawn": func(env *testEnv, alice string) string {
			env.ok(logical.CreateOperation, "roles/jobs", "", map[string]interface{}{"scopes": "quantum_tokens"})
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"scopes": "api", "default_scopes": "api"})
			lease := env.ok(logical.ReadOperation, "users/alice/creds/jobs", alice, nil).Data
			require.Equal(t, none, lease["scopes"])
			return lease["token"].(string)
		},
		"created under default_scopes=\"\"": func(env *testEnv, alice string) string {
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": ""})
			created := env.createToken("alice", alice, "empty", nil)
			require.Equal(t, none, created["scopes"])
			return created["token"].(string)
		},
	}
	for name, issue := range cases {
		t.Run(name, func(t *testing.T) {
			env := newTestEnv(t)
			alice := env.addUser("alice")
			token := issue(env, alice)
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"scopes": "api,quantum_tokens", "default_scopes": "api,quantum_tokens"})

			check := func(when string) {
				got := env.verify(token)
				require.Equal(t, true, got["active"], when)
				require.Equal(t, none, got["scopes"], "verify, %s", when)
				_, body := env.introspect(map[string]interface{}{"token": token})
				require.Equal(t, true, body["active"], when)
				require.NotContains(t, body, "scope", "introspect, %s", when)
				inventory, _, _ := env.listInventory("inventory/tokens/", nil)
				require.Len(t, inventory, 1)
				for _, info := range inventory {
					require.Equal(t, none, info["scopes"], "inventory, %s", when)
				}
			}
			check("cached")
			env.b.records.purge()
			env.b.invalidate(context.Background(), "config")
			check("read back from storage")
		})
	}
}
