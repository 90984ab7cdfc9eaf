package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/license"
	"github.com/hashicorp/vault/sdk/helper/logging"
	"github.com/hashicorp/vault/sdk/helper/pluginutil"
	"github.com/hashicorp/vault/sdk/helper/wrapping"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/rotation"
	"github.com/stretchr/testify/require"
)

// testSystemView plays Vault's identity store: entities by id, and the
// identity groups each entity is in.
type testSystemView struct {
	logical.StaticSystemView

	mu       sync.Mutex
	entities map[string]*logical.Entity
	groups   map[string][]*logical.Group
	lookups  atomic.Int64
}

func (v *testSystemView) EntityInfo(entityID string) (*logical.Entity, error) {
	v.lookups.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.entities[entityID], nil
}

func (v *testSystemView) GroupsForEntity(entityID string) ([]*logical.Group, error) {
	v.lookups.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.groups[entityID], nil
}

// countingStorage counts the storage round-trips an operation makes.
type countingStorage struct {
	logical.Storage
	gets, puts, deletes, lists atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	s.gets.Add(1)
	return s.Storage.Get(ctx, key)
}

func (s *countingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	s.puts.Add(1)
	return s.Storage.Put(ctx, entry)
}

func (s *countingStorage) Delete(ctx context.Context, key string) error {
	s.deletes.Add(1)
	return s.Storage.Delete(ctx, key)
}

func (s *countingStorage) List(ctx context.Context, prefix string) ([]string, error) {
	s.lists.Add(1)
	return s.Storage.List(ctx, prefix)
}

func (s *countingStorage) reset() {
	s.gets.Store(0)
	s.puts.Store(0)
	s.deletes.Store(0)
	s.lists.Store(0)
}

// roundTrips is a storage operation count, comparable in assertions.
type roundTrips struct{ Gets, Puts, Deletes, Lists int64 }

func (s *countingStorage) counted() roundTrips {
	return roundTrips{s.gets.Load(), s.puts.Load(), s.deletes.Load(), s.lists.Load()}
}

// testEnv is a backend in process with users and organizations.
type testEnv struct {
	t       testing.TB // a benchmark's setup fails it like a test's
	b       *backend
	storage *countingStorage
	sys     *testSystemView
	events  *recordingEventSender
	// baseline is the storage right after the mount was initialised.
	baseline map[string]string
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	sys := &testSystemView{
		StaticSystemView: logical.StaticSystemView{
			DefaultLeaseTTLVal: 24 * time.Hour,
			MaxLeaseTTLVal:     32 * 24 * time.Hour,
		},
		entities: make(map[string]*logical.Entity),
		groups:   make(map[string][]*logical.Group),
	}
	storage := &countingStorage{Storage: &logical.InmemStorage{}}
	config := logical.TestBackendConfig()
	config.StorageView = storage
	config.System = sys
	config.Logger = logging.NewVaultLogger(hclog.Error)
	events := &recordingEventSender{}
	config.EventsSender = events

	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	env := &testEnv{t: t, b: raw.(*backend), storage: storage, sys: sys, events: events}
	// Vault cleans a mount up when it unmounts it; this stops its workers.
	t.Cleanup(func() { env.b.Cleanup(context.Background()) })
	// Vault initialises a mount before routing requests to it.
	require.NoError(t, env.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: storage}))
	env.baseline = env.storageSnapshot()
	storage.reset()
	return env
}

// requireStorageUnchanged fails if anything was stored since the mount
// was initialised.
func (e *testEnv) requireStorageUnchanged(msgAndArgs ...interface{}) {
	e.t.Helper()
	require.Equal(e.t, e.baseline, e.storageSnapshot(), msgAndArgs...)
}

// tidy runs a tidy through the API and waits for its result.
func (e *testEnv) tidy(data map[string]interface{}) map[string]interface{} {
	e.t.Helper()
	resp := e.ok(logical.UpdateOperation, "tidy", "", data)
	require.Equal(e.t, 202, resp.Data[logical.HTTPStatusCode])
	deadline := time.Now().Add(10 * time.Second)
	for {
		status := e.ok(logical.ReadOperation, "tidy/status", "", nil).Data
		if status["state"] != "running" {
			require.Equal(e.t, "finished", status["state"], "tidy ended with %v", status["error"])
			return status
		}
		require.True(e.t, time.Now().Before(deadline), "tidy still running after 10s")
		time.Sleep(5 * time.Millisecond)
	}
}

// addUser creates an entity named name and returns its id.
func (e *testEnv) addUser(name string) string {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	id := "entity-" + name
	e.sys.entities[id] = &logical.Entity{ID: id, Name: name}
	return id
}

// addEntity creates an entity with the given id and name, for tests that
// need two entities to hold one name in turn.
func (e *testEnv) addEntity(id, name string) string {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.entities[id] = &logical.Entity{ID: id, Name: name}
	return id
}

// renameEntity changes the entity's name, as identity/entity/id/<id> name=... does.
func (e *testEnv) renameEntity(entityID, name string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.entities[entityID].Name = name
	e.b.identities.purge()
}

// testOrgID is the stable id the test groups of org carry.
func testOrgID(org string) string { return "id-" + org }

// registerOrg registers the organization's id, as the bootstrap does.
func (e *testEnv) registerOrg(org string) {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "orgs/"+org, "", map[string]interface{}{"id": testOrgID(org)})
}

