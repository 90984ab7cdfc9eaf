package backend

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// webhookOutboxPrefix holds the events waiting for delivery, one entry
	// each, keyed by a sequence number so that keys sort in enqueue order.
	webhookOutboxPrefix = notificationsPrefix + "outbox/"

	// defaultOutboxLimit bounds the outbox: events past it are dropped,
	// counted and logged. An event is well under 1 KiB, so a full outbox
	// holds a few MiB.
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
// Only the node that may write enqueues and delivers; its counts are
// rebuilt from storage when it starts.
type webhookOutbox struct {
	limit int

	mu       sync.Mutex
	loaded   bool
	lastSeq  int64
	pending  int
	inFlight map[int64]struct{}
}

func newWebhookOutbox(limit int) *webhookOutbox {
	return &webhookOutbox{limit: limit, inFlight: make(map[int64]struct{})}
}

func outboxKey(seq int64) string {
	return fmt.Sprintf("%0*d", outboxKeyDigits, seq)
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
	o.pending = 0
	for _, key := range keys {
		seq, err := strconv.ParseInt(key, 10, 64)
		if err != nil {
			continue
		}
		o.pending++
		o.lastSeq = max(o.lastSeq, seq)
	}
	o.loaded = true
	return nil
}

// ensureLoaded loads the outbox's count and last key if not done yet.
func (o *webhookOutbox) ensureLoaded(ctx context.Context, s logical.Storage) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.load(ctx, s)
}

// errOutboxFull is returned by enqueue when the outbox is at its limit.
var errOutboxFull = fmt.Errorf("the webhook outbox is full")

// enqueue stores the entry with one storage write.
func (o *webhookOutbox) enqueue(ctx context.Context, s logical.Storage, entry *outboxEntry, now time.Time) error {
	o.mu.Lock()
	if err := o.load(ctx, s); err != nil {
		o.mu.Unlock()
		return err
	}
	if o.pending >= o.limit {
		o.mu.Unlock()
		return errOutboxFull
	}
	seq := max(now.UnixNano(), o.lastSeq+1)
	o.lastSeq = seq
	o.pending++
	o.inFlight[seq] = struct{}{}
	o.mu.Unlock()

	stored, err := logical.StorageEntryJSON(webhookOutboxPrefix+outboxKey(seq), entry)
	if err == nil {
		err = s.Put(ctx, stored)
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.inFlight, seq)
	if err != nil {
		o.pending--
		return fmt.Errorf("storing the event in the webhook outbox: %w", err)
	}
	return nil
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
		if seq, err := strconv.ParseInt(key, 10, 64); err == nil && seq < watermark {
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
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending = max(o.pending-1, 0)
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
