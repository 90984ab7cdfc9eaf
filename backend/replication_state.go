package backend

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL is how long a node's replication state is reused. It
// changes only when Vault promotes or demotes the node, which reloads the
// mount; the TTL bounds the staleness should a version of Vault not do so.
const replicationStateTTL = time.Second

// cachedReplicationState is the system view with ReplicationState answered
// from memory. framework.Backend asks for the state on every request to a
// path with Operations, to honour the ForwardPerformance* flags; for an
// external plugin each ask is a gRPC round-trip to Vault, measured at about
// a tenth of the throughput of verify and resolve.
type cachedReplicationState struct {
	logical.SystemView
	cached atomic.Pointer[replicationStateAt]
}

type replicationStateAt struct {
	state   consts.ReplicationState
	expires time.Time
}

func (c *cachedReplicationState) ReplicationState() consts.ReplicationState {
	if at := c.cached.Load(); at != nil && time.Now().Before(at.expires) {
		return at.state
	}
	state := c.SystemView.ReplicationState()
	c.cached.Store(&replicationStateAt{state: state, expires: time.Now().Add(replicationStateTTL)})
	return state
}

// forget drops the cached state, so that the next request asks Vault.
func (c *cachedReplicationState) forget() {
	c.cached.Store(nil)
}
