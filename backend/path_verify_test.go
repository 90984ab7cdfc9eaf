package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestVerify_activeTokenReportsOwnerAndOrganizations(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.setRole(alice, "globex", "owner")
	created := env.createToken("alice", alice, "laptop", nil)

	got := env.verify(created["token"].(string))
	require.Equal(t, true, got["active"])
	require.Equal(t, created["token_id"], got["token_id"])
	require.Equal(t, "laptop", got["name"])
	require.Equal(t, "alice", got["user"])
	require.Equal(t, alice, got["entity_id"])
	require.Equal(t, created["expires_at"], got["expires_at"])
	require.Equal(t, []map[string]interface{}{
		{"name": "acme", "role": "member"},
		{"name": "globex", "role": "owner"},
	}, got["organizations"])
}

func TestVerify_strongestRoleCountsAndAdminsAreEverywhere(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	root := env.addUser("root-admin")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)

	env.sys.mu.Lock()
	env.sys.groups[alice] = []*logical.Group{
		{Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "member"}},
		{Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "maintainer"}},
		{Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "member"}},
		{Metadata: map[string]string{groupMetadataOrg: "other", groupMetadataRole: "superhero"}},
		{Metadata: map[string]string{"team": "quantum"}},
	}
	env.sys.mu.Unlock()
	env.b.identities.purge()
	require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "maintainer"}}, env.verify(token)["organizations"])

	env.setRole(root, adminOrg, "admin")
	adminToken := env.createToken("root-admin", root, "ops", nil)["token"].(string)
	require.Equal(t, []map[string]interface{}{{"name": "*", "role": "admin"}}, env.verify(adminToken)["organizations"])
}

func TestVerify_inactiveTokens(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	carol := env.addUser("carol")
	expired := env.createToken("alice", alice, "expired", map[string]interface{}{"ttl": "1h"})["token"].(string)
	revoked := env.createToken("alice", alice, "revoked", nil)["token"].(string)
	env.ok(logical.DeleteOperation, "users/alice/tokens/revoked", alice, nil)
	ofDisabled := env.createToken("bob", bob, "t", nil)["token"].(string)
	env.disableEntity(bob)
	ofDeleted := env.createToken("carol", carol, "t", nil)["token"].(string)
	env.deleteEntity(carol)
	ageToken(t, env, expired, 2*time.Hour)

	valid := env.createToken("alice", alice, "valid", nil)["token"].(string)
	body := valid[len("plqk_"):]
	unknown, err := generateToken("plqk_", strings.NewReader(strings.Repeat("x", 200)))
	require.NoError(t, err)

	cases := map[string]string{
		"expired":            expired,
		"revoked":            revoked,
		"owner disabled":     ofDisabled,
		"owner deleted":      ofDeleted,
		"unknown":            unknown,
		"wrong prefix":       "ghp_" + body,
		"bad checksum":       valid[:len(valid)-1] + string(nextBase62(valid[len(valid)-1])),
		"truncated":          valid[:len(valid)-2],
		"garbage":            "not a token at all",
		"non UTF-8":          "plqk_\xff\xfe",
		"whitespace wrapped": " " + valid + " ",
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			got := env.verify(token)
			require.Equal(t, map[string]interface{}{"active": false}, got)
		})
	}
	require.Equal(t, true, env.verify(valid)["active"])
}

// ageToken moves a token's expiry into the past by d, as if time had passed.
func ageToken(t *testing.T, env *testEnv, token string, d time.Duration) {
	t.Helper()
	ctx := context.Background()
	hmacKey, err := env.b.getSalt(ctx, env.storage, true)
	require.NoError(t, err)
	record, err := getTokenRecord(ctx, env.storage, hmacKey.GetHMAC(token))
	require.NoError(t, err)
	record.CreatedAt = record.CreatedAt.Add(-d)
	record.ExpiresAt = record.ExpiresAt.Add(-d)
	require.NoError(t, putTokenRecord(ctx, env.storage, record))
	env.b.records.remove(record.Hash)
	if record.Role != "" {
		require.NoError(t, env.b.putLeaseMarker(ctx, env.storage, record))
		return
	}
	index, err := getTokenIndex(ctx, env.storage, record.EntityID)
	require.NoError(t, err)
	index.Tokens[record.Name].CreatedAt = record.CreatedAt
	index.Tokens[record.Name].ExpiresAt = record.ExpiresAt
	require.NoError(t, env.b.putTokenIndex(ctx, env.storage, record.EntityID, index))
}

func TestVerify_stopsAtTheExpiryInstant(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "short", map[string]interface{}{"ttl": "2s"})
	expiresAt, err := time.Parse(time.RFC3339, token["expires_at"].(string))
	require.NoError(t, err)

	require.Equal(t, true, env.verify(token["token"].(string))["active"])
	time.Sleep(time.Until(expiresAt))
	require.Equal(t, false, env.verify(token["token"].(string))["active"], "still active at its expiry instant, before any tidy")
}