// setRole puts the entity in org's group for role ("" removes it from org).
// The organization is registered with the engine first, as the bootstrap
// does when it creates an organization.
func (e *testEnv) setRole(entityID, org, role string) {
	if role != "" && org != adminOrg {
		e.registerOrg(org)
	}
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	var kept []*logical.Group
	for _, g := range e.sys.groups[entityID] {
		if g.Metadata[groupMetadataOrg] != org {
			kept = append(kept, g)
		}
	}
	if role != "" {
		kept = append(kept, &logical.Group{
			ID:       fmt.Sprintf("group-%s-%s", org, role),
			Name:     fmt.Sprintf("planqk-%s-%ss", org, role),
			Metadata: map[string]string{groupMetadataOrg: org, groupMetadataRole: role, groupMetadataOrgID: testOrgID(org)},
		})
	}
	e.sys.groups[entityID] = kept
	e.b.identities.purge()
}

func (e *testEnv) disableEntity(entityID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.entities[entityID].Disabled = true
	e.b.identities.purge()
}

func (e *testEnv) enableEntity(entityID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.entities[entityID].Disabled = false
	e.b.identities.purge()
}

func (e *testEnv) deleteEntity(entityID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	delete(e.sys.entities, entityID)
	e.b.identities.purge()
}

// setReplicationState makes the node a performance standby, a secondary...
func (e *testEnv) setReplicationState(state consts.ReplicationState) {
	e.sys.ReplicationStateVal = state
	e.b.replication.forget()
}

// do sends a request as the entity (none when entityID is "").
func (e *testEnv) do(op logical.Operation, path, entityID string, data map[string]interface{}) (*logical.Response, error) {
	return e.b.HandleRequest(context.Background(), &logical.Request{
		Operation: op,
		Path:      path,
		Data:      data,
		Storage:   e.storage,
		EntityID:  entityID,
	})
}

// ok sends a request that must succeed and returns its response.
func (e *testEnv) ok(op logical.Operation, path, entityID string, data map[string]interface{}) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, entityID, data)
	require.NoError(e.t, err, "%s %s", op, path)
	if resp != nil {
		require.False(e.t, resp.IsError(), "%s %s: %v", op, path, resp.Error())
	}
	return resp
}

// userError sends a request that must fail with a 400 and returns its message.
func (e *testEnv) userError(op logical.Operation, path, entityID string, data map[string]interface{}) string {
	e.t.Helper()
	resp, err := e.do(op, path, entityID, data)
	require.NoError(e.t, err, "%s %s", op, path)
	require.NotNil(e.t, resp, "%s %s", op, path)
	require.True(e.t, resp.IsError(), "%s %s: want an error response, got %v", op, path, resp.Data)
	return resp.Error().Error()
}

// statusOf returns the HTTP status Vault would answer a request with.
func (e *testEnv) statusOf(op logical.Operation, path, entityID string, data map[string]interface{}) int {
	e.t.Helper()
	resp, err := e.do(op, path, entityID, data)
	if resp != nil {
		if status, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
			return status
		}
	}
	status, _ := logical.RespondErrorCommon(&logical.Request{Operation: op}, resp, err)
	switch {
	case status != 0:
		return status
	case resp == nil:
		return 204
	}
	return 200
}

// refusal sends a request that must be answered with status and returns
// the error message.
func (e *testEnv) refusal(status int, op logical.Operation, path, entityID string, data map[string]interface{}) string {
	e.t.Helper()
	resp, err := e.do(op, path, entityID, data)
	require.NoError(e.t, err, "%s %s", op, path)
	require.NotNil(e.t, resp, "%s %s", op, path)
	require.Equal(e.t, status, resp.Data[logical.HTTPStatusCode], "%s %s: %v", op, path, resp.Data)
	var body struct{ Errors []string }
	require.NoError(e.t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body))
	require.Len(e.t, body.Errors, 1)
	return body.Errors[0]
}

// createToken issues a PAT for the user as the user and returns the response data.
func (e *testEnv) createToken(user, entityID, name string, data map[string]interface{}) map[string]interface{} {
	e.t.Helper()
	return e.ok(logical.UpdateOperation, "users/"+user+"/tokens/"+name, entityID, data).Data
}

func (e *testEnv) verify(token string) map[string]interface{} {
	e.t.Helper()
	return e.ok(logical.UpdateOperation, "verify", "", map[string]interface{}{"token": token}).Data
}

// storageSnapshot returns every key and value in storage.
func (e *testEnv) storageSnapshot() map[string]string {
	e.t.Helper()
	snapshot := make(map[string]string)
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := e.storage.Storage.List(context.Background(), prefix)
		require.NoError(e.t, err)
		for _, key := range keys {
			if key[len(key)-1] == '/' {
				walk(prefix + key)
				continue
			}
			entry, err := e.storage.Storage.Get(context.Background(), prefix+key)
			require.NoError(e.t, err)
			snapshot[prefix+key] = string(entry.Value)
		}
	}
	walk("")
	return snapshot
}

func TestBackend_reportsVersionAndType(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, Version, env.b.PluginVersion().Version)
	require.Equal(t, logical.TypeLogical, env.b.Type())
}

