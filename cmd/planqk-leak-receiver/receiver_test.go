package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// githubKey plays one of GitHub's signing keys.
type githubKey struct {
	id  string
	key *ecdsa.PrivateKey
}

func newGitHubKey(t testing.TB, id string) githubKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return githubKey{id: id, key: key}
}

func (k githubKey) sign(t testing.TB, body []byte) string {
	t.Helper()
	digest := sha256.Sum256(body)
	der, err := ecdsa.SignASN1(rand.Reader, k.key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// keySetJSON renders keys in GitHub's meta/public_keys/secret_scanning format.
func keySetJSON(t testing.TB, keys ...githubKey) []byte {
	t.Helper()
	var doc keySetDocument
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(&k.key.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		doc.PublicKeys = append(doc.PublicKeys, struct {
			KeyIdentifier string `json:"key_identifier"`
			Key           string `json:"key"`
			IsCurrent     bool   `json:"is_current"`
		}{k.id, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), true})
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// keyServer serves a key set that tests can change, counting fetches, with
// an ETag as api.github.com sends one: a request with the current one in
// If-None-Match gets a 304 (counted in notModified too).
type keyServer struct {
	mu          sync.Mutex
	body        []byte
	fetches     atomic.Int64
	notModified atomic.Int64
	*httptest.Server
}

func newKeyServer(t *testing.T, keys ...githubKey) *keyServer {
	ks := &keyServer{body: keySetJSON(t, keys...)}
	ks.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ks.fetches.Add(1)
		ks.mu.Lock()
		defer ks.mu.Unlock()
		sum := sha256.Sum256(ks.body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if r.Header.Get("If-None-Match") == etag {
			ks.notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(ks.body)
	}))
	t.Cleanup(ks.Close)
	return ks
}

func (ks *keyServer) set(t *testing.T, keys ...githubKey) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.body = keySetJSON(t, keys...)
}

// fakeEngine labels tokens as the engine would and records what it was sent.
type fakeEngine struct {
	mu     sync.Mutex
	labels map[string]string
	got    [][]alert
	err    error
}

func (f *fakeEngine) revoke(_ context.Context, alerts []alert) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	f.got = append(f.got, alerts)
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = f.labels[a.Token]
		if out[i] == "" {
			out[i] = "false_positive"
		}
	}
	return out, nil
}

func (f *fakeEngine) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.got)
}

type fixture struct {
	current, other githubKey
	keys           *keyServer
	engine         *fakeEngine
	logs           *bytes.Buffer
	rc             *receiver
	srv            *httptest.Server
}

func newFixture(t *testing.T) *fixture { return newFixtureWithInterval(t, time.Hour) }

func newFixtureWithInterval(t *testing.T, interval time.Duration) *fixture {
	f := &fixture{current: newGitHubKey(t, "current-key"), other: newGitHubKey(t, "other-key"), logs: &bytes.Buffer{}}
	f.keys = newKeyServer(t, f.current, f.other)
	f.engine = &fakeEngine{labels: map[string]string{"plqk_active": "true_positive", "plqk_old": "inactive"}}
	rc := &receiver{
		keys:   &keySet{source: f.keys.URL, client: http.DefaultClient, minInterval: interval},
		revoke: f.engine.revoke,
		log:    slog.New(slog.NewTextHandler(f.logs, nil)),
	}
	f.rc = rc
	f.srv = httptest.NewServer(rc)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) post(t *testing.T, body []byte, headers map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, answer
}

func signed(t *testing.T, k githubKey, body []byte) map[string]string {
	return map[string]string{headerKeyID: k.id, headerSignature: k.sign(t, body)}
}

const batch = `[{"token":"plqk_active","type":"planqk_pat","url":"https://github.com/o/r/blob/c/f","source":"content"},` +
	`{"token":"plqk_old","type":"planqk_pat","url":"","source":"commit"},{"token":"nope","type":"planqk_pat","url":"u","source":"content"}]`

