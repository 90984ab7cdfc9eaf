package backend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestCreds_issuesALeasedToken(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "15m", "max_ttl": "2h"})

	resp := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.NotNil(t, resp.Secret)
	require.Equal(t, 15*time.Minute, resp.Secret.TTL)
	require.Equal(t, 2*time.Hour, resp.Secret.MaxTTL)
	require.True(t, resp.Secret.Renewable)
	require.Equal(t, secretPATType, resp.Secret.InternalData["secret_type"])
	require.Equal(t, 15*time.Minute, lifetime(t, resp.Data))

	token := resp.Data["token"].(string)
	for key := range resp.Secret.InternalData {
		require.NotEqual(t, token, resp.Secret.InternalData[key], "the secret must not travel in internal data (%s)", key)
	}
	got := env.verify(token)
	require.Equal(t, true, got["active"])
	require.Equal(t, "runtime", got["role"])
	require.Equal(t, "alice", got["user"])
	require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "member"}}, got["organizations"])

	// Leased tokens are not named tokens: they do not appear in the list.
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/alice/tokens/", alice, nil))
}

func TestCreds_revokeAndRenewThroughTheLease(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m", "max_ttl": "1h"})
	resp := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	token := resp.Data["token"].(string)

	secret := resp.Secret
	secret.IssueTime = time.Now()
	secret.Increment = 30 * time.Minute
	ageToken(t, env, token, 5*time.Minute)
	renewed, err := env.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RenewOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: secret,
	})
	require.NoError(t, err)
	require.False(t, renewed.IsError())
	require.Equal(t, 30*time.Minute, renewed.Secret.TTL)
	ctx := context.Background()
	hmacKey, err := env.b.getSalt(ctx, env.storage, true)
	require.NoError(t, err)
	record, err := getTokenRecord(ctx, env.storage, hmacKey.GetHMAC(token))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(30*time.Minute), record.ExpiresAt, 2*time.Second)

	revoke := func() {
		_, err := env.b.HandleRequest(ctx, &logical.Request{
			Operation: logical.RevokeOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: secret,
		})
		require.NoError(t, err)
	}
	revoke()
	require.Equal(t, false, env.verify(token)["active"])
	// Revoking what is already gone succeeds, so Vault never retries it.
	revoke()

	renewed, err = env.b.HandleRequest(ctx, &logical.Request{
		Operation: logical.RenewOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: secret,
	})
	require.NoError(t, err)
	require.Contains(t, renewed.Error().Error(), "revoked")
}

func TestCreds_leaseExpiryStopsVerification(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	token := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	ageToken(t, env, token, 2*time.Hour)
	require.Equal(t, false, env.verify(token)["active"])
}

func TestCreds_malformedLeaseDataIsRefused(t *testing.T) {
	env := newTestEnv(t)
	for name, internal := range map[string]map[string]interface{}{
		"missing hash":   {"user": "alice", "role": "r", "token_id": "x"},
		"hash not hex":   {"token_hash": "../config", "user": "alice", "role": "r", "token_id": "x"},
		"hash of a type": {"token_hash": 42, "user": "alice", "role": "r", "token_id": "x"},
	} {
		t.Run(name, func(t *testing.T) {
			internal["secret_type"] = secretPATType
			_, err := env.b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.RevokeOperation, Storage: env.storage,
				Secret: &logical.Secret{InternalData: internal},
			})
			require.ErrorIs(t, err, errBadLeaseData)
		})
	}
}

func TestCreds_refusals(t *testing.T) {
	env := newTestEnv(t)
	env.addUser("alice")
	bob := env.addUser("bob")
	alice := "entity-alice"
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)

	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/creds/runtime", "", nil), "user accounts")
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/creds/runtime", bob, nil), `"bob"`)
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/creds/missing", alice, nil), `"missing"`)
}

func TestCreds_ttlIsCappedByMaxTTL(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_ttl": "10m", "max_ttl": "30m"})
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "1h", "max_ttl": "2h"})
	resp := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.Equal(t, 30*time.Minute, resp.Secret.TTL)
	require.Equal(t, 30*time.Minute, resp.Secret.MaxTTL)
}

// Issuing a lease costs three storage writes - the record verify reads,
// the marker that lists the lease under its owner for revoke-all and the
// inventory, and the inventory's counter shard - once the role, the
// configuration, the HMAC key and the owner's lease count are cached (and
// the due entry of the lease's hour was written by an earlier lease).
func TestCreds_storageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)

	env.storage.reset()
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.Equal(t, roundTrips{Puts: 3}, env.storage.counted())
}

