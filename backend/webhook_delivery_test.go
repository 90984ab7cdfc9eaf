package backend

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stretchr/testify/require"
)

// testReceiver is a webhook receiver that verifies every delivery with the
// Standard Webhooks reference library.
type testReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	secrets   []string // a delivery verifies if any of them verifies it
	answer    int      // status for the next deliveries; 0 means 204
	answers   int      // how many deliveries get answer; -1 for all
	header    http.Header
	delivered []receivedWebhook
	attempts  int
	rejected  []string
	delay     time.Duration // how long each answer takes
}

type receivedWebhook struct {
	ID        string
	Timestamp string
	Signature string
	Body      []byte
	Payload   webhookPayload
}

func newTestReceiver(t *testing.T) *testReceiver {
	r := &testReceiver{t: t}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.answers != 0 {
		if r.answers > 0 {
			r.answers--
		}
		for key, values := range r.header {
			w.Header()[key] = values
		}
		w.WriteHeader(r.answer)
		return
	}
	verified := false
	for _, secret := range r.secrets {
		hook, err := standardwebhooks.NewWebhook(secret)
		if err == nil && hook.Verify(body, req.Header) == nil {
			verified = true
		}
	}
	if !verified {
		r.rejected = append(r.rejected, req.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	received := receivedWebhook{
		ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body,
	}
	if err := json.Unmarshal(body, &received.Payload); err != nil {
		r.rejected = append(r.rejected, received.ID)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.delivered = append(r.delivered, received)
	w.WriteHeader(http.StatusNoContent)
}

// trust sets the secrets the receiver accepts.
func (r *testReceiver) trust(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = secrets
}

// refuse answers status to the next n deliveries (-1: all), with header.
func (r *testReceiver) refuse(status, n int, header http.Header) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer, r.answers, r.header = status, n, header
}

func (r *testReceiver) received() []receivedWebhook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedWebhook(nil), r.delivered...)
}

func (r *testReceiver) attemptCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// waitFor polls until n webhooks arrived.
func (r *testReceiver) waitFor(n int) []receivedWebhook {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("%d of %d webhooks arrived in 10s (%d attempts, rejected %v)", len(got), n, r.attempts, r.rejected)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// webhooksByOwner splits webhooks by the owner whose share of the outbox
// they took (outboxOwner), keeping their order.
func webhooksByOwner(webhooks []receivedWebhook) map[string][]receivedWebhook {
	byOwner := map[string][]receivedWebhook{}
	for _, w := range webhooks {
		owner := w.Payload.Data.EntityID
		if w.Payload.Data.Org != "" {
			owner = "org." + w.Payload.Data.Org
		}
		byOwner[owner] = append(byOwner[owner], w)
	}
	return byOwner
}

// requireLifecycleInOwnersOrder checks that the webhooks of lifecycleSecrets
// arrived each once and, per owner, in the order they happened (alice's
// seven, then acme's two); owners do not wait for each other.
func requireLifecycleInOwnersOrder(t *testing.T, got []receivedWebhook) {
	t.Helper()
	var want []string
	for _, eventType := range lifecycleTypes {
		want = append(want, "planqk."+eventType)
	}
	require.Len(t, got, len(want))
	byOwner := webhooksByOwner(got)
	require.Equal(t, want[:7], typesOf(byOwner["entity-alice"]), "alice's in order, each once")
	require.Equal(t, want[7:], typesOf(byOwner["org.acme"]), "acme's in order, each once")
}

func typesOf(webhooks []receivedWebhook) []string {
	var types []string
	for _, w := range webhooks {
		types = append(types, w.Payload.Type)
	}
	return types
}

// useFastRetries restarts the delivery worker with a retry schedule that
// starts at 20ms.
func (e *testEnv) useFastRetries(maxAttempts int, maxBackoff time.Duration) {
	e.t.Helper()
	w := e.b.webhooks
	w.stop()
	w.firstBackoff, w.maxBackoff, w.maxAttempts = 20*time.Millisecond, maxBackoff, maxAttempts
	require.NoError(e.t, w.start(context.Background(), e.storage))
}

// configureWebhooks points the engine at the receiver with a new secret,
// which the receiver trusts.
func (e *testEnv) configureWebhooks(r *testReceiver) string {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": r.srv.URL + "/hooks/planqk"})
	secret := e.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data["secret"].(string)
	r.trust(secret)
	return secret
}

func (e *testEnv) notificationsStatus() map[string]interface{} {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "notifications/status", "", nil).Data
}

