//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// webhookReceiver is the security team's end of the webhooks: an HTTP
// server on 127.0.0.1 that verifies every delivery with the Standard
// Webhooks reference library (code this project does not write) and
// rejects what does not verify, as a real receiver would.
type webhookReceiver struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	server   *http.Server
	secret   string
	answer   int // 0: verify and accept; otherwise the status every delivery gets
	received []webhookDelivery
	attempts int
	refused  int // deliveries answered with answer
	rejected []string
	delay    time.Duration // how long each answer takes
}

// webhookDelivery is a delivery that verified.
type webhookDelivery struct {
	ID      string
	Header  http.Header
	Body    []byte
	Payload struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			EntityID string            `json:"entity_id"`
			User     string            `json:"user"`
			Org      string            `json:"org"`
			TokenID  string            `json:"token_id"`
			Name     string            `json:"name"`
			Path     string            `json:"path"`
			At       string            `json:"at"`
			Details  map[string]string `json:"details"`
		} `json:"data"`
	}
}

func newWebhookReceiver(t *testing.T) *webhookReceiver {
	t.Helper()
	port, err := vaultharness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := &webhookReceiver{t: t, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	r.listen()
	t.Cleanup(r.stop)
	return r
}

func (r *webhookReceiver) url() string { return "http://" + r.addr + "/hooks/planqk" }

// listen starts serving on the receiver's address (again).
func (r *webhookReceiver) listen() {
	r.t.Helper()
	var listener net.Listener
	var err error
	// The address was just released by stop; give the kernel a moment.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if listener, err = net.Listen("tcp", r.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		r.t.Fatalf("receiver cannot listen on %s: %v", r.addr, err)
	}
	server := &http.Server{Handler: http.HandlerFunc(r.serve), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.server = server
	r.mu.Unlock()
	go func() { _ = server.Serve(listener) }()
}

// stop closes the listener: the receiver is not there at all.
func (r *webhookReceiver) stop() {
	r.mu.Lock()
	server := r.server
	r.server = nil
	r.mu.Unlock()
	if server != nil {
		_ = server.Close()
	}
}

// trust sets the secret deliveries must be signed with.
func (r *webhookReceiver) trust(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

// answerEvery makes the receiver answer status to every delivery without
// looking at it (0: verify and accept again).
func (r *webhookReceiver) answerEvery(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = status
}

// slowDown makes every answer take delay (0: answer at once).
func (r *webhookReceiver) slowDown(delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delay = delay
}

func (r *webhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	delay := r.delay
	r.mu.Unlock()
	time.Sleep(delay)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	if r.answer != 0 {
		r.refused++
		w.WriteHeader(r.answer)
		return
	}
	hook, hookErr := standardwebhooks.NewWebhook(r.secret)
	if err != nil || hookErr != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
		r.rejected = append(r.rejected, fmt.Sprintf("%s %s: %v %v", req.Method, req.Header.Get("Content-Type"), err, hookErr))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := hook.Verify(body, req.Header); err != nil {
		r.rejected = append(r.rejected, fmt.Sprintf("%s: %v", req.Header.Get("webhook-id"), err))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	delivery := webhookDelivery{ID: req.Header.Get("webhook-id"), Header: req.Header.Clone(), Body: body}
	if err := json.Unmarshal(body, &delivery.Payload); err != nil {
		r.rejected = append(r.rejected, fmt.Sprintf("%s: %v", delivery.ID, err))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.received = append(r.received, delivery)
	w.WriteHeader(http.StatusNoContent)
}

// deliveries returns what verified so far.
func (r *webhookReceiver) deliveries() []webhookDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookDelivery(nil), r.received...)
}

// counts returns the attempts made and how many were refused on purpose.
func (r *webhookReceiver) counts() (attempts, refused int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts, r.refused
}

// requireNoneRejected fails if any delivery did not verify.
func (r *webhookReceiver) requireNoneRejected() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rejected) > 0 {
		r.t.Fatalf("deliveries that did not verify: %v", r.rejected)
	}
}

// waitFor polls until match holds for the deliveries so far.
func (r *webhookReceiver) waitFor(what string, timeout time.Duration, match func([]webhookDelivery) bool) []webhookDelivery {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := r.deliveries()
		if match(got) {
			return got
		}
		if time.Now().After(deadline) {
			attempts, refused := r.counts()
			r.t.Fatalf("%s: not within %s (%d verified deliveries, %d attempts, %d refused on purpose): %v", what, timeout, len(got), attempts, refused, summarize(got))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// verifiesWith reports whether a delivery verifies with secret.
func (d webhookDelivery) verifiesWith(secret string) error {
	hook, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return err
	}
	err = hook.VerifyIgnoringTimestamp(d.Body, d.Header)
	if err == nil {
		return nil
	}
	if errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		return err
	}
	return fmt.Errorf("unexpected verification error: %w", err)
}

// summarize names deliveries by type and path, for failure messages.
func summarize(deliveries []webhookDelivery) []string {
	var out []string
	for _, d := range deliveries {
		out = append(out, d.Payload.Type+" "+d.Payload.Data.Path)
	}
	return out
}
