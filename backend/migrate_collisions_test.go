package backend

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/logging"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// The cases below rebuild v0.1.0 histories the fixture does not hold, by
// rewriting a v0.2 storage into v0.1.0's layout (asV010), then upgrade it
// with a fresh backend (restarted), as a plugin reload does.

// restarted starts a fresh backend on env's storage and identity store.
func restarted(t *testing.T, env *testEnv) *testEnv {
	t.Helper()
	config := logical.TestBackendConfig()
	config.StorageView = env.storage
	config.System = env.sys
	config.Logger = logging.NewVaultLogger(hclog.Error)
	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	fresh := &testEnv{t: t, b: raw.(*backend), storage: env.storage, sys: env.sys}
	t.Cleanup(func() { fresh.b.Cleanup(context.Background()) })
	require.NoError(t, fresh.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: env.storage}))
	return fresh
}

func putJSON(t *testing.T, s logical.Storage, key string, v interface{}) {
	t.Helper()
	entry, err := logical.StorageEntryJSON(key, v)
	require.NoError(t, err)
	require.NoError(t, s.Put(context.Background(), entry))
}

func deletePrefix(t *testing.T, s logical.Storage, prefix string) {
	t.Helper()
	keys, err := s.List(context.Background(), prefix)
	require.NoError(t, err)
	for _, key := range keys {
		if strings.HasSuffix(key, "/") {
			deletePrefix(t, s, prefix+key)
			continue
		}
		require.NoError(t, s.Delete(context.Background(), prefix+key))
	}
}

func hmacOf(t *testing.T, env *testEnv, token string) string {
	t.Helper()
	key, err := env.b.getSalt(context.Background(), env.storage, false)
	require.NoError(t, err)
	return key.GetHMAC(token)
}

// asV010 rewrites the storage into v0.1.0's layout: indexes maps a user name
// to its token names and HMACs; issuedAs names the user each token was
// issued under, which v0.1.0 kept in the record.
func asV010(t *testing.T, env *testEnv, indexes map[string]map[string]string, issuedAs map[string]string) {
	t.Helper()
	ctx := context.Background()
	s := env.storage.Storage
	summaries := map[string]*tokenSummary{}
	entities, err := listOwnerEntities(ctx, s)
	require.NoError(t, err)
	for _, entityID := range entities {
		index, err := getTokenIndex(ctx, s, entityID)
		require.NoError(t, err)
		for _, summary := range index.Tokens {
			summaries[summary.Hash] = summary
		}
	}
	for name, tokens := range indexes {
		legacy := &tokenIndex{Tokens: map[string]*tokenSummary{}}
		for tokenName, hash := range tokens {
			legacy.Tokens[tokenName] = summaries[hash]
			record, err := getTokenRecord(ctx, s, hash)
			require.NoError(t, err)
			raw := map[string]interface{}{}
			encoded, err := json.Marshal(record)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(encoded, &raw))
			raw["name"], raw["user"] = tokenName, issuedAs[hash]
			putJSON(t, s, tokenRecordPath(hash), raw)
		}
		putJSON(t, s, legacyTokenIndexPrefix+name, legacy)
	}
	deletePrefix(t, s, entityPrefix)
	deletePrefix(t, s, ownerNamePrefix)
	deletePrefix(t, s, providerTokenPrefix+"entities/")
	require.NoError(t, s.Delete(ctx, migrationPath))
}