// waitForStatus polls the status until done accepts it.
func (e *testEnv) waitForStatus(what string, done func(map[string]interface{}) bool) map[string]interface{} {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status := e.notificationsStatus()
		if done(status) {
			return status
		}
		require.True(e.t, time.Now().Before(deadline), "status never showed %s: %v", what, status)
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWebhooks_everyLifecycleChangeArrivesSignedInOrderOnce(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	secret := env.configureWebhooks(receiver)
	secrets := append(lifecycleSecrets(t, env), secret)

	got := receiver.waitFor(len(lifecycleTypes))
	requireLifecycleInOwnersOrder(t, got)

	vaultEvents := env.events.sent()
	vaultIDs := map[string]bool{}
	for _, event := range vaultEvents {
		vaultIDs["msg_"+event.Data.Id] = true
	}
	ids := map[string]bool{}
	for _, webhook := range got {
		require.False(t, ids[webhook.ID], "delivered twice: %s", webhook.ID)
		ids[webhook.ID] = true
		require.True(t, vaultIDs[webhook.ID], "the webhook and the Vault event share an id")
		require.Equal(t, webhook.Payload.Timestamp, webhook.Payload.Data.At)
		for _, s := range secrets {
			require.NotContains(t, string(webhook.Body), s)
		}
		require.False(t, hexHMAC.Match(webhook.Body), "payload holds a token hash: %s", webhook.Body)
		require.Regexp(t, `^v1,[A-Za-z0-9+/]{43}=$`, webhook.Signature)
	}
	byOwner := webhooksByOwner(got)
	created := byOwner["entity-alice"][0].Payload.Data
	require.Equal(t, "entity-alice", created.EntityID)
	require.Equal(t, "alice", created.User)
	require.Equal(t, "laptop", created.Name)
	require.Equal(t, "users/alice/tokens/laptop", created.Path)
	require.Equal(t, "named", created.Details["kind"])
	require.Len(t, byOwner["org.acme"], 2)

	status := env.waitForStatus("the outbox drained", func(s map[string]interface{}) bool { return s["pending"] == 0 })
	require.Equal(t, uint64(len(lifecycleTypes)), status["delivered"])
	require.Equal(t, uint64(0), status["failed"])
	require.Equal(t, true, status["webhook_configured"])
	require.Equal(t, true, status["secret_configured"])
	require.NotEmpty(t, status["last_delivery_at"])
	require.Equal(t, "", status["last_error"])
	for key := range env.storageSnapshot() {
		require.False(t, strings.HasPrefix(key, webhookOutboxPrefix), "delivered events leave the outbox: %s", key)
	}
	require.Equal(t, len(lifecycleTypes), receiver.attemptCount(), "one attempt per event")
}

// The signature is the one Standard Webhooks defines, computed here
// without the library: base64(HMAC-SHA256(key, id.timestamp.body)).
func TestWebhooks_signatureIsTheSpecifiedHMAC(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	secret := env.configureWebhooks(receiver)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "laptop", nil)

	got := receiver.waitFor(1)[0]
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	require.NoError(t, err)
	require.Len(t, key, 32)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(got.ID + "." + got.Timestamp + "."))
	mac.Write(got.Body)
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), got.Signature)

	// A receiver holding another secret rejects the delivery.
	other, err := standardwebhooks.NewWebhook("whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 32)))
	require.NoError(t, err)
	header := http.Header{}
	header.Set("webhook-id", got.ID)
	header.Set("webhook-timestamp", got.Timestamp)
	header.Set("webhook-signature", got.Signature)
	require.ErrorIs(t, other.Verify(got.Body, header), standardwebhooks.ErrNoMatchingSignature)
}