// Vault caps a lease at the mount's max_lease_ttl; the token's own expiry
// is the fail-safe when revocation runs late, so it must be capped the
// same way, at issue and at renewal.
func TestCreds_tokenExpiryIsCappedByTheMountsMaxLeaseTTL(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.sys.MaxLeaseTTLVal = 20 * time.Minute
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "1h", "max_ttl": "2h"})

	resp := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.Equal(t, 20*time.Minute, resp.Secret.TTL)
	require.Equal(t, 20*time.Minute, resp.Secret.MaxTTL)
	require.Equal(t, 20*time.Minute, lifetime(t, resp.Data))

	token := resp.Data["token"].(string)
	ctx := context.Background()
	hmacKey, err := env.b.getSalt(ctx, env.storage, false)
	require.NoError(t, err)
	record, err := getTokenRecord(ctx, env.storage, hmacKey.GetHMAC(token))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(20*time.Minute), record.ExpiresAt, 2*time.Second)

	secret := resp.Secret
	secret.IssueTime = time.Now()
	secret.Increment = time.Hour
	renewed, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RenewOperation, Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.LessOrEqual(t, renewed.Secret.TTL, 20*time.Minute)
	record, err = getTokenRecord(ctx, env.storage, hmacKey.GetHMAC(token))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(20*time.Minute), record.ExpiresAt, 2*time.Second)
}

func TestCreds_perUserLeaseLimit(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	ctx := context.Background()
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)

	// Markers as if alice held the most leases a user may hold.
	for i := 0; i < maxLeasesPerUser; i++ {
		record := &tokenRecord{Hash: fmt.Sprintf("%064x", i), TokenID: fmt.Sprint(i), EntityID: alice, Role: "runtime"}
		require.NoError(t, env.b.putLeaseMarker(ctx, env.storage, record))
	}
	env.b.leaseCounts.purge()
	before := env.storageSnapshot()
	msg := env.userError(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.Contains(t, msg, fmt.Sprint(maxLeasesPerUser))
	require.Equal(t, before, env.storageSnapshot())
	env.ok(logical.ReadOperation, "users/bob/creds/runtime", bob, nil)
}

func TestCreds_scopesComeFromTheRole(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	env.ok(logical.CreateOperation, "roles/jobs", "", map[string]interface{}{"scopes": "quantum_tokens"})

	require.Equal(t, []string{"api", "quantum_tokens"}, env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["scopes"])
	lease := env.ok(logical.ReadOperation, "users/alice/creds/jobs", alice, nil).Data
	require.Equal(t, []string{"quantum_tokens"}, lease["scopes"])
	require.Equal(t, []string{"quantum_tokens"}, env.verify(lease["token"].(string))["scopes"])
	require.Contains(t, env.userError(logical.UpdateOperation, "roles/jobs", "", map[string]interface{}{"scopes": "admin"}), `scope "admin"`)
}

// A job takes a lease and ends it; the next job's creds must not list the
// owner's lease markers again, and the count stays exact, also when Vault
// retries a revocation.
func TestCreds_revokingALeaseKeepsTheCountWithoutListing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	ctx := context.Background()
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	revoke := func(secret *logical.Secret) {
		_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: secret})
		require.NoError(t, err)
	}
	requireExactCount := func(want int) {
		t.Helper()
		env.storage.reset()
		env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
		count, ok := env.b.leaseCounts.get(alice)
		require.True(t, ok)
		hashes, err := listLeaseHashes(ctx, env.storage, alice)
		require.NoError(t, err)
		require.Equal(t, want, count)
		require.Equal(t, len(hashes), count, "the cached count is the number of markers")
	}
	first := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	revoke(first.Secret)

	env.storage.reset()
	third := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	require.Equal(t, roundTrips{Puts: 3}, env.storage.counted(), "no List of the markers after a revoke")
	revoke(third.Secret)
	revoke(third.Secret) // Vault retrying: nothing left to count down
	requireExactCount(2)
}

// Each of the mount's lease TTLs is a gRPC round trip to Vault: asked at
// most once per issue and per renewal (Agent renews every job's lease).
func TestCreds_mountLeaseTTLsAreAskedOncePerRequest(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	ctx := context.Background()
	counting := &countingReplicationState{SystemView: env.sys}
	env.b.replication.SystemView = counting
	for _, role := range []string{"ttl=0", "ttl=10m"} {
		data := map[string]interface{}{"max_ttl": "1h"}
		if role == "ttl=10m" {
			data["ttl"] = "10m"
		}
		env.ok(logical.UpdateOperation, "roles/runtime", "", data)

		counting.leaseTTLAsks.Store(0)
		resp := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
		require.LessOrEqual(t, counting.leaseTTLAsks.Load(), int64(2), "%s: issue asks the default and max once each at most", role)

		counting.leaseTTLAsks.Store(0)
		secret := resp.Secret
		secret.IssueTime = time.Now()
		secret.Increment = 5 * time.Minute
		renewed, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RenewOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: secret})
		require.NoError(t, err)
		require.False(t, renewed.IsError())
		require.LessOrEqual(t, counting.leaseTTLAsks.Load(), int64(2), "%s: renewal asks the default and max once each at most", role)
	}
}