// v0.1.0 showed a renamed user only the index of its new name, so one
// entity could issue "laptop" twice, under two of its names. Both tokens
// are live: the upgrade keeps both listed - the later one renamed - so that
// its owner can see and revoke it and repair does not take it for an orphan.
func TestMigrate_oneEntitysTokenNameUnderTwoOfItsNames(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	first := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	second := env.createToken("alice", e1, "laptop2", nil)["token"].(string)
	env.renameEntity(e1, "alice2")
	asV010(t, env,
		map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, first)}, "alice2": {"laptop": hmacOf(t, env, second)}},
		map[string]string{hmacOf(t, env, first): "alice", hmacOf(t, env, second): "alice2"})

	up := restarted(t, env)
	require.Equal(t, []string{"laptop", "laptop-2"}, up.ok(logical.ListOperation, "users/alice2/tokens/", e1, nil).Data["keys"])
	require.Equal(t, "laptop-2", up.verify(second)["name"], "the record holds the name the index lists")
	require.Equal(t, 0, up.tidy(map[string]interface{}{"repair": true})["orphans_removed"])
	got := up.ok(logical.UpdateOperation, "users/alice2/revoke-all", e1, nil).Data
	require.Equal(t, 2, got["named_revoked"])
	require.Equal(t, false, up.verify(first)["active"])
	require.Equal(t, false, up.verify(second)["active"])
}

// One entity wrote a provider's token under two of its v0.1.0 names: the
// newer stays its own, the older is kept aside, nothing is lost.
func TestMigrate_oneEntitysProviderTokenUnderTwoOfItsNames(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	token := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	env.renameEntity(e1, "alice2")
	asV010(t, env, map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, token)}}, map[string]string{hmacOf(t, env, token): "alice"})
	now := time.Now().UTC()
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice2/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "CURRENT-new-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: e1, UpdatedAt: now})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "STALE-old-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: e1, UpdatedAt: now.Add(-time.Hour)})

	up := restarted(t, env)
	require.Equal(t, "CURRENT-new-secret", up.ok(logical.ReadOperation, "resolve/ibm-quantum", e1, nil).Data["token"])
	stale, err := getProviderToken(context.Background(), env.storage, unclaimedProviderTokenPrefix+"alice/", "ibm-quantum")
	require.NoError(t, err)
	require.NotNil(t, stale, "the older credential is kept aside, not deleted")
	require.Equal(t, "STALE-old-secret", stale.Values["token"])
}

// requireUnclaimed checks that the v0.1.0 provider token of name is kept
// aside with its value, and that none of entities resolves it.
func requireUnclaimed(t *testing.T, up *testEnv, name, provider, value string, entities ...string) {
	t.Helper()
	for _, entityID := range entities {
		require.Equal(t, 404, up.statusOf(logical.ReadOperation, "resolve/"+provider, entityID, nil), entityID)
	}
	aside, err := getProviderToken(context.Background(), up.storage, unclaimedProviderTokenPrefix+name+"/", provider)
	require.NoError(t, err)
	require.NotNil(t, aside, "kept aside, not lost")
	require.Equal(t, value, aside.Values["token"])
	migration, err := getMigration(context.Background(), up.storage)
	require.NoError(t, err)
	require.Contains(t, migration.Unclaimed, name+"/"+provider)
}

// E1 wrote a provider token under "alice" and never issued a PAT; E1 was
// renamed and E2 took "alice" and issued one. The writer and the PATs
// disagree: E1 may have been alice, or an admin writing for E2 - the
// upgrade cannot tell, so neither gets the token.
func TestMigrate_aWriterThePATsUnderTheNameContradictGetsNothing(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addEntity("entity-e1", "alice")
	env.renameEntity(e1, "alice-old")
	e2 := env.addEntity("entity-e2", "alice")
	token := env.createToken("alice", e2, "laptop", nil)["token"].(string)
	asV010(t, env, map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, token)}}, map[string]string{hmacOf(t, env, token): "alice"})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "E1-or-E2-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: e1})

	up := restarted(t, env)
	requireUnclaimed(t, up, "alice", "ibm-quantum", "E1-or-E2-secret", e1, e2)
}

// The security review's case: a platform admin wrote alice's provider
// token in v0.1.0 and has since been demoted; alice's PATs show who alice
// was. Judged at upgrade time the writer looks like a plain user writing
// its own token - the token must not go to the ex-admin.
func TestMigrate_aDemotedExAdminDoesNotGetTheTokenItWroteForAUser(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addEntity("entity-alice", "alice")
	exAdmin := env.addEntity("entity-ex-admin", "morgan")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	asV010(t, env, map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, token)}}, map[string]string{hmacOf(t, env, token): "alice"})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "alices-ibm-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: exAdmin})

	up := restarted(t, env)
	requireUnclaimed(t, up, "alice", "ibm-quantum", "alices-ibm-secret", exAdmin, alice)
	require.Equal(t, true, up.verify(token)["active"], "alice's PAT is hers")
}