func TestWebhooks_aReceiverThatIsDownGetsEverythingAfterwardsInOrder(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(50, 80*time.Millisecond)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	receiver.refuse(http.StatusServiceUnavailable, 4, nil)
	lifecycleSecrets(t, env)

	got := receiver.waitFor(len(lifecycleTypes))
	requireLifecycleInOwnersOrder(t, got)
	require.Equal(t, len(lifecycleTypes)+4, receiver.attemptCount(), "4 refused attempts, then each event once")

	status := env.waitForStatus("the outbox drained", func(s map[string]interface{}) bool { return s["pending"] == 0 })
	require.Equal(t, uint64(len(lifecycleTypes)), status["delivered"])
	require.Equal(t, uint64(0), status["failed"])
	require.Contains(t, status["last_error"], "503 Service Unavailable")
	require.NotContains(t, status["last_error"], receiver.srv.URL, "the URL may carry a receiver's token")
}

func TestWebhooks_aReceiverThatIsNotListeningGetsEverythingAfterwards(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(50, 80*time.Millisecond)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	addr := receiver.srv.Listener.Addr().String()
	receiver.srv.Listener.Close()
	alice := env.addUser("alice")
	env.createToken("alice", alice, "one", nil)
	env.createToken("alice", alice, "two", nil)

	status := env.waitForStatus("a failed attempt", func(s map[string]interface{}) bool {
		return strings.Contains(s["last_error"].(string), "connection refused")
	})
	require.Equal(t, 2, status["pending"])
	require.Equal(t, uint64(0), status["delivered"])

	// The receiver comes back on the same address.
	receiver.srv = httptest.NewUnstartedServer(http.HandlerFunc(receiver.serve))
	listener, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	receiver.srv.Listener = listener
	receiver.srv.Start()
	t.Cleanup(receiver.srv.Close)

	got := receiver.waitFor(2)
	require.Equal(t, "one", got[0].Payload.Data.Name)
	require.Equal(t, "two", got[1].Payload.Data.Name)
}

func TestWebhooks_anEventIsGivenUpAfterTheLastAttempt(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(3, 80*time.Millisecond)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	receiver.refuse(http.StatusInternalServerError, 3, nil)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "lost", nil)
	env.createToken("alice", alice, "kept", nil)

	got := receiver.waitFor(1)
	require.Equal(t, "kept", got[0].Payload.Data.Name, "the given-up event no longer holds back the next")
	status := env.waitForStatus("the failure", func(s map[string]interface{}) bool { return s["pending"] == 0 })
	require.Equal(t, uint64(1), status["failed"])
	require.Equal(t, uint64(1), status["delivered"])
	require.Contains(t, status["last_error"], "gave up on msg_")
	require.Contains(t, status["last_error"], "after 3 attempts: the receiver answered 500")
}

// Events outlive the engine: what a node queued is delivered by the next
// instance on the same storage (a restart, or the new active node after a
// failover), and the counts survive.
func TestWebhooks_eventsAndCountsSurviveARestart(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "before", nil)
	receiver.waitFor(1)
	env.waitForStatus("the delivery counted", func(s map[string]interface{}) bool { return s["delivered"] == uint64(1) && s["pending"] == 0 })

	// The node goes away with two events queued and not delivered.
	env.b.Cleanup(context.Background())
	env.createToken("alice", alice, "queued-1", nil)
	env.createToken("alice", alice, "queued-2", nil)
	require.Len(t, receiver.received(), 1)

	restarted := env.restart()
	got := receiver.waitFor(3)
	require.Equal(t, []string{"before", "queued-1", "queued-2"}, []string{got[0].Payload.Data.Name, got[1].Payload.Data.Name, got[2].Payload.Data.Name})
	status := restarted.waitForStatus("all delivered", func(s map[string]interface{}) bool { return s["delivered"] == uint64(3) })
	require.Equal(t, 0, status["pending"])
}

// restart returns a new backend instance on the same storage, initialised
// as Vault does after a restart or on a new active node.
func (e *testEnv) restart() *testEnv {
	e.t.Helper()
	config := logical.TestBackendConfig()
	config.StorageView = e.storage
	config.System = e.sys
	config.Logger = e.b.Logger()
	config.EventsSender = e.events
	raw, err := Factory(context.Background(), config)
	require.NoError(e.t, err)
	restarted := &testEnv{t: e.t, b: raw.(*backend), storage: e.storage, sys: e.sys, events: e.events}
	e.t.Cleanup(func() { restarted.b.Cleanup(context.Background()) })
	require.NoError(e.t, restarted.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}))
	return restarted
}

