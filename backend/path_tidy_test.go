package backend

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestTidy_removesExpiredTokensWithTheirIndexEntries(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	var expired []string
	for i := 0; i < 3; i++ {
		token := env.createToken("alice", alice, fmt.Sprintf("old%d", i), nil)["token"].(string)
		ageToken(t, env, token, 800*time.Hour)
		expired = append(expired, token)
	}
	live := env.createToken("alice", alice, "live", nil)["token"].(string)
	bobsOld := env.createToken("bob", bob, "old", nil)["token"].(string)
	ageToken(t, env, bobsOld, 800*time.Hour)

	got := env.tidy(nil)
	require.Equal(t, 2, got["entities_scanned"])
	require.Equal(t, 4, got["expired_removed"])

	require.Equal(t, []string{"live"}, env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["keys"])
	require.Equal(t, 404, env.statusOf(logical.ListOperation, "users/bob/tokens/", bob, nil))
	require.Equal(t, true, env.verify(live)["active"])
	for _, token := range append(expired, bobsOld) {
		require.Equal(t, false, env.verify(token)["active"])
	}
	records := 0
	for key := range env.storageSnapshot() {
		if strings.HasPrefix(key, tokenRecordPrefix) {
			records++
		}
	}
	require.Equal(t, 1, records)
}

func TestTidy_repairRemovesWhatInterruptedWritesLeft(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	kept := env.createToken("alice", alice, "kept", nil)["token"].(string)
	dangling := env.createToken("alice", alice, "dangling", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	expiredLease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	ageToken(t, env, expiredLease, 3*time.Hour)

	// A crash between a create's two writes: a record no index lists.
	hmacKey, err := env.b.getSalt(ctx, env.storage, true)
	require.NoError(t, err)
	orphan := &tokenRecord{Hash: hmacKey.GetHMAC("plqk_orphan"), TokenID: "x", Name: "orphan", EntityID: alice, ExpiresAt: time.Now().Add(time.Hour)}
	require.NoError(t, putTokenRecord(ctx, env.storage, orphan))
	// A crash between a delete's two writes: an index entry without record.
	require.NoError(t, deleteTokenRecord(ctx, env.storage, hmacKey.GetHMAC(dangling)))

	plain := env.tidy(nil)
	require.Equal(t, 0, plain["orphans_removed"], "repair runs only on request")
	require.Equal(t, 1, plain["expired_removed"], "the expired lease, whose revocation never came")

	got := env.tidy(map[string]interface{}{"repair": true})
	require.Equal(t, 1, got["dangling_removed"])
	require.Equal(t, 1, got["orphans_removed"])
	require.Equal(t, 3, got["records_scanned"])

	require.Equal(t, []string{"kept"}, env.ok(logical.ListOperation, "users/alice/tokens/", alice, nil).Data["keys"])
	require.Equal(t, true, env.verify(kept)["active"])
	require.Equal(t, true, env.verify(lease)["active"])
	snapshot := env.storageSnapshot()
	require.NotContains(t, snapshot, tokenRecordPath(orphan.Hash))
}

func TestTidy_periodicSweepRespectsIntervalAndReplication(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	req := &logical.Request{Storage: env.storage}
	expire := func(name string) {
		token := env.createToken("alice", alice, name, nil)["token"].(string)
		ageToken(t, env, token, 800*time.Hour)
	}
	listed := func() int {
		resp, err := env.do(logical.ListOperation, "users/alice/tokens/", alice, nil)
		require.NoError(t, err)
		keys, _ := resp.Data["keys"].([]string)
		return len(keys)
	}
	expire("first")

	env.setReplicationState(consts.ReplicationPerformanceStandby)
	require.NoError(t, env.b.periodic(ctx, req))
	require.Equal(t, 1, listed(), "a performance standby must not sweep")

	env.setReplicationState(0)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"tidy_interval": "0"})
	require.NoError(t, env.b.periodic(ctx, req))
	require.Equal(t, 1, listed(), "tidy_interval=0 disables the sweep")

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"tidy_interval": "1h"})
	require.NoError(t, env.b.periodic(ctx, req))
	require.Equal(t, 0, listed())

	expire("second")
	require.NoError(t, env.b.periodic(ctx, req))
	require.Equal(t, 1, listed(), "the next sweep waits for tidy_interval")
}

func TestTidy_runsInTheBackgroundOneAtATime(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, "idle", env.ok(logical.ReadOperation, "tidy/status", "", nil).Data["state"])

	// A sweep in progress (the periodic one, say) refuses a second.
	require.True(t, env.b.tidy.start("periodic", false))
	require.Contains(t, env.refusal(409, logical.UpdateOperation, "tidy", "", nil), "already running")
	status := env.ok(logical.ReadOperation, "tidy/status", "", nil).Data
	require.Equal(t, "running", status["state"])
	require.Equal(t, "periodic", status["trigger"])
	env.b.tidy.finish(&tidyResult{}, nil)

	got := env.tidy(map[string]interface{}{"repair": true})
	require.Equal(t, "request", got["trigger"])
	require.Equal(t, true, got["repair"])
	require.NotEmpty(t, got["finished_at"])
}
