package backend

import (
	"context"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/vault/sdk/logical"
)

// Who used a provider token. resolve, the runtime read and the exchange
// note each use of a provider token in memory - at most once per token,
// member and last_used_granularity, as verify notes PAT uses - and the
// engine's periodic function writes them in batches on the node that may
// write: each used token's last_used_at and last_used_by (the entity id of
// the member whose job used it), and, for an organization's token, one
// provider-token-used notification per member and granule, so that its
// owners see whose jobs ran on the organization's account. Nothing of it
// is a secret; the request path makes no storage round trip for it. What
// a crash loses is the last unwritten batch; a node that may not write
// drops its notes.
const (
	// providerUsePending bounds the tokens waiting for the next write.
	providerUsePending = 10000
	// providerUseSeenSize bounds the memory of which (token, member) pairs
	// were noted in the current granule.
	providerUseSeenSize = 100000
	// providerUseNotifiedKept bounds the members a token's entry remembers
	// as notified in its latest granule; past it, a restart within the
	// granule may notify the others again.
	providerUseNotifiedKept = 2000
)

// eventProviderTokenUsed tells an organization's owners that a member's
// job used its provider token.
const eventProviderTokenUsed = "provider-token-used"

type providerUse struct {
	mu      sync.Mutex
	pending map[string]*pendingProviderUse // by storage key
	dropped int
	seen    *lru.Cache[string, seenProviderUse] // storage key + "\x00" + entity id -> last noted
}

// seenProviderUse is the granule and version of a member's last noted use
// of a token: a new version is a new token, whose first use is noted too.
type seenProviderUse struct {
	at      time.Time
	version int
}

// pendingProviderUse is one token's uses since the last write.
type pendingProviderUse struct {
	owner    *providerTokenOwner
	provider string
	version  int
	// users are the entities whose jobs used the token, each with its
	// latest granule, and their names when they used it.
	users map[string]time.Time
	names map[string]string
	// lastBy is the member whose use was noted last: last_used_by.
	lastBy string
}

func newProviderUse() *providerUse {
	seen, err := lru.New[string, seenProviderUse](providerUseSeenSize)
	if err != nil {
		panic(err)
	}
	return &providerUse{pending: make(map[string]*pendingProviderUse), seen: seen}
}