func TestBackend_writesOnPerformanceStandbyAreForwarded(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setReplicationState(consts.ReplicationPerformanceStandby)

	writes := []struct {
		op   logical.Operation
		path string
		data map[string]interface{}
	}{
		{logical.UpdateOperation, "config", map[string]interface{}{"default_ttl": "1h"}},
		{logical.UpdateOperation, "users/alice/tokens/laptop", nil},
		{logical.UpdateOperation, "users/alice/tokens/laptop/rotate", nil},
		{logical.DeleteOperation, "users/alice/tokens/laptop", nil},
		{logical.ReadOperation, "users/alice/creds/runtime", nil},
		{logical.ReadOperation, "users/alice/runtime/runtime", nil},
		{logical.UpdateOperation, "users/alice/runtime/runtime", map[string]interface{}{"org": "acme"}},
		{logical.UpdateOperation, "roles/runtime", nil},
		{logical.DeleteOperation, "roles/runtime", nil},
		{logical.UpdateOperation, "providers/rigetti", map[string]interface{}{"required_fields": "api_key"}},
		{logical.DeleteOperation, "providers/rigetti", nil},
		{logical.UpdateOperation, "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "t"}},
		{logical.DeleteOperation, "users/alice/provider-tokens/dwave", nil},
		{logical.UpdateOperation, "orgs/acme/provider-tokens/dwave", map[string]interface{}{"token": "t"}},
		{logical.DeleteOperation, "orgs/acme/provider-tokens/dwave", nil},
		{logical.UpdateOperation, "tidy", nil},
	}
	for _, w := range writes {
		_, err := env.do(w.op, w.path, alice, w.data)
		require.ErrorIs(t, err, logical.ErrReadOnly, "%s %s", w.op, w.path)
	}
	env.requireStorageUnchanged("a forwarded write must not change storage")

	// Reads, verify and resolve are answered by the standby itself.
	require.Equal(t, false, env.verify("plqk_x")["active"])
	require.Equal(t, 200, env.statusOf(logical.ReadOperation, "config", "", nil))
}

func TestBackend_invalidateDropsCaches(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m"})
	_, err := env.b.getSalt(ctx, env.storage, true)
	require.NoError(t, err)
	_, err = env.b.getConfig(ctx, env.storage)
	require.NoError(t, err)

	// Another node changes the entries behind this node's back.
	entry, err := logical.StorageEntryJSON(configPath, &configEntry{TokenPrefix: "acme_", DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, entry))
	entry, err = logical.StorageEntryJSON(rolePrefix+"runtime", &roleEntry{TTL: 5 * time.Minute, MaxTTL: time.Hour})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, entry))

	env.b.invalidate(ctx, configPath)
	env.b.invalidate(ctx, rolePrefix+"runtime")
	env.b.invalidate(ctx, saltPath)

	cfg, err := env.b.getConfig(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, "acme_", cfg.TokenPrefix)
	role, err := env.b.getRole(ctx, env.storage, "runtime")
	require.NoError(t, err)
	require.Equal(t, 5*time.Minute, role.TTL)
	_, cached := env.b.saltCache.get(saltPath)
	require.False(t, cached)
}

func TestBackend_everyPathHasHelp(t *testing.T) {
	env := newTestEnv(t)
	for _, p := range env.b.Paths {
		require.NotEmpty(t, p.HelpSynopsis, p.Pattern)
		require.NotEmpty(t, p.HelpDescription, p.Pattern)
		require.NotNil(t, p.DisplayAttrs, p.Pattern)
		for op, handler := range p.Operations {
			write := op == logical.CreateOperation || op == logical.UpdateOperation || op == logical.DeleteOperation
			// verify, introspect and the exchange write nothing: standbys
			// answer them, as they answer reads.
			if write && !slices.Contains([]string{"verify$", "introspect$", "exchange$", "exchange/" + providerNameRegex + "$"}, p.Pattern) {
				require.True(t, handler.Properties().ForwardPerformanceStandby, "%s %s must be forwarded from performance standbys", op, p.Pattern)
				require.True(t, handler.Properties().ForwardPerformanceSecondary, "%s %s must be forwarded from performance secondaries: tokens verify on every cluster, so they live in replicated storage", op, p.Pattern)
			}
		}
	}
	resp := env.ok(logical.HelpOperation, "users/alice/tokens/laptop", "", nil)
	require.Contains(t, resp.Data["help"], "personal access token")
}

// The framework routes a request by trying every path's pattern in order
// until one matches, a regular expression each: the hot paths come first.
// Each hot pattern starts with a literal that begins no other pattern (and
// no other pattern's literal begins it), so no request they serve could
// match another pattern: the order changes what routing costs, never where
// a request goes.
func TestBackend_hotPathsRouteFirst(t *testing.T) {
	env := newTestEnv(t)
	hot := map[string]bool{
		"verify$":                             true,
		"introspect$":                         true,
		"exchange$":                           true,
		"exchange/" + providerNameRegex + "$": true,
		"resolve/" + providerNameRegex + "$":  true,
	}
	literal := func(p *framework.Path) string {
		prefix, _ := regexp.MustCompile(p.Pattern).LiteralPrefix()
		return strings.TrimPrefix(prefix, "^")
	}
	for i, p := range env.b.Paths {
		pattern := strings.TrimPrefix(p.Pattern, "^")
		if i < len(hot) {
			require.True(t, hot[pattern], "pattern %d is %s, not a hot path", i, pattern)
			continue
		}
		require.False(t, hot[pattern], "hot path %s is tried %dth", pattern, i+1)
		for _, h := range env.b.Paths[:len(hot)] {
			require.NotEmpty(t, literal(h), h.Pattern)
			require.False(t, strings.HasPrefix(literal(p), literal(h)) || strings.HasPrefix(literal(h), literal(p)),
				"%s and the hot %s could match the same request", p.Pattern, h.Pattern)
		}
	}
	for path, want := range map[string]string{
		"verify": "verify$", "introspect": "introspect$", "exchange": "exchange$",
		"exchange/ibm-quantum": "exchange/" + providerNameRegex + "$", "resolve/ibm-quantum": "resolve/" + providerNameRegex + "$",
	} {
		route := env.b.Route(path)
		require.NotNil(t, route, path)
		require.Equal(t, want, strings.TrimPrefix(route.Pattern, "^"), path)
	}
}

