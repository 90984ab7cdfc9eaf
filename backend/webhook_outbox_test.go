package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// blockingStorage holds Puts of one key until released.
type blockingStorage struct {
	logical.Storage
	holdSuffix string
	held       chan struct{}
	release    chan struct{}
}

func (s *blockingStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if s.holdSuffix != "" && strings.HasSuffix(entry.Key, s.holdSuffix) {
		close(s.held)
		<-s.release
	}
	return s.Storage.Put(ctx, entry)
}

func TestOutbox_keysFollowEnqueueOrderEvenWhenTheClockGoesBack(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(10)
	now := time.Now()
	for i, at := range []time.Time{now, now.Add(-time.Hour), now.Add(-time.Hour), now.Add(time.Nanosecond)} {
		require.NoError(t, o.enqueue(ctx, s, &outboxEntry{ID: string(rune('a' + i))}, at))
	}
	keys, err := o.due(ctx, s)
	require.NoError(t, err)
	require.Len(t, keys, 4)
	var ids string
	for _, key := range keys {
		entry, err := o.get(ctx, s, key)
		require.NoError(t, err)
		ids += entry.ID
	}
	require.Equal(t, "abcd", ids)
}

// A later event whose write finished first waits for the earlier one.
func TestOutbox_laterEventsWaitForAnEarlierWriteInFlight(t *testing.T) {
	ctx := context.Background()
	o := newWebhookOutbox(10)
	now := time.Now()
	first := outboxKey(now.UnixNano())
	s := &blockingStorage{Storage: &logical.InmemStorage{}, holdSuffix: first, held: make(chan struct{}), release: make(chan struct{})}
	require.NoError(t, o.ensureLoaded(ctx, s))

	done := make(chan error)
	go func() { done <- o.enqueue(ctx, s, &outboxEntry{ID: "first"}, now) }()
	<-s.held
	require.NoError(t, o.enqueue(ctx, s, &outboxEntry{ID: "second"}, now))

	keys, err := o.due(ctx, s)
	require.NoError(t, err)
	require.Empty(t, keys, "the second event is stored but must not overtake the first")
	require.Equal(t, 2, o.pendingCount())

	close(s.release)
	require.NoError(t, <-done)
	keys, err = o.due(ctx, s)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.Equal(t, first, keys[0])
}

// A new instance counts what is queued and allocates keys after it.
func TestOutbox_loadCountsThePendingEventsAndKeysContinueAfterThem(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	future := time.Now().Add(time.Hour)
	before := newWebhookOutbox(10)
	require.NoError(t, before.enqueue(ctx, s, &outboxEntry{ID: "queued"}, future))
	require.NoError(t, before.enqueue(ctx, s, &outboxEntry{ID: "queued-too"}, future))

	after := newWebhookOutbox(10)
	require.Equal(t, -1, after.pendingCount())
	require.NoError(t, after.enqueue(ctx, s, &outboxEntry{ID: "new"}, time.Now()))
	require.Equal(t, 3, after.pendingCount())
	keys, err := after.due(ctx, s)
	require.NoError(t, err)
	last, err := after.get(ctx, s, keys[2])
	require.NoError(t, err)
	require.Equal(t, "new", last.ID, "a node whose clock is behind still queues after what it found")

	require.NoError(t, after.remove(ctx, s, keys[0]))
	require.Equal(t, 2, after.pendingCount())
}

func TestOutbox_aFailedWriteIsNotCounted(t *testing.T) {
	ctx := context.Background()
	o := newWebhookOutbox(10)
	err := o.enqueue(ctx, readOnlyStorage{&logical.InmemStorage{}}, &outboxEntry{ID: "lost"}, time.Now())
	require.ErrorIs(t, err, logical.ErrReadOnly)
	require.Equal(t, 0, o.pendingCount())
	keys, err := o.due(ctx, &logical.InmemStorage{})
	require.NoError(t, err)
	require.Empty(t, keys)
}
