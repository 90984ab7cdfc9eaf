// Package backend implements the PlanQK secrets engine: personal access
// tokens (PATs) for the PlanQK API and provider access tokens for quantum
// backends, with users and organizations taken from Vault's identity store.
package backend

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Version is reported to Vault as the plugin's running version; the build
// sets it with -ldflags "-X .../backend.Version=vX.Y.Z".
var Version = "v0.2.0-dev"

const (
	operationPrefixPlanqk = "planqk"

	// Cache sizes bound the memory of the caches; entries past them are
	// evicted least-recently-used first.
	identityCacheSize = 10000
	roleCacheSize     = 1000
	recordCacheSize   = 50000
	// providerTokenCacheSize bounds the provider tokens resolve keeps.
	providerTokenCacheSize = 10000
	ownerCacheSize         = 10000
	// defaultWALRollbackMinAge is how old a write-ahead log entry must be
	// before Vault's periodic rollback acts on it: longer than any
	// derivation. WALRollbackMinAgeEnv in the plugin's environment
	// (vault plugin register -env) changes it.
	defaultWALRollbackMinAge = 5 * time.Minute
)

// Factory returns a configured instance of the backend.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend()
	conf.System, b.replication = withCachedReplicationState(conf.System)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// backend keeps no authoritative state in memory: everything lives in
// storage, and the caches below are rebuilt from storage (or from Vault's
// identity store) after a restart, a failover or an invalidation. Every
// cache is a storageCache, whose fills never overwrite a concurrent write
// or invalidation.
type backend struct {
	*framework.Backend

	// locks serialise read-modify-write of one entity's, organization's or
	// role's entries. A request holds at most one of them at a time: they
	// are shared stripes and not re-entrant, so nesting two could deadlock.
	locks []*locksutil.LockEntry

	// saltMu serialises loading the HMAC key; it is not a striped lock
	// because the key is loaded while an entity's lock is held.
	saltMu    sync.Mutex
	saltCache *storageCache[string, *salt.Salt]

	configCache *storageCache[string, *configEntry]
	roles       *storageCache[string, *roleEntry]
	identities  *storageCache[string, *identity]
	// records holds token records by HMAC for verify.
	records *storageCache[string, *tokenRecord]
	// ownerNames holds the name each owner entity was registered under.
	ownerNames *storageCache[string, string]
	// unknownNames holds when a name was last found held by no owner.
	unknownNames *storageCache[string, time.Time]
	// orgNames holds the name each organization id was learned under, and
	// orgPointers the id each organization name points at.
	orgNames    *storageCache[string, string]
	orgPointers *storageCache[string, string]
	// orgSettings holds organizations' settings by id (the defaults for
	// one without stored settings).
	orgSettings *storageCache[string, *orgSettingsEntry]
	// userSettings holds users' settings by entity id (the defaults for
	// one without stored settings).
	userSettings *storageCache[string, *userSettingsEntry]
	// leaseCounts holds how many leased PATs each entity has.
	leaseCounts *storageCache[string, int]
	// providerTokens holds provider tokens (or their absence) by storage
	// key, for resolve and the runtime read.
	providerTokens *storageCache[string, *providerTokenEntry]
	// providers holds the whole provider catalogue under catalogueKey.
	providers *storageCache[string, map[string]*providerEntry]
	// ibmBearers holds IBM Cloud IAM bearers of management keys, for
	// deriving and deleting IBM job keys.
	ibmBearers *ibmBearers

	// replication is the system view the framework uses, with the
	// replication state cached.
	replication *cachedReplicationState

	migrated    atomic.Bool
	migrationMu sync.Mutex

	// lastUse holds the uses verify noted until the periodic function
	// writes them.
	lastUse *lastUse
	// providerUse holds the provider-token uses resolve, runtime and the
	// exchange noted until the periodic function writes them.
	providerUse *providerUse

	tidy tidyState

	// ownerListing shares the listing of every owner among concurrent
	// inventory pages.
	ownerListing ownerListing

	// counts are the inventory's last recount.
	counts countsCache
	// counters are the counts kept as writes happen.
	counters counters
	// dueMarks are the due entries this node wrote and has not deleted.
	dueMarks *storageCache[string, struct{}]
	// dueBuilt is set once the due index is known to be complete.
	dueBuilt atomic.Bool

	// webhookSecret caches the webhook signing secret (nil: none).
	webhookSecret *storageCache[string, *webhookSecretEntry]
	// webhooks delivers lifecycle notifications from the outbox.
	webhooks *webhookDelivery
	// vaultEvents knows whether Vault can deliver events to anyone.
	vaultEvents vaultEventAudience
}

