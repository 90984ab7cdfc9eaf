// Package backend implements the PlanQK secrets engine: personal access
// tokens (PATs) for the PlanQK API and provider access tokens for quantum
// backends, with users and organizations taken from Vault's identity store.
package backend

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is reported to Vault as the plugin's running version; the build
// sets it with -ldflags "-X .../backend.Version=vX.Y.Z".
var Version = "v0.1.0-dev"

const (
	operationPrefixPlanqk = "planqk"

	// identityCacheSize bounds the memory of the identity cache; entries past
	// it are evicted least-recently-used first.
	identityCacheSize = 10000
)

// Factory returns a configured instance of the backend.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	b.replication = &cachedReplicationState{SystemView: conf.System}
	conf.System = b.replication
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend keeps no authoritative state in memory: everything lives in
// storage, and the caches below are rebuilt from storage (or from Vault's
// identity store) after a restart, a failover or an invalidation.
type backend struct {
	*framework.Backend

	// locks serialise read-modify-write of one storage record or index.
	locks []*locksutil.LockEntry

	cacheLock sync.RWMutex
	config    *configEntry
	salt      *salt.Salt
	roles     map[string]*roleEntry

	identities *lru.Cache[string, *identity]

	// replication is the system view the framework uses, with the
	// replication state cached.
	replication *cachedReplicationState

	tidyRunning  atomic.Bool
	lastTidyUnix atomic.Int64
}

func newBackend() *backend {
	identities, err := lru.New[string, *identity](identityCacheSize)
	if err != nil {
		// Only a non-positive size makes lru.New fail.
		panic(err)
	}
	b := &backend{
		locks:      locksutil.CreateLocks(),
		roles:      make(map[string]*roleEntry),
		identities: identities,
	}

	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{
				saltPrefix,
				providerTokenPrefix,
			},
		},
		Paths: framework.PathAppend(
			pathConfig(b),
			pathTokens(b),
			pathRoles(b),
			pathCreds(b),
			pathVerify(b),
			pathProviders(b),
			pathProviderTokens(b),
			pathResolve(b),
			pathTidy(b),
		),
		Secrets: []*framework.Secret{
			secretPAT(b),
		},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodicTidy,
		RunningVersion: Version,
	}
	return b
}

// invalidate drops cached copies of storage entries that another node (a
// performance standby or secondary) has changed.
func (b *backend) invalidate(_ context.Context, key string) {
	b.cacheLock.Lock()
	defer b.cacheLock.Unlock()

	switch {
	case key == configPath:
		b.config = nil
	case key == saltPath:
		b.salt = nil
	case strings.HasPrefix(key, rolePrefix):
		delete(b.roles, strings.TrimPrefix(key, rolePrefix))
	}
}

func (b *backend) lockFor(key string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.locks, key)
}

const backendHelp = `
The PlanQK secrets engine serves PlanQK's access-token model from Vault.

Personal access tokens (PATs) are issued to users - Vault identity entities -
under users/<user>/tokens/<name>, verified by the PlanQK API at verify, and
issued as short-lived Vault leases for runtimes at users/<user>/creds/<role>.
A PAT works in every organization its owner belongs to; organizations and
roles are Vault identity groups with metadata planqk_org and planqk_role.

Provider access tokens are a user's or an organization's own credentials for
quantum backends (IBM Quantum, AWS Braket, Azure Quantum, D-Wave, IonQ, ...),
stored under users/<user>/provider-tokens/ and orgs/<org>/provider-tokens/,
and handed to runtimes by resolve/<provider>.
`