func TestWebhooks_retryAfterIsHonouredAndRedirectsAreNotFollowed(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(50, 5*time.Second)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	elsewhere := newTestReceiver(t)
	receiver.refuse(http.StatusTemporaryRedirect, 1, http.Header{"Location": {elsewhere.srv.URL}})
	alice := env.addUser("alice")
	env.createToken("alice", alice, "laptop", nil)
	status := env.waitForStatus("the redirect refused", func(s map[string]interface{}) bool {
		return strings.Contains(s["last_error"].(string), "307")
	})
	require.Empty(t, elsewhere.received())
	receiver.waitFor(1)

	receiver.refuse(http.StatusTooManyRequests, 1, http.Header{"Retry-After": {"1"}})
	started := time.Now()
	env.createToken("alice", alice, "desktop", nil)
	status = env.waitForStatus("the retry scheduled", func(s map[string]interface{}) bool { return s["next_attempt_at"] != "" })
	next, err := time.Parse(time.RFC3339, status["next_attempt_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Second), next, 1100*time.Millisecond)
	receiver.waitFor(2)
	require.GreaterOrEqual(t, time.Since(started), 800*time.Millisecond, "the receiver asked for a second, not the 20ms of the schedule")
}

func TestWebhooks_aFullOutboxDropsNewEventsAndCountsThem(t *testing.T) {
	env := newTestEnv(t)
	env.b.webhooks.stop()
	outbox := env.b.webhooks.outbox
	outbox.limit, outbox.reserved, outbox.share = 2, 0, 2
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": "http://127.0.0.1:9/hook"})
	alice := env.addUser("alice")
	for i := 0; i < 4; i++ {
		env.createToken("alice", alice, fmt.Sprintf("t%d", i), nil)
	}
	status := env.notificationsStatus()
	require.Equal(t, 2, status["pending"])
	require.Equal(t, uint64(2), status["dropped"])
	require.Contains(t, status["last_error"], "has no place for planqk.pat-created of "+alice)
	require.Len(t, env.events.sent(), 4, "Vault events are sent regardless")
}

func TestWebhooks_eventsWaitForASecretAndAURL(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "unsent", nil)
	require.Equal(t, 0, env.notificationsStatus()["pending"], "without a webhook_url nothing is queued")

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": receiver.srv.URL})
	env.createToken("alice", alice, "waits", nil)
	status := env.waitForStatus("the missing secret", func(s map[string]interface{}) bool {
		return strings.Contains(s["last_error"].(string), "no signing secret")
	})
	require.Equal(t, 1, status["pending"])
	require.Equal(t, false, status["secret_configured"])
	require.Equal(t, 0, receiver.attemptCount())

	secret := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data["secret"].(string)
	receiver.trust(secret)
	got := receiver.waitFor(1)
	require.Equal(t, "waits", got[0].Payload.Data.Name)
}

// A rotation signs with both secrets for previous_secret_ttl, so that a
// receiver holding either verifies; previous_secret_ttl=0 drops the old.
func TestWebhooks_rotationSignsWithBothSecretsDuringTheWindow(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	old := env.configureWebhooks(receiver)
	alice := env.addUser("alice")

	rotated := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data
	current := rotated["secret"].(string)
	require.NotEqual(t, old, current)
	require.NotEmpty(t, rotated["previous_secret_expires_at"])
	env.createToken("alice", alice, "during", nil)
	got := receiver.waitFor(1)[0]
	require.Len(t, strings.Fields(got.Signature), 2)
	for _, secret := range []string{old, current} {
		hook, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		header := http.Header{"Webhook-Id": {got.ID}, "Webhook-Timestamp": {got.Timestamp}, "Webhook-Signature": {got.Signature}}
		require.NoError(t, hook.Verify(got.Body, header))
	}

	leaked := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", map[string]interface{}{"previous_secret_ttl": "0"}).Data
	require.Equal(t, "", leaked["previous_secret_expires_at"])
	receiver.trust(leaked["secret"].(string))
	env.createToken("alice", alice, "after", nil)
	got = receiver.waitFor(2)[1]
	require.Len(t, strings.Fields(got.Signature), 1, "the replaced secret no longer signs")
}

// Only the node that may write delivers; the others start no worker.
func TestWebhooks_performanceStandbysDeliverNothing(t *testing.T) {
	env := newTestEnv(t)
	env.setReplicationState(consts.ReplicationPerformanceStandby)
	standby := env.restart()
	standby.b.webhooks.runMu.Lock()
	running := standby.b.webhooks.cancel != nil
	standby.b.webhooks.runMu.Unlock()
	require.False(t, running)
	_, err := standby.do(logical.ReadOperation, "notifications/status", "", nil)
	require.ErrorIs(t, err, logical.ErrReadOnly, "the status is forwarded to the node that delivers")
}

func TestWebhooks_backoffDoublesWithJitterUpToTheCap(t *testing.T) {
	w := newWebhookDelivery(nil)
	for attempts, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 4: 40 * time.Second, 11: time.Hour, 60: time.Hour} {
		for i := 0; i < 20; i++ {
			got := w.backoff(attempts, &deliveryError{})
			require.InDelta(t, float64(want), float64(got), float64(want)/5, "attempt %d", attempts)
		}
	}
	require.Equal(t, 30*time.Minute, w.backoff(1, &deliveryError{retryAfter: 30 * time.Minute}))
	require.Equal(t, time.Hour, w.backoff(1, &deliveryError{retryAfter: 5 * time.Hour}), "capped")
	require.Equal(t, 90*time.Second, parseRetryAfter("90", time.Now()))
	now := time.Now()
	require.InDelta(t, float64(2*time.Minute), float64(parseRetryAfter(now.Add(2*time.Minute).UTC().Format(http.TimeFormat), now)), float64(time.Second))
	require.Zero(t, parseRetryAfter("soon", now))
}