func TestReceiver_signedBatchIsRevokedAndAnsweredInGitHubsFeedbackFormat(t *testing.T) {
	f := newFixture(t)
	status, answer := f.post(t, []byte(batch), signed(t, f.current, []byte(batch)))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, answer)
	}
	var got []map[string]string
	if err := json.Unmarshal(answer, &got); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"token_raw": "plqk_active", "token_type": "planqk_pat", "label": "true_positive"},
		{"token_raw": "plqk_old", "token_type": "planqk_pat", "label": "true_positive"},
		{"token_raw": "nope", "token_type": "planqk_pat", "label": "false_positive"},
	}
	if !jsonEqual(got, want) {
		t.Fatalf("answer %s", answer)
	}
	sent := f.engine.got[0]
	if len(sent) != 3 || sent[0] != (alert{Token: "plqk_active", Type: "planqk_pat", URL: "https://github.com/o/r/blob/c/f", Source: "content"}) {
		t.Fatalf("the engine was sent %+v", sent)
	}
	if strings.Contains(f.logs.String(), "plqk_active") {
		t.Fatalf("a token reached the log:\n%s", f.logs)
	}
}

func TestReceiver_feedbackHash(t *testing.T) {
	f := newFixture(t)
	rc := f.srv.Config.Handler.(*receiver)
	rc.feedbackHash = true
	_, answer := f.post(t, []byte(batch), signed(t, f.current, []byte(batch)))
	sum := sha256.Sum256([]byte("plqk_active"))
	if !strings.Contains(string(answer), `"token_hash":"`+hex.EncodeToString(sum[:])+`"`) || strings.Contains(string(answer), "token_raw") {
		t.Fatalf("answer %s", answer)
	}
}

// Every request that GitHub's key did not sign is a 401 and revokes nothing.
func TestReceiver_unsignedOrForgedRequestsRevokeNothing(t *testing.T) {
	f := newFixture(t)
	body := []byte(batch)
	attacker := newGitHubKey(t, "current-key")
	good := f.current.sign(t, body)
	cases := map[string]map[string]string{
		"no headers":                   {},
		"no signature":                 {headerKeyID: f.current.id},
		"no key id":                    {headerSignature: good},
		"signature not base64":         {headerKeyID: f.current.id, headerSignature: "%%%"},
		"signature not DER":            {headerKeyID: f.current.id, headerSignature: base64.StdEncoding.EncodeToString([]byte("nonsense"))},
		"signed by another key":        {headerKeyID: f.current.id, headerSignature: attacker.sign(t, body)},
		"replayed with another key id": {headerKeyID: f.other.id, headerSignature: good},
		"unknown key id":               {headerKeyID: "made-up", headerSignature: good},
		"huge signature":               {headerKeyID: f.current.id, headerSignature: strings.Repeat("A", 4096)},
	}
	for name, headers := range cases {
		t.Run(name, func(t *testing.T) {
			if status, answer := f.post(t, body, headers); status != http.StatusUnauthorized {
				t.Fatalf("status %d: %s", status, answer)
			}
		})
	}
	t.Run("body changed after signing", func(t *testing.T) {
		changed := []byte(strings.Replace(batch, "plqk_old", "plqk_oLd", 1))
		if status, _ := f.post(t, changed, map[string]string{headerKeyID: f.current.id, headerSignature: good}); status != http.StatusUnauthorized {
			t.Fatalf("status %d", status)
		}
	})
	if n := f.engine.calls(); n != 0 {
		t.Fatalf("the engine was called %d times", n)
	}
}