// note records that user's job used the token now, truncated to
// granularity; 0 records nothing.
func (u *providerUse) note(usable *usableToken, user *identity, now time.Time, granularity time.Duration) {
	if granularity <= 0 {
		return
	}
	at := now.UTC().Truncate(granularity)
	key := usable.owner.storagePrefix() + usable.provider
	seenKey := key + "\x00" + user.entityID
	if last, ok := u.seen.Get(seenKey); ok && !at.After(last.at) && last.version == usable.entry.Version {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	use := u.pending[key]
	if use == nil || use.version != usable.entry.Version {
		if use == nil && len(u.pending) >= providerUsePending {
			u.dropped++
			return
		}
		use = &pendingProviderUse{owner: usable.owner, provider: usable.provider, version: usable.entry.Version,
			users: make(map[string]time.Time), names: make(map[string]string)}
		u.pending[key] = use
	}
	use.users[user.entityID] = at
	use.names[user.entityID] = user.name
	use.lastBy = user.entityID
	u.seen.Add(seenKey, seenProviderUse{at: at, version: usable.entry.Version})
}

// take returns the pending uses and empties the batch.
func (u *providerUse) take() (map[string]*pendingProviderUse, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	pending, dropped := u.pending, u.dropped
	u.pending, u.dropped = make(map[string]*pendingProviderUse), 0
	return pending, dropped
}

// noteProviderTokenUse notes that caller's job used the token; from
// memory only (the configuration is cached).
func (b *backend) noteProviderTokenUse(ctx context.Context, s logical.Storage, usable *usableToken, caller *identity) error {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	b.providerUse.note(usable, caller, time.Now(), cfg.LastUsedGranularity)
	return nil
}

// flushProviderTokenUse writes the pending uses: per token, its entry once
// (under its owner's lock, only if it is still the version that was used)
// and the notifications for an organization's token.
func (b *backend) flushProviderTokenUse(ctx context.Context, s logical.Storage) error {
	pending, dropped := b.providerUse.take()
	if dropped > 0 {
		b.Logger().Warn("provider-token use notes were dropped: more tokens were used than one batch holds", "dropped", dropped)
	}
	// Each token's use is written on its own: one that fails (a storage
	// error, a cancelled context) goes back to the next batch and does not
	// take the others with it.
	var failed []error
	for _, key := range sortedKeys(pending) {
		err := ctx.Err()
		if err == nil {
			err = b.writeProviderTokenUse(ctx, s, pending[key])
		}
		if err != nil {
			b.providerUse.putBack(key, pending[key])
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("writing the use of %d of %d provider tokens (kept for the next write): %w", len(failed), len(pending), failed[0])
	}
	return nil
}

// putBack returns a use whose write failed to the batch. Notes taken since
// for the same token version are newer and win; notes of a version since
// replaced are dropped (a use of the old token is not the new one's).
func (u *providerUse) putBack(key string, use *pendingProviderUse) {
	u.mu.Lock()
	defer u.mu.Unlock()
	current := u.pending[key]
	switch {
	case current == nil:
		if len(u.pending) >= providerUsePending {
			u.dropped++
			return
		}
		u.pending[key] = use
	case current.version == use.version:
		for entityID, at := range use.users {
			if _, newer := current.users[entityID]; !newer {
				current.users[entityID] = at
				current.names[entityID] = use.names[entityID]
			}
		}
	}
}

func (b *backend) writeProviderTokenUse(ctx context.Context, s logical.Storage, use *pendingProviderUse) error {
	notify, err := b.recordProviderTokenUse(ctx, s, use)
	if err != nil {
		return err
	}
	for _, entityID := range notify {
		event := use.owner.providerTokenEvent(eventProviderTokenUsed, &providerTokenEntry{Provider: use.provider, Version: use.version})
		event.Details["used_by"] = entityID
		event.Details["used_by_name"] = use.names[entityID]
		event.Details["used_at"] = formatTime(use.users[entityID])
		b.notify(ctx, s, event)
	}
	return nil
}

// recordProviderTokenUse sets the token's last use to the latest of the
// batch and, for an organization's token, records which members' uses are
// notified; it returns those members (none when the token was deleted or
// replaced since the use). One read and at most one write of the entry,
// under its owner's lock.
func (b *backend) recordProviderTokenUse(ctx context.Context, s logical.Storage, use *pendingProviderUse) ([]string, error) {
	lock := b.lockFor(use.owner.lockKey())
	lock.Lock()
	defer lock.Unlock()
	entry, err := getProviderToken(ctx, s, use.owner.storagePrefix(), use.provider)
	if err != nil || entry == nil || entry.Version != use.version {
		// Deleted or replaced since: a use of the old one is not the new
		// one's.
		return nil, err
	}
	updated := *entry
	changed := false
	latestBy, latestAt := use.lastBy, use.users[use.lastBy]
	if latestAt.After(entry.LastUsedAt) || (latestAt.Equal(entry.LastUsedAt) && latestBy != entry.LastUsedBy) {
		updated.LastUsedAt, updated.LastUsedBy = latestAt, latestBy
		changed = true
	}
	var notify []string
	if use.owner.org != nil {
		notify, updated.UseNotified = newlyNotified(entry.UseNotified, use.users)
		changed = changed || len(notify) > 0 || len(updated.UseNotified) != len(entry.UseNotified)
	}
	if !changed {
		return notify, nil
	}
	return notify, b.putProviderToken(ctx, s, use.owner.storagePrefix(), &updated)
}

// newlyNotified returns the members of uses whose use in its granule was
// not notified yet (sorted), and what to remember: the members notified in
// the latest granule, at most providerUseNotifiedKept. It never changes
// notified, which may be a cached entry's.
func newlyNotified(notified map[string]time.Time, uses map[string]time.Time) ([]string, map[string]time.Time) {
	var latest time.Time
	for _, at := range notified {
		latest = maxTime(latest, at)
	}
	for _, at := range uses {
		latest = maxTime(latest, at)
	}
	kept := make(map[string]time.Time)
	for entityID, at := range notified {
		if at.Equal(latest) {
			kept[entityID] = at
		}
	}
	var notify []string
	for _, entityID := range sortedKeys(uses) {
		at := uses[entityID]
		if prev, ok := notified[entityID]; ok && !at.After(prev) {
			continue
		}
		notify = append(notify, entityID)
		if at.Equal(latest) && len(kept) < providerUseNotifiedKept {
			kept[entityID] = at
		}
	}
	if len(kept) == 0 {
		return notify, nil
	}
	return notify, kept
}

// namedLastUse adds last_used_by_name, the live name of the entity in
// last_used_by, to a provider token's response data.
func (b *backend) namedLastUse(ctx context.Context, s logical.Storage, data map[string]interface{}) map[string]interface{} {
	data["last_used_by_name"] = ""
	if by, _ := data["last_used_by"].(string); by != "" {
		data["last_used_by_name"] = b.liveNameOf(ctx, s, by)
	}
	return data
}
