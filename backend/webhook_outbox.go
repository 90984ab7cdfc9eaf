package backend

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// webhookOutboxPrefix holds the events waiting for delivery, one entry
	// each, keyed by a sequence number so that keys sort in enqueue order,
	// followed by the event's class and owner (see outboxKey).
	webhookOutboxPrefix = notificationsPrefix + "outbox/"

	// defaultOutboxLimit bounds the outbox: events past it are not stored
	// but counted (see suppression). An event is well under 1 KiB, so a
	// full outbox holds a few MiB.
	defaultOutboxLimit = 10000

	// outboxKeyDigits zero-pads sequence numbers so that string order is
	// numeric order (UnixNano has 19 digits until the year 2262).
	outboxKeyDigits = 20
)

// outboxEntry is one event waiting for delivery. Body is kept as the exact
// bytes sent, so that every attempt sends, and signs, the same payload.
type outboxEntry struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Body       string    `json:"body"`
	EnqueuedAt time.Time `json:"enqueued_at"`

	Attempts      int       `json:"attempts,omitempty"`
	NextAttemptAt time.Time `json:"next_attempt_at,omitempty"`
	LastError     string    `json:"last_error,omitempty"`

	// Owner and Security are kept in the key, so that counting the outbox
	// per owner and class takes a List, not a read of every entry.
	Owner    string `json:"-"`
	Security bool   `json:"-"`
	// summary marks a notifications-suppressed event being queued.
	summary bool
	// subject names the owner for a summary of its suppressed events.
	subject suppressionSubject
}

// suppressionSubject is whom a summary of suppressed events is about.
type suppressionSubject struct {
	EntityID, User, Org string
}

// suppression counts an owner's events that were not stored, until a
// summary of them (notifications-suppressed) is queued.
type suppression struct {
	subject     suppressionSubject
	counts      map[string]int // by event type, with the webhook prefix
	total       int
	first, last time.Time
	// security is set once a security-relevant event is among them.
	security bool
}

// webhookOutbox is the persisted queue of events for the webhook receiver.
//
// Order: keys are sequence numbers, each greater than every key this node
// allocated or found in the outbox, so they sort in the order notify
// allocated them. Two requests may finish their writes out of that order;
// so that a later event is never delivered before an earlier one whose
// write is still in flight, the worker takes only keys below the lowest
// key still being written (the watermark).
//
// Fairness: every event has an owner (the entity it is about, or the
// organization for an organization's provider tokens). One owner holds at
// most share places; routine events leave the last reserved places - of
// the outbox, and of each owner's share - to security-relevant ones. An
// event that finds no place is not stored: it is counted in its owner's
// suppression, and while an owner has one, its later events of the same
// class are counted too (a security-relevant event still takes a place
// while only the owner's routine events are suppressed), so that the
// summary the worker queues as soon as there is room for its class stands
// where the events it replaces would have stood in the owner's order.
//
// Only the node that may write enqueues and delivers; its counts are
// rebuilt from storage when it starts. Suppression counts live in memory
// until their summary is queued (a restart loses them; the status's
// dropped counts are stored).
type webhookOutbox struct {
	// limit is the most events held (default 10,000); reserved the places
	// at its top that only security-relevant events (securityEventTypes)
	// and summaries may take - a tenth, so routine events stop at 9,000;
	// share the most events of one owner - a twentieth, 500 - past which
	// the owner's events are coalesced into one notifications-suppressed
	// event. The places at the top of each share that only the owner's
	// security-relevant events may take are ownerReserved().
	limit    int
	reserved int
	share    int

	mu      sync.Mutex
	loaded  bool
	lastSeq int64
	pending int
	routine int
	owners  map[string]int
	// ownersRoutine counts each owner's routine events.
	ownersRoutine map[string]int
	inFlight      map[int64]struct{}
	suppressed    map[string]*suppression
}

func newWebhookOutbox(limit int) *webhookOutbox {
	return &webhookOutbox{
		limit: limit, reserved: limit / 10, share: max(limit/20, 1),
		owners: make(map[string]int), ownersRoutine: make(map[string]int),
		inFlight: make(map[int64]struct{}), suppressed: make(map[string]*suppression),
	}
}

// outboxKey is an entry's key: the zero-padded sequence number, then "s"
// (security-relevant) or "r" (routine), then the owner, dot-separated.
// Keys of v0.2 outboxes hold the number only (routine, no owner).
func outboxKey(seq int64, security bool, owner string) string {
	class := "r"
	if security {
		class = "s"
	}
	return fmt.Sprintf("%0*d.%s.%s", outboxKeyDigits, seq, class, owner)
}