func TestVerify_membershipIsLiveWithinTheIdentityCacheTTL(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	require.Len(t, env.verify(token)["organizations"], 1)

	// The identity store changes; within identity_cache_ttl the cached
	// answer may still be used, after it the change shows.
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"identity_cache_ttl": "1s"})
	env.verify(token)
	env.sys.mu.Lock()
	env.sys.groups[alice] = nil
	env.sys.mu.Unlock()
	time.Sleep(1100 * time.Millisecond)
	require.Empty(t, env.verify(token)["organizations"])

	// With caching off every verify asks the identity store.
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"identity_cache_ttl": "0"})
	env.setRole(alice, "acme", "owner")
	before := env.sys.lookups.Load()
	require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "owner"}}, env.verify(token)["organizations"])
	require.Equal(t, before+2, env.sys.lookups.Load())
}

func TestVerify_refusesRequestsWithoutToken(t *testing.T) {
	env := newTestEnv(t)
	require.Contains(t, env.userError(logical.UpdateOperation, "verify", "", nil), "token")
	require.Contains(t, env.userError(logical.UpdateOperation, "verify", "", map[string]interface{}{"token": ""}), "token")
	require.Contains(t, env.userError(logical.ReadOperation, "verify", "", map[string]interface{}{"token": "plqk_x"}), "never put a token in a URL")
	require.Contains(t, env.userError(logical.ReadOperation, "verify", "", nil), "X-Auth-Token")
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "verify/plqk_abc", "", nil))
}

// Verify costs one storage read for a well-formed token whose record is not
// cached, none once it is, and none for a garbled one; the identity store
// is asked once per identity_cache_ttl.
func TestVerify_storageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.verify(token) // warms the identity cache

	env.storage.reset()
	env.b.records.purge()
	lookups := env.sys.lookups.Load()
	require.Equal(t, true, env.verify(token)["active"])
	require.Equal(t, roundTrips{Gets: 1}, env.storage.counted(), "a cold record is one read")
	require.Equal(t, lookups, env.sys.lookups.Load())

	env.storage.reset()
	require.Equal(t, true, env.verify(token)["active"])
	require.Equal(t, roundTrips{}, env.storage.counted(), "a cached record costs no read")

	env.storage.reset()
	garbled := token[:len(token)-1] + string(nextBase62(token[len(token)-1]))
	require.Equal(t, false, env.verify(garbled)["active"])
	require.Equal(t, roundTrips{}, env.storage.counted())
}

// Before any token is issued there is no HMAC key; verify answers inactive
// without creating one, since it must not write (performance standbys
// answer it themselves).
func TestVerify_writesNothingBeforeTheFirstToken(t *testing.T) {
	env := newTestEnv(t)
	token, err := generateToken("plqk_", strings.NewReader(strings.Repeat("y", 200)))
	require.NoError(t, err)
	require.Equal(t, map[string]interface{}{"active": false}, env.verify(token))
	env.requireStorageUnchanged()
	require.Equal(t, int64(0), env.storage.puts.Load())
}

// The PlanQK SDKs send the PAT in X-Auth-Token; a gateway forwards it
// unchanged and Vault answers the GET without an existence check.
func TestVerify_tokenInTheXAuthTokenHeader(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	get := func(headers map[string][]string) map[string]interface{} {
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "verify", Storage: env.storage, Headers: headers,
		})
		require.NoError(t, err)
		require.False(t, resp.IsError(), "%v", resp.Error())
		return resp.Data
	}
	got := get(map[string][]string{"X-Auth-Token": {token}})
	require.Equal(t, true, got["active"])
	require.Equal(t, alice, got["entity_id"])
	require.Equal(t, true, get(map[string][]string{"x-auth-token": {token}})["active"], "header names are case-insensitive")
	require.Equal(t, map[string]interface{}{"active": false}, get(map[string][]string{"X-Auth-Token": {token + "x"}}))

	env.storage.reset()
	get(map[string][]string{"X-Auth-Token": {token}})
	require.Equal(t, roundTrips{}, env.storage.counted(), "a cached record costs no read")
}

// A deleted owner's token may be presented on every request (a CI job of
// someone who left): "no such entity" is reused like any identity answer,
// so that it costs Vault one lookup a second, not one per verify.
func TestVerify_aDeletedOwnerIsNotLookedUpOnEveryRequest(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "ci", nil)["token"].(string)
	env.deleteEntity(alice)

	before := env.sys.lookups.Load()
	for i := 0; i < 50; i++ {
		require.Equal(t, false, env.verify(token)["active"])
	}
	require.Equal(t, int64(1), env.sys.lookups.Load()-before, "one EntityInfo for 50 verifies within a second")

	// The answer is reused for at most a second, then asked again.
	gone, ok := env.b.identities.get(alice)
	require.True(t, ok && gone.gone)
	gone.fetchedAt = gone.fetchedAt.Add(-goneIdentityTTL)
	require.Equal(t, false, env.verify(token)["active"])
	require.Equal(t, int64(2), env.sys.lookups.Load()-before)
}