func newBackend() *backend {
	b := &backend{
		locks:       locksutil.CreateLocks(),
		saltCache:   newStorageCache[string, *salt.Salt](1),
		configCache: newStorageCache[string, *configEntry](1),
		roles:       newStorageCache[string, *roleEntry](roleCacheSize),
		identities:  newStorageCache[string, *identity](identityCacheSize),
		records:     newStorageCache[string, *tokenRecord](recordCacheSize),
		ownerNames:  newStorageCache[string, string](ownerCacheSize),

		unknownNames: newStorageCache[string, time.Time](ownerCacheSize),
		leaseCounts:  newStorageCache[string, int](ownerCacheSize),
		orgNames:     newStorageCache[string, string](ownerCacheSize),
		orgPointers:  newStorageCache[string, string](ownerCacheSize),
		orgSettings:  newStorageCache[string, *orgSettingsEntry](ownerCacheSize),
		userSettings: newStorageCache[string, *userSettingsEntry](ownerCacheSize),

		providerTokens: newStorageCache[string, *providerTokenEntry](providerTokenCacheSize),
		providers:      newStorageCache[string, map[string]*providerEntry](1),
		ibmBearers:     newIBMBearers(),
		lastUse:        newLastUse(),
		providerUse:    newProviderUse(),
		dueMarks:       newStorageCache[string, struct{}](dueMarkCacheSize),

		webhookSecret: newStorageCache[string, *webhookSecretEntry](1),
	}
	b.webhooks = newWebhookDelivery(b)

	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{
				saltPrefix,
				providerTokenPrefix,
				webhookSecretPath,
			},
		},
		// The framework routes a request by trying the paths' patterns
		// in this order, one regular expression after another: the hot
		// paths come first (the exchange was the 22nd pattern tried).
		// Their patterns match nothing else (TestBackend_hotPathsRouteFirst).
		Paths: framework.PathAppend(
			pathVerify(b),
			pathExchange(b),
			pathResolve(b),
			pathIntrospect(b),
			pathConfig(b),
			pathUsers(b),
			pathTokens(b),
			pathRoles(b),
			pathCreds(b),
			pathRuntime(b),
			pathProviders(b),
			pathProviderTokens(b),
			pathOrganizations(b),
			pathOrgSettings(b),
			pathUserSettings(b),
			pathTidy(b),
			pathInventory(b),
			pathUnclaimed(b),
			pathNotifications(b),
			pathLeaks(b),
		),
		Secrets: []*framework.Secret{
			secretPAT(b),
			secretDerived(b),
		},
		// An IBM job key made just before a crash is deleted by name
		// once its WAL entry is this old (as Vault's AWS engine does for
		// IAM users).
		WALRollback:       b.walRollback,
		WALRollbackMinAge: walRollbackMinAge(),
		InitializeFunc:    b.initialize,
		Invalidate:        b.invalidate,
		PeriodicFunc:      b.periodic,
		Clean:             b.cleanup,
		RunningVersion:    Version,
	}
	return b
}

// WALRollbackMinAgeEnv names the environment variable that sets how old a
// write-ahead log entry must be before it is rolled back (a Go duration).
const WALRollbackMinAgeEnv = "PLANQK_WAL_ROLLBACK_MIN_AGE"

// walRollbackMinAge is defaultWALRollbackMinAge, or what the plugin's
// environment says.
func walRollbackMinAge() time.Duration {
	if raw := os.Getenv(WALRollbackMinAgeEnv); raw != "" {
		if age, err := time.ParseDuration(raw); err == nil && age > 0 {
			return age
		}
	}
	return defaultWALRollbackMinAge
}

// initialize upgrades the mount's storage and starts webhook delivery when
// the node may write; other nodes wait for the marker the upgrading node
// writes, and deliver nothing.
func (b *backend) initialize(ctx context.Context, req *logical.InitializationRequest) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	if err := b.ensureMigrated(ctx, req.Storage); err != nil {
		return err
	}
	if err := b.webhooks.start(ctx, req.Storage); err != nil {
		// The periodic function tries again.
		b.Logger().Error("starting webhook delivery failed", "error", err)
	}
	return nil
}

// cleanup stops the background work when Vault unmounts or reloads the
// engine, or steps the node down.
func (b *backend) cleanup(_ context.Context) {
	b.webhooks.stop()
}

// HandleRequest is framework.Backend's, with three additions: requests wait
// until the storage layout is upgraded (verify excepted: it reads only
// token records, which the upgrade leaves in place); a storage refusal on a
// read-only node reaches Vault as the bare logical.ErrReadOnly it forwards
// on; and a field whose value has the wrong type is named without
// repeating the value.
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if !b.migrated.Load() && !readsOnlyTokenRecords(req.Path) {
		if err := b.ensureMigrated(ctx, req.Storage); err != nil {
			return nil, bareReadOnly(err)
		}
	}
	resp, err := b.Backend.HandleRequest(ctx, req)
	if err != nil {
		return resp, bareReadOnly(err)
	}
	return b.withoutEchoedValues(req, resp), nil
}

