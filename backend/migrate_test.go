package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/logging"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// v010Fixture is what v0.1.0 itself wrote (scripts/fixture-v0.1.0.sh runs
// backend/testdata/v0.1.0/fixture_gen_test.go in a checkout of v0.1.0):
// its storage, the identity store it ran against, and the plaintexts it
// handed out, to check that each still works after the upgrade.
type v010Fixture struct {
	Storage  map[string]string            `json:"storage"`
	Entities map[string]*logical.Entity   `json:"entities"`
	Groups   map[string][]*logical.Group  `json:"groups"`
	Tokens   map[string]map[string]string `json:"tokens"`
	Leases   []struct {
		User         string                 `json:"user"`
		Role         string                 `json:"role"`
		Token        string                 `json:"token"`
		InternalData map[string]interface{} `json:"internal_data"`
	} `json:"leases"`
	ProviderTokens map[string]string `json:"provider_tokens"`
}

func loadV010Fixture(t *testing.T) *v010Fixture {
	t.Helper()
	raw, err := os.ReadFile("testdata/v0.1.0/storage.json")
	require.NoError(t, err)
	var fx v010Fixture
	require.NoError(t, json.Unmarshal(raw, &fx))
	require.NotEmpty(t, fx.Storage)
	return &fx
}

// newFixtureEnv loads the fixture's storage and identity store and starts
// today's engine on it, through storage s wrapping the fixture's.
func newFixtureEnv(t *testing.T, fx *v010Fixture, wrap func(logical.Storage) logical.Storage) (*testEnv, logical.Storage, error) {
	t.Helper()
	ctx := context.Background()
	inmem := &logical.InmemStorage{}
	for key, value := range fx.Storage {
		decoded, err := base64.StdEncoding.DecodeString(value)
		require.NoError(t, err)
		require.NoError(t, inmem.Put(ctx, &logical.StorageEntry{Key: key, Value: decoded}))
	}
	sys := &testSystemView{
		StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 32 * 24 * time.Hour},
		entities:         fx.Entities,
		groups:           fx.Groups,
	}
	if sys.groups == nil {
		sys.groups = map[string][]*logical.Group{}
	}
	storage := &countingStorage{Storage: inmem}
	var view logical.Storage = storage
	if wrap != nil {
		view = wrap(storage)
	}
	config := logical.TestBackendConfig()
	config.StorageView = view
	config.System = sys
	config.Logger = logging.NewVaultLogger(hclog.Error)
	raw, err := Factory(ctx, config)
	require.NoError(t, err)
	env := &testEnv{t: t, b: raw.(*backend), storage: storage, sys: sys}
	return env, view, env.b.Initialize(ctx, &logical.InitializationRequest{Storage: view})
}