// No PATs under the name: a writer that holds the name now was the user
// (carol in the fixture); a writer under another name may be an ex-admin
// who wrote for the user, so its token is kept aside.
func TestMigrate_withoutPATsOnlyAWriterHoldingTheNameGetsTheToken(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addEntity("entity-alice", "alice")
	exAdmin := env.addEntity("entity-ex-admin", "morgan")
	asV010(t, env, nil, nil)
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "alices-ibm-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: exAdmin})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/dwave", &providerTokenEntry{
		Provider: "dwave", Values: map[string]string{"token": "alices-dwave-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: alice})

	up := restarted(t, env)
	requireUnclaimed(t, up, "alice", "ibm-quantum", "alices-ibm-secret", exAdmin, alice)
	require.Equal(t, "alices-dwave-secret", up.ok(logical.ReadOperation, "resolve/dwave", alice, nil).Data["token"])
}

// rejectingDots refuses keys with "..", as Vault's storage view does.
type rejectingDots struct{ logical.Storage }

func (s rejectingDots) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if strings.Contains(key, "..") {
		return nil, logical.ErrRelativePath
	}
	return s.Storage.Get(ctx, key)
}

func (s rejectingDots) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if strings.Contains(entry.Key, "..") {
		return logical.ErrRelativePath
	}
	return s.Storage.Put(ctx, entry)
}

func (s rejectingDots) Delete(ctx context.Context, key string) error {
	if strings.Contains(key, "..") {
		return logical.ErrRelativePath
	}
	return s.Storage.Delete(ctx, key)
}

// Vault does not restrict entity names. An owner now named "john..doe" -
// a name no path can carry, and a storage key Vault refuses - must not
// take the upgrade, and with it the whole mount, down.
func TestMigrate_anEntityNameStorageRefusesDoesNotStopTheUpgrade(t *testing.T) {
	env := newTestEnv(t)
	john := env.addEntity("0b5e2f9a-1111-2222-3333-444455556666", "john.doe")
	token := env.createToken("john.doe", john, "laptop", nil)["token"].(string)
	asV010(t, env, map[string]map[string]string{"john.doe": {"laptop": hmacOf(t, env, token)}}, map[string]string{hmacOf(t, env, token): "john.doe"})
	env.renameEntity(john, "john..doe")

	strict := rejectingDots{env.storage}
	config := logical.TestBackendConfig()
	config.StorageView = strict
	config.System = env.sys
	config.Logger = logging.NewVaultLogger(hclog.Off)
	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	b := raw.(*backend)
	t.Cleanup(func() { b.Cleanup(context.Background()) })
	require.NoError(t, b.Initialize(context.Background(), &logical.InitializationRequest{Storage: strict}))

	paul := env.addUser("paul")
	resp, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "users/paul/tokens/x", Storage: strict, EntityID: paul})
	require.NoError(t, err)
	require.False(t, resp.IsError())
	verified, err := b.HandleRequest(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "verify", Storage: strict, Data: map[string]interface{}{"token": token}})
	require.NoError(t, err)
	require.Equal(t, true, verified.Data["active"], "the oddly named owner's token still verifies")
}

