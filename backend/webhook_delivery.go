package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/sdk/logical"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	// webhookStatsPath keeps the delivery counts across restarts.
	webhookStatsPath = notificationsPrefix + "delivery-stats"

	// webhookTimeout bounds one delivery; Standard Webhooks recommends
	// 15 to 30 seconds.
	webhookTimeout = 15 * time.Second
	// The retry schedule: 5s, 10s, 20s, ... doubling up to an hour between
	// attempts, each ±20%. An event is given up (dead-lettered) after
	// webhookMaxAttempts failed attempts - about 41 hours of trying - or
	// when an attempt fails and the event is older than webhookMaxAge.
	webhookFirstBackoff = 5 * time.Second
	webhookMaxBackoff   = time.Hour
	webhookMaxAttempts  = 50
	webhookMaxAge       = 72 * time.Hour
	// webhookIdleWait is how long the worker sleeps with nothing to do;
	// an enqueue, a new secret or the periodic function wakes it earlier.
	webhookIdleWait = time.Hour

	// webhookErrorLength bounds the error text kept in the status.
	webhookErrorLength = 300

	// webhookLanes is how many owners' events are delivered at once (one
	// POST in flight per owner); webhookLaneBatch how many events of one
	// owner a lane sends before the worker looks at the outbox again, so
	// that an owner who arrives during a flood waits for at most about
	// that many POSTs of another owner.
	webhookLanes     = 4
	webhookLaneBatch = 16

	// maxDropOwners bounds the owners whose dropped events the status
	// names one by one - those with the most drops, as new owners come -
	// and the others are counted together under "other".
	maxDropOwners = 100
)