// A key id that cannot be one (too long, control characters, spaces) is
// refused with a 400 before any lookup: no key-set load, no engine call,
// and the log names its length, never the value.
func TestReceiver_aMalformedKeyIDIsRefusedUnlookedAndUnlogged(t *testing.T) {
	f := newFixture(t)
	body := []byte(batch)
	good := f.current.sign(t, body)
	before := f.keys.fetches.Load()
	for name, keyID := range map[string]string{
		"kilobytes":          strings.Repeat("k", 4096),
		"one over the bound": strings.Repeat("a", 129),
		"a log line forged":  "x\tlevel=ERROR msg=forged",
		"spaces":             "made up id",
		"non-ASCII":          "keyé",
	} {
		t.Run(name, func(t *testing.T) {
			if status, answer := f.post(t, body, map[string]string{headerKeyID: keyID, headerSignature: good}); status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", status, answer)
			}
			if strings.Contains(f.logs.String(), keyID) {
				t.Fatalf("the log repeats the key id: %s", f.logs.String())
			}
		})
	}
	if n := f.keys.fetches.Load(); n != before {
		t.Fatalf("malformed key ids caused %d key-set loads", n-before)
	}
	if n := f.engine.calls(); n != 0 {
		t.Fatalf("the engine was called %d times", n)
	}
	// The longest well-formed id is still looked up (and unknown: 401).
	if status, _ := f.post(t, body, map[string]string{headerKeyID: strings.Repeat("a", 128), headerSignature: good}); status != http.StatusUnauthorized {
		t.Fatalf("a 128-character id: status %d", status)
	}
}

// A signed body that is not a batch is a 400 and revokes nothing.
func TestReceiver_signedNonsenseIsRefused(t *testing.T) {
	f := newFixture(t)
	for _, body := range []string{``, `{}`, `[]`, `[{"token":""}]`, `[{"token":1}]`, `[{"token":"a"}] [1]`, `null`} {
		if status, _ := f.post(t, []byte(body), signed(t, f.current, []byte(body))); status != http.StatusBadRequest {
			t.Errorf("%q: status %d", body, status)
		}
	}
	if status, _ := f.post(t, nil, nil); status != http.StatusUnauthorized {
		t.Errorf("unsigned empty body: status %d", status)
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
	if n := f.engine.calls(); n != 0 {
		t.Fatalf("the engine was called %d times", n)
	}
}

// GitHub rotates by adding a key: an unknown key id loads the set again,
// at most once per interval.
func TestReceiver_unknownKeyIDLoadsTheKeySetAgainAtMostOncePerInterval(t *testing.T) {
	const interval = time.Second
	f := newFixtureWithInterval(t, interval)
	body := []byte(batch)
	if status, _ := f.post(t, body, signed(t, f.current, body)); status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if n := f.keys.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for the first request", n)
	}
	rotated := newGitHubKey(t, "rotated-key")
	f.keys.set(t, f.current, rotated)
	// Within the interval the new key is not looked for: refused.
	if status, _ := f.post(t, body, signed(t, rotated, body)); status != http.StatusUnauthorized {
		t.Fatalf("within the interval: status %d", status)
	}
	time.Sleep(interval + 100*time.Millisecond)
	if status, _ := f.post(t, body, signed(t, rotated, body)); status != http.StatusOK {
		t.Fatalf("a rotated key: status %d", status)
	}
	if n := f.keys.fetches.Load(); n != 2 {
		t.Fatalf("%d fetches after the rotation", n)
	}
	for i := 0; i < 5; i++ {
		f.post(t, body, map[string]string{headerKeyID: "made-up", headerSignature: rotated.sign(t, body)})
	}
	if n := f.keys.fetches.Load(); n != 2 {
		t.Fatalf("made-up key ids caused %d fetches within the interval", n-2)
	}
}