// The framework asks for the replication state on every request; the
// backend answers from memory for replicationStateTTL.
func TestBackend_replicationStateIsAskedOncePerTTL(t *testing.T) {
	env := newTestEnv(t)
	counting := &countingReplicationState{SystemView: env.sys}
	env.b.replication.SystemView = counting
	env.b.replication.forget()

	for i := 0; i < 50; i++ {
		env.verify("plqk_x")
	}
	require.Equal(t, int64(1), counting.asks.Load())

	env.b.replication.cached.Store(&replicationStateAt{expires: time.Now().Add(-time.Millisecond)})
	env.verify("plqk_x")
	require.Equal(t, int64(2), counting.asks.Load(), "an expired state is asked for again")
}

type countingReplicationState struct {
	logical.SystemView
	asks, localAsks, leaseTTLAsks atomic.Int64
}

func (c *countingReplicationState) DefaultLeaseTTL() time.Duration {
	c.leaseTTLAsks.Add(1)
	return c.SystemView.DefaultLeaseTTL()
}

func (c *countingReplicationState) MaxLeaseTTL() time.Duration {
	c.leaseTTLAsks.Add(1)
	return c.SystemView.MaxLeaseTTL()
}

func (c *countingReplicationState) ReplicationState() consts.ReplicationState {
	c.asks.Add(1)
	return c.SystemView.ReplicationState()
}

func (c *countingReplicationState) LocalMount() bool {
	c.localAsks.Add(1)
	return c.SystemView.LocalMount()
}

// Every write is ForwardPerformanceSecondary, for which the framework asks
// whether the mount is local: a gRPC round trip per write unless answered
// from memory. A mount cannot be made local or not after it is enabled.
func TestBackend_localMountIsAskedOnce(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	counting := &countingReplicationState{SystemView: env.sys}
	env.b.replication.SystemView = counting
	env.b.replication.forget()

	for i := 0; i < 10; i++ {
		env.createToken("alice", alice, fmt.Sprintf("t%d", i), nil)
	}
	require.Equal(t, int64(1), counting.localAsks.Load())
}

// badInput is a request body that must be refused with a 400 naming field.
type badInput struct {
	name  string
	data  map[string]interface{}
	field string
}

// requireRefusedWithoutWrites sends each bad input to an empty engine and
// checks that it is refused, naming the field, and that nothing is stored.
func (e *testEnv) requireRefusedWithoutWrites(t *testing.T, op logical.Operation, path string, cases []badInput) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, e.userError(op, path, "", c.data), c.field)
			e.requireStorageUnchanged()
		})
	}
}

// readOnlyStorage refuses writes as a performance standby's storage does,
// with the error wrapped on its way up as the engine wraps storage errors.
type readOnlyStorage struct{ logical.Storage }

func (readOnlyStorage) Put(context.Context, *logical.StorageEntry) error { return logical.ErrReadOnly }
func (readOnlyStorage) Delete(context.Context, string) error             { return logical.ErrReadOnly }

// Vault forwards a request to a node that may write only when the plugin
// answers exactly logical.ErrReadOnly, not an error that wraps it.
func TestBackend_readOnlyStorageReachesVaultAsTheBareError(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "users/alice/tokens/laptop", Storage: readOnlyStorage{env.storage}, EntityID: alice,
	})
	require.True(t, err == logical.ErrReadOnly, "got %#v", err)
}

// entropySystemView is a system view with Vault's entropy augmentation.
type entropySystemView struct {
	*testSystemView
	draws atomic.Int64
}

func (v *entropySystemView) GetRandom(n int) ([]byte, error) {
	v.draws.Add(1)
	return make([]byte, n), nil
}

// The replication-state cache wraps the system view; the framework finds
// Vault's entropy source on the view by a type assertion, which the
// wrapper must keep answering.
func TestBackend_entropySourceSurvivesTheSystemViewWrapper(t *testing.T) {
	env := newTestEnv(t)
	sys := &entropySystemView{testSystemView: env.sys}
	config := logical.TestBackendConfig()
	config.StorageView = env.storage
	config.System = sys
	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	b := raw.(*backend)
	_, err = b.GetRandomReader().Read(make([]byte, 8))
	require.NoError(t, err)
	require.Positive(t, sys.draws.Load())
}

// Losing the HMAC key would make every PAT unverifiable; the engine must
// refuse to paper over it with a new key.
func TestBackend_aLostHMACKeyIsNotSilentlyReplaced(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.createToken("alice", alice, "laptop", nil)
	require.NoError(t, env.storage.Delete(ctx, saltPath))
	env.b.invalidate(ctx, saltPath)

	_, err := env.do(logical.UpdateOperation, "users/alice/tokens/ci", alice, nil)
	require.ErrorIs(t, err, errHMACKeyLost)
	_, stored := env.storageSnapshot()[saltPath]
	require.False(t, stored, "no new key may be generated")
}