// parseOutboxKey reads a key outboxKey wrote; ok is false for anything else.
func parseOutboxKey(key string) (seq int64, security bool, owner string, ok bool) {
	number, rest, _ := strings.Cut(key, ".")
	seq, err := strconv.ParseInt(number, 10, 64)
	if err != nil {
		return 0, false, "", false
	}
	class, owner, _ := strings.Cut(rest, ".")
	return seq, class == "s", owner, true
}

// load counts the outbox and finds its last key, once; the caller holds mu.
func (o *webhookOutbox) load(ctx context.Context, s logical.Storage) error {
	if o.loaded {
		return nil
	}
	keys, err := s.List(ctx, webhookOutboxPrefix)
	if err != nil {
		return fmt.Errorf("listing the webhook outbox: %w", err)
	}
	o.pending, o.routine = 0, 0
	clear(o.owners)
	clear(o.ownersRoutine)
	for _, key := range keys {
		seq, security, owner, ok := parseOutboxKey(key)
		if !ok {
			continue
		}
		o.count(security, owner, 1)
		o.lastSeq = max(o.lastSeq, seq)
	}
	o.loaded = true
	return nil
}

// count adds n to the counts of an owner's event; the caller holds mu.
func (o *webhookOutbox) count(security bool, owner string, n int) {
	o.pending += n
	if !security {
		o.routine += n
		if o.ownersRoutine[owner] += n; o.ownersRoutine[owner] <= 0 {
			delete(o.ownersRoutine, owner)
		}
	}
	if o.owners[owner] += n; o.owners[owner] <= 0 {
		delete(o.owners, owner)
	}
}

// ownerReserved is how many places at the top of each owner's share only
// its security-relevant events (and summaries of them) may take: a tenth,
// so an owner's routine events stop at 450 of 500.
func (o *webhookOutbox) ownerReserved() int { return o.share / 10 }

// routineRoom reports whether routine events may take more places: of
// the outbox, with extra more already promised, and of owner's share.
// The caller holds mu.
func (o *webhookOutbox) routineRoom(owner string, extra int) bool {
	return o.routine+extra < o.limit-o.reserved && o.ownersRoutine[owner] < o.share-o.ownerReserved()
}

// ensureLoaded loads the outbox's count and last key if not done yet.
func (o *webhookOutbox) ensureLoaded(ctx context.Context, s logical.Storage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.load(ctx, s)
}

// errOutboxFull is returned by enqueue when the event finds no place.
var errOutboxFull = fmt.Errorf("the webhook outbox is full")

// Why enqueue did not store an event; both are errOutboxFull.
var (
	errOwnerShare = fmt.Errorf("%w for this owner", errOutboxFull)
	errRoutineCap = fmt.Errorf("%w for routine events", errOutboxFull)
)

// admit decides whether an event may take a place; the caller holds mu.
func (o *webhookOutbox) admit(entry *outboxEntry) error {
	if sup := o.suppressed[entry.Owner]; sup != nil && !entry.summary && (!entry.Security || sup.security) {
		// Counted after the ones of its class already suppressed, to
		// keep the order. A security-relevant event behind suppressed
		// routine ones takes a place if it finds one: it is what a
		// flood, the owner's own or others', must not hide.
		return errOwnerShare
	}
	switch {
	case o.pending >= o.limit:
		return errOutboxFull
	case !entry.Security && o.routine >= o.limit-o.reserved:
		return errRoutineCap
	case o.owners[entry.Owner] >= o.share:
		return errOwnerShare
	case !entry.Security && o.ownersRoutine[entry.Owner] >= o.share-o.ownerReserved():
		return errOwnerShare
	}
	return nil
}

// enqueue stores the entry with one storage write. An entry that finds no
// place is counted in its owner's suppression instead - no storage write -
// and enqueue returns why (errOutboxFull or an error wrapping it), with
// first true for the first event of the suppression.
func (o *webhookOutbox) enqueue(ctx context.Context, s logical.Storage, entry *outboxEntry, now time.Time) (first bool, err error) {
	o.mu.Lock()
	if err := o.load(ctx, s); err != nil {
		o.mu.Unlock()
		return false, err
	}
	if err := o.admit(entry); err != nil {
		first = o.suppress(entry)
		o.mu.Unlock()
		return first, err
	}
	seq := max(now.UnixNano(), o.lastSeq+1)
	o.lastSeq = seq
	o.count(entry.Security, entry.Owner, 1)
	o.inFlight[seq] = struct{}{}
	o.mu.Unlock()

	stored, err := logical.StorageEntryJSON(webhookOutboxPrefix+outboxKey(seq, entry.Security, entry.Owner), entry)
	if err == nil {
		err = s.Put(ctx, stored)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.inFlight, seq)
	if err != nil {
		o.count(entry.Security, entry.Owner, -1)
		return false, fmt.Errorf("storing the event in the webhook outbox: %w", err)
	}
	return false, nil
}