func TestReceiver_keysFromAFile(t *testing.T) {
	key := newGitHubKey(t, "file-key")
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, keySetJSON(t, key), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := &keySet{source: path, minInterval: time.Minute}
	got, err := keys.key(context.Background(), "file-key")
	if err != nil || got == nil || !got.Equal(&key.key.PublicKey) {
		t.Fatalf("key %v, %v", got, err)
	}
	for _, bad := range []string{`{}`, `{"public_keys":[{"key_identifier":"x","key":"nope"}]}`, `[]`} {
		if _, err := parseKeySet([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	rsaLike, _ := json.Marshal(map[string]interface{}{"public_keys": []map[string]string{{"key_identifier": "p384", "key": p384PEM(t)}}})
	if _, err := parseKeySet(rsaLike); err == nil {
		t.Error("a P-384 key accepted")
	}
}

func p384PEM(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestReceiver_engineFailureIs502WithoutValues(t *testing.T) {
	f := newFixture(t)
	f.engine.err = io.ErrUnexpectedEOF
	status, answer := f.post(t, []byte(batch), signed(t, f.current, []byte(batch)))
	if status != http.StatusBadGateway || strings.Contains(string(answer), "plqk_") || strings.Contains(f.logs.String(), "plqk_") {
		t.Fatalf("status %d, answer %s, logs %s", status, answer, f.logs)
	}
}

func jsonEqual(a, b interface{}) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// FuzzParseAlerts: the parser never panics, and what it accepts is a
// bounded batch of alerts with a token each.
func FuzzParseAlerts(f *testing.F) {
	f.Add([]byte(batch))
	f.Add([]byte(`[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"token":"a","extra":{"nested":[1,2]}}]`))
	f.Add([]byte(`[{"token":"a"}]garbage`))
	f.Fuzz(func(t *testing.T, body []byte) {
		alerts, err := parseAlerts(body)
		if err != nil {
			if alerts != nil {
				t.Fatal("alerts with an error")
			}
			return
		}
		if len(alerts) == 0 || len(alerts) > maxAlerts {
			t.Fatalf("%d alerts accepted", len(alerts))
		}
		for _, a := range alerts {
			if a.Token == "" {
				t.Fatal("an alert without a token accepted")
			}
		}
	})
}

// FuzzVerifySignature: no header value makes verification panic or pass
// without the key's signature.
func FuzzVerifySignature(f *testing.F) {
	key := newGitHubKey(f, "k")
	f.Add([]byte(batch), "MEUCIQ==")
	f.Add([]byte(batch), key.sign(f, []byte(batch)))
	f.Fuzz(func(t *testing.T, body []byte, signature string) {
		if verifySignature(&key.key.PublicKey, body, signature) && !bytes.Equal(body, []byte(batch)) {
			t.Fatalf("a signature over another body verified")
		}
	})
}

// gatedKeyServer serves a key set only once release is closed, counting
// the fetches that started.
type gatedKeyServer struct {
	*keyServer
	started chan struct{}
	release chan struct{}
}

func newGatedKeyServer(t *testing.T, keys ...githubKey) *gatedKeyServer {
	gs := &gatedKeyServer{keyServer: &keyServer{body: keySetJSON(t, keys...)}, started: make(chan struct{}, 100), release: make(chan struct{})}
	gs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		gs.fetches.Add(1)
		gs.started <- struct{}{}
		<-gs.release
		gs.mu.Lock()
		defer gs.mu.Unlock()
		_, _ = w.Write(gs.body)
	}))
	t.Cleanup(gs.Close)
	t.Cleanup(func() {
		select {
		case <-gs.release:
		default:
			close(gs.release)
		}
	})
	return gs
}

// A request that names an unknown key and goes away while the key set is
// fetched (a forged request, or a client that gave up) must not keep the
// next request from the key that fetch brings: the fetch is the
// receiver's, not the request's.
func TestKeySet_aCancelledRequestDoesNotStopTheNextOnesKeyLoad(t *testing.T) {
	current, rotated := newGitHubKey(t, "current-key"), newGitHubKey(t, "rotated-key")
	ks := newGatedKeyServer(t, current, rotated)
	keys := &keySet{source: ks.URL, client: http.DefaultClient, minInterval: time.Hour}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if key, _ := keys.key(ctx, "made-up"); key != nil {
			t.Error("a made-up key id found a key")
		}
	}()
	<-ks.started
	cancel()
	<-done // the cancelled request returns without waiting for the fetch
	close(ks.release)

	waitCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	key, err := keys.key(waitCtx, rotated.id)
	if err != nil || key == nil || !key.Equal(&rotated.key.PublicKey) {
		t.Fatalf("after a cancelled request, the rotated key: %v, %v", key, err)
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches", n)
	}
}