// A mount written by v0.1.0 keeps every PAT, lease and provider token, each
// with the entity that owned it - including the rename the security review
// reproduced, where one v0.1.0 index held two entities' tokens.
func TestMigrate_v010StorageKeepsEverythingWithItsOwner(t *testing.T) {
	fx := loadV010Fixture(t)
	env, _, err := newFixtureEnv(t, fx, nil)
	require.NoError(t, err)

	// Every PAT verifies, reported with its entity's live name.
	for entityID, tokens := range fx.Tokens {
		for name, token := range tokens {
			got := env.verify(token)
			require.Equal(t, true, got["active"], "%s/%s", entityID, name)
			require.Equal(t, entityID, got["entity_id"])
			require.Equal(t, fx.Entities[entityID].Name, got["user"])
			require.Equal(t, []string{"api", "quantum_tokens"}, got["scopes"], "tokens from before scopes hold the defaults")
		}
	}
	// Each entity lists exactly its own, under its live name.
	for entityID, tokens := range fx.Tokens {
		var want []string
		for name := range tokens {
			want = append(want, name)
		}
		user := fx.Entities[entityID].Name
		keys := env.ok(logical.ListOperation, "users/"+user+"/tokens/", entityID, nil).Data["keys"]
		require.ElementsMatch(t, want, keys, user)
		description := env.ok(logical.ReadOperation, "users/"+user+"/tokens/"+want[0], entityID, nil).Data["description"]
		require.Equal(t, "fixture "+want[0], description)
	}

	// The organization's token waits, by name, for the organization's id.
	ctx := context.Background()
	aside, err := env.storage.List(ctx, unclaimedOrgProviderTokenPrefix+"acme/")
	require.NoError(t, err)
	require.Equal(t, []string{"aws-braket"}, aside)
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "resolve/aws-braket", "entity-alice", map[string]interface{}{"org": "acme"}),
		"groups without planqk_org_id reach no organization data")
	// The operator re-applies the organization with the bootstrap, which
	// gives its groups an id; the first member's request claims the token.
	env.sys.mu.Lock()
	for _, groups := range env.sys.groups {
		for _, g := range groups {
			if org := g.Metadata[groupMetadataOrg]; org != adminOrg {
				g.Metadata[groupMetadataOrgID] = testOrgID(org)
			}
		}
	}
	env.sys.mu.Unlock()
	env.b.identities.purge()

	// Provider tokens resolve for their owner only; the org's for members.
	for owner, value := range fx.ProviderTokens {
		who, provider, _ := strings.Cut(owner, "/")
		switch {
		case strings.HasPrefix(who, "org:"):
			got := env.ok(logical.ReadOperation, "resolve/"+provider, "entity-alice", map[string]interface{}{"org": strings.TrimPrefix(who, "org:")}).Data
			require.Equal(t, value, got["secret_access_key"])
		case strings.HasPrefix(who, "unclaimed:"):
			// v0.1.0 wrote it for the name "dave" by an admin's hand; no
			// record proves which entity that was, so nobody gets it.
			require.Equal(t, 404, env.statusOf(logical.ReadOperation, "resolve/"+provider, "entity-dave", nil))
		default:
			got := env.ok(logical.ReadOperation, "resolve/"+provider, who, nil).Data
			require.Contains(t, got, "source")
			found := false
			for _, v := range got {
				found = found || v == value
			}
			require.True(t, found, "%s's %s token", who, provider)
		}
	}
	// The new "erin" gets nothing that the old one stored as "erin".
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "resolve/dwave", "entity-erin-2", nil))

	// The v0.1.0 lease renews and revokes through its old internal data.
	lease := fx.Leases[0]
	secret := &logical.Secret{InternalData: lease.InternalData, LeaseOptions: logical.LeaseOptions{TTL: time.Hour, IssueTime: time.Now()}}
	renewed, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RenewOperation, Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.False(t, renewed.IsError(), "%v", renewed.Error())
	require.Equal(t, true, env.verify(lease.Token)["active"])
	_, err = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.Equal(t, false, env.verify(lease.Token)["active"])

	// Nothing is left under a name; the upgrade says what it set aside.
	snapshot := env.storageSnapshot()
	for key := range snapshot {
		require.False(t, strings.HasPrefix(key, legacyTokenIndexPrefix), key)
		require.False(t, strings.HasPrefix(key, legacyUserProviderTokenPrefix), key)
		require.False(t, strings.HasPrefix(key, legacyOrgProviderTokenPrefix), key)
		require.False(t, strings.HasPrefix(key, unclaimedOrgProviderTokenPrefix), key, "claimed")
	}
	require.Contains(t, snapshot, orgProviderTokenPrefix(testOrgID("acme"))+"aws-braket")
	migration, err := getMigration(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, []string{"dave/ionq"}, migration.Unclaimed)
	require.Equal(t, 4, migration.ProviderTokens)
	require.Equal(t, 5, migration.NamedTokens)
	require.Equal(t, 1, migration.LeaseMarkers)
}

