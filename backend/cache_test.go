package backend

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestStorageCache_fillsLoseToWritersAndInvalidation(t *testing.T) {
	cache := newStorageCache[string, int](10)

	generation := cache.begin()
	cache.fill("a", 1, generation)
	got, ok := cache.get("a")
	require.True(t, ok)
	require.Equal(t, 1, got, "an undisturbed fill is kept")

	generation = cache.begin()
	cache.set("a", 2) // a writer stores a newer value meanwhile
	cache.fill("a", 1, generation)
	got, _ = cache.get("a")
	require.Equal(t, 2, got, "a stale fill must not overwrite a writer")

	generation = cache.begin()
	cache.remove("a") // Invalidate from another node meanwhile
	cache.fill("a", 1, generation)
	_, ok = cache.get("a")
	require.False(t, ok, "a stale fill must not undo an invalidation")

	generation = cache.begin()
	cache.purge()
	cache.fill("b", 3, generation)
	_, ok = cache.get("b")
	require.False(t, ok)
}

// stallingStorage holds the first Get of one key after it has read the
// entry, until released: the moment a cache fill can race a writer.
type stallingStorage struct {
	logical.Storage
	key      string
	once     sync.Once
	read     chan struct{}
	released chan struct{}
}

func stall(env *testEnv, key string) *stallingStorage {
	s := &stallingStorage{Storage: env.storage, key: key, read: make(chan struct{}), released: make(chan struct{})}
	return s
}

func (s *stallingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	entry, err := s.Storage.Get(ctx, key)
	if key == s.key {
		s.once.Do(func() {
			close(s.read)
			<-s.released
		})
	}
	return entry, err
}

// The review's reproduction: a verify misses the configuration cache, and
// a write of token_prefix lands while it reads; the old prefix must not
// end up cached, or old-prefix tokens would keep verifying on this node.
func TestCaches_configFillRacingAWrite(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.b.configCache.purge()

	stalling := stall(env, configPath)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.UpdateOperation, Path: "verify", Storage: stalling,
			Data: map[string]interface{}{"token": token},
		})
	}()
	<-stalling.read
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"token_prefix": "new_"})
	close(stalling.released)
	<-done

	cfg, err := env.b.getConfig(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, "new_", cfg.TokenPrefix)
	require.Equal(t, false, env.verify(token)["active"])
}

// Another node changes the configuration while this node fills its cache:
// Invalidate must win.
func TestCaches_configFillRacingInvalidate(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.b.configCache.purge()

	stalling := stall(env, configPath)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := env.b.getConfig(ctx, stalling)
		require.NoError(t, err)
	}()
	<-stalling.read
	changed := defaultConfig()
	changed.TokenPrefix = "other_"
	entry, err := logical.StorageEntryJSON(configPath, changed)
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, entry))
	env.b.invalidate(ctx, configPath)
	close(stalling.released)
	<-done

	cfg, err := env.b.getConfig(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, "other_", cfg.TokenPrefix)
}

// The review's second reproduction: the first creds of a role races the
// role's deletion; the deleted role must not stay alive in the cache.
func TestCaches_roleFillRacingADelete(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/rt", "", nil)
	env.b.roles.purge()

	stalling := stall(env, rolePrefix+"rt")
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: logical.ReadOperation, Path: "users/alice/creds/rt", Storage: stalling, EntityID: alice,
		})
	}()
	<-stalling.read
	env.ok(logical.DeleteOperation, "roles/rt", "", nil)
	close(stalling.released)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("creds did not finish")
	}

	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/creds/rt", alice, nil), `role "rt" does not exist`)
}

// A token record cached by verify must not outlive its revocation, its
// rotation or its renewal on this node.
func TestCaches_recordCacheFollowsEveryWriter(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m", "max_ttl": "1h"})

	revoked := env.createToken("alice", alice, "revoked", nil)["token"].(string)
	rotated := env.createToken("alice", alice, "rotated", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	for _, token := range []string{revoked, rotated, lease.Data["token"].(string)} {
		require.Equal(t, true, env.verify(token)["active"]) // now cached
	}

	env.ok(logical.DeleteOperation, "users/alice/tokens/revoked", alice, nil)
	env.ok(logical.UpdateOperation, "users/alice/tokens/rotated/rotate", alice, nil)
	_, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: lease.Secret})
	require.NoError(t, err)
	for _, token := range []string{revoked, rotated, lease.Data["token"].(string)} {
		require.Equal(t, false, env.verify(token)["active"])
	}

	// Another node deletes a record: Invalidate drops this node's copy.
	other := env.createToken("alice", alice, "other", nil)["token"].(string)
	require.Equal(t, true, env.verify(other)["active"])
	hmacKey, err := env.b.getSalt(ctx, env.storage, false)
	require.NoError(t, err)
	require.NoError(t, env.storage.Delete(ctx, tokenRecordPath(hmacKey.GetHMAC(other))))
	require.Equal(t, true, env.verify(other)["active"], "still cached: nothing told this node")
	env.b.invalidate(ctx, tokenRecordPath(hmacKey.GetHMAC(other)))
	require.Equal(t, false, env.verify(other)["active"])
}

// A configuration write that lands while an identity is looked up under
// the old group bindings must not leave that judgement cached.
func TestCaches_identityFillRacingAConfigWrite(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	mallory := env.addEntity("7c1d7c7e-0000-4000-8000-000000000001", "mallory")
	env.sys.mu.Lock()
	env.sys.groups[mallory] = []*logical.Group{{ID: "g-rogue", Name: "rogue", Metadata: map[string]string{groupMetadataOrg: adminOrg, groupMetadataRole: "admin"}}}
	env.sys.mu.Unlock()
	env.b.identities.purge()
	env.b.configCache.remove(configPath)

	stalling := stall(env, configPath)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := env.b.lookupIdentity(ctx, stalling, mallory)
		require.NoError(t, err)
	}()
	<-stalling.read
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"admin_groups": "planqk-admins"})
	close(stalling.released)
	<-done

	id, err := env.b.lookupIdentity(ctx, env.storage, mallory)
	require.NoError(t, err)
	require.False(t, id.admin, "a group outside admin_groups must not make an admin, not even from the cache")
}
