package backend

import (
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-kms-wrapping/entropy/v2"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
)

// replicationStateTTL is how long a node's replication state is reused.
//
// The assumption this rests on: a node's replication state changes only
// when Vault promotes or demotes it (standby to active, primary to
// secondary, performance standby to active), and every such change tears
// the mount down and sets it up again with a new backend instance, which
// starts with nothing cached. The TTL only bounds the staleness should a
// version of Vault ever change the state of a live backend instance.
const replicationStateTTL = time.Second

// cachedReplicationState is the system view with ReplicationState and
// LocalMount answered from memory. framework.Backend asks for the state on
// every request to a path with Operations, and whether the mount is local
// on every request to an operation marked ForwardPerformanceSecondary (all
// writes), to honour the ForwardPerformance* flags; for an external plugin
// each ask is a gRPC round-trip to Vault, the state's measured at about a
// tenth of the throughput of verify and resolve.
type cachedReplicationState struct {
	logical.SystemView
	cached atomic.Pointer[replicationStateAt]
	// local is whether the mount is local; it is chosen when the mount is
	// enabled and cannot be tuned, so the first answer holds for the
	// backend's life.
	local atomic.Pointer[bool]
}

func (c *cachedReplicationState) LocalMount() bool {
	if local := c.local.Load(); local != nil {
		return *local
	}
	local := c.SystemView.LocalMount()
	c.local.Store(&local)
	return local
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

// forget drops what is cached, so that the next request asks Vault.
func (c *cachedReplicationState) forget() {
	c.cached.Store(nil)
	c.local.Store(nil)
}

// entropySourcingReplicationState keeps the optional entropy.Sourcer of the
// wrapped view visible: framework.Backend type-asserts it on the system view
// to draw randomness from Vault's entropy augmentation (Enterprise), and
// embedding an interface would hide it.
type entropySourcingReplicationState struct {
	*cachedReplicationState
	sourcer entropy.Sourcer
}

func (e *entropySourcingReplicationState) GetRandom(bytes int) ([]byte, error) {
	return e.sourcer.GetRandom(bytes)
}

// withCachedReplicationState wraps sys, keeping its optional interfaces.
func withCachedReplicationState(sys logical.SystemView) (logical.SystemView, *cachedReplicationState) {
	cached := &cachedReplicationState{SystemView: sys}
	if sourcer, ok := sys.(entropy.Sourcer); ok {
		return &entropySourcingReplicationState{cachedReplicationState: cached, sourcer: sourcer}, cached
	}
	return cached, cached
}
