package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// maxKeySetBytes bounds the key set read from the URL or the file.
const maxKeySetBytes = 1 << 20

// keySetDocument is GitHub's key set, as
// https://api.github.com/meta/public_keys/secret_scanning serves it.
type keySetDocument struct {
	PublicKeys []struct {
		KeyIdentifier string `json:"key_identifier"`
		Key           string `json:"key"`
		IsCurrent     bool   `json:"is_current"`
	} `json:"public_keys"`
}

// parseKeySet returns the P-256 keys of a key set by identifier. A key of
// another kind is an error: GitHub signs with ECDSA P-256 only.
func parseKeySet(raw []byte) (map[string]*ecdsa.PublicKey, error) {
	var doc keySetDocument
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the key set is not JSON of GitHub's format: %w", err)
	}
	if len(doc.PublicKeys) == 0 {
		return nil, errors.New("the key set holds no public_keys")
	}
	keys := make(map[string]*ecdsa.PublicKey, len(doc.PublicKeys))
	for i, entry := range doc.PublicKeys {
		if entry.KeyIdentifier == "" {
			return nil, fmt.Errorf("public_keys[%d] has no key_identifier", i)
		}
		block, _ := pem.Decode([]byte(entry.Key))
		if block == nil {
			return nil, fmt.Errorf("key %s is not PEM", entry.KeyIdentifier)
		}
		parsed, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", entry.KeyIdentifier, err)
		}
		key, ok := parsed.(*ecdsa.PublicKey)
		if !ok || key.Curve != elliptic.P256() {
			return nil, fmt.Errorf("key %s is not an ECDSA P-256 key", entry.KeyIdentifier)
		}
		keys[entry.KeyIdentifier] = key
	}
	return keys, nil
}

// keySet holds GitHub's signing keys, from a URL or a file, and loads them
// again when a request names a key it does not know: GitHub rotates keys
// by adding the new one to the set.
//
// A load runs in the background on the receiver's own context, bounded by
// fetchTimeout, never on a request's: a request that goes away (a forged
// one with a made-up key id, or a client that gave up) does not cancel
// it, and its result serves the requests that come after. One load runs
// at a time (requests for unknown keys that arrive meanwhile wait for it;
// requests for known keys never wait). After a load completes the next one
// starts no sooner than minInterval after a success or failureBackoff
// after a failure, so that requests with made-up key ids cannot make it
// hammer the key-set URL.
type keySet struct {
	source      string // an http(s) URL or a file path
	client      *http.Client
	githubToken string // optional, against api.github.com's rate limit
	minInterval time.Duration
	// fetchTimeout bounds one load (default defaultFetchTimeout).
	fetchTimeout time.Duration
	// failureBackoff is the least time between a failed load and the next
	// (default the lesser of minInterval and defaultFailureBackoff).
	failureBackoff time.Duration

	mu       sync.Mutex
	keys     map[string]*ecdsa.PublicKey
	loadedAt time.Time
	// lastDone is when the last load completed, lastErr its error.
	lastDone time.Time
	lastErr  error
	loading  *keyLoad // the load under way, if any
	// etag is the key set's ETag at the last load: the next asks with
	// If-None-Match, and GitHub answers 304 (not counted against its rate
	// limit) while the set is unchanged.
	etag string
}

const (
	defaultFetchTimeout   = 10 * time.Second
	defaultFailureBackoff = 5 * time.Second
)

// keyLoad is one load of the key set; done is closed when it completes,
// and err is set before.
type keyLoad struct {
	done chan struct{}
	err  error
}

// key returns the key with the identifier, loading the set again when it
// is unknown and the last load is old enough; nil when there is none. It
// waits for a load at most as long as ctx allows.
func (k *keySet) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	if key := k.keys[id]; key != nil {
		k.mu.Unlock()
		return key, nil
	}
	load := k.loading
	if load == nil {
		if !k.lastDone.IsZero() && time.Since(k.lastDone) < k.backoffLocked() {
			k.mu.Unlock()
			return nil, nil
		}
		load = k.startLocked()
	}
	k.mu.Unlock()
	select {
	case <-load.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if load.err != nil {
		return nil, load.err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.keys[id], nil
}

// load loads the key set now, or waits for the load under way.
func (k *keySet) load(ctx context.Context) error {
	k.mu.Lock()
	load := k.loading
	if load == nil {
		load = k.startLocked()
	}
	k.mu.Unlock()
	select {
	case <-load.done:
		return load.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backoffLocked is the least time after the last completed load before
// the next; the caller holds mu.
func (k *keySet) backoffLocked() time.Duration {
	if k.lastErr == nil {
		return k.minInterval
	}
	if k.failureBackoff > 0 {
		return k.failureBackoff
	}
	return min(k.minInterval, defaultFailureBackoff)
}

// startLocked starts a load in the background; the caller holds mu and
// no load is under way.
func (k *keySet) startLocked() *keyLoad {
	load := &keyLoad{done: make(chan struct{})}
	k.loading = load
	timeout := k.fetchTimeout
	if timeout <= 0 {
		timeout = defaultFetchTimeout
	}
	etag := k.etag
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var keys map[string]*ecdsa.PublicKey
		raw, newETag, unchanged, err := k.fetch(ctx, etag)
		if err == nil && !unchanged {
			keys, err = parseKeySet(raw)
		}
		k.mu.Lock()
		now := time.Now()
		switch {
		case err == nil && unchanged:
			k.loadedAt = now
		case err == nil:
			k.keys, k.loadedAt, k.etag = keys, now, newETag
		}
		k.lastDone, k.lastErr, k.loading = now, err, nil
		load.err = err
		k.mu.Unlock()
		close(load.done)
	}()
	return load
}

// fetch reads the key set; from a URL with If-None-Match when etag is
// known, reporting unchanged on a 304.
func (k *keySet) fetch(ctx context.Context, etag string) (raw []byte, newETag string, unchanged bool, err error) {
	if !strings.HasPrefix(k.source, "https://") && !strings.HasPrefix(k.source, "http://") {
		f, err := os.Open(k.source)
		if err != nil {
			return nil, "", false, fmt.Errorf("reading the key set: %w", err)
		}
		defer f.Close()
		raw, err := io.ReadAll(io.LimitReader(f, maxKeySetBytes))
		return raw, "", false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.source, nil)
	if err != nil {
		return nil, "", false, err
	}
	req.Header.Set("Accept", "application/json")
	if k.githubToken != "" {
		req.Header.Set("Authorization", "Bearer "+k.githubToken)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, "", false, fmt.Errorf("fetching the key set: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		if etag != "" {
			return nil, etag, true, nil
		}
	case http.StatusOK:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes))
		return raw, resp.Header.Get("ETag"), false, err
	}
	return nil, "", false, fmt.Errorf("fetching the key set: %s", resp.Status)
}

// refreshEvery loads the key set again every interval until ctx ends, so
// that a key GitHub withdrew (it publishes is_current: false, then drops
// it) stops being accepted within the interval even when no request asks
// for an unknown key. A failed load keeps the keys there were.
func (k *keySet) refreshEvery(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := k.load(ctx); err != nil && ctx.Err() == nil {
				log.Warn("refreshing GitHub's keys failed; keeping the keys loaded before", "error", err)
			}
		}
	}
}