// verify answers before the upgrade has run (records do not move), so it
// may cache a record the upgrade then renames: the answer after the
// upgrade must be the record as it now is.
func TestMigrate_recordsVerifiedBeforeTheUpgradeAreReadAgain(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addUser("alice")
	first := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	second := env.createToken("alice", e1, "laptop2", nil)["token"].(string)
	env.renameEntity(e1, "alice2")
	asV010(t, env,
		map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, first)}, "alice2": {"laptop": hmacOf(t, env, second)}},
		map[string]string{hmacOf(t, env, first): "alice", hmacOf(t, env, second): "alice2"})

	config := logical.TestBackendConfig()
	config.StorageView = env.storage
	config.System = env.sys
	config.Logger = logging.NewVaultLogger(hclog.Error)
	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	early := &testEnv{t: t, b: raw.(*backend), storage: env.storage, sys: env.sys}
	t.Cleanup(func() { early.b.Cleanup(context.Background()) })
	require.Equal(t, "laptop", early.verify(second)["name"], "before the upgrade: the v0.1.0 record")

	require.NoError(t, early.b.ensureMigrated(context.Background(), env.storage))
	require.Equal(t, "laptop-2", early.verify(second)["name"])
}

// startOn starts a fresh engine - Factory and Initialize, as Vault does on
// a start, a plugin reload or a new leader - on a copy of storage, through
// wrap when it is set.
func startOn(t *testing.T, storage map[string]string, sys *testSystemView, wrap func(logical.Storage) logical.Storage) (*testEnv, error) {
	t.Helper()
	ctx := context.Background()
	counting := &countingStorage{Storage: &logical.InmemStorage{}}
	for key, value := range storage {
		require.NoError(t, counting.Storage.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte(value)}))
	}
	var view logical.Storage = counting
	if wrap != nil {
		view = wrap(counting)
	}
	config := logical.TestBackendConfig()
	config.StorageView = view
	config.System = sys
	config.Logger = logging.NewVaultLogger(hclog.Off)
	raw, err := Factory(ctx, config)
	require.NoError(t, err)
	env := &testEnv{t: t, b: raw.(*backend), storage: counting, sys: sys}
	t.Cleanup(func() { env.b.Cleanup(ctx) })
	return env, env.b.Initialize(ctx, &logical.InitializationRequest{Storage: view})
}

// requireUpgradeSurvivesEveryInterruption upgrades the v0.1.0 storage,
// failing its 1st, 2nd, ... write in turn (a crash, a lost leadership), and
// after each interruption starts a fresh engine on what was left: that one
// ends in the state of an uninterrupted upgrade, with nothing carried over
// in memory from the interrupted run.
func requireUpgradeSurvivesEveryInterruption(t *testing.T, v010 map[string]string, sys *testSystemView) {
	t.Helper()
	reference, err := startOn(t, v010, sys, nil)
	require.NoError(t, err)
	want := normalizedSnapshot(t, reference)
	require.NotEqual(t, v010, reference.storageSnapshot(), "the upgrade changed nothing: the test would prove nothing")
	for failAt := int64(1); ; failAt++ {
		failing := &failingStorage{failAt: failAt}
		interrupted, err := startOn(t, v010, sys, func(s logical.Storage) logical.Storage {
			failing.Storage = s
			return failing
		})
		if err == nil {
			require.Equal(t, want, normalizedSnapshot(t, interrupted), "no interruption")
			require.Greater(t, failAt, int64(1), "the upgrade wrote nothing")
			t.Logf("interrupted at each of %d writes", failAt-1)
			return
		}
		require.ErrorIs(t, err, errInjected)
		interrupted.b.Cleanup(context.Background())
		resumed, err := startOn(t, interrupted.storageSnapshot(), sys, nil)
		require.NoError(t, err, "a fresh engine after the interruption at write %d", failAt)
		require.Equal(t, want, normalizedSnapshot(t, resumed), "interrupted at write %d, then a fresh engine", failAt)
	}
}

