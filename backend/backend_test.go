package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/helper/logging"
	"github.com/hashicorp/vault/sdk/logical"
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
	t       *testing.T
	b       *backend
	storage *countingStorage
	sys     *testSystemView
}

func newTestEnv(t *testing.T) *testEnv {
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

	raw, err := Factory(context.Background(), config)
	require.NoError(t, err)
	return &testEnv{t: t, b: raw.(*backend), storage: storage, sys: sys}
}

// addUser creates an entity named name and returns its id.
func (e *testEnv) addUser(name string) string {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	id := "entity-" + name
	e.sys.entities[id] = &logical.Entity{ID: id, Name: name}
	return id
}

// setRole puts the entity in org's group for role ("" removes it from org).
func (e *testEnv) setRole(entityID, org, role string) {
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
			Metadata: map[string]string{groupMetadataOrg: org, groupMetadataRole: role},
		})
	}
	e.sys.groups[entityID] = kept
	e.b.identities.Purge()
}

func (e *testEnv) disableEntity(entityID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.entities[entityID].Disabled = true
	e.b.identities.Purge()
}

func (e *testEnv) deleteEntity(entityID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	delete(e.sys.entities, entityID)
	e.b.identities.Purge()
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
	require.Empty(t, env.storageSnapshot(), "a forwarded write must not change storage")

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
	env.b.cacheLock.RLock()
	require.Nil(t, env.b.salt)
	env.b.cacheLock.RUnlock()
}

func TestBackend_everyPathHasHelp(t *testing.T) {
	env := newTestEnv(t)
	for _, p := range env.b.Paths {
		require.NotEmpty(t, p.HelpSynopsis, p.Pattern)
		require.NotEmpty(t, p.HelpDescription, p.Pattern)
		require.NotNil(t, p.DisplayAttrs, p.Pattern)
		for op, handler := range p.Operations {
			write := op == logical.CreateOperation || op == logical.UpdateOperation || op == logical.DeleteOperation
			if write && p.Pattern != "verify$" {
				require.True(t, handler.Properties().ForwardPerformanceStandby, "%s %s must be forwarded from performance standbys", op, p.Pattern)
			}
		}
	}
	resp := env.ok(logical.HelpOperation, "users/alice/tokens/laptop", "", nil)
	require.Contains(t, resp.Data["help"], "personal access token")
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
	asks atomic.Int64
}

func (c *countingReplicationState) ReplicationState() consts.ReplicationState {
	c.asks.Add(1)
	return c.SystemView.ReplicationState()
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
			require.Empty(t, e.storageSnapshot())
		})
	}
}
