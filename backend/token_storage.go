package backend

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Storage layout of tokens. A token's plaintext is never stored: its record
// is keyed by HMAC-SHA256(token) under a per-mount key, so verify is one
// read. Each user's named tokens are also listed in one index entry, so
// that listing, reading by name and refusing duplicate names cost one read.
const (
	saltPrefix        = "salt/"
	saltPath          = saltPrefix + "hmac"
	tokenRecordPrefix = "tokens/"
	tokenIndexPrefix  = "token-index/"

	// maxTokensPerUser bounds a user's index entry (about 300 bytes a token)
	// well inside the storage backends' entry size limits.
	maxTokensPerUser = 1000
)

// tokenRecord is what verify needs to know about a token, keyed by its HMAC.
type tokenRecord struct {
	Hash      string    `json:"hash"`
	TokenID   string    `json:"token_id"`
	Name      string    `json:"name"`
	User      string    `json:"user"`
	EntityID  string    `json:"entity_id"`
	Role      string    `json:"role,omitempty"` // set for tokens issued as leases
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (r *tokenRecord) expired(now time.Time) bool {
	return !now.Before(r.ExpiresAt)
}

// tokenIndex lists one user's named tokens.
type tokenIndex struct {
	Tokens map[string]*tokenSummary `json:"tokens"`
}

type tokenSummary struct {
	TokenID     string    `json:"token_id"`
	Hash        string    `json:"hash"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (t *tokenSummary) toResponseData(user, name string) map[string]interface{} {
	return map[string]interface{}{
		"token_id":    t.TokenID,
		"name":        name,
		"user":        user,
		"description": t.Description,
		"created_at":  formatTime(t.CreatedAt),
		"expires_at":  formatTime(t.ExpiresAt),
	}
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

func tokenRecordPath(hash string) string { return tokenRecordPrefix + hash }
func tokenIndexPath(user string) string  { return tokenIndexPrefix + user }
func userLockKey(user string) string     { return "user/" + user }

// validTokenHash reports whether h has the shape of a token HMAC, so that a
// value from lease internal data is never used as an arbitrary storage key.
func validTokenHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

func getTokenRecord(ctx context.Context, s logical.Storage, hash string) (*tokenRecord, error) {
	entry, err := s.Get(ctx, tokenRecordPath(hash))
	if err != nil {
		return nil, fmt.Errorf("reading token record: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var record tokenRecord
	if err := entry.DecodeJSON(&record); err != nil {
		return nil, fmt.Errorf("decoding token record: %w", err)
	}
	// The key already matched; comparing again in constant time guards
	// against storage backends that match keys loosely.
	if subtle.ConstantTimeCompare([]byte(record.Hash), []byte(hash)) != 1 {
		return nil, nil
	}
	return &record, nil
}

func putTokenRecord(ctx context.Context, s logical.Storage, record *tokenRecord) error {
	entry, err := logical.StorageEntryJSON(tokenRecordPath(record.Hash), record)
	if err != nil {
		return fmt.Errorf("encoding token record: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing token record: %w", err)
	}
	return nil
}

func deleteTokenRecord(ctx context.Context, s logical.Storage, hash string) error {
	if err := s.Delete(ctx, tokenRecordPath(hash)); err != nil {
		return fmt.Errorf("deleting token record: %w", err)
	}
	return nil
}

// getTokenIndex returns the user's index, empty when the user has no tokens.
func getTokenIndex(ctx context.Context, s logical.Storage, user string) (*tokenIndex, error) {
	index := &tokenIndex{Tokens: make(map[string]*tokenSummary)}
	entry, err := s.Get(ctx, tokenIndexPath(user))
	if err != nil {
		return nil, fmt.Errorf("reading token index: %w", err)
	}
	if entry == nil {
		return index, nil
	}
	if err := entry.DecodeJSON(index); err != nil {
		return nil, fmt.Errorf("decoding token index: %w", err)
	}
	if index.Tokens == nil {
		index.Tokens = make(map[string]*tokenSummary)
	}
	return index, nil
}

// putTokenIndex stores the index, or deletes it once the user has no tokens left.
func putTokenIndex(ctx context.Context, s logical.Storage, user string, index *tokenIndex) error {
	if len(index.Tokens) == 0 {
		if err := s.Delete(ctx, tokenIndexPath(user)); err != nil {
			return fmt.Errorf("deleting token index: %w", err)
		}
		return nil
	}
	entry, err := logical.StorageEntryJSON(tokenIndexPath(user), index)
	if err != nil {
		return fmt.Errorf("encoding token index: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing token index: %w", err)
	}
	return nil
}

// getSalt returns the mount's HMAC key, generating and storing it on first
// use when create is set; without create it returns nil while there is no
// key, so that read paths such as verify never write. The key is cached in
// memory and dropped by invalidate if another node writes it.
func (b *backend) getSalt(ctx context.Context, s logical.Storage, create bool) (*salt.Salt, error) {
	b.cacheLock.RLock()
	cached := b.salt
	b.cacheLock.RUnlock()
	if cached != nil {
		return cached, nil
	}

	lock := b.lockFor(saltPath)
	lock.Lock()
	defer lock.Unlock()

	b.cacheLock.RLock()
	cached = b.salt
	b.cacheLock.RUnlock()
	if cached != nil {
		return cached, nil
	}
	if !create {
		// No key yet means no token was ever issued.
		entry, err := s.Get(ctx, saltPath)
		if err != nil || entry == nil {
			return nil, err
		}
	}

	generated, err := salt.NewSalt(ctx, s, &salt.Config{
		Location: saltPath,
		HashFunc: salt.SHA256Hash,
		HMAC:     sha256.New,
		HMACType: "hmac-sha256",
	})
	if err != nil {
		return nil, fmt.Errorf("loading token HMAC key: %w", err)
	}

	b.cacheLock.Lock()
	b.salt = generated
	b.cacheLock.Unlock()
	return generated, nil
}

// issuedToken is a freshly generated secret with its HMAC and public id.
type issuedToken struct {
	secret  string
	hash    string
	tokenID string
}

// newToken generates a token with the configured prefix from the backend's
// entropy source.
func (b *backend) newToken(ctx context.Context, s logical.Storage, cfg *configEntry) (*issuedToken, error) {
	hmacKey, err := b.getSalt(ctx, s, true)
	if err != nil {
		return nil, err
	}
	secret, err := generateToken(cfg.TokenPrefix, b.GetRandomReader())
	if err != nil {
		return nil, err
	}
	tokenID, err := uuid.GenerateUUIDWithReader(b.GetRandomReader())
	if err != nil {
		return nil, fmt.Errorf("generating token id: %w", err)
	}
	return &issuedToken{secret: secret, hash: hmacKey.GetHMAC(secret), tokenID: tokenID}, nil
}

// record returns the token's record, issued now for ttl; role is set for
// tokens issued as leases.
func (t *issuedToken) record(user, name, entityID, role string, ttl time.Duration) *tokenRecord {
	now := time.Now().UTC().Truncate(time.Second)
	return &tokenRecord{
		Hash:      t.hash,
		TokenID:   t.tokenID,
		Name:      name,
		User:      user,
		EntityID:  entityID,
		Role:      role,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
}

// summary returns the entry of a named token in its user's index.
func (r *tokenRecord) summary(description string) *tokenSummary {
	return &tokenSummary{
		TokenID:     r.TokenID,
		Hash:        r.Hash,
		Description: description,
		CreatedAt:   r.CreatedAt,
		ExpiresAt:   r.ExpiresAt,
	}
}

// storeNamedToken writes a named token's record, then lists it in the
// user's index; the caller holds the user's lock. The record goes first: if
// the index write fails the record is removed again, and a crash in between
// leaves only a record whose secret was never handed out, which tidy's
// repair removes.
func (b *backend) storeNamedToken(ctx context.Context, s logical.Storage, index *tokenIndex, record *tokenRecord, summary *tokenSummary) error {
	if err := putTokenRecord(ctx, s, record); err != nil {
		return err
	}
	index.Tokens[record.Name] = summary
	if err := putTokenIndex(ctx, s, record.User, index); err != nil {
		if cleanupErr := deleteTokenRecord(ctx, s, record.Hash); cleanupErr != nil {
			b.Logger().Error("could not remove the record of a token whose index write failed", "user", record.User, "name", record.Name, "error", cleanupErr)
		}
		return err
	}
	return nil
}