// The stricter form of TestMigrate_isIdempotentAndSurvivesInterruption: a
// fresh engine after each interruption point, over the v0.1.0 fixture and
// both collision cases above.
func TestMigrate_aFreshEngineFinishesAnUpgradeInterruptedAnywhere(t *testing.T) {
	t.Run("v0.1.0 fixture", func(t *testing.T) {
		fx := loadV010Fixture(t)
		storage := map[string]string{}
		for key, value := range fx.Storage {
			decoded, err := base64.StdEncoding.DecodeString(value)
			require.NoError(t, err)
			storage[key] = string(decoded)
		}
		sys := &testSystemView{
			StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: 24 * time.Hour, MaxLeaseTTLVal: 32 * 24 * time.Hour},
			entities:         fx.Entities,
			groups:           fx.Groups,
		}
		if sys.groups == nil {
			sys.groups = map[string][]*logical.Group{}
		}
		requireUpgradeSurvivesEveryInterruption(t, storage, sys)
	})
	t.Run("one entity's token name under two of its names", func(t *testing.T) {
		env := newTestEnv(t)
		e1 := env.addUser("alice")
		first := env.createToken("alice", e1, "laptop", nil)["token"].(string)
		second := env.createToken("alice", e1, "laptop2", nil)["token"].(string)
		env.renameEntity(e1, "alice2")
		asV010(t, env,
			map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, first)}, "alice2": {"laptop": hmacOf(t, env, second)}},
			map[string]string{hmacOf(t, env, first): "alice", hmacOf(t, env, second): "alice2"})
		env.b.Cleanup(context.Background())
		requireUpgradeSurvivesEveryInterruption(t, env.storageSnapshot(), env.sys)
	})
	t.Run("one entity's provider token under two of its names", func(t *testing.T) {
		env := newTestEnv(t)
		e1 := env.addUser("alice")
		token := env.createToken("alice", e1, "laptop", nil)["token"].(string)
		env.renameEntity(e1, "alice2")
		asV010(t, env, map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, token)}}, map[string]string{hmacOf(t, env, token): "alice"})
		now := time.Now().UTC()
		putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice2/ibm-quantum", &providerTokenEntry{
			Provider: "ibm-quantum", Values: map[string]string{"token": "CURRENT-new-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: e1, UpdatedAt: now})
		putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
			Provider: "ibm-quantum", Values: map[string]string{"token": "STALE-old-secret"}, SecretFields: []string{"token"}, Version: 1, UpdatedBy: e1, UpdatedAt: now.Add(-time.Hour)})
		env.b.Cleanup(context.Background())
		requireUpgradeSurvivesEveryInterruption(t, env.storageSnapshot(), env.sys)
	})
}

// Review of issue 21: E1 issued PATs as "alice", was renamed, and E2 took
// "alice"; an operator wrote a provider token under "alice" (no writer),
// for either of them. The PATs name E1, the identity store names E2: the
// evidence disagrees, so neither gets it (before, E1 did: E2's key could
// go to another person). The sole PAT holder still holding the name gets
// it, as bob in the fixture.
func TestMigrate_anOperatorsTokenGoesToThePATHolderOnlyIfItStillHoldsTheName(t *testing.T) {
	env := newTestEnv(t)
	e1 := env.addEntity("entity-e1", "alice")
	token := env.createToken("alice", e1, "laptop", nil)["token"].(string)
	env.renameEntity(e1, "alice-old")
	e2 := env.addEntity("entity-e2", "alice")
	carol := env.addEntity("entity-carol", "carol")
	carolsPAT := env.createToken("carol", carol, "laptop", nil)["token"].(string)
	asV010(t, env,
		map[string]map[string]string{"alice": {"laptop": hmacOf(t, env, token)}, "carol": {"laptop": hmacOf(t, env, carolsPAT)}},
		map[string]string{hmacOf(t, env, token): "alice", hmacOf(t, env, carolsPAT): "carol"})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"alice/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "E1-or-E2-secret"}, SecretFields: []string{"token"}, Version: 1})
	putJSON(t, env.storage.Storage, legacyUserProviderTokenPrefix+"carol/ibm-quantum", &providerTokenEntry{
		Provider: "ibm-quantum", Values: map[string]string{"token": "carols-secret"}, SecretFields: []string{"token"}, Version: 1})

	up := restarted(t, env)
	requireUnclaimed(t, up, "alice", "ibm-quantum", "E1-or-E2-secret", e1, e2)
	require.Equal(t, true, up.verify(token)["active"], "E1's PAT is still E1's")
	require.Equal(t, "carols-secret", up.ok(logical.ReadOperation, "resolve/ibm-quantum", carol, nil).Data["token"])
}