// bareReadOnly unwraps logical.ErrReadOnly: Vault forwards a request to a
// node that may write only when the error is exactly that one.
func bareReadOnly(err error) error {
	if errors.Is(err, logical.ErrReadOnly) {
		return logical.ErrReadOnly
	}
	return err
}

// invalidate drops cached copies of storage entries that another node (a
// performance standby or secondary) has changed.
func (b *backend) invalidate(_ context.Context, key string) {
	switch {
	case key == configPath:
		b.configCache.remove(configPath)
		// Identities were judged under the old group bindings.
		b.identities.purge()
	case key == saltPath:
		b.saltCache.remove(saltPath)
	case key == webhookSecretPath:
		b.webhookSecret.remove(webhookSecretPath)
	case key == migrationPath, key == orgMigrationPath:
		b.migrated.Store(false)
	case key == dueIndexPath:
		b.dueBuilt.Store(false)
	case strings.HasPrefix(key, duePrefix):
		b.dueMarks.remove(key)
	case key == recountPath:
		b.counts.forget()
	case strings.HasPrefix(key, countsPrefix):
		if i, err := strconv.Atoi(strings.TrimPrefix(key, countsPrefix)); err == nil && i >= 0 && i < countShards {
			b.counters.shards[i].forget()
		}
	case strings.HasPrefix(key, providerPrefix):
		b.providers.remove(catalogueKey)
	case strings.HasPrefix(key, rolePrefix):
		b.roles.remove(strings.TrimPrefix(key, rolePrefix))
	case strings.HasPrefix(key, providerTokenPrefix):
		b.providerTokens.remove(key)
	case strings.HasPrefix(key, tokenRecordPrefix):
		b.records.remove(strings.TrimPrefix(key, tokenRecordPrefix))
	case strings.HasPrefix(key, userSettingsPrefix):
		b.invalidateUserSettings(key)
	case strings.HasPrefix(key, orgPrefix), strings.HasPrefix(key, orgNamePrefix):
		b.invalidateOrg(key)
	case strings.HasPrefix(key, entityPrefix):
		entityID, rest, _ := strings.Cut(strings.TrimPrefix(key, entityPrefix), "/")
		switch {
		case rest == "owner":
			b.ownerNames.remove(entityID)
			b.unknownNames.purge()
		case strings.HasPrefix(rest, "leases/"):
			b.leaseCounts.remove(entityID)
		}
	}
}

func (b *backend) lockFor(key string) *locksutil.LockEntry {
	return locksutil.LockForKey(b.locks, key)
}

// periodic runs the engine's background work on the node that may write.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		// Uses noted here cannot be written from this node.
		b.lastUse.take()
		b.providerUse.take()
		return nil
	}
	if err := b.ensureMigrated(ctx, req.Storage); err != nil {
		return err
	}
	if err := b.flushLastUse(ctx, req.Storage); err != nil {
		b.Logger().Warn("writing last use failed; those uses are not recorded", "error", err)
	}
	if err := b.flushProviderTokenUse(ctx, req.Storage); err != nil {
		b.Logger().Warn("writing provider-token use failed; those uses are not recorded", "error", err)
	}
	// Starts webhook delivery if initialize could not, and wakes it: a
	// webhook_url configured after events were queued is used from here.
	if err := b.webhooks.start(ctx, req.Storage); err != nil {
		b.Logger().Error("starting webhook delivery failed", "error", err)
	}
	b.webhooks.signal()
	// An upgraded mount gets its due index and counters from a recount
	// in the background; requests go on meanwhile.
	if built, err := b.dueIndexBuilt(ctx, req.Storage); err != nil {
		return err
	} else if !built {
		b.startRecount(req.Storage, true)
	}
	return b.periodicTidy(ctx, req)
}

const backendHelp = `
The PlanQK secrets engine serves PlanQK's access-token model from Vault.

Personal access tokens (PATs) are issued to users - Vault identity entities -
under users/<user>/tokens/<name>, verified by the PlanQK API at verify, and
issued as short-lived Vault leases for runtimes at users/<user>/creds/<role>,
or with every provider credential a job needs, as environment variables, at
users/<user>/runtime/<role>.
A PAT works in every organization its owner belongs to; organizations and
roles are Vault identity groups with metadata planqk_org and planqk_role.
Everything a user owns is kept under the user's entity id: renaming an
entity keeps its tokens with it, and a new entity that takes an old name
gets nothing of its predecessor's.

Provider access tokens are a user's or an organization's own credentials for
quantum backends (IBM Quantum, AWS Braket, Azure Quantum, D-Wave, IonQ, ...),
stored under users/<user>/provider-tokens/ and orgs/<org>/provider-tokens/,
and handed to runtimes by resolve/<provider>.
`