// flood queues n pat-created events of one entity through notify, as a
// member creating and deleting PATs in a loop does (the security review
// made 10,400 in 34 s), without the cost of n requests.
func (e *testEnv) flood(entityID, user string, n int) {
	e.t.Helper()
	for i := 0; i < n; i++ {
		record := &tokenRecord{TokenID: fmt.Sprintf("flood-%d", i), Name: fmt.Sprintf("loop-%d", i), CreatedAt: time.Now()}
		e.b.notify(context.Background(), e.storage, patEvent(eventPATCreated, entityID, user, record))
	}
}

// outboxOwners counts the outbox's entries by owner, as stored.
func (e *testEnv) outboxOwners() map[string]int {
	e.t.Helper()
	keys, err := e.storage.List(context.Background(), webhookOutboxPrefix)
	require.NoError(e.t, err)
	owners := map[string]int{}
	for _, key := range keys {
		_, _, owner, ok := parseOutboxKey(key)
		require.True(e.t, ok, key)
		owners[owner]++
	}
	return owners
}

// The security review's finding: a member flooding the outbox kept another
// user's pat-created out of it. Now the flood takes its owner's share, the
// rest of it is counted per type and owner, and another user's event is
// queued and delivered, with a summary of what was suppressed.
func TestWebhooks_aFloodingOwnerCannotKeepAnotherOwnersEventOut(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	mallory := env.addUser("mallory")
	bob := env.addUser("bob")
	env.b.webhooks.stop() // the receiver cannot keep up with the flood

	const floodSize = 10400
	// Routine events: the share less the places kept for the owner's
	// security-relevant events.
	share := env.b.webhooks.outbox.share - env.b.webhooks.outbox.ownerReserved()
	env.flood(mallory, "mallory", floodSize)
	env.createToken("bob", bob, "laptop", nil)

	owners := env.outboxOwners()
	require.Equal(t, share, owners[mallory], "the flood takes its owner's routine share, no more")
	require.Equal(t, 1, owners[bob], "bob's pat-created is queued")
	status := env.notificationsStatus()
	suppressed := uint64(floodSize - share)
	require.Equal(t, suppressed, status["dropped"])
	require.Equal(t, map[string]map[string]uint64{mallory: {"planqk.pat-created": suppressed}}, status["dropped_by_owner"])
	require.Equal(t, map[string]uint64{"planqk.pat-created": suppressed}, status["dropped_by_type"])
	require.Contains(t, status["last_error"], "has no place for planqk.pat-created of "+mallory)

	require.NoError(t, env.b.webhooks.start(context.Background(), env.storage))
	got := receiver.waitFor(share + 2)
	byOwner := webhooksByOwner(got)
	require.Len(t, byOwner[bob], 1)
	require.Equal(t, "laptop", byOwner[bob][0].Payload.Data.Name)
	var summaries []receivedWebhook
	for _, webhook := range byOwner[mallory] {
		if webhook.Payload.Type == webhookTypePrefix+eventNotificationsSuppressed {
			summaries = append(summaries, webhook)
		}
	}
	require.Len(t, summaries, 1, "the suppressed events are coalesced into one")
	summary := summaries[0].Payload.Data
	require.Equal(t, fmt.Sprint(suppressed), summary.Details["suppressed"])
	require.Equal(t, fmt.Sprint(suppressed), summary.Details["suppressed.pat-created"])
	require.Equal(t, fmt.Sprintf("%d events suppressed for mallory", suppressed), summary.Name)
	require.Equal(t, "mallory", summary.User)
	require.NotEmpty(t, summary.Details["first_at"])
	env.waitForStatus("the outbox drained", func(s map[string]interface{}) bool { return s["pending"] == 0 })
	require.Len(t, receiver.received(), share+2)
}