// webhookStats are the delivery counts the status shows. They are stored
// by the worker whenever it runs out of due work, so that a restart keeps
// them; a crash loses at most the counts of the batch in progress.
type webhookStats struct {
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`
	Dropped   uint64 `json:"dropped"`
	// DroppedBy counts the dropped events by owner and type.
	DroppedBy      map[string]map[string]uint64 `json:"dropped_by,omitempty"`
	LastDeliveryAt time.Time                    `json:"last_delivery_at,omitempty"`
	LastError      string                       `json:"last_error,omitempty"`
	LastErrorAt    time.Time                    `json:"last_error_at,omitempty"`
}

// webhookDelivery sends the outbox to the configured receiver on the node
// that may write. One worker lists the outbox and hands each owner's due
// events, oldest first, to one of webhookLanes lanes, which sends them one
// at a time: events of one owner reach the receiver in the order they
// happened - an event that fails holds back that owner's later ones until
// it is delivered or given up - while owners do not wait for each other
// (events of different owners may arrive in any order; each carries its
// time).
type webhookDelivery struct {
	b      *backend
	outbox *webhookOutbox
	client *http.Client

	// The retry schedule; tests shorten it.
	firstBackoff, maxBackoff time.Duration
	maxAttempts              int
	maxAge                   time.Duration

	// wake has room for one signal: a wake-up while the worker is busy
	// makes it look again when it is done.
	wake chan struct{}

	runMu   sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
	storage logical.Storage

	statsMu     sync.Mutex
	statsLoaded bool
	statsDirty  bool
	stats       webhookStats
	// retryAt is, per owner, when the event at the head of its queue is
	// tried again.
	retryAt map[string]time.Time
}

func newWebhookDelivery(b *backend) *webhookDelivery {
	client := cleanhttp.DefaultPooledClient()
	client.Timeout = webhookTimeout
	// A redirect is a failure: Standard Webhooks asks operators to update
	// the URL instead, and following one would send the payload elsewhere.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &webhookDelivery{
		b:            b,
		outbox:       newWebhookOutbox(defaultOutboxLimit),
		client:       client,
		firstBackoff: webhookFirstBackoff,
		maxBackoff:   webhookMaxBackoff,
		maxAttempts:  webhookMaxAttempts,
		maxAge:       webhookMaxAge,
		wake:         make(chan struct{}, 1),
		retryAt:      make(map[string]time.Time),
	}
}

// start counts the outbox (one List) and starts the worker, unless it
// runs already. Only the node that may write calls it. The worker touches
// storage only when events are pending.
func (w *webhookDelivery) start(ctx context.Context, s logical.Storage) error {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	if w.cancel != nil {
		return nil
	}
	if err := w.outbox.ensureLoaded(ctx, s); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done, w.storage = cancel, make(chan struct{}), s
	go w.run(runCtx, s, w.done)
	if w.outbox.pendingCount() > 0 {
		w.signal()
	}
	return nil
}

// stop ends the worker and waits for it; an attempt in flight is aborted
// and stays in the outbox.
func (w *webhookDelivery) stop() {
	w.runMu.Lock()
	cancel, done := w.cancel, w.done
	w.cancel, w.done = nil, nil
	w.runMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	w.client.CloseIdleConnections()
}

// signal wakes the worker without waiting.
func (w *webhookDelivery) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *webhookDelivery) run(ctx context.Context, s logical.Storage, done chan struct{}) {
	defer close(done)
	for {
		wait := w.deliverDue(ctx, s)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-w.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// deliverDue sends the due events, a batch per owner, and returns how long
// to wait before looking again.
func (w *webhookDelivery) deliverDue(ctx context.Context, s logical.Storage) time.Duration {
	defer w.saveStats(ctx, s)
	w.b.queueSuppressionSummaries(ctx, s)
	if w.outbox.pendingCount() == 0 {
		return webhookIdleWait
	}
	cfg, err := w.b.getConfig(ctx, s)
	if err != nil {
		w.recordError(err.Error())
		return w.firstBackoff
	}
	if cfg.WebhookURL == "" {
		// Events wait for a receiver; they are given up by age once one
		// is configured and they still fail.
		return webhookIdleWait
	}
	secret, err := w.b.getWebhookSecret(ctx, s)
	if err != nil {
		w.recordError(err.Error())
		return w.firstBackoff
	}
	if secret == nil {
		w.recordError("no signing secret: generate one with a write to notifications/webhook-secret")
		return webhookIdleWait
	}

	keys, err := w.outbox.due(ctx, s)
	if err != nil {
		w.recordError(err.Error())
		return w.firstBackoff
	}
	if len(keys) == 0 {
		// Everything pending is still being written; its enqueue wakes us.
		return webhookIdleWait
	}

	// Each owner's keys; owners with the fewest due events first, then in
	// the order of their oldest event: an owner with one event waiting
	// (a user whose PAT was just revoked) is not served after twenty
	// floods' batches, and every owner still gets its batch each pass.
	var owners []string
	byOwner := make(map[string][]string)
	for _, key := range keys {
		_, _, owner, _ := parseOutboxKey(key)
		if byOwner[owner] == nil {
			owners = append(owners, owner)
		}
		byOwner[owner] = append(byOwner[owner], key)
	}
	slices.SortStableFunc(owners, func(a, b string) int { return len(byOwner[a]) - len(byOwner[b]) })
	lanes := make(chan string)
	var (
		mu    sync.Mutex
		wait  = webhookIdleWait
		again bool
		wg    sync.WaitGroup
	)
	for range min(webhookLanes, len(owners)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for owner := range lanes {
				laneWait, laneAgain := w.deliverOwner(ctx, s, cfg.WebhookURL, secret, owner, byOwner[owner])
				mu.Lock()
				wait, again = min(wait, laneWait), again || laneAgain
				mu.Unlock()
			}
		}()
	}
	for _, owner := range owners {
		lanes <- owner
	}
	close(lanes)
	wg.Wait()
	w.b.queueSuppressionSummaries(ctx, s)
	if again || ctx.Err() != nil {
		// Look again at once for what arrived meanwhile.
		return 0
	}
	return wait
}

// deliverOwner sends up to webhookLaneBatch of one owner's due events in
// order. It returns how long the owner's next event must wait (for a
// retry), and again when it sent something, so that the worker looks
// again at once.
func (w *webhookDelivery) deliverOwner(ctx context.Context, s logical.Storage, webhookURL string, secret *webhookSecretEntry, owner string, keys []string) (wait time.Duration, again bool) {
	if at := w.ownerRetryAt(owner); !at.IsZero() {
		if wait := time.Until(at); wait > 0 {
			return wait, false
		}
	}
	for i, key := range keys {
		if ctx.Err() != nil || i == webhookLaneBatch {
			return webhookIdleWait, true
		}
		entry, err := w.outbox.get(ctx, s, key)
		if err != nil {
			w.recordError(err.Error())
			return w.firstBackoff, again
		}
		if entry == nil {
			continue
		}
		if wait := time.Until(entry.NextAttemptAt); wait > 0 {
			// A retry scheduled before a restart.
			w.setRetryAt(owner, entry.NextAttemptAt)
			return wait, again
		}
		wait, stop := w.attempt(ctx, s, webhookURL, secret, key, entry)
		if stop {
			return wait, again
		}
		again = true
	}
	return webhookIdleWait, again
}

// attempt delivers one event. stop is true when the event failed and holds
// back its owner's later ones for wait.
func (w *webhookDelivery) attempt(ctx context.Context, s logical.Storage, webhookURL string, secret *webhookSecretEntry, key string, entry *outboxEntry) (wait time.Duration, stop bool) {
	now := time.Now()
	sendErr := w.send(ctx, webhookURL, secret, entry, now)
	if ctx.Err() != nil {
		// The worker is stopping: the event stays for the next one.
		return 0, true
	}
	if sendErr == nil {
		if err := w.outbox.remove(ctx, s, key); err != nil {
			// Sent but still stored: it is sent again, which receivers
			// detect by its webhook-id.
			w.recordError(err.Error())
			return w.firstBackoff, true
		}
		w.recordDelivery(entry.Owner, now)
		return 0, false
	}

	entry.Attempts++
	entry.LastError = sendErr.Error()
	if entry.Attempts >= w.maxAttempts || now.Sub(entry.EnqueuedAt) >= w.maxAge {
		msg := fmt.Sprintf("gave up on %s (%s) after %d attempts: %s", entry.ID, entry.Type, entry.Attempts, entry.LastError)
		w.b.Logger().Error("webhook delivery abandoned", "webhook_id", entry.ID, "type", entry.Type, "attempts", entry.Attempts, "error", entry.LastError)
		if err := w.outbox.remove(ctx, s, key); err != nil {
			w.recordError(err.Error())
			return w.firstBackoff, true
		}
		w.recordFailure(entry.Owner, msg)
		return 0, false
	}

	wait = w.backoff(entry.Attempts, sendErr)
	entry.NextAttemptAt = now.Add(wait).UTC()
	w.b.Logger().Warn("webhook delivery failed, will retry", "webhook_id", entry.ID, "type", entry.Type, "attempt", entry.Attempts, "retry_in", wait.Round(time.Millisecond).String(), "error", entry.LastError)
	w.recordError(fmt.Sprintf("attempt %d of %s (%s): %s", entry.Attempts, entry.ID, entry.Type, entry.LastError))
	if err := w.outbox.update(ctx, s, key, entry); err != nil {
		w.recordError(err.Error())
	}
	w.setRetryAt(entry.Owner, entry.NextAttemptAt)
	return wait, true
}

// deliveryError is a failed attempt, described without the URL (which may
// carry a receiver's token) and without the receiver's response body.
type deliveryError struct {
	msg        string
	retryAfter time.Duration
}

func (e *deliveryError) Error() string { return e.msg }

// send POSTs the event as a Standard Webhook, signed for this attempt.
func (w *webhookDelivery) send(ctx context.Context, webhookURL string, secret *webhookSecretEntry, entry *outboxEntry, now time.Time) error {
	body := []byte(entry.Body)
	signature, err := secret.sign(entry.ID, now, body)
	if err != nil {
		return &deliveryError{msg: "signing: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, webhookURL, strings.NewReader(entry.Body))
	if err != nil {
		return &deliveryError{msg: "the webhook_url cannot be requested"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vault-plugin-secrets-planqk/"+Version)
	req.Header.Set(standardwebhooks.HeaderWebhookID, entry.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)

	resp, err := w.client.Do(req)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			return &deliveryError{msg: fmt.Sprintf("no answer within %s", webhookTimeout)}
		}
		return &deliveryError{msg: truncate(err.Error(), webhookErrorLength)}
	}
	defer resp.Body.Close()
	// Read a little of the body so that the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &deliveryError{
		msg:        fmt.Sprintf("the receiver answered %s", resp.Status),
		retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
	}
}

// backoff is the wait before the next attempt after attempts failures: the
// schedule with ±20% jitter, or longer if the receiver asked for it with
// Retry-After.
func (w *webhookDelivery) backoff(attempts int, sendErr error) time.Duration {
	wait := w.firstBackoff
	for i := 1; i < attempts && wait < w.maxBackoff; i++ {
		wait *= 2
	}
	wait = min(wait, w.maxBackoff)
	jitter := time.Duration(rand.Int64N(int64(wait)/5*2+1)) - wait/5
	wait += jitter
	var de *deliveryError
	if errors.As(sendErr, &de) && de.retryAfter > wait {
		wait = min(de.retryAfter, w.maxBackoff)
	}
	return wait
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(value string, now time.Time) time.Duration {
	if value == "" {
		return 0
	}
	if seconds, err := strconv.Atoi(value); err == nil && seconds > 0 {
		return time.Duration(seconds) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil {
		return at.Sub(now)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// loadStats reads the stored counts once, adding what this node counted
// before.
func (w *webhookDelivery) loadStats(ctx context.Context, s logical.Storage) error {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.statsLoaded {
		return nil
	}
	entry, err := s.Get(ctx, webhookStatsPath)
	if err != nil {
		return fmt.Errorf("reading webhook delivery counts: %w", err)
	}
	if entry != nil {
		var stored webhookStats
		if err := entry.DecodeJSON(&stored); err != nil {
			return fmt.Errorf("decoding webhook delivery counts: %w", err)
		}
		w.stats = mergeStats(stored, w.stats)
	}
	w.statsLoaded = true
	return nil
}

// mergeStats adds the counts of recent to stored, keeping the newer times
// and error.
func mergeStats(stored, recent webhookStats) webhookStats {
	stored.Delivered += recent.Delivered
	stored.Failed += recent.Failed
	stored.Dropped += recent.Dropped
	for owner, types := range recent.DroppedBy {
		for eventType, n := range types {
			stored.addDrop(owner, eventType, n)
		}
	}
	if recent.LastDeliveryAt.After(stored.LastDeliveryAt) {
		stored.LastDeliveryAt = recent.LastDeliveryAt
	}
	if recent.LastErrorAt.After(stored.LastErrorAt) {
		stored.LastError, stored.LastErrorAt = recent.LastError, recent.LastErrorAt
	}
	return stored
}

// saveStats stores the counts if they changed since the last save.
func (w *webhookDelivery) saveStats(ctx context.Context, s logical.Storage) {
	w.statsMu.Lock()
	dirty, loaded := w.statsDirty, w.statsLoaded
	w.statsMu.Unlock()
	if !dirty {
		return
	}
	if !loaded {
		if err := w.loadStats(ctx, s); err != nil {
			w.b.Logger().Warn("webhook delivery counts not stored", "error", err)
			return
		}
	}
	w.statsMu.Lock()
	entry, err := logical.StorageEntryJSON(webhookStatsPath, w.stats)
	w.statsDirty = false
	w.statsMu.Unlock()
	if err == nil {
		err = s.Put(ctx, entry)
	}
	if err != nil && ctx.Err() == nil {
		w.b.Logger().Warn("storing webhook delivery counts failed", "error", err)
		w.statsMu.Lock()
		w.statsDirty = true
		w.statsMu.Unlock()
	}
}

// otherDropOwner collects the drops of owners no longer named.
const otherDropOwner = "other"

// addDrop counts n dropped events of owner and type, by name for at most
// maxDropOwners owners. A new owner past them takes the place of the named
// owner with the fewest drops, whose counts move to "other": the counts
// are kept for good, and one flood of the routine places suppresses
// events of hundreds of owners, so a table that named only its first
// owners could never again name a later flooder.
func (st *webhookStats) addDrop(owner, eventType string, n uint64) {
	if st.DroppedBy == nil {
		st.DroppedBy = make(map[string]map[string]uint64)
	}
	if st.DroppedBy[owner] == nil {
		named := len(st.DroppedBy)
		if _, ok := st.DroppedBy[otherDropOwner]; ok {
			named--
		}
		if owner != otherDropOwner && named >= maxDropOwners {
			st.foldFewestIntoOther()
		}
		st.DroppedBy[owner] = make(map[string]uint64)
	}
	st.DroppedBy[owner][eventType] += n
}

// foldFewestIntoOther moves the counts of the named owner with the fewest
// drops (the first by name among equals) to "other".
func (st *webhookStats) foldFewestIntoOther() {
	fewest, fewestTotal := "", uint64(0)
	for owner, types := range st.DroppedBy {
		if owner == otherDropOwner {
			continue
		}
		var total uint64
		for _, n := range types {
			total += n
		}
		if fewest == "" || total < fewestTotal || (total == fewestTotal && owner < fewest) {
			fewest, fewestTotal = owner, total
		}
	}
	if fewest == "" {
		return
	}
	if st.DroppedBy[otherDropOwner] == nil {
		st.DroppedBy[otherDropOwner] = make(map[string]uint64)
	}
	for eventType, n := range st.DroppedBy[fewest] {
		st.DroppedBy[otherDropOwner][eventType] += n
	}
	delete(st.DroppedBy, fewest)
}

func (w *webhookDelivery) recordDelivery(owner string, at time.Time) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.stats.Delivered++
	w.stats.LastDeliveryAt = at.UTC()
	delete(w.retryAt, owner)
	w.statsDirty = true
}

func (w *webhookDelivery) recordFailure(owner, msg string) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.stats.Failed++
	delete(w.retryAt, owner)
	w.setErrorLocked(msg)
}

// recordDrop counts an event that found no place in the outbox.
func (w *webhookDelivery) recordDrop(owner, eventType string) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.stats.Dropped++
	w.stats.addDrop(owner, eventType, 1)
	w.statsDirty = true
}

func (w *webhookDelivery) recordError(msg string) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.setErrorLocked(msg)
}

func (w *webhookDelivery) setErrorLocked(msg string) {
	msg = truncate(msg, webhookErrorLength)
	w.stats.LastErrorAt = time.Now().UTC()
	if w.stats.LastError != msg {
		// A repeated error is not worth a storage write.
		w.stats.LastError = msg
		w.statsDirty = true
	}
}

func (w *webhookDelivery) setRetryAt(owner string, at time.Time) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	w.retryAt[owner] = at
}

func (w *webhookDelivery) ownerRetryAt(owner string) time.Time {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	return w.retryAt[owner]
}

// snapshot returns the counts (with copies of the maps) and the next retry.
func (w *webhookDelivery) snapshot() (webhookStats, time.Time) {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	stats := w.stats
	stats.DroppedBy = make(map[string]map[string]uint64, len(w.stats.DroppedBy))
	for owner, types := range w.stats.DroppedBy {
		stats.DroppedBy[owner] = maps.Clone(types)
	}
	var next time.Time
	for _, at := range w.retryAt {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return stats, next
}