// suppress counts an event that found no place; the caller holds mu. It
// returns true when it starts the owner's suppression.
func (o *webhookOutbox) suppress(entry *outboxEntry) bool {
	if entry.summary {
		return false
	}
	at := entry.EnqueuedAt
	sup := o.suppressed[entry.Owner]
	started := sup == nil
	if started {
		sup = &suppression{subject: entry.subject, counts: map[string]int{}, first: at}
		o.suppressed[entry.Owner] = sup
	}
	sup.counts[entry.Type]++
	sup.total++
	sup.security = sup.security || entry.Security
	sup.first, sup.last = minTime(sup.first, at), maxTime(sup.last, at)
	return started
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// takeSuppressed removes and returns the suppressions whose summary has a
// place now; put them back with restoreSuppressed if queueing fails. The
// summary of suppressed routine events only is a routine event itself
// (queued with Security set to sup.security): it waits for a routine
// place, so that the summaries of many owners cannot take the places kept
// for security-relevant events.
func (o *webhookOutbox) takeSuppressed() map[string]*suppression {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ready map[string]*suppression
	routine := 0
	for owner, sup := range o.suppressed {
		if o.pending+len(ready) >= o.limit || o.owners[owner] >= o.share {
			continue
		}
		if !sup.security {
			if !o.routineRoom(owner, routine) {
				continue
			}
			routine++
		}
		if ready == nil {
			ready = make(map[string]*suppression)
		}
		ready[owner] = sup
		delete(o.suppressed, owner)
	}
	return ready
}

// restoreSuppressed merges a suppression whose summary was not queued
// back into the owner's current one.
func (o *webhookOutbox) restoreSuppressed(owner string, sup *suppression) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if current := o.suppressed[owner]; current != nil {
		for eventType, n := range current.counts {
			sup.counts[eventType] += n
		}
		sup.total += current.total
		sup.security = sup.security || current.security
		sup.first, sup.last = minTime(sup.first, current.first), maxTime(sup.last, current.last)
	}
	o.suppressed[owner] = sup
}

// hasSuppressed reports whether some owner's events wait to be summarised.
func (o *webhookOutbox) hasSuppressed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.suppressed) > 0
}

// due returns the keys the worker may deliver now, in order: every stored
// key below the watermark.
func (o *webhookOutbox) due(ctx context.Context, s logical.Storage) ([]string, error) {
	o.mu.Lock()
	if err := o.load(ctx, s); err != nil {
		o.mu.Unlock()
		return nil, err
	}
	// Taken before listing: every key below it was written (or failed)
	// before the list starts, so the list cannot miss one.
	watermark := o.lastSeq + 1
	for seq := range o.inFlight {
		watermark = min(watermark, seq)
	}
	o.mu.Unlock()

	keys, err := s.List(ctx, webhookOutboxPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing the webhook outbox: %w", err)
	}
	due := keys[:0]
	for _, key := range keys {
		if seq, _, _, ok := parseOutboxKey(key); ok && seq < watermark {
			due = append(due, key)
		}
	}
	slices.Sort(due)
	return due, nil
}

// get reads an entry; nil if it is gone.
func (o *webhookOutbox) get(ctx context.Context, s logical.Storage, key string) (*outboxEntry, error) {
	stored, err := s.Get(ctx, webhookOutboxPrefix+key)
	if err != nil || stored == nil {
		return nil, err
	}
	entry := &outboxEntry{}
	if err := stored.DecodeJSON(entry); err != nil {
		return nil, fmt.Errorf("decoding webhook outbox entry %s: %w", key, err)
	}
	_, entry.Security, entry.Owner, _ = parseOutboxKey(key)
	return entry, nil
}

// update stores an entry's delivery attempts.
func (o *webhookOutbox) update(ctx context.Context, s logical.Storage, key string, entry *outboxEntry) error {
	stored, err := logical.StorageEntryJSON(webhookOutboxPrefix+key, entry)
	if err != nil {
		return err
	}
	return s.Put(ctx, stored)
}

// remove deletes a delivered or abandoned entry.
func (o *webhookOutbox) remove(ctx context.Context, s logical.Storage, key string) error {
	if err := s.Delete(ctx, webhookOutboxPrefix+key); err != nil {
		return fmt.Errorf("removing webhook outbox entry %s: %w", key, err)
	}
	_, security, owner, _ := parseOutboxKey(key)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pending > 0 {
		o.count(security, owner, -1)
	}
	return nil
}

// pendingCount returns how many events wait; -1 before the outbox is loaded.
func (o *webhookOutbox) pendingCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.loaded {
		return -1
	}
	return o.pending
}