// Delivery: an owner who arrives during another's flood waits for a few of
// the flood's POSTs, not for all of them - and each owner's events still
// arrive in order.
func TestWebhooks_aFloodDoesNotDelayAnotherOwnersDelivery(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	mallory := env.addUser("mallory")
	bob := env.addUser("bob")
	const postTime, floodSize = 10 * time.Millisecond, 300
	receiver.mu.Lock()
	receiver.delay = postTime
	receiver.mu.Unlock()

	env.b.webhooks.stop()
	env.flood(mallory, "mallory", floodSize)
	require.NoError(t, env.b.webhooks.start(context.Background(), env.storage))
	// One at a time, the flood takes floodSize*postTime = 3s.
	time.Sleep(100 * time.Millisecond)
	queued := time.Now()
	env.createToken("bob", bob, "laptop", nil)
	for {
		if len(webhooksByOwner(receiver.received())[bob]) == 1 {
			break
		}
		require.Less(t, time.Since(queued), 2*time.Second, "bob's event waited behind the flood")
		time.Sleep(5 * time.Millisecond)
	}
	delay := time.Since(queued)
	t.Logf("bob's event arrived %s after it was queued, behind a flood of %d events at %s each", delay, floodSize, postTime)
	require.Less(t, delay, time.Second)
	require.Less(t, len(webhooksByOwner(receiver.received())[mallory]), floodSize/2, "bob did not wait for the flood")

	got := webhooksByOwner(receiver.waitFor(floodSize + 1))[mallory]
	for i, webhook := range got {
		require.Equal(t, fmt.Sprintf("loop-%d", i), webhook.Payload.Data.Name, "one owner's events arrive in order")
	}
}

// A receiver failing one owner's event holds back that owner's later
// events only.
func TestWebhooks_aFailingEventHoldsBackOnlyItsOwner(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(50, 5*time.Second)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	receiver.refuse(http.StatusTooManyRequests, 1, http.Header{"Retry-After": {"1"}})
	env.createToken("alice", alice, "first", nil)
	env.waitForStatus("alice's retry scheduled", func(s map[string]interface{}) bool { return s["next_attempt_at"] != "" })
	env.createToken("alice", alice, "second", nil)
	env.createToken("bob", bob, "laptop", nil)
	got := receiver.waitFor(1)
	require.Equal(t, "laptop", got[0].Payload.Data.Name, "bob does not wait for alice's retry")
	time.Sleep(100 * time.Millisecond)
	require.Len(t, receiver.received(), 1, "alice's second waits behind her first")
	got = receiver.waitFor(3)
	require.Equal(t, []string{"first", "second"}, []string{got[1].Payload.Data.Name, got[2].Payload.Data.Name})
}