func TestBackend_groupBindingsForAdminsAndOrganizations(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.sys.mu.Lock()
	env.sys.groups[alice] = []*logical.Group{
		{ID: "g-rogue", Name: "some-team", Metadata: map[string]string{groupMetadataOrg: adminOrg, groupMetadataRole: "admin"}},
		{ID: "g-acme", Name: "planqk-acme-owners", Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "owner"}},
		{ID: "g-fake", Name: "whatever", Metadata: map[string]string{groupMetadataOrg: "globex", groupMetadataRole: "owner"}},
	}
	env.sys.mu.Unlock()
	env.b.identities.purge()

	// Unbound, as v0.1.0: any group's metadata counts.
	require.Equal(t, []map[string]interface{}{
		{"name": "*", "role": "admin"}, {"name": "acme", "role": "owner"}, {"name": "globex", "role": "owner"},
	}, env.verify(token)["organizations"])

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{
		"admin_groups": "planqk-admins", "org_group_name_template": "planqk-{{org}}-{{role}}s",
	})
	require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "owner"}}, env.verify(token)["organizations"])

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"admin_groups": "g-rogue"})
	require.Equal(t, []map[string]interface{}{{"name": "*", "role": "admin"}, {"name": "acme", "role": "owner"}}, env.verify(token)["organizations"])

	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"org_group_name_template": "planqk-{{org}}"}), "{{role}}")
}

// Review of issue 21: Vault tells group names apart after strings.ToLower
// (checked against Vault 1.21: "planqk-acme-ownerſ", with a long s, is a
// group of its own beside "planqk-acme-owners"; "planqk-ACME-owners" and
// "planq\u212A-admins", with a Kelvin sign, are the existing groups).
// Unicode case folding (strings.EqualFold) also folds ſ to s, so whoever
// may create some other group - exactly whom the bindings keep out - made
// a platform admin or an organization owner with such a look-alike name.
func TestBackend_groupBindingsCompareNamesAsVaultDoes(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{
		"admin_groups": "planqk-admins", "org_group_name_template": "planqk-{{org}}-{{role}}s",
	})
	set := func(groups ...*logical.Group) {
		env.sys.mu.Lock()
		env.sys.groups[alice] = groups
		env.sys.mu.Unlock()
		env.b.identities.purge()
	}
	admin := map[string]string{groupMetadataOrg: adminOrg, groupMetadataRole: "admin"}
	owner := map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "owner", groupMetadataOrgID: testOrgID("acme")}

	set(&logical.Group{ID: "g-1", Name: "planqk-admin\u017f", Metadata: admin},
		&logical.Group{ID: "g-2", Name: "planqk-acme-owner\u017f", Metadata: owner})
	require.Equal(t, []map[string]interface{}{}, env.verify(token)["organizations"], "look-alike groups give no role")

	set(&logical.Group{ID: "g-3", Name: "planq\u212a-admins", Metadata: admin},
		&logical.Group{ID: "g-4", Name: "planqk-ACME-owners", Metadata: owner})
	require.Equal(t, []map[string]interface{}{{"name": "*", "role": "admin"}, {"name": "acme", "role": "owner"}},
		env.verify(token)["organizations"], "names Vault takes for the bound groups")
}

// Names that Vault's storage or ACL paths would misread get a 400 naming
// the rule, on every path family, and change nothing.
func TestBackend_badNamesAreRefusedEverywhere(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	before := env.storageSnapshot()
	for _, c := range []struct {
		op    logical.Operation
		path  string
		data  map[string]interface{}
		field string
	}{
		{logical.UpdateOperation, "users/a..b/tokens/laptop", nil, "user"},
		{logical.ListOperation, "users/a..b/tokens/", nil, "user"},
		{logical.UpdateOperation, "users/alice/tokens/a..b", nil, "name"},
		{logical.UpdateOperation, "users/alice/tokens/lap+top/rotate", nil, "name"},
		{logical.ReadOperation, "users/alice/creds/a..b", nil, "role"},
		{logical.UpdateOperation, "users/a..b/provider-tokens/dwave", map[string]interface{}{"token": "t"}, "user"},
		{logical.UpdateOperation, "orgs/a..b/provider-tokens/dwave", map[string]interface{}{"token": "t"}, "org"},
		{logical.ListOperation, "orgs/ac*me/provider-tokens/", nil, "org"},
		{logical.ReadOperation, "resolve/dwave", map[string]interface{}{"org": "a..b"}, "org"},
		{logical.UpdateOperation, "roles/a..b", nil, "role"},
		{logical.DeleteOperation, "roles/a..b", nil, "role"},
	} {
		msg := env.userError(c.op, c.path, alice, c.data)
		require.Contains(t, msg, c.field+" is not a valid name", "%s %s", c.op, c.path)
	}
	require.Equal(t, before, env.storageSnapshot())
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "roles/a..b", "", nil))
}

// E-mail addresses, the usual entity names of OIDC users, can own tokens.
func TestBackend_emailAddressesAreUserNames(t *testing.T) {
	env := newTestEnv(t)
	mia := env.addEntity("entity-mia", "mia.muster@uni-stuttgart.de")
	token := env.createToken("mia.muster@uni-stuttgart.de", mia, "laptop", nil)["token"].(string)
	require.Equal(t, "mia.muster@uni-stuttgart.de", env.verify(token)["user"])
	env.ok(logical.UpdateOperation, "users/mia.muster@uni-stuttgart.de/provider-tokens/dwave", mia, map[string]interface{}{"token": "t"})
	require.Equal(t, []string{"laptop"}, env.ok(logical.ListOperation, "users/mia.muster@uni-stuttgart.de/tokens/", "", nil).Data["keys"])
}

