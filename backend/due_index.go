package backend

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The due index: what the sweep has to look at, by the hour it comes due,
// so that a sweep reads what came due rather than every owner.
//
//	due/<hour>/<subject>
//
// hour is Unix time / 3600 (ten digits, so that keys sort by time) and a
// subject is an entity (e.<entity id>) or an organization (o.<org id>). An
// entry says "look at this subject in this hour": a named token's expiry
// or next expiry reminder, a leased token's expiry, a provider token's next
// reminder, the end of an inactive owner's grace. The request that sets a
// due time writes the entry for it (at most one write: entries already
// written are remembered, and a named token's owner index records its
// earliest entry, DueHour, so that a later token of the same owner writes
// none). A past time is due in the current hour.
//
// The sweep keeps sweep/state: the last hour whose bucket it has finished.
// Each sweep lists the buckets from the one after it up to the current
// hour (one list each: two for an hourly sweep), and for each subject
// listed does what the full sweep did for it, under its lock, then writes
// the entry of the subject's next due time and deletes the one it
// processed. A sweep with nothing due therefore costs a read of the state,
// a list or two and a write of the state; a subject costs what it did in
// the full sweep.
//
// The invariant is: every due time of a subject has an entry in its hour
// or an earlier one. Writers keep it; the sweep keeps it, writing the next
// entry before it deletes the one it processed; an interrupted write can
// leave an entry too many (which costs one look at the subject) but never
// one too few, except for the expiry reminder thresholds added by a
// configuration change, which take effect at each token's next due time.
// The recount (tidy repair=true, inventory refresh=true) writes every
// subject's entry again. Until the recount of an upgraded mount has run
// once (dueIndexPath), the sweep reads every owner as before.
//
// Offboarding must still notice entities that were deleted or disabled in
// Vault, which no write in the engine announces. Each sweep asks Vault
// about at most offboardingScanBatch owners, resuming after the last one
// it asked about (sweep/state), so a deletion is noticed within
// owners/offboardingScanBatch sweeps (100,000 owners, hourly sweeps: about
// four days; the tokens stop verifying at once regardless, it is only
// their removal that waits). An owner found inactive stays due: every
// sweep looks at it again until it is offboarded or active again, so the
// sweep's cost grows with the inactive owners, not with all owners.
const (
	duePrefix      = "due/"
	sweepStatePath = "sweep/state"
	// dueIndexPath records that every subject has its due entries and the
	// counters are exact: a fresh mount writes it at once, an upgraded one
	// after its first recount.
	dueIndexPath = "migrations/due-index-v1"

	// dueSettle is how long after an hour ends its bucket may still get
	// entries from requests that began before: the sweep finishes a bucket
	// only that long after the hour.
	dueSettle = 5 * time.Minute
	// dueMarkCacheSize bounds the due entries this node remembers writing.
	dueMarkCacheSize = 100_000
)

// offboardingScanBatch bounds the owners each sweep asks Vault about (a
// variable for tests).
var offboardingScanBatch = 1000

func dueHour(t time.Time) int64 { return t.Unix() / 3600 }

func dueBucketPrefix(hour int64) string { return fmt.Sprintf("%s%010d/", duePrefix, hour) }

func dueKey(hour int64, subject string) string { return dueBucketPrefix(hour) + subject }

// markDue writes the entry of subject at its hour (the current hour for a
// past time) unless this node wrote it already, and returns the hour. The
// caller holds the subject's lock.
func (b *backend) markDue(ctx context.Context, s logical.Storage, subject string, at time.Time) (int64, error) {
	hour := max(dueHour(at), dueHour(time.Now()))
	key := dueKey(hour, subject)
	if _, ok := b.dueMarks.get(key); ok {
		return hour, nil
	}
	if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: []byte("{}")}); err != nil {
		return 0, fmt.Errorf("storing due entry: %w", err)
	}
	b.dueMarks.set(key, struct{}{})
	return hour, nil
}

// unmarkDue deletes the entry of subject at hour; the caller holds the
// subject's lock.
func (b *backend) unmarkDue(ctx context.Context, s logical.Storage, subject string, hour int64) error {
	key := dueKey(hour, subject)
	b.dueMarks.remove(key)
	if err := s.Delete(ctx, key); err != nil {
		return fmt.Errorf("deleting due entry: %w", err)
	}
	return nil
}