// An event still failing 72 hours after it happened is given up at its
// next failed attempt, however few attempts it had; a younger one is
// retried.
func TestWebhooks_anEventIsGivenUpAfter72Hours(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	receiver := newTestReceiver(t)
	env.b.webhooks.stop()
	env.configureWebhooks(receiver)
	receiver.refuse(http.StatusInternalServerError, -1, nil)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "old", nil)
	env.createToken("alice", alice, "young", nil)

	// The first event happened 72 hours ago, the second 71 hours ago.
	keys, err := env.storage.List(ctx, webhookOutboxPrefix)
	require.NoError(t, err)
	require.Len(t, keys, 2)
	for i, age := range []time.Duration{webhookMaxAge, webhookMaxAge - time.Hour} {
		entry, err := env.b.webhooks.outbox.get(ctx, env.storage, keys[i])
		require.NoError(t, err)
		entry.EnqueuedAt = time.Now().Add(-age).UTC()
		require.NoError(t, env.b.webhooks.outbox.update(ctx, env.storage, keys[i], entry))
	}

	// Attempts are many and fast here: only its age gives the old one up.
	env.useFastRetries(100000, 80*time.Millisecond)
	env.waitForStatus("the old event given up", func(s map[string]interface{}) bool { return s["failed"] == uint64(1) })
	// The young one is tried again and again, never given up.
	env.waitForStatus("the young event retried", func(s map[string]interface{}) bool {
		return strings.Contains(s["last_error"].(string), "attempt 3 of ")
	})
	status := env.notificationsStatus()
	require.Equal(t, uint64(1), status["failed"])
	require.Equal(t, 1, status["pending"])
}

// A rotation while an attempt is in flight: that attempt was signed with
// the old secret only; its retry, after the rotation, with both.
func TestWebhooks_anAttemptInFlightDuringARotationAndItsRetry(t *testing.T) {
	env := newTestEnv(t)
	env.useFastRetries(50, 80*time.Millisecond)
	arrived, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var signatures []string
	var headers []http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		data, _ := io.ReadAll(req.Body)
		mu.Lock()
		signatures = append(signatures, req.Header.Get("webhook-signature"))
		headers = append(headers, req.Header.Clone())
		body = data
		first := len(signatures) == 1
		mu.Unlock()
		if first {
			close(arrived)
			<-release
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": srv.URL})
	old := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data["secret"].(string)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "laptop", nil)

	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery attempt")
	}
	current := env.ok(logical.UpdateOperation, "notifications/webhook-secret", "", nil).Data["secret"].(string)
	close(release)
	env.waitForStatus("the retry delivered", func(s map[string]interface{}) bool { return s["delivered"] == uint64(1) })

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, signatures, 2)
	verifies := func(attempt int, secret string) bool {
		hook, err := standardwebhooks.NewWebhook(secret)
		require.NoError(t, err)
		return hook.Verify(body, headers[attempt]) == nil
	}
	require.Len(t, strings.Fields(signatures[0]), 1, "the attempt in flight was signed before the rotation")
	require.True(t, verifies(0, old))
	require.False(t, verifies(0, current))
	require.Len(t, strings.Fields(signatures[1]), 2, "the retry is signed with both")
	require.True(t, verifies(1, old), "a receiver still on the old secret accepts the retry")
	require.True(t, verifies(1, current), "a receiver already on the new secret accepts the retry")
}

// The stored drop counts name at most maxDropOwners owners (the rest are
// counted under "other"), and a restart adds what a node counted before
// loading them.
func TestWebhooks_dropCountsAreBoundedAndMerged(t *testing.T) {
	var stats webhookStats
	for i := 0; i < maxDropOwners+5; i++ {
		stats.addDrop(fmt.Sprintf("owner-%d", i), "planqk.pat-created", 2)
	}
	require.Len(t, stats.DroppedBy, maxDropOwners+1)
	require.Equal(t, uint64(10), stats.DroppedBy["other"]["planqk.pat-created"])

	stored := webhookStats{Dropped: 3, DroppedBy: map[string]map[string]uint64{"owner-0": {"planqk.pat-created": 3}}}
	recent := webhookStats{Dropped: 2}
	recent.addDrop("owner-0", "planqk.pat-created", 1)
	recent.addDrop("owner-0", "planqk.pat-revoked", 1)
	merged := mergeStats(stored, recent)
	require.Equal(t, uint64(5), merged.Dropped)
	require.Equal(t, map[string]map[string]uint64{"owner-0": {"planqk.pat-created": 4, "planqk.pat-revoked": 1}}, merged.DroppedBy)
}