// On Vault Enterprise, SealWrapStorage has the seal wrap every entry under
// its prefixes (Community Edition encrypts all storage with the barrier and
// ignores the list). Every stored key that holds a secret must be under one
// of them: the HMAC key, users', organizations' and unclaimed provider
// tokens, and the webhook signing secret.
func TestBackend_sealWrapsEveryStoredSecret(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.createToken("alice", alice, "laptop", nil)
	const userSecret, orgSecret, unclaimedSecret = "alice-dwave-secret-seal-01", "acme-ionq-secret-seal-02", "dave-ionq-secret-seal-03"
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": userSecret})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": orgSecret})
	env.putUnclaimed("dave", "ionq", unclaimedSecret)
	whsec := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data["secret"].(string)
	webhookKey := strings.TrimPrefix(whsec, webhookSecretPrefix)

	sealWrapped := func(key string) bool {
		for _, prefix := range env.b.PathsSpecial.SealWrapStorage {
			if strings.HasPrefix(key, prefix) {
				return true
			}
		}
		return false
	}
	secretKeys := map[string][]string{}
	for key, value := range env.storageSnapshot() {
		for what, secret := range map[string]string{
			"a user's provider token": userSecret, "an organization's provider token": orgSecret,
			"an unclaimed provider token": unclaimedSecret, "the webhook secret": webhookKey,
		} {
			if strings.Contains(value, secret) {
				secretKeys[what] = append(secretKeys[what], key)
			}
		}
		if key == saltPath {
			secretKeys["the HMAC key"] = append(secretKeys["the HMAC key"], key)
		}
	}
	require.Len(t, secretKeys, 5, "every kind of secret is stored somewhere: %v", secretKeys)
	for what, keys := range secretKeys {
		for _, key := range keys {
			require.True(t, sealWrapped(key), "%s is stored at %s, which is not seal-wrapped", what, key)
		}
	}
}

// replicatingStorage is the active node's view of the shared storage: after
// each write it invalidates the key on the standby, as Vault's replication
// does on an Enterprise performance standby, which serves reads, verify and
// resolve from its own caches.
type replicatingStorage struct {
	logical.Storage
	standby *backend
}

func (s *replicatingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if err := s.Storage.Put(ctx, entry); err != nil {
		return err
	}
	s.standby.InvalidateKey(ctx, entry.Key)
	return nil
}

func (s *replicatingStorage) Delete(ctx context.Context, key string) error {
	if err := s.Storage.Delete(ctx, key); err != nil {
		return err
	}
	s.standby.InvalidateKey(ctx, key)
	return nil
}

// standbyView is the standby's system view: the same identity store, but
// a performance standby.
type standbyView struct{ *testSystemView }

func (standbyView) ReplicationState() consts.ReplicationState {
	return consts.ReplicationPerformanceStandby
}