// earlier returns the earlier of two due times, zero meaning none.
func earlier(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// reminderDue returns when the next reminder of an expiry is due: the
// crossing of the longest threshold not yet notified; zero if none is left.
func reminderDue(expiresAt time.Time, thresholds []time.Duration, sent []string) time.Time {
	var next time.Time
	if expiresAt.IsZero() {
		return next
	}
	for _, threshold := range thresholds {
		if containsString(sent, threshold.String()) {
			continue
		}
		next = earlier(next, expiresAt.Add(-threshold))
	}
	return next
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// nextDue returns the earliest due time of the index's tokens: an expiry
// or a reminder; zero if it has no tokens.
func (index *tokenIndex) nextDue(thresholds []time.Duration) time.Time {
	var next time.Time
	for _, summary := range index.Tokens {
		next = earlier(next, earlier(summary.ExpiresAt, reminderDue(summary.ExpiresAt, thresholds, summary.NoticesSent)))
	}
	return next
}

// providerTokenDue returns when the token's next reminder is due; zero if
// none.
func providerTokenDue(token *providerTokenEntry, thresholds []time.Duration) time.Time {
	return reminderDue(token.ExpiresAt, thresholds, token.NoticesSent)
}

// sweepState is where the due sweep and the offboarding scan resume.
type sweepState struct {
	// DoneHour is the last hour whose bucket the sweep has finished.
	DoneHour int64 `json:"done_hour"`
	// OffboardingAfter is the last owner the offboarding scan asked about.
	OffboardingAfter string `json:"offboarding_after,omitempty"`
}

func getSweepState(ctx context.Context, s logical.Storage) (*sweepState, error) {
	entry, err := s.Get(ctx, sweepStatePath)
	if err != nil {
		return nil, fmt.Errorf("reading sweep state: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var state sweepState
	if err := entry.DecodeJSON(&state); err != nil {
		return nil, fmt.Errorf("decoding sweep state: %w", err)
	}
	return &state, nil
}

func putSweepState(ctx context.Context, s logical.Storage, state *sweepState) error {
	entry, err := logical.StorageEntryJSON(sweepStatePath, state)
	if err != nil {
		return fmt.Errorf("encoding sweep state: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing sweep state: %w", err)
	}
	return nil
}

// dueIndexBuilt reports whether the sweep may rely on the due index.
func (b *backend) dueIndexBuilt(ctx context.Context, s logical.Storage) (bool, error) {
	if b.dueBuilt.Load() {
		return true, nil
	}
	entry, err := s.Get(ctx, dueIndexPath)
	if err != nil {
		return false, fmt.Errorf("reading due index marker: %w", err)
	}
	if entry != nil {
		b.dueBuilt.Store(true)
	}
	return entry != nil, nil
}

func (b *backend) putDueIndexBuilt(ctx context.Context, s logical.Storage) error {
	entry, err := logical.StorageEntryJSON(dueIndexPath, map[string]string{"built_at": formatTime(time.Now())})
	if err != nil {
		return fmt.Errorf("encoding due index marker: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing due index marker: %w", err)
	}
	b.dueBuilt.Store(true)
	return nil
}

// markFreshMountIndexed records that a mount with no owners and no
// provider tokens has its due index and counters: every entry from here on
// is written by the request that makes it. Upgraded mounts get them from
// their first recount instead. It runs once, when the storage upgrade
// marker is written.
func (b *backend) markFreshMountIndexed(ctx context.Context, s logical.Storage) error {
	for _, prefix := range []string{entityPrefix, providerTokenPrefix, tokenRecordPrefix} {
		keys, err := s.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("listing %s: %w", prefix, err)
		}
		if len(keys) > 0 {
			return nil
		}
	}
	return b.putDueIndexBuilt(ctx, s)
}

// sweepDue looks at the subjects whose buckets came due, then asks Vault
// about the next batch of owners for offboarding.
func (b *backend) sweepDue(ctx context.Context, s logical.Storage, cfg *configEntry, now time.Time, result *tidyResult) error {
	state, err := getSweepState(ctx, s)
	if err != nil {
		return err
	}
	if state == nil {
		// The first sweep of the mount starts at the earliest bucket (one
		// list of the whole index, once).
		state = &sweepState{DoneHour: dueHour(now) - 1}
		hours, err := s.List(ctx, duePrefix)
		if err != nil {
			return fmt.Errorf("listing due buckets: %w", err)
		}
		for _, h := range hours {
			if hour, err := strconv.ParseInt(strings.TrimSuffix(h, "/"), 10, 64); err == nil && hour <= state.DoneHour {
				state.DoneHour = hour - 1
			}
		}
	}
	before := *state
	current, settled := dueHour(now), dueHour(now.Add(-dueSettle))
	for hour := state.DoneHour + 1; hour <= current; hour++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		subjects, err := s.List(ctx, dueBucketPrefix(hour))
		if err != nil {
			return fmt.Errorf("listing due entries: %w", err)
		}
		result.DueBucketsRead++
		sort.Strings(subjects)
		if err := b.sweepSubjects(ctx, s, cfg, subjects, hour, now, result); err != nil {
			return err
		}
		if hour < settled && hour == state.DoneHour+1 {
			state.DoneHour = hour
		}
	}
	if err := b.offboardingScan(ctx, s, cfg, state, now, result); err != nil {
		return err
	}
	if *state != before {
		return putSweepState(ctx, s, state)
	}
	return nil
}

// sweepWorkers is how many subjects of a bucket are swept at once: each
// under its own lock, so that their storage writes overlap (Raft commits
// concurrent writes together) instead of queueing one owner at a time.
const sweepWorkers = 8

// sweepSubjects sweeps the subjects of one bucket, sweepWorkers at a time,
// and adds what they did to result; the first error stops it.
func (b *backend) sweepSubjects(ctx context.Context, s logical.Storage, cfg *configEntry, subjects []string, hour int64, now time.Time, result *tidyResult) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	results := make([]tidyResult, sweepWorkers)
	errs := make([]error, sweepWorkers)
	var wg sync.WaitGroup
	for w := 0; w < sweepWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for subject := range work {
				if err := b.sweepSubject(ctx, s, cfg, subject, hour, now, &results[w]); err != nil {
					errs[w] = err
					cancel()
					return
				}
				results[w].EntitiesScanned++
			}
		}(w)
	}
