package backend

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	uuid "github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Storage layout of tokens. A token's plaintext is never stored by the
// engine: its record is keyed by HMAC-SHA256(token) under a per-mount key,
// so verify is one read. Everything else about tokens is kept per owner
// entity, under entities/<entity id>/, never under a user name: entity
// names can be changed and reused, entity ids cannot.
const (
	saltPrefix        = "salt/"
	saltPath          = saltPrefix + "hmac"
	tokenRecordPrefix = "tokens/"

	// maxTokensPerUser bounds a user's index entry (at most about 600 bytes
	// a token with the longest description) well inside the storage
	// backends' entry size limits.
	maxTokensPerUser = 1000
	// maxLeasesPerUser bounds the leased PATs one user may hold at once.
	maxLeasesPerUser = 1000

	// Kinds of token, as verify, introspect and the inventory report them.
	tokenKindNamed = "named"
	tokenKindLease = "lease"
)

// tokenRecord is what verify needs to know about a token, keyed by its HMAC.
// It names the owner by entity id only: verify reports the entity's live
// name from Vault's identity store.
type tokenRecord struct {
	Hash     string   `json:"hash"`
	TokenID  string   `json:"token_id"`
	Name     string   `json:"name"`
	EntityID string   `json:"entity_id"`
	Role     string   `json:"role,omitempty"` // set for tokens issued as leases
	Scopes   []string `json:"scopes,omitempty"`
	// Scoped marks a record written since scopes exist: Scopes are then
	// exactly the token's scopes, none when empty. See issuedScopes.
	Scoped    bool      `json:"scoped,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (r *tokenRecord) expired(now time.Time) bool {
	return !now.Before(r.ExpiresAt)
}

func (r *tokenRecord) kind() string {
	if r.Role != "" {
		return tokenKindLease
	}
	return tokenKindNamed
}

// tokenIndex lists one entity's named tokens.
type tokenIndex struct {
	Tokens map[string]*tokenSummary `json:"tokens"`
	// DueHour is the hour of the entity's earliest entry in the due index
	// (0: none recorded); a token due no earlier needs no entry of its own.
	DueHour int64 `json:"due_hour,omitempty"`

	// stored is how many tokens the stored index lists, for the counts.
	stored int
}

type tokenSummary struct {
	TokenID     string    `json:"token_id"`
	Hash        string    `json:"hash"`
	Description string    `json:"description,omitempty"`
	Scopes      []string  `json:"scopes,omitempty"`
	Scoped      bool      `json:"scoped,omitempty"` // as tokenRecord.Scoped
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	LastUsedAt  time.Time `json:"last_used_at,omitempty"`
	// NoticesSent are the expiry_notices thresholds the owner was already
	// reminded for, so that each reminder is sent once.
	NoticesSent []string `json:"notices_sent,omitempty"`
}

// toResponseData describes the token without its secret; user is the
// owner's live name.
func (t *tokenSummary) toResponseData(user, entityID, name string, scopes []string) map[string]interface{} {
	return map[string]interface{}{
		"token_id":     t.TokenID,
		"name":         name,
		"user":         user,
		"entity_id":    entityID,
		"description":  t.Description,
		"scopes":       scopes,
		"created_at":   formatTime(t.CreatedAt),
		"expires_at":   formatTime(t.ExpiresAt),
		"last_used_at": formatOptionalTime(t.LastUsedAt),
	}
}

// tokenFields describe a token as create, read, rotate, creds and verify
// return it; never its secret.
var tokenFields = fieldSet{
	"token_id":   {Type: framework.TypeString, Description: "Public id of the token (a UUID), safe to log and to name in support requests; a rotated token gets a new one."},
	"name":       {Type: framework.TypeString, Description: "Name of the token; for a token issued as a lease, its role."},
	"user":       {Type: framework.TypeString, Description: "The owner entity's current name."},
	"entity_id":  {Type: framework.TypeString, Description: "Id of the owner's identity entity. Key users on it: an entity's name can change and be reused."},
	"scopes":     {Type: framework.TypeStringSlice, Description: "Scopes the token holds."},
	"created_at": {Type: framework.TypeTime, Description: "When the token's current secret was issued (RFC 3339)."},
	"expires_at": {Type: framework.TypeTime, Description: "When the token stops verifying (RFC 3339)."},
}

// namedTokenFields describe a named PAT as toResponseData returns it.
var namedTokenFields = tokenFields.with(fieldSet{
	"description":  {Type: framework.TypeString, Description: "What the token is for, as its owner wrote it."},
	"last_used_at": {Type: framework.TypeString, Description: "When verify, introspect or the exchange last accepted the token, rounded down to last_used_granularity and recorded within about a minute (RFC 3339); empty if never used or not recorded."},
})

// issuedTokenFields describe a newly issued named PAT: its metadata and,
// this once, its secret.
var issuedTokenFields = namedTokenFields.with(fieldSet{
	"token": {Type: framework.TypeString, Description: "The personal access token itself. Shown this once: the engine keeps only its HMAC and can never show it again.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
})

// leaseMarker lists one leased PAT under its owner entity, so that an
// owner's leases can be found without reading every token record.
type leaseMarker struct {
	TokenID    string    `json:"token_id"`
	Role       string    `json:"role"`
	Scopes     []string  `json:"scopes,omitempty"`
	Scoped     bool      `json:"scoped,omitempty"` // as tokenRecord.Scoped
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	LastUsedAt time.Time `json:"last_used_at,omitempty"`
}

func formatTime(t time.Time) string {
	return t.UTC().Format(time.RFC3339)
}

func tokenRecordPath(hash string) string { return tokenRecordPrefix + hash }

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

// getTokenIndex returns the entity's index, empty when it has no tokens.
func getTokenIndex(ctx context.Context, s logical.Storage, entityID string) (*tokenIndex, error) {
	index := &tokenIndex{Tokens: make(map[string]*tokenSummary)}
	if entityID == "" {
		return index, nil
	}
	entry, err := s.Get(ctx, tokenIndexPath(entityID))
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
	index.stored = len(index.Tokens)
	return index, nil
}

// putTokenIndex stores the index, or deletes it once the entity has no
// tokens left; it writes the due entry of a token due before the entity's
// earliest one, and counts the tokens added or removed. The caller holds
// the entity's lock.
func (b *backend) putTokenIndex(ctx context.Context, s logical.Storage, entityID string, index *tokenIndex) error {
	if len(index.Tokens) == 0 {
		if err := s.Delete(ctx, tokenIndexPath(entityID)); err != nil {
			return fmt.Errorf("deleting token index: %w", err)
		}
		return b.countIndex(ctx, s, entityID, index)
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	if next := index.nextDue(cfg.ExpiryNotices); !next.IsZero() {
		hour := max(dueHour(next), dueHour(time.Now()))
		if index.DueHour == 0 || hour < index.DueHour {
			if index.DueHour, err = b.markDue(ctx, s, entitySubject(entityID), next); err != nil {
				return err
			}
		}
	}
	entry, err := logical.StorageEntryJSON(tokenIndexPath(entityID), index)
	if err != nil {
		return fmt.Errorf("encoding token index: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing token index: %w", err)
	}
	return b.countIndex(ctx, s, entityID, index)
}

// countIndex counts the named tokens a stored index gained or lost.
func (b *backend) countIndex(ctx context.Context, s logical.Storage, entityID string, index *tokenIndex) error {
	delta := len(index.Tokens) - index.stored
	index.stored = len(index.Tokens)
	return b.applyCount(ctx, s, entitySubject(entityID), &countShard{Named: delta})
}

// putLeaseMarker lists a newly issued leased token under its owner, with
// its expiry in the due index, and counts it; the caller holds the
// entity's lock.
func (b *backend) putLeaseMarker(ctx context.Context, s logical.Storage, record *tokenRecord) error {
	if _, err := b.markDue(ctx, s, entitySubject(record.EntityID), record.ExpiresAt); err != nil {
		return err
	}
	err := putLeaseMarkerEntry(ctx, s, record.EntityID, record.Hash, &leaseMarker{
		TokenID:   record.TokenID,
		Role:      record.Role,
		Scopes:    record.Scopes,
		Scoped:    record.Scoped,
		CreatedAt: record.CreatedAt,
		ExpiresAt: record.ExpiresAt,
	})
	if err != nil {
		return err
	}
	return b.applyCount(ctx, s, entitySubject(record.EntityID), &countShard{Leases: 1})
}

func putLeaseMarkerEntry(ctx context.Context, s logical.Storage, entityID, hash string, marker *leaseMarker) error {
	entry, err := logical.StorageEntryJSON(leaseMarkerPath(entityID, hash), marker)
	if err != nil {
		return fmt.Errorf("encoding lease marker: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing lease marker: %w", err)
	}
	return nil
}

func getLeaseMarker(ctx context.Context, s logical.Storage, entityID, hash string) (*leaseMarker, error) {
	entry, err := s.Get(ctx, leaseMarkerPath(entityID, hash))
	if err != nil {
		return nil, fmt.Errorf("reading lease marker: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var marker leaseMarker
	if err := entry.DecodeJSON(&marker); err != nil {
		return nil, fmt.Errorf("decoding lease marker: %w", err)
	}
	return &marker, nil
}

func deleteLeaseMarker(ctx context.Context, s logical.Storage, entityID, hash string) error {
	if err := s.Delete(ctx, leaseMarkerPath(entityID, hash)); err != nil {
		return fmt.Errorf("deleting lease marker: %w", err)
	}
	return nil
}

// listLeaseHashes returns the HMACs of the entity's leased PATs.
func listLeaseHashes(ctx context.Context, s logical.Storage, entityID string) ([]string, error) {
	hashes, err := s.List(ctx, leaseMarkerPrefix(entityID))
	if err != nil {
		return nil, fmt.Errorf("listing leased tokens: %w", err)
	}
	return hashes, nil
}

// errHMACKeyLost refuses to generate a new HMAC key while token records
// exist: a new key would make every issued PAT unverifiable without a word.
var errHMACKeyLost = errors.New("the HMAC key (salt/hmac) is missing while token records exist: no personal access token can be verified without it; restore the mount's storage from a backup, or disable and re-enable the mount to start over. Refusing to generate a new key")

// getSalt returns the mount's HMAC key, generating and storing it on first
// use when create is set; without create it returns nil while there is no
// key, so that read paths such as verify never write. The key has its own
// mutex, never a striped lock: it is loaded inside requests that already
// hold an entity's striped lock, and striped locks must never nest.
func (b *backend) getSalt(ctx context.Context, s logical.Storage, create bool) (*salt.Salt, error) {
	if cached, ok := b.saltCache.get(saltPath); ok {
		return cached, nil
	}
	b.saltMu.Lock()
	defer b.saltMu.Unlock()
	if cached, ok := b.saltCache.get(saltPath); ok {
		return cached, nil
	}
	generation := b.saltCache.begin()

	entry, err := s.Get(ctx, saltPath)
	if err != nil {
		return nil, fmt.Errorf("reading token HMAC key: %w", err)
	}
	if entry == nil {
		if !create {
			// No key yet means no token was ever issued.
			return nil, nil
		}
		records, err := s.List(ctx, tokenRecordPrefix)
		if err != nil {
			return nil, fmt.Errorf("listing token records: %w", err)
		}
		if len(records) > 0 {
			b.Logger().Error("refusing to generate a new token HMAC key: the key is missing but token records exist; restore it from a backup", "token_records", len(records))
			return nil, errHMACKeyLost
		}
	}

	loaded, err := salt.NewSalt(ctx, s, &salt.Config{
		Location: saltPath,
		HashFunc: salt.SHA256Hash,
		HMAC:     sha256.New,
		HMACType: "hmac-sha256",
	})
	if err != nil {
		return nil, fmt.Errorf("loading token HMAC key: %w", err)
	}
	b.saltCache.fill(saltPath, loaded, generation)
	return loaded, nil
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
func (t *issuedToken) record(entityID, name, role string, scopes []string, ttl time.Duration) *tokenRecord {
	now := time.Now().UTC().Truncate(time.Second)
	return &tokenRecord{
		Hash:      t.hash,
		TokenID:   t.tokenID,
		Name:      name,
		EntityID:  entityID,
		Role:      role,
		Scopes:    scopes,
		Scoped:    true,
		CreatedAt: now,
		ExpiresAt: now.Add(ttl),
	}
}

// summary returns the entry of a named token in its owner's index.
func (r *tokenRecord) summary(description string) *tokenSummary {
	return &tokenSummary{
		TokenID:     r.TokenID,
		Hash:        r.Hash,
		Description: description,
		Scopes:      r.Scopes,
		Scoped:      r.Scoped,
		CreatedAt:   r.CreatedAt,
		ExpiresAt:   r.ExpiresAt,
	}
}

// storeNamedToken writes a named token's record, then lists it in the
// owner's index; the caller holds the entity's lock. The record goes
// first: if the index write fails the record is removed again, and a crash
// in between leaves only a record whose secret was never handed out, which
// tidy's repair removes.
func (b *backend) storeNamedToken(ctx context.Context, s logical.Storage, index *tokenIndex, record *tokenRecord, summary *tokenSummary) error {
	if err := putTokenRecord(ctx, s, record); err != nil {
		return err
	}
	index.Tokens[record.Name] = summary
	if err := b.putTokenIndex(ctx, s, record.EntityID, index); err != nil {
		delete(index.Tokens, record.Name)
		if cleanupErr := deleteTokenRecord(ctx, s, record.Hash); cleanupErr != nil {
			b.Logger().Error("could not remove the record of a token whose index write failed", "entity_id", record.EntityID, "name", record.Name, "error", cleanupErr)
		}
		return err
	}
	return nil
}

// revokeNamedToken deletes the named token's record, then its index entry,
// and returns what it revoked (nil if there was no such token); the caller
// holds the entity's lock. The record goes first so the token
// stops verifying at once; a crash before the index write leaves a listed
// token that no longer verifies and can be deleted again.
func (b *backend) revokeNamedToken(ctx context.Context, s logical.Storage, entityID string, index *tokenIndex, name string) (*tokenSummary, error) {
	summary, ok := index.Tokens[name]
	if !ok {
		return nil, nil
	}
	if err := deleteTokenRecord(ctx, s, summary.Hash); err != nil {
		return nil, err
	}
	b.records.remove(summary.Hash)
	delete(index.Tokens, name)
	return summary, b.putTokenIndex(ctx, s, entityID, index)
}

// revokeLease deletes a leased PAT's record and marker; the caller holds
// the entity's lock. The record goes first so the token stops verifying at
// once; a marker left by a crash is removed by tidy's repair.
func (b *backend) revokeLease(ctx context.Context, s logical.Storage, entityID, hash string) error {
	if err := deleteTokenRecord(ctx, s, hash); err != nil {
		return err
	}
	b.records.remove(hash)
	if entityID == "" {
		return nil
	}
	// Read first, so that only a marker that was there is counted out (a
	// lease tidy removed can still be revoked by Vault).
	marker, err := getLeaseMarker(ctx, s, entityID, hash)
	if err != nil {
		return err
	}
	if err := deleteLeaseMarker(ctx, s, entityID, hash); err != nil {
		return err
	}
	b.leaseCounts.remove(entityID)
	if marker != nil {
		return b.applyCount(ctx, s, entitySubject(entityID), &countShard{Leases: -1})
	}
	return nil
}

// validEntityID reports whether id can name an entity in a storage key:
// Vault's entity ids are UUIDs; anything with a separator or a dot is not.
func validEntityID(id string) bool {
	return id != "" && len(id) <= MaxNameLength && !strings.ContainsAny(id, "/.") && strings.TrimLeft(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") == ""
}
