package backend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestLastUse_recordedInBatchesNeverOnTheRequest(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	named := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	unused := env.createToken("alice", alice, "spare", nil)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	require.Equal(t, "", env.ok(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil).Data["last_used_at"])

	env.storage.reset()
	for i := 0; i < 50; i++ {
		env.verify(named)
		env.introspect(map[string]interface{}{"token": lease})
	}
	require.Zero(t, env.storage.counted().Puts, "verify never writes")

	hour := time.Now().UTC().Truncate(time.Hour)
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	read := env.ok(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil).Data
	require.Equal(t, formatTime(hour), read["last_used_at"])
	info := env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["key_info"].(map[string]interface{})
	require.Equal(t, formatTime(hour), info["laptop"].(map[string]interface{})["last_used_at"])
	require.Equal(t, "", info["spare"].(map[string]interface{})["last_used_at"], unused["token_id"])
	hmacKey, err := env.b.getSalt(ctx, env.storage, false)
	require.NoError(t, err)
	marker, err := getLeaseMarker(ctx, env.storage, alice, hmacKey.GetHMAC(lease))
	require.NoError(t, err)
	require.Equal(t, hour, marker.LastUsedAt)

	// Within the same granule, more uses write nothing more.
	env.verify(named)
	env.storage.reset()
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	require.Equal(t, roundTrips{}, env.storage.counted())
}

// One write per owner per batch, however many of its tokens were used.
func TestLastUse_oneIndexWritePerOwner(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	var tokens []string
	for i := 0; i < 20; i++ {
		tokens = append(tokens, env.createToken("alice", alice, fmt.Sprintf("t%d", i), nil)["token"].(string))
	}
	for _, token := range tokens {
		env.verify(token)
	}
	env.storage.reset()
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	require.Equal(t, roundTrips{Gets: 1, Puts: 1}, env.storage.counted())
}

// A used lease costs its own marker's read and write on top of the
// owner's index: the batch for an owner who used five named tokens and
// three leases is 1 + 3 reads and 1 + 3 writes.
func TestLastUse_eachUsedLeaseCostsAReadAndAWrite(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	var named, leases []string
	for i := 0; i < 5; i++ {
		named = append(named, env.createToken("alice", alice, fmt.Sprintf("t%d", i), nil)["token"].(string))
	}
	for i := 0; i < 3; i++ {
		leases = append(leases, env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string))
	}
	for _, token := range append(named, leases...) {
		env.verify(token)
	}
	env.storage.reset()
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	require.Equal(t, roundTrips{Gets: 1 + 3, Puts: 1 + 3}, env.storage.counted())
}

func TestLastUse_offAtZeroGranularityAndNotCarriedOverARotation(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	old := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.verify(old)
	env.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", alice, nil)
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	require.Equal(t, "", env.ok(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil).Data["last_used_at"],
		"the old secret's use is not the new one's")

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"last_used_granularity": "0"})
	fresh := env.createToken("alice", alice, "fresh", nil)["token"].(string)
	env.verify(fresh)
	require.NoError(t, env.b.flushLastUse(ctx, env.storage))
	require.Equal(t, "", env.ok(logical.ReadOperation, "users/alice/tokens/fresh", alice, nil).Data["last_used_at"])
}

// A node that may not write drops what it noted instead of piling it up.
func TestLastUse_droppedWhereTheNodeMayNotWrite(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.verify(token)
	env.setReplicationState(consts.ReplicationPerformanceStandby)
	require.NoError(t, env.b.periodic(context.Background(), &logical.Request{Storage: env.storage}))
	pending, _ := env.b.lastUse.take()
	require.Empty(t, pending)
}

// What Vault does: its rollback manager sends the mount a rollback request
// about once a minute, and the engine's periodic function writes the noted
// uses - also with the sweep off (tidy_interval 0, as the end-to-end suite
// runs). No test above proves the periodic function flushes; this one does.
func TestLastUse_writtenByThePeriodicFunction(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"tidy_interval": 0})
	named := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	env.verify(named)
	env.verify(lease)
	hour := time.Now().UTC().Truncate(time.Hour)

	_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RollbackOperation, Path: "", Storage: env.storage})
	require.NoError(t, err)
	require.Equal(t, formatTime(hour), env.ok(logical.ReadOperation, "users/alice/tokens/laptop", alice, nil).Data["last_used_at"])
	hmacKey, err := env.b.getSalt(ctx, env.storage, false)
	require.NoError(t, err)
	marker, err := getLeaseMarker(ctx, env.storage, alice, hmacKey.GetHMAC(lease))
	require.NoError(t, err)
	require.Equal(t, hour, marker.LastUsedAt)
}
