package backend

import (
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
)

// storageCache keeps copies of storage entries, or of values derived from
// them, so that hot paths skip a round trip to Vault. Readers fill it
// without holding the writers' locks, so a fill could land after a writer
// or an Invalidate and put a stale value back, indefinitely. To prevent
// that, every change bumps a generation: a reader takes the generation
// before it reads storage and its fill is dropped if anything changed the
// cache in between. Writers and Invalidate always win; a reader that loses
// merely reads storage again next time.
//
// The generation is one counter for the whole cache rather than one per
// key: changes are rare next to hits, so an occasional wasted fill costs
// less than tracking keys that are no longer cached.
type storageCache[K comparable, V any] struct {
	mu         sync.Mutex
	entries    *lru.Cache[K, V]
	generation uint64
}

func newStorageCache[K comparable, V any](size int) *storageCache[K, V] {
	entries, err := lru.New[K, V](size)
	if err != nil {
		// Only a non-positive size makes lru.New fail, and sizes are constants.
		panic(err)
	}
	return &storageCache[K, V]{entries: entries}
}

// get returns the cached value of key.
func (c *storageCache[K, V]) get(key K) (V, bool) {
	return c.entries.Get(key)
}

// begin returns the generation a reader must pass to fill.
func (c *storageCache[K, V]) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generation
}

// fill caches what a reader read from storage, unless the cache changed
// since the reader called begin.
func (c *storageCache[K, V]) fill(key K, value V, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.generation == generation {
		c.entries.Add(key, value)
	}
}

// set caches what a writer has just stored, holding the lock that
// serialises writers of key.
func (c *storageCache[K, V]) set(key K, value V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	c.entries.Add(key, value)
}

// remove forgets key: a writer changed or deleted it, or another node did.
func (c *storageCache[K, V]) remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	c.entries.Remove(key)
}

// purge forgets everything.
func (c *storageCache[K, V]) purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	c.entries.Purge()
}
