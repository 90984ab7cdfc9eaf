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
// by adding the new one to the set. Loads are at most one per minInterval,
// so that requests with made-up key ids cannot make it hammer the source.
type keySet struct {
	source      string // an http(s) URL or a file path
	client      *http.Client
	githubToken string // optional, against api.github.com's rate limit
	minInterval time.Duration

	mu       sync.Mutex
	keys     map[string]*ecdsa.PublicKey
	loadedAt time.Time
	lastTry  time.Time
}

// key returns the key with the identifier, loading the set again when it
// is unknown and the last load is old enough; nil when there is none.
func (k *keySet) key(ctx context.Context, id string) (*ecdsa.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if key := k.keys[id]; key != nil {
		return key, nil
	}
	if !k.lastTry.IsZero() && time.Since(k.lastTry) < k.minInterval {
		return nil, nil
	}
	if err := k.loadLocked(ctx); err != nil {
		return nil, err
	}
	return k.keys[id], nil
}

// load loads the key set now.
func (k *keySet) load(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.loadLocked(ctx)
}

func (k *keySet) loadLocked(ctx context.Context) error {
	k.lastTry = time.Now()
	raw, err := k.fetch(ctx)
	if err != nil {
		return err
	}
	keys, err := parseKeySet(raw)
	if err != nil {
		return err
	}
	k.keys, k.loadedAt = keys, time.Now()
	return nil
}

func (k *keySet) fetch(ctx context.Context) ([]byte, error) {
	if !strings.HasPrefix(k.source, "https://") && !strings.HasPrefix(k.source, "http://") {
		f, err := os.Open(k.source)
		if err != nil {
			return nil, fmt.Errorf("reading the key set: %w", err)
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, maxKeySetBytes))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.source, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if k.githubToken != "" {
		req.Header.Set("Authorization", "Bearer "+k.githubToken)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the key set: %s", resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes))
}