// Cross-node invalidation, in process: an active engine and a performance
// standby engine over one storage, the standby's caches warm. Each change
// the active node makes is seen by the standby's very next read - through
// the Invalidate path only, the standby never being told otherwise. (On
// Community Edition standbys forward every request to the active node, so
// the 3-node reliability run cannot show this.)
func TestBackend_aStandbySeesTheActiveNodesChangesAtOnce(t *testing.T) {
	ctx := context.Background()
	active := newTestEnv(t)
	alice := active.addUser("alice")
	active.setRole(alice, "acme", "owner")
	active.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m"})

	config := logical.TestBackendConfig()
	shared := active.storage.Storage
	config.StorageView = &countingStorage{Storage: shared}
	config.System = standbyView{active.sys}
	config.Logger = logging.NewVaultLogger(hclog.Error)
	raw, err := Factory(ctx, config)
	require.NoError(t, err)
	standby := &testEnv{t: t, b: raw.(*backend), storage: config.StorageView.(*countingStorage), sys: active.sys}
	t.Cleanup(func() { standby.b.Cleanup(ctx) })
	require.NoError(t, standby.b.Initialize(ctx, &logical.InitializationRequest{Storage: standby.storage}))
	active.storage.Storage = &replicatingStorage{Storage: shared, standby: standby.b}
	_, err = standby.do(logical.UpdateOperation, "users/alice/tokens/x", alice, nil)
	require.ErrorIs(t, err, logical.ErrReadOnly, "the standby forwards writes")

	t.Run("revocation", func(t *testing.T) {
		pat := active.createToken("alice", alice, "revoked", nil)["token"].(string)
		require.Equal(t, true, standby.verify(pat)["active"])
		active.ok(logical.DeleteOperation, "users/alice/tokens/revoked", alice, nil)
		require.Equal(t, false, standby.verify(pat)["active"])
	})
	t.Run("rotation", func(t *testing.T) {
		pat := active.createToken("alice", alice, "rotated", nil)["token"].(string)
		require.Equal(t, true, standby.verify(pat)["active"])
		rotated := active.ok(logical.UpdateOperation, "users/alice/tokens/rotated/rotate", alice, nil).Data["token"].(string)
		require.Equal(t, false, standby.verify(pat)["active"])
		require.Equal(t, true, standby.verify(rotated)["active"])
	})
	t.Run("lease revocation", func(t *testing.T) {
		lease := active.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
		pat := lease.Data["token"].(string)
		require.Equal(t, true, standby.verify(pat)["active"])
		_, err := active.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Storage: active.storage, Secret: lease.Secret})
		require.NoError(t, err)
		require.Equal(t, false, standby.verify(pat)["active"])
	})
	t.Run("configuration", func(t *testing.T) {
		require.Equal(t, "plqk_", standby.ok(logical.ReadOperation, "config", "", nil).Data["token_prefix"])
		active.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"token_prefix": "acme_"})
		require.Equal(t, "acme_", standby.ok(logical.ReadOperation, "config", "", nil).Data["token_prefix"])
		pat := active.createToken("alice", alice, "prefixed", nil)["token"].(string)
		require.True(t, strings.HasPrefix(pat, "acme_"))
		require.Equal(t, true, standby.verify(pat)["active"])
	})
	t.Run("role", func(t *testing.T) {
		require.EqualValues(t, 600, standby.ok(logical.ReadOperation, "roles/runtime", "", nil).Data["ttl"])
		active.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "5m"})
		require.EqualValues(t, 300, standby.ok(logical.ReadOperation, "roles/runtime", "", nil).Data["ttl"])
	})
	t.Run("provider tokens", func(t *testing.T) {
		for _, path := range []string{"users/alice/provider-tokens/dwave", "orgs/acme/provider-tokens/dwave"} {
			query := map[string]interface{}{}
			if strings.HasPrefix(path, "orgs/") {
				query["org"] = "acme"
				active.ok(logical.DeleteOperation, "users/alice/provider-tokens/dwave", alice, nil)
			}
			active.ok(logical.UpdateOperation, path, alice, map[string]interface{}{"token": "first-" + path})
			require.Equal(t, "first-"+path, standby.ok(logical.ReadOperation, "resolve/dwave", alice, query).Data["token"])
			active.ok(logical.UpdateOperation, path, alice, map[string]interface{}{"token": "second-" + path})
			require.Equal(t, "second-"+path, standby.ok(logical.ReadOperation, "resolve/dwave", alice, query).Data["token"])
		}
		active.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/dwave", alice, nil)
		require.Equal(t, 404, standby.statusOf(logical.ReadOperation, "resolve/dwave", alice, map[string]interface{}{"org": "acme"}))
	})
	t.Run("provider catalogue", func(t *testing.T) {
		require.Equal(t, 404, standby.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
		active.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key"})
		require.Equal(t, 200, standby.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
	})
}

// callCountingSystemView counts every call the engine makes to Vault's
// system view. For an external plugin each one is a gRPC round trip to
// Vault, like a storage operation. It implements every method of
// logical.SystemView itself rather than embedding the interface, so that a
// method the SDK adds cannot go uncounted: the test file stops compiling
// until it is added here.
type callCountingSystemView struct {
	inner logical.SystemView
	mu    sync.Mutex
	calls map[string]int
}

func newCallCountingSystemView(inner logical.SystemView) *callCountingSystemView {
	return &callCountingSystemView{inner: inner, calls: map[string]int{}}
}

func (v *callCountingSystemView) count(method string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls[method]++
}

// counted returns the calls by method since the last reset.
func (v *callCountingSystemView) counted() map[string]int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return maps.Clone(v.calls)
}

func (v *callCountingSystemView) reset() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.calls)
}

func (v *callCountingSystemView) DefaultLeaseTTL() time.Duration {
	v.count("DefaultLeaseTTL")
	return v.inner.DefaultLeaseTTL()
}

func (v *callCountingSystemView) MaxLeaseTTL() time.Duration {
	v.count("MaxLeaseTTL")
	return v.inner.MaxLeaseTTL()
}

func (v *callCountingSystemView) Tainted() bool {
	v.count("Tainted")
	return v.inner.Tainted()
}

func (v *callCountingSystemView) CachingDisabled() bool {
	v.count("CachingDisabled")
	return v.inner.CachingDisabled()
}

func (v *callCountingSystemView) LocalMount() bool {
	v.count("LocalMount")
	return v.inner.LocalMount()
}

func (v *callCountingSystemView) ReplicationState() consts.ReplicationState {
	v.count("ReplicationState")
	return v.inner.ReplicationState()
}

func (v *callCountingSystemView) HasFeature(feature license.Features) bool {
	v.count("HasFeature")
	return v.inner.HasFeature(feature)
}

func (v *callCountingSystemView) ResponseWrapData(ctx context.Context, data map[string]interface{}, ttl time.Duration, jwt bool) (*wrapping.ResponseWrapInfo, error) {
	v.count("ResponseWrapData")
	return v.inner.ResponseWrapData(ctx, data, ttl, jwt)
}

func (v *callCountingSystemView) LookupPlugin(ctx context.Context, name string, pluginType consts.PluginType) (*pluginutil.PluginRunner, error) {
	v.count("LookupPlugin")
	return v.inner.LookupPlugin(ctx, name, pluginType)
}

func (v *callCountingSystemView) LookupPluginVersion(ctx context.Context, name string, pluginType consts.PluginType, version string) (*pluginutil.PluginRunner, error) {
	v.count("LookupPluginVersion")
	return v.inner.LookupPluginVersion(ctx, name, pluginType, version)
}

func (v *callCountingSystemView) ListVersionedPlugins(ctx context.Context, pluginType consts.PluginType) ([]pluginutil.VersionedPlugin, error) {
	v.count("ListVersionedPlugins")
	return v.inner.ListVersionedPlugins(ctx, pluginType)
}

