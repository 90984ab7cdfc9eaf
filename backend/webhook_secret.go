package backend

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const (
	notificationsPrefix = "notifications/"
	// webhookSecretPath holds the signing secret; it is seal-wrapped.
	webhookSecretPath = notificationsPrefix + "webhook-secret"

	// webhookSecretBytes is the signing key's length: Standard Webhooks asks
	// for 24 to 64 random bytes.
	webhookSecretBytes = 32
	// webhookSecretPrefix marks a serialised Standard Webhooks HMAC secret.
	webhookSecretPrefix = "whsec_"
	// defaultPreviousSecretTTL is how long deliveries are also signed with
	// the secret a rotation replaced, so that receivers can switch without
	// rejecting anything.
	defaultPreviousSecretTTL = 24 * time.Hour
	maxPreviousSecretTTL     = 30 * 24 * time.Hour
)

// webhookSecretEntry is the key webhooks are signed with and, for a while
// after a rotation, the key it replaced.
type webhookSecretEntry struct {
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at"`

	PreviousKey       []byte    `json:"previous_key,omitempty"`
	PreviousExpiresAt time.Time `json:"previous_expires_at,omitempty"`
}

// newWebhookSecret draws a signing key from random.
func newWebhookSecret(random io.Reader, now time.Time) (*webhookSecretEntry, error) {
	key := make([]byte, webhookSecretBytes)
	if _, err := io.ReadFull(random, key); err != nil {
		return nil, fmt.Errorf("generating the webhook signing secret: %w", err)
	}
	return &webhookSecretEntry{Key: key, CreatedAt: now.UTC()}, nil
}

// serialized is the secret as receivers configure it: whsec_<base64>.
func (e *webhookSecretEntry) serialized() string {
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(e.Key)
}

// rotatedFrom keeps old's key as the previous one until now+keep; keep 0
// drops it at once (a compromised secret).
func (e *webhookSecretEntry) rotatedFrom(old *webhookSecretEntry, now time.Time, keep time.Duration) {
	if old == nil || keep <= 0 {
		return
	}
	e.PreviousKey = old.Key
	e.PreviousExpiresAt = now.Add(keep).UTC()
}

// previousValidAt reports whether the previous key still signs at now.
func (e *webhookSecretEntry) previousValidAt(now time.Time) bool {
	return len(e.PreviousKey) > 0 && now.Before(e.PreviousExpiresAt)
}

// sign returns the webhook-signature header for a delivery: the current
// key's signature and, while it is kept, the previous key's, space
// separated as Standard Webhooks does for zero-downtime rotation.
func (e *webhookSecretEntry) sign(msgID string, timestamp time.Time, body []byte) (string, error) {
	keys := [][]byte{e.Key}
	if e.previousValidAt(timestamp) {
		keys = append(keys, e.PreviousKey)
	}
	signatures := make([]string, 0, len(keys))
	for _, key := range keys {
		signer, err := standardwebhooks.NewWebhookRaw(key)
		if err != nil {
			return "", err
		}
		signature, err := signer.Sign(msgID, timestamp, body)
		if err != nil {
			return "", err
		}
		signatures = append(signatures, signature)
	}
	return strings.Join(signatures, " "), nil
}

// getWebhookSecret returns the signing secret, nil when none was generated.
// The delivery worker reads it for every delivery, so it is cached.
func (b *backend) getWebhookSecret(ctx context.Context, s logical.Storage) (*webhookSecretEntry, error) {
	if secret, ok := b.webhookSecret.get(webhookSecretPath); ok {
		return secret, nil
	}
	generation := b.webhookSecret.begin()
	entry, err := s.Get(ctx, webhookSecretPath)
	if err != nil {
		return nil, fmt.Errorf("reading the webhook signing secret: %w", err)
	}
	var secret *webhookSecretEntry
	if entry != nil {
		secret = &webhookSecretEntry{}
		if err := entry.DecodeJSON(secret); err != nil {
			return nil, fmt.Errorf("decoding the webhook signing secret: %w", err)
		}
	}
	b.webhookSecret.fill(webhookSecretPath, secret, generation)
	return secret, nil
}
