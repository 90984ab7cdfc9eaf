package backend

import (
	"context"
	"fmt"
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

// enqueueErr drops enqueue's first result.
func enqueueErr(_ bool, err error) error { return err }

func TestOutbox_keysFollowEnqueueOrderEvenWhenTheClockGoesBack(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(100)
	now := time.Now()
	for i, at := range []time.Time{now, now.Add(-time.Hour), now.Add(-time.Hour), now.Add(time.Nanosecond)} {
		require.NoError(t, enqueueErr(o.enqueue(ctx, s, &outboxEntry{ID: string(rune('a' + i))}, at)))
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
	o := newWebhookOutbox(100)
	now := time.Now()
	first := outboxKey(now.UnixNano(), false, "")
	s := &blockingStorage{Storage: &logical.InmemStorage{}, holdSuffix: first, held: make(chan struct{}), release: make(chan struct{})}
	require.NoError(t, o.ensureLoaded(ctx, s))

	done := make(chan error)
	go func() { done <- enqueueErr(o.enqueue(ctx, s, &outboxEntry{ID: "first"}, now)) }()
	<-s.held
	require.NoError(t, enqueueErr(o.enqueue(ctx, s, &outboxEntry{ID: "second"}, now)))

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
	before := newWebhookOutbox(100)
	require.NoError(t, enqueueErr(before.enqueue(ctx, s, &outboxEntry{ID: "queued"}, future)))
	require.NoError(t, enqueueErr(before.enqueue(ctx, s, &outboxEntry{ID: "queued-too"}, future)))

	after := newWebhookOutbox(100)
	require.Equal(t, -1, after.pendingCount())
	require.NoError(t, enqueueErr(after.enqueue(ctx, s, &outboxEntry{ID: "new"}, time.Now())))
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
	o := newWebhookOutbox(100)
	_, err := o.enqueue(ctx, readOnlyStorage{&logical.InmemStorage{}}, &outboxEntry{ID: "lost"}, time.Now())
	require.ErrorIs(t, err, logical.ErrReadOnly)
	require.Equal(t, 0, o.pendingCount())
	keys, err := o.due(ctx, &logical.InmemStorage{})
	require.NoError(t, err)
	require.Empty(t, keys)
}

// routine and security build outbox entries of an owner.
func routine(owner, eventType string) *outboxEntry {
	return &outboxEntry{ID: "msg_" + owner, Type: webhookTypePrefix + eventType, Owner: owner, EnqueuedAt: time.Now()}
}

func security(owner, eventType string) *outboxEntry {
	entry := routine(owner, eventType)
	entry.Security = true
	return entry
}

// Routine events of many owners fill the outbox up to its reserved places
// and no further: revocations, offboardings, organization provider-token
// writes and leaks still find a place; the reserved list is explicit.
func TestOutbox_securityEventsKeepTheirReservedPlaces(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(100) // 10 reserved, 5 per owner
	require.Equal(t, 10, o.reserved)
	require.Equal(t, 5, o.share)
	for i := 0; i < 18; i++ {
		for j := 0; j < o.share; j++ {
			require.NoError(t, enqueueErr(o.enqueue(ctx, s, routine(fmt.Sprintf("owner-%d", i), eventPATCreated), time.Now())))
		}
	}
	_, err := o.enqueue(ctx, s, routine("newcomer", eventPATCreated), time.Now())
	require.ErrorIs(t, err, errOutboxFull, "routine events stop at limit - reserved")
	require.ErrorIs(t, err, errRoutineCap)

	require.NoError(t, enqueueErr(o.enqueue(ctx, s, security("victim", eventPATRevoked), time.Now())))
	require.Equal(t, 91, o.pendingCount())

	for _, event := range []*lifecycleEvent{
		{Type: eventPATLeaked}, {Type: eventPATRevoked}, {Type: eventLeaseRevoked}, {Type: eventUserOffboarded}, {Type: eventProviderTokenDeleted},
		{Type: eventProviderTokenWritten, Org: "acme"}, {Type: eventNotificationsSuppressed},
	} {
		require.True(t, event.securityRelevant(), "%s %s", event.Type, event.Org)
	}
	for _, event := range []*lifecycleEvent{
		{Type: eventPATCreated}, {Type: eventPATRotated}, {Type: eventLeaseIssued}, {Type: eventPATExpiring},
		{Type: eventProviderTokenWritten, EntityID: "entity-alice"},
	} {
		require.False(t, event.securityRelevant(), event.Type)
	}
}

// Past its share an owner's events are counted, not stored; while they
// wait for their summary, the owner's later events are counted too (so the
// summary stands where they would have), and the summary takes the first
// place the owner has again.
func TestOutbox_anOwnersSuppressedEventsAreSummarisedInOrder(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(100)
	for i := 0; i < o.share; i++ {
		require.NoError(t, enqueueErr(o.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())))
	}
	first, err := o.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())
	require.ErrorIs(t, err, errOwnerShare)
	require.True(t, first)
	first, err = o.enqueue(ctx, s, security("mallory", eventPATRevoked), time.Now())
	require.ErrorIs(t, err, errOwnerShare)
	require.False(t, first)
	require.Nil(t, o.takeSuppressed(), "no place for the summary yet")

	keys, err := o.due(ctx, s)
	require.NoError(t, err)
	require.NoError(t, o.remove(ctx, s, keys[0]))
	_, err = o.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())
	require.ErrorIs(t, err, errOwnerShare, "a place came free, but the summary comes first")

	ready := o.takeSuppressed()
	require.Len(t, ready, 1)
	sup := ready["mallory"]
	require.Equal(t, 3, sup.total)
	require.Equal(t, map[string]int{"planqk.pat-created": 2, "planqk.pat-revoked": 1}, sup.counts)
	summary := security("mallory", eventNotificationsSuppressed)
	summary.summary = true
	require.NoError(t, enqueueErr(o.enqueue(ctx, s, summary, time.Now())))
	_, err = o.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())
	require.ErrorIs(t, err, errOwnerShare, "the share is full again")
}