func (v *callCountingSystemView) NewPluginClient(ctx context.Context, config pluginutil.PluginClientConfig) (pluginutil.PluginClient, error) {
	v.count("NewPluginClient")
	return v.inner.NewPluginClient(ctx, config)
}

func (v *callCountingSystemView) MlockEnabled() bool {
	v.count("MlockEnabled")
	return v.inner.MlockEnabled()
}

func (v *callCountingSystemView) EntityInfo(entityID string) (*logical.Entity, error) {
	v.count("EntityInfo")
	return v.inner.EntityInfo(entityID)
}

func (v *callCountingSystemView) GroupsForEntity(entityID string) ([]*logical.Group, error) {
	v.count("GroupsForEntity")
	return v.inner.GroupsForEntity(entityID)
}

func (v *callCountingSystemView) PluginEnv(ctx context.Context) (*logical.PluginEnvironment, error) {
	v.count("PluginEnv")
	return v.inner.PluginEnv(ctx)
}

func (v *callCountingSystemView) VaultVersion(ctx context.Context) (string, error) {
	v.count("VaultVersion")
	return v.inner.VaultVersion(ctx)
}

func (v *callCountingSystemView) GeneratePasswordFromPolicy(ctx context.Context, policyName string) (string, error) {
	v.count("GeneratePasswordFromPolicy")
	return v.inner.GeneratePasswordFromPolicy(ctx, policyName)
}

func (v *callCountingSystemView) ClusterID(ctx context.Context) (string, error) {
	v.count("ClusterID")
	return v.inner.ClusterID(ctx)
}

func (v *callCountingSystemView) GenerateIdentityToken(ctx context.Context, req *pluginutil.IdentityTokenRequest) (*pluginutil.IdentityTokenResponse, error) {
	v.count("GenerateIdentityToken")
	return v.inner.GenerateIdentityToken(ctx, req)
}

func (v *callCountingSystemView) GetRotationInformation(ctx context.Context, req *rotation.RotationInfoRequest) (*rotation.RotationInfoResponse, error) {
	v.count("GetRotationInformation")
	return v.inner.GetRotationInformation(ctx, req)
}

func (v *callCountingSystemView) RegisterRotationJob(ctx context.Context, req *rotation.RotationJobConfigureRequest) (string, error) {
	v.count("RegisterRotationJob")
	return v.inner.RegisterRotationJob(ctx, req)
}

func (v *callCountingSystemView) RegisterRotationJobWithResponse(ctx context.Context, req *rotation.RotationJobConfigureRequest) (*rotation.RotationInfo, error) {
	v.count("RegisterRotationJobWithResponse")
	return v.inner.RegisterRotationJobWithResponse(ctx, req)
}

func (v *callCountingSystemView) DeregisterRotationJob(ctx context.Context, req *rotation.RotationJobDeregisterRequest) error {
	v.count("DeregisterRotationJob")
	return v.inner.DeregisterRotationJob(ctx, req)
}

func (v *callCountingSystemView) DownloadExtractVerifyPlugin(ctx context.Context, plugin *pluginutil.PluginRunner) error {
	v.count("DownloadExtractVerifyPlugin")
	return v.inner.DownloadExtractVerifyPlugin(ctx, plugin)
}

func (v *callCountingSystemView) GetConsumptionBillingManager() logical.ConsumptionBillingManager {
	v.count("GetConsumptionBillingManager")
	return v.inner.GetConsumptionBillingManager()
}

var _ logical.SystemView = (*callCountingSystemView)(nil)

// vaultCalls counts every round trip to Vault a request makes: storage
// operations, system-view calls (identity lookups, the replication state,
// lease TTLs …) and events sent.
type vaultCalls struct {
	Storage roundTrips
	System  map[string]int
	Events  int
}

// countVaultCalls routes the engine's system view through a counter, with
// the replication state it answers from memory already cached (so that its
// one ask a second does not land inside a measurement), and returns a
// function that reports the calls made since the last report.
func (e *testEnv) countVaultCalls() func() vaultCalls {
	e.t.Helper()
	counting := newCallCountingSystemView(e.sys)
	e.b.replication.SystemView = counting
	e.b.replication.forget()
	e.b.replication.ReplicationState()
	e.b.replication.LocalMount()
	e.b.replication.cached.Store(&replicationStateAt{expires: time.Now().Add(time.Hour)})
	e.storage.reset()
	counting.reset()
	e.events.reset()
	return func() vaultCalls {
		calls := vaultCalls{Storage: e.storage.counted(), System: counting.counted(), Events: len(e.events.sent())}
		e.storage.reset()
		counting.reset()
		e.events.reset()
		return calls
	}
}

// refreshIdentity marks the entity's cached identity as fetched now, so
// that a measurement does not straddle identity_cache_ttl.
func (e *testEnv) refreshIdentity(entityID string) {
	e.t.Helper()
	id, ok := e.b.identities.get(entityID)
	require.True(e.t, ok, "the identity of %s is cached", entityID)
	fresh := *id
	fresh.fetchedAt = time.Now()
	e.b.identities.set(entityID, &fresh)
}

// ageIdentity makes the entity's cached identity older than any
// identity_cache_ttl, as if that much time had passed.
func (e *testEnv) ageIdentity(entityID string) {
	e.t.Helper()
	id, ok := e.b.identities.get(entityID)
	require.True(e.t, ok, "the identity of %s is cached", entityID)
	aged := *id
	aged.fetchedAt = aged.fetchedAt.Add(-24 * time.Hour)
	e.b.identities.set(entityID, &aged)
}
