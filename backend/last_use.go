package backend

import (
	"context"
	"sort"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/logical"
)

// Last use. verify and introspect record when each token was last used, at
// the configured granularity (an hour by default, as the big code hosts
// show it), without a storage write per request: a use is noted in memory,
// at most once per token and granule, and the notes are written in batches
// - one index write per owner - by the engine's periodic function (Vault
// runs it about once a minute) on the node that may write. What a crash
// loses is the last unwritten batch: about a minute of first uses. A node
// that may not write (an Enterprise performance standby) drops its notes:
// last use reflects the uses the active node served.
const (
	// lastUsePending bounds the uses waiting for the next write; past it
	// new ones are dropped until the batch is written.
	lastUsePending = 50000
	// lastUseSeenSize bounds the memory of which tokens were already noted
	// in the current granule.
	lastUseSeenSize = 100000
)

// lastUse is the batch of uses waiting to be written.
type lastUse struct {
	mu      sync.Mutex
	pending map[string]*pendingUse // by token HMAC
	dropped int
	// seen is the granule each token was last noted in, so that a token
	// used a thousand times an hour is noted once.
	seen *lru.Cache[string, time.Time]
}

type pendingUse struct {
	entityID string
	name     string // the named token's name; "" for a leased token
	at       time.Time
}

func newLastUse() *lastUse {
	seen, err := lru.New[string, time.Time](lastUseSeenSize)
	if err != nil {
		panic(err)
	}
	return &lastUse{pending: make(map[string]*pendingUse), seen: seen}
}

// note records that the token was used now, truncated to granularity.
func (l *lastUse) note(record *tokenRecord, now time.Time, granularity time.Duration) {
	if granularity <= 0 {
		return
	}
	at := now.UTC().Truncate(granularity)
	if last, ok := l.seen.Get(record.Hash); ok && !at.After(last) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pending) >= lastUsePending {
		l.dropped++
		return
	}
	name := record.Name
	if record.Role != "" {
		name = ""
	}
	l.pending[record.Hash] = &pendingUse{entityID: record.EntityID, name: name, at: at}
	l.seen.Add(record.Hash, at)
}

// take returns the pending uses by owner entity and empties the batch.
func (l *lastUse) take() (map[string]map[string]*pendingUse, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	byEntity := make(map[string]map[string]*pendingUse)
	for hash, use := range l.pending {
		if byEntity[use.entityID] == nil {
			byEntity[use.entityID] = make(map[string]*pendingUse)
		}
		byEntity[use.entityID][hash] = use
	}
	dropped := l.dropped
	l.pending, l.dropped = make(map[string]*pendingUse), 0
	return byEntity, dropped
}

// flushLastUse writes the pending uses: per owner, its index once and the
// marker of each used lease. It runs on the node that may write; elsewhere
// the caller drops the batch with take.
func (b *backend) flushLastUse(ctx context.Context, s logical.Storage) error {
	byEntity, dropped := b.lastUse.take()
	if dropped > 0 {
		b.Logger().Warn("last-use notes were dropped: more tokens were used than one batch holds", "dropped", dropped)
	}
	entities := make([]string, 0, len(byEntity))
	for entityID := range byEntity {
		entities = append(entities, entityID)
	}
	sort.Strings(entities)
	for _, entityID := range entities {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := b.writeLastUse(ctx, s, entityID, byEntity[entityID]); err != nil {
			return err
		}
	}
	return nil
}

func (b *backend) writeLastUse(ctx context.Context, s logical.Storage, entityID string, uses map[string]*pendingUse) error {
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()

	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return err
	}
	indexChanged := false
	for hash, use := range uses {
		if use.name == "" {
			marker, err := getLeaseMarker(ctx, s, entityID, hash)
			if err != nil {
				return err
			}
			if marker == nil || !use.at.After(marker.LastUsedAt) {
				continue
			}
			marker.LastUsedAt = use.at
			if err := putLeaseMarkerEntry(ctx, s, entityID, hash, marker); err != nil {
				return err
			}
			continue
		}
		// The name's current token only: a use of a secret rotated away
		// meanwhile is not the new one's.
		summary, ok := index.Tokens[use.name]
		if !ok || summary.Hash != hash || !use.at.After(summary.LastUsedAt) {
			continue
		}
		summary.LastUsedAt = use.at
		indexChanged = true
	}
	if indexChanged {
		return b.putTokenIndex(ctx, s, entityID, index)
	}
	return nil
}

// formatOptionalTime formats t, or "" when t is zero (never).
func formatOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return formatTime(t)
}