// A restarted node counts the outbox per owner and class from its keys
// alone (one List), so shares and reserved places hold across restarts;
// v0.2 keys (a number only) count as routine events of no owner.
func TestOutbox_loadCountsPerOwnerAndClassFromTheKeys(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	before := newWebhookOutbox(100)
	for i := 0; i < before.share; i++ {
		require.NoError(t, enqueueErr(before.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())))
	}
	require.NoError(t, enqueueErr(before.enqueue(ctx, s, security("bob", eventPATRevoked), time.Now())))
	legacy, err := logical.StorageEntryJSON(webhookOutboxPrefix+fmt.Sprintf("%0*d", outboxKeyDigits, 1), &outboxEntry{ID: "old"})
	require.NoError(t, err)
	require.NoError(t, s.Put(ctx, legacy))

	after := newWebhookOutbox(100)
	require.NoError(t, after.ensureLoaded(ctx, s))
	require.Equal(t, 7, after.pendingCount())
	require.Equal(t, map[string]int{"mallory": 5, "bob": 1, "": 1}, after.owners)
	require.Equal(t, map[string]int{"mallory": 5, "": 1}, after.ownersRoutine)
	require.Equal(t, 6, after.routine)
	_, err = after.enqueue(ctx, s, routine("mallory", eventPATCreated), time.Now())
	require.ErrorIs(t, err, errOwnerShare)
	keys, err := after.due(ctx, s)
	require.NoError(t, err)
	entry, err := after.get(ctx, s, keys[len(keys)-1])
	require.NoError(t, err)
	require.Equal(t, "bob", entry.Owner)
	require.True(t, entry.Security)
}