// Many requests with unknown key ids at once cause one fetch, and a
// request with a known key is answered while that fetch is slow.
func TestKeySet_concurrentUnknownKeyIDsCauseOneFetchAndKnownKeysDoNotWait(t *testing.T) {
	current, rotated := newGitHubKey(t, "current-key"), newGitHubKey(t, "rotated-key")
	ks := newGatedKeyServer(t, current, rotated)
	// Loaded before GitHub added the rotated key.
	keys := &keySet{source: ks.URL, client: http.DefaultClient, minInterval: time.Hour,
		keys: map[string]*ecdsa.PublicKey{current.id: &current.key.PublicKey}}

	const requests = 20
	var wg sync.WaitGroup
	found := atomic.Int64{}
	for i := 0; i < requests; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if key, err := keys.key(context.Background(), rotated.id); err == nil && key != nil {
				found.Add(1)
			}
		}()
	}
	<-ks.started
	// The fetch is stalled: a known key is still answered at once.
	known := make(chan *ecdsa.PublicKey, 1)
	go func() {
		key, _ := keys.key(context.Background(), current.id)
		known <- key
	}()
	select {
	case key := <-known:
		if key == nil {
			t.Fatal("the known key was not found")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a request with a known key waited for the slow fetch")
	}
	close(ks.release)
	wg.Wait()
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d concurrent requests for an unknown key caused %d fetches, want 1", requests, n)
	}
	// Those that arrived while the fetch ran waited for it and found the
	// rotated key; none was refused for the interval.
	if n := found.Load(); n != requests {
		t.Fatalf("%d of %d requests found the rotated key", n, requests)
	}
}

// A fetch that hangs ends at the receiver's own timeout, and a failed
// fetch is tried again after the short failure backoff, not the interval.
func TestKeySet_aHangingFetchTimesOutAndAFailureBacksOffBriefly(t *testing.T) {
	current := newGitHubKey(t, "current-key")
	ks := newGatedKeyServer(t, current)
	keys := &keySet{source: ks.URL, client: http.DefaultClient, minInterval: time.Hour, fetchTimeout: 200 * time.Millisecond, failureBackoff: 300 * time.Millisecond}
	start := time.Now()
	if key, err := keys.key(context.Background(), current.id); key != nil || err == nil {
		t.Fatalf("a hanging fetch: %v, %v", key, err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("a hanging fetch took %v", took)
	}
	// Within the backoff: no new fetch.
	if key, _ := keys.key(context.Background(), current.id); key != nil || ks.fetches.Load() != 1 {
		t.Fatalf("within the backoff: %v, %d fetches", key, ks.fetches.Load())
	}
	close(ks.release)
	time.Sleep(400 * time.Millisecond)
	if key, err := keys.key(context.Background(), current.id); key == nil || err != nil {
		t.Fatalf("after the backoff: %v, %v", key, err)
	}
}

// A key GitHub withdrew stops being accepted within the refresh interval,
// though no request asked for an unknown key; an unchanged set costs a
// 304 and keeps its keys.
func TestKeySet_aPeriodicRefreshDropsAWithdrawnKeyAndAsksWithTheETag(t *testing.T) {
	f := newFixture(t)
	body := []byte(batch)
	if status, _ := f.post(t, body, signed(t, f.other, body)); status != http.StatusOK {
		t.Fatalf("the other key before it is withdrawn: status %d", status)
	}
	keys := f.rc.keys
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keys.refreshEvery(ctx, 50*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))

	deadline := time.Now().Add(5 * time.Second)
	for f.keys.notModified.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.keys.notModified.Load() == 0 {
		t.Fatal("no refresh asked with the ETag")
	}
	if status, _ := f.post(t, body, signed(t, f.other, body)); status != http.StatusOK {
		t.Fatalf("after a 304 the keys are kept: status %d", status)
	}

	f.keys.set(t, f.current)
	seen := f.keys.fetches.Load()
	for f.keys.fetches.Load() < seen+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if status, _ := f.post(t, body, signed(t, f.other, body)); status != http.StatusUnauthorized {
		t.Fatalf("a withdrawn key is still accepted: status %d", status)
	}
	if status, _ := f.post(t, body, signed(t, f.current, body)); status != http.StatusOK {
		t.Fatalf("the current key: status %d", status)
	}
}
