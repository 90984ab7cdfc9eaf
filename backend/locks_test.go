package backend

import (
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// The first request after a start, a reload or a failover loads the HMAC
// key while it holds the caller's entity lock. locksutil's 256 stripes are
// shared and not re-entrant, so if loading the key took a striped lock of
// its own, the users whose lock shares the key's stripe would hang the node
// forever. Walk entities over every stripe, each the first caller of a
// fresh backend, creating a PAT and taking a lease.
func TestLocks_noStripeDeadlocksAColdStart(t *testing.T) {
	byStripe := make(map[uint8]string)
	for i := 0; len(byStripe) < 256; i++ {
		id := fmt.Sprintf("entity-%d", i)
		stripe := locksutil.LockIndexForKey(entityLockKey(id))
		if _, ok := byStripe[stripe]; !ok {
			byStripe[stripe] = id
		}
	}
	require.Len(t, byStripe, 256)

	for stripe, id := range byStripe {
		for _, first := range []string{"create", "creds"} {
			env := newTestEnv(t)
			user := "user-" + id
			env.addEntity(id, user)
			env.ok(logical.CreateOperation, "roles/runtime", "", nil)
			done := make(chan error, 1)
			go func() {
				var err error
				if first == "create" {
					_, err = env.do(logical.UpdateOperation, "users/"+user+"/tokens/first", id, nil)
				} else {
					_, err = env.do(logical.ReadOperation, "users/"+user+"/creds/runtime", id, nil)
				}
				done <- err
			}()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s by an entity on stripe %d hung on a cold start", first, stripe)
			}
		}
	}
}