// The upgrade runs again after an interruption at any point and ends in
// the same state as an uninterrupted one; a completed upgrade is one read.
func TestMigrate_isIdempotentAndSurvivesInterruption(t *testing.T) {
	fx := loadV010Fixture(t)
	reference, _, err := newFixtureEnv(t, fx, nil)
	require.NoError(t, err)
	want := normalizedSnapshot(t, reference)

	// A second start of a migrated mount reads the two upgrades' markers
	// and nothing else but the webhook outbox's keys (to resume deliveries).
	again, _, err := newFixtureEnv(t, fx, nil)
	require.NoError(t, err)
	again.storage.reset()
	fresh, err := Factory(context.Background(), &logical.BackendConfig{StorageView: again.storage, System: again.sys, Logger: logging.NewVaultLogger(hclog.Error)})
	require.NoError(t, err)
	require.NoError(t, fresh.Initialize(context.Background(), &logical.InitializationRequest{Storage: again.storage}))
	t.Cleanup(func() { fresh.Cleanup(context.Background()) })
	require.Equal(t, roundTrips{Gets: 2, Lists: 1}, again.storage.counted())

	for failAt := int64(1); ; failAt++ {
		failing := &failingStorage{failAt: failAt}
		env, view, err := newFixtureEnv(t, fx, func(s logical.Storage) logical.Storage {
			failing.Storage = s
			return failing
		})
		if err == nil {
			require.Equal(t, want, normalizedSnapshot(t, env), "no interruption")
			break
		}
		require.ErrorIs(t, err, errInjected)
		// Requests wait for the upgrade and retry it.
		failing.failAt = 0
		_, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.ReadOperation, Path: "config", Storage: view})
		require.NoError(t, err)
		require.Equal(t, want, normalizedSnapshot(t, env), "interrupted at write %d", failAt)
	}
}

var errInjected = errors.New("injected storage failure")

// failingStorage fails its failAt-th write (Put or Delete), as a crash or a
// lost leader would interrupt the upgrade there.
type failingStorage struct {
	logical.Storage
	failAt int64
	writes atomic.Int64
}

func (s *failingStorage) fail() bool {
	return s.failAt > 0 && s.writes.Add(1) == s.failAt
}

func (s *failingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if s.fail() {
		return errInjected
	}
	return s.Storage.Put(ctx, entry)
}

func (s *failingStorage) Delete(ctx context.Context, key string) error {
	if s.fail() {
		return errInjected
	}
	return s.Storage.Delete(ctx, key)
}

// normalizedSnapshot is the storage with what records when and how the
// upgrade ran zeroed, so that two upgrades' results can be compared.
func normalizedSnapshot(t *testing.T, env *testEnv) map[string]string {
	t.Helper()
	// An upgraded mount's first recount (started by the periodic function)
	// builds its due index and sets its counts, whatever an interrupted
	// run left of them.
	require.NoError(t, env.b.recountNow(env.storage, true))
	snapshot := env.storageSnapshot()
	for key, value := range snapshot {
		switch {
		case key == recountPath, key == dueIndexPath:
			snapshot[key] = "(times)"
		case key == migrationPath:
			var m migrationEntry
			require.NoError(t, json.Unmarshal([]byte(value), &m))
			// Times, and counts of what the last run found: an interrupted
			// run has already moved part of it.
			m = migrationEntry{Unclaimed: m.Unclaimed}
			encoded, err := json.Marshal(m)
			require.NoError(t, err)
			snapshot[key] = string(encoded)
		case key == orgMigrationPath:
			snapshot[key] = "(counts and time of the last run)"
		case strings.HasSuffix(key, "/owner"):
			var o ownerEntry
			require.NoError(t, json.Unmarshal([]byte(value), &o))
			o.FirstSeen, o.NameSeen = time.Time{}, time.Time{}
			encoded, err := json.Marshal(o)
			require.NoError(t, err)
			snapshot[key] = string(encoded)
		}
	}
	return snapshot
}