// Review of issue 21: twenty owners flood the routine places; bob, whose
// pat-created found no place, then revokes the PAT. His pat-revoked is
// queued on its own (before, it was coalesced into a summary behind his
// suppressed pat-created) and, his being the shortest queue, delivered
// before the floods' batches (before, after one batch of each of the
// twenty: 320 POSTs); his pat-created arrives in a summary.
func TestWebhooks_othersFloodNeitherCoalescesNorDelaysASecurityEvent(t *testing.T) {
	env := newTestEnv(t)
	receiver := newTestReceiver(t)
	env.configureWebhooks(receiver)
	const postTime = 2 * time.Millisecond
	receiver.mu.Lock()
	receiver.delay = postTime
	receiver.mu.Unlock()
	bob := env.addUser("bob")
	env.b.webhooks.stop()
	outbox := env.b.webhooks.outbox
	routineShare := outbox.share - outbox.ownerReserved()
	flooders := (outbox.limit - outbox.reserved) / routineShare
	for i := 0; i < flooders; i++ {
		name := fmt.Sprintf("mallory%d", i)
		env.flood(env.addUser(name), name, outbox.share)
	}
	require.Equal(t, outbox.limit-outbox.reserved, outbox.routine, "the routine places are full")

	env.createToken("bob", bob, "laptop", nil)
	tokenID := env.ok(logical.ReadOperation, "users/bob/tokens/laptop", bob, nil).Data["token_id"]
	env.ok(logical.DeleteOperation, "users/bob/tokens/laptop", bob, nil)
	require.Equal(t, 1, env.outboxOwners()[bob], "bob's pat-revoked is queued, his pat-created counted")

	started := time.Now()
	require.NoError(t, env.b.webhooks.start(context.Background(), env.storage))
	var revoked receivedWebhook
	for revoked.ID == "" {
		for _, w := range webhooksByOwner(receiver.received())[bob] {
			if w.Payload.Type == webhookTypePrefix+eventPATRevoked {
				revoked = w
			}
		}
		require.Less(t, time.Since(started), 10*time.Second, "bob's pat-revoked was not delivered")
		time.Sleep(2 * time.Millisecond)
	}
	delay := time.Since(started)
	before := len(receiver.received())
	t.Logf("bob's pat-revoked arrived %s after delivery started, after %d of the flood's %d queued events (%s per POST)",
		delay, before-1, outbox.limit-outbox.reserved, postTime)
	require.Equal(t, tokenID, revoked.Payload.Data.TokenID)
	// Before, a pass served one batch of each flood first: 320 events.
	require.Less(t, before, webhookLaneBatch*webhookLanes, "bob's one event is served before the floods' batches")

	for {
		var summary *receivedWebhook
		for _, w := range webhooksByOwner(receiver.received())[bob] {
			if w.Payload.Type == webhookTypePrefix+eventNotificationsSuppressed {
				summary = &w
			}
		}
		if summary != nil {
			require.Equal(t, "1", summary.Payload.Data.Details["suppressed.pat-created"])
			break
		}
		require.Less(t, time.Since(started), 20*time.Second, "bob's summary was not delivered")
		time.Sleep(5 * time.Millisecond)
	}
}

// Review of issue 21: the drop counts are stored for good, and a single
// flood of the routine places suppresses some events of hundreds of
// owners. Once 100 owners are named, a later flooder must still be named
// (the owner with the fewest drops is folded into "other" instead), or
// the status can never again say who floods.
func TestWebhooks_aLaterFlooderIsNamedInTheDropCounts(t *testing.T) {
	var stats webhookStats
	for i := 0; i < maxDropOwners; i++ {
		stats.addDrop(fmt.Sprintf("bystander-%03d", i), "planqk.pat-created", 1)
	}
	for i := 0; i < 500; i++ {
		stats.addDrop("mallory", "planqk.pat-created", 1)
	}
	require.Equal(t, uint64(500), stats.DroppedBy["mallory"]["planqk.pat-created"], "the flooder is named")
	require.LessOrEqual(t, len(stats.DroppedBy), maxDropOwners+1)
	var total uint64
	for _, types := range stats.DroppedBy {
		for _, n := range types {
			total += n
		}
	}
	require.Equal(t, uint64(maxDropOwners+500), total, "no drop is lost: the folded owners are counted under other")
	require.Equal(t, uint64(1), stats.DroppedBy["other"]["planqk.pat-created"], "one bystander made room")
}