feed:
	for _, subject := range subjects {
		select {
		case work <- subject:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	for w := range results {
		result.add(&results[w])
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

// sweepSubject brings one subject listed in the bucket of hour up to date.
func (b *backend) sweepSubject(ctx context.Context, s logical.Storage, cfg *configEntry, subject string, hour int64, now time.Time, result *tidyResult) error {
	kind, name, _ := strings.Cut(subject, ".")
	switch kind {
	case "e":
		if validEntityID(name) {
			return b.sweepEntity(ctx, s, cfg, name, hour, now, result)
		}
	case "o":
		if CheckOrgID(name) == nil {
			return b.sweepOrg(ctx, s, cfg, name, hour, now, result)
		}
	}
	// Nothing the engine writes: drop it.
	return b.unmarkDue(ctx, s, subject, hour)
}

// reschedule writes the subject's entry for next (none if zero) and then
// deletes its entry in the bucket of hour (0: none was processed); it
// returns the hour of the new entry. The caller holds the subject's lock.
func (b *backend) reschedule(ctx context.Context, s logical.Storage, subject string, hour int64, next time.Time) (int64, error) {
	nextHour := int64(0)
	if !next.IsZero() {
		var err error
		if nextHour, err = b.markDue(ctx, s, subject, next); err != nil {
			return 0, err
		}
	}
	if hour != 0 && hour != nextHour {
		if err := b.unmarkDue(ctx, s, subject, hour); err != nil {
			return 0, err
		}
	}
	return nextHour, nil
}

// sweepOrg sends an organization's due reminders and reschedules it.
func (b *backend) sweepOrg(ctx context.Context, s logical.Storage, cfg *configEntry, orgID string, hour int64, now time.Time, result *tidyResult) error {
	name, err := b.orgNameOf(ctx, s, orgID)
	if err != nil {
		return err
	}
	owner := &providerTokenOwner{org: &orgTarget{name: name, id: orgID}}
	lock := b.lockFor(owner.lockKey())
	lock.Lock()
	defer lock.Unlock()
	sent, next, err := b.remindProviderTokens(ctx, s, cfg, owner, now)
	result.NoticesSent += sent
	if err != nil {
		return err
	}
	_, err = b.reschedule(ctx, s, orgSubject(orgID), hour, next)
	return err
}

// offboardingScan asks Vault about the next batch of owners after the
// state's cursor and sweeps those it finds deleted or disabled, or
// enabled again while marked inactive.
func (b *backend) offboardingScan(ctx context.Context, s logical.Storage, cfg *configEntry, state *sweepState, now time.Time, result *tidyResult) error {
	entities, err := listOwnerEntities(ctx, s)
	if err != nil {
		return err
	}
	sort.Strings(entities)
	start := sort.SearchStrings(entities, state.OffboardingAfter)
	if start < len(entities) && entities[start] == state.OffboardingAfter {
		start++
	}
	for n := 0; n < min(offboardingScanBatch, len(entities)); n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		entityID := entities[(start+n)%len(entities)]
		id, err := b.lookupIdentity(ctx, s, entityID)
		if err != nil {
			return err
		}
		result.OwnersChecked++
		state.OffboardingAfter = entityID
		if id != nil && !id.disabled {
			// Active; one marked inactive is due every sweep anyway.
			continue
		}
		if err := b.sweepEntity(ctx, s, cfg, entityID, 0, now, result); err != nil {
			return err
		}
	}
	return nil
}