// Review of issue 21: other owners' flood fills the routine places; a
// victim whose routine event was suppressed then has a security event.
// It takes a reserved place at once: it is not coalesced behind the
// victim's routine events, whose summary waits for a routine place (so
// that the summaries of many owners' routine events cannot fill the
// reserved places either).
func TestOutbox_othersFloodNeverCoalescesAnOwnersSecurityEvent(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(100) // 10 reserved, 5 per owner
	for i := 0; i < 18; i++ {
		for j := 0; j < o.share; j++ {
			require.NoError(t, enqueueErr(o.enqueue(ctx, s, routine(fmt.Sprintf("owner-%d", i), eventPATCreated), time.Now())))
		}
	}
	for _, victim := range []string{"victim", "bystander-1", "bystander-2"} {
		_, err := o.enqueue(ctx, s, routine(victim, eventPATCreated), time.Now())
		require.ErrorIs(t, err, errRoutineCap)
	}
	require.NoError(t, enqueueErr(o.enqueue(ctx, s, security("victim", eventPATLeaked), time.Now())),
		"the victim's security event takes a reserved place")
	_, err := o.enqueue(ctx, s, routine("victim", eventPATRotated), time.Now())
	require.ErrorIs(t, err, errOutboxFull, "routine events still wait behind the suppressed ones")
	require.NoError(t, enqueueErr(o.enqueue(ctx, s, security("victim", eventPATRevoked), time.Now())))
	require.Nil(t, o.takeSuppressed(), "summaries of routine events wait for a routine place")

	// One routine place comes free: one summary takes it, not three.
	keys, err := o.due(ctx, s)
	require.NoError(t, err)
	require.NoError(t, o.remove(ctx, s, keys[0]))
	ready := o.takeSuppressed()
	require.Len(t, ready, 1)
	for owner, sup := range ready {
		summary := routine(owner, eventNotificationsSuppressed)
		summary.summary, summary.Security = true, sup.security
		require.NoError(t, enqueueErr(o.enqueue(ctx, s, summary, time.Now())))
	}
	require.Nil(t, o.takeSuppressed())
	require.Equal(t, 90, o.routine)
}

// An owner's own routine events (an organization's provider-token-used
// events from hundreds of members, or a stolen session creating PATs)
// leave a tenth of its share to its security-relevant events.
func TestOutbox_anOwnersRoutineEventsLeaveRoomForItsSecurityEvents(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(1000) // 50 per owner, 5 of them kept for security
	stored := 0
	for i := 0; i < 60; i++ {
		if err := enqueueErr(o.enqueue(ctx, s, routine("org.acme", eventProviderTokenUsed), time.Now())); err == nil {
			stored++
		} else {
			require.ErrorIs(t, err, errOwnerShare)
		}
	}
	require.Equal(t, 45, stored)
	for i := 0; i < 5; i++ {
		require.NoError(t, enqueueErr(o.enqueue(ctx, s, security("org.acme", eventProviderTokenWritten), time.Now())), "security event %d", i)
	}
	first, err := o.enqueue(ctx, s, security("org.acme", eventProviderTokenDeleted), time.Now())
	require.ErrorIs(t, err, errOwnerShare, "the share holds")
	require.False(t, first, "counted with the suppressed routine events")
	_, err = o.enqueue(ctx, s, security("org.acme", eventProviderTokenWritten), time.Now())
	require.ErrorIs(t, err, errOwnerShare, "security events keep their order behind a suppressed one")
	require.Equal(t, 50, o.owners["org.acme"])
}

// An organization's share of the outbox is keyed by its id, as its data
// is: acme deleted and created anew under the same name does not inherit
// the old acme's full share (nor its suppressed events).
func TestOutbox_anOrganizationCreatedAnewHasAShareOfItsOwn(t *testing.T) {
	ctx := context.Background()
	s := &logical.InmemStorage{}
	o := newWebhookOutbox(1000) // 50 per owner
	written := &providerTokenEntry{Provider: "ibm-quantum", Version: 1}
	ownerOf := func(orgID string) string {
		owner := &providerTokenOwner{org: &orgTarget{name: "acme", id: orgID}}
		return owner.providerTokenEvent(eventProviderTokenWritten, written).outboxOwner()
	}
	for i := 0; i < 50; i++ {
		require.NoError(t, enqueueErr(o.enqueue(ctx, s, security(ownerOf("id-of-the-deleted-acme"), eventProviderTokenWritten), time.Now())), "event %d", i)
	}
	_, err := o.enqueue(ctx, s, security(ownerOf("id-of-the-deleted-acme"), eventProviderTokenWritten), time.Now())
	require.ErrorIs(t, err, errOwnerShare, "the deleted acme's share is full")
	require.NoError(t, enqueueErr(o.enqueue(ctx, s, security(ownerOf("id-of-the-new-acme"), eventProviderTokenWritten), time.Now())),
		"the new acme has a share of its own")
}
