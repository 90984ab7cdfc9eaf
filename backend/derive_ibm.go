package backend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// IBM Quantum (and IBM Cloud Quantum) through per-job service-ID API keys:
// qiskit-ibm-runtime takes only an API key, so each job gets a new API key
// of one service ID, created with a management key that may manage that
// service ID's keys, and deleted when the job's lease ends - on revoke, on
// expiry, when the user is revoked or offboarded, when the token is deleted
// or pointed elsewhere, and, through the write-ahead log, when the plugin
// died between creating a key and handing it out.
//
// Each key handed out is recorded twice (no secret in either): under its
// token, so that deleting or re-pointing the token deletes its keys with
// the management key that made them, and under the member it was made for,
// so that revoke-all and offboarding find them. Revoking a lease deletes
// the key with the token's current management key.
const (
	derivationIBMServiceIDKey = "ibm_service_id_key"

	ibmDefaultKeyTTL = time.Hour
	ibmMinKeyTTL     = 30 * time.Second

	derivedKeysPrefix         = "derived-keys/"
	derivedKeysByTokenPrefix  = derivedKeysPrefix + "tokens/"
	derivedKeysByEntityPrefix = derivedKeysPrefix + "entities/"
)

var ibmServiceIDKeyMethod = &derivationMethod{
	Name:        derivationIBMServiceIDKey,
	Description: "A new API key of one service ID per job, deleted when the job's lease ends: manager_api_key may manage that service ID's API keys (IAM Identity Service: Operator on the service ID, or the account's Service ID creator role for its own IDs).",
	Fields: []providerField{
		{Name: "manager_api_key", Required: true, Secret: true},
		{Name: "account_id", Required: true},
		{Name: "service_id", Required: true},
		{Name: "key_max_ttl"},
		{Name: "iam_endpoint"},
	},
}

var (
	ibmServiceIDRegex = regexp.MustCompile(`^(iam-)?ServiceId-[0-9a-f-]{36}$`)
	ibmAccountIDRegex = regexp.MustCompile(`^[0-9a-zA-Z-]{1,64}$`)
)

// checkIBMServiceIDKey validates a write's ibm_service_id_key values.
func checkIBMServiceIDKey(values map[string]string) string {
	if !ibmServiceIDRegex.MatchString(values["service_id"]) {
		return "service_id must be a service ID (ServiceId-<uuid>) or its iam_id (iam-ServiceId-<uuid>)"
	}
	if !ibmAccountIDRegex.MatchString(values["account_id"]) {
		return "account_id must be an IBM Cloud account id (letters, digits and '-')"
	}
	if endpoint, ok := values["iam_endpoint"]; ok {
		if msg := checkIAMEndpoint(endpoint); msg != "" {
			return msg
		}
	}
	if raw, ok := values["key_max_ttl"]; ok {
		if _, msg := parseKeyMaxTTL(raw); msg != "" {
			return msg
		}
	}
	return ""
}

func parseKeyMaxTTL(raw string) (time.Duration, string) {
	ttl, err := parseutil.ParseDurationSecond(raw)
	if err != nil || ttl < ibmMinKeyTTL {
		return 0, "key_max_ttl must be a duration of at least 30s"
	}
	return ttl, ""
}

// ibmIAMID is the iam_id of a service ID.
func ibmIAMID(serviceID string) string {
	if strings.HasPrefix(serviceID, "iam-") {
		return serviceID
	}
	return "iam-" + serviceID
}

// ibmKeyTTLs are a job key's first life and its longest: asked for (or an
// hour) within key_max_ttl (default the mount's max lease TTL).
func ibmKeyTTLs(values map[string]string, asked, mountMax time.Duration) (ttl, maxTTL time.Duration, denied *logical.Response) {
	maxTTL = mountMax
	if raw, ok := values["key_max_ttl"]; ok {
		if d, msg := parseKeyMaxTTL(raw); msg == "" && (maxTTL <= 0 || d < maxTTL) {
			maxTTL = d
		}
	}
	if maxTTL <= 0 {
		maxTTL = ibmDefaultKeyTTL
	}
	ttl = asked
	switch {
	case ttl == 0:
		ttl = min(ibmDefaultKeyTTL, maxTTL)
	case ttl < ibmMinKeyTTL:
		return 0, 0, logical.ErrorResponse(fmt.Sprintf("ttl must be at least %ds for an IBM job key", int(ibmMinKeyTTL.Seconds())))
	case ttl > maxTTL:
		return 0, 0, logical.ErrorResponse(fmt.Sprintf("ttl must be at most %ds, the token's key_max_ttl or the mount's max lease TTL", int(maxTTL.Seconds())))
	}
	return ttl, maxTTL, nil
}

// ibmKeyName names a job key after the member and the job, unique by a
// random suffix: what the write-ahead log finds it by.
func ibmKeyName(member, jobID string) (string, error) {
	nonce := make([]byte, 6)
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	name := "planqk-" + awsSessionNameInvalid.ReplaceAllString(member, "_")
	if jobID != "" {
		name += "-" + jobID
	}
	return name + "-" + hex.EncodeToString(nonce), nil
}

// ibmDerivedKey records a job key handed out: which token's management
// key made it, where, and for whom. No secret.
type ibmDerivedKey struct {
	TokenKey  string    `json:"token_key"`
	KeyID     string    `json:"key_id"`
	EntityID  string    `json:"entity_id"`
	Endpoint  string    `json:"iam_endpoint,omitempty"`
	AccountID string    `json:"account_id"`
	IAMID     string    `json:"iam_id"`
	CreatedAt time.Time `json:"created_at"`
}

// madeFor reports whether token, as stored now, manages the record's key:
// an IBM derivation of the same service ID and account.
func (k *ibmDerivedKey) madeFor(token *providerTokenEntry) bool {
	if token == nil || token.Derivation == nil || token.Derivation.Method != derivationIBMServiceIDKey {
		return false
	}
	values := token.Derivation.Values
	return ibmIAMID(values["service_id"]) == k.IAMID && values["account_id"] == k.AccountID
}

// storedIBMTarget reads the provider token stored at tokenKey from storage
// (not the cache): nil when there is none.
func storedIBMTarget(ctx context.Context, s logical.Storage, tokenKey string) (*providerTokenEntry, error) {
	entry, err := s.Get(ctx, tokenKey)
	if err != nil {
		return nil, fmt.Errorf("reading the provider token of a job key: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var token providerTokenEntry
	if err := entry.DecodeJSON(&token); err != nil {
		return nil, fmt.Errorf("decoding the provider token of a job key: %w", err)
	}
	return &token, nil
}

// tokenKeyHash names a token in derived-keys/tokens/ without its path.
func tokenKeyHash(tokenKey string) string {
	sum := sha256.Sum256([]byte(tokenKey))
	return hex.EncodeToString(sum[:16])
}

func (k *ibmDerivedKey) byTokenPath() string {
	return derivedKeysByTokenPrefix + tokenKeyHash(k.TokenKey) + "/" + k.KeyID
}

func (k *ibmDerivedKey) byEntityPath() string {
	return derivedKeysByEntityPrefix + k.EntityID + "/" + k.KeyID
}

func putDerivedKey(ctx context.Context, s logical.Storage, k *ibmDerivedKey) error {
	for _, path := range []string{k.byTokenPath(), k.byEntityPath()} {
		entry, err := logical.StorageEntryJSON(path, k)
		if err != nil {
			return fmt.Errorf("encoding a job key's record: %w", err)
		}
		if err := s.Put(ctx, entry); err != nil {
			return fmt.Errorf("storing a job key's record: %w", err)
		}
	}
	return nil
}

func getDerivedKey(ctx context.Context, s logical.Storage, path string) (*ibmDerivedKey, error) {
	entry, err := s.Get(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("reading a job key's record: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var k ibmDerivedKey
	if err := entry.DecodeJSON(&k); err != nil {
		return nil, fmt.Errorf("decoding a job key's record: %w", err)
	}
	return &k, nil
}

func deleteDerivedKeyRecords(ctx context.Context, s logical.Storage, k *ibmDerivedKey) error {
	for _, path := range []string{k.byEntityPath(), k.byTokenPath()} {
		if err := s.Delete(ctx, path); err != nil {
			return fmt.Errorf("deleting a job key's record: %w", err)
		}
	}
	return nil
}

// deriveIBMServiceIDKey creates an API key of the token's service ID for
// the job: the WAL entry first, then the key, its records, and the WAL
// entry goes. The key is the job's credential under the provider's key
// field.
func (b *backend) deriveIBMServiceIDKey(ctx context.Context, s logical.Storage, usable *usableToken, r deriveRequest) (*derivedCredentials, *logical.Response, error) {
	values := usable.entry.Derivation.Values
	ttl, maxTTL, denied := ibmKeyTTLs(values, r.ttl, b.mountLeaseTTLs().MaxLeaseTTL())
	if denied != nil {
		return nil, denied, nil
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, nil, err
	}
	// The endpoint that makes the key is recorded with it: the one that
	// deletes it.
	// Checked again at use: the operator may have withdrawn it.
	if msg := cfg.checkDerivationEndpoints(usable.entry.Derivation); msg != "" {
		return nil, forbidden(fmt.Sprintf("the %s token of %s cannot be used: %s", usable.provider, usable.owner.describe(), msg)), nil
	}
	endpoint := values["iam_endpoint"]
	if endpoint == "" {
		endpoint = cfg.IAMEndpoint
	}
	c, err := newIBMIAM(endpoint, values["manager_api_key"], b.ibmBearers)
	if err != nil {
		return nil, derivationFailed(usable.provider, err.Error()), nil
	}
	name, err := ibmKeyName(r.member, r.jobID)
	if err != nil {
		return nil, nil, err
	}
	tokenKey := usable.owner.storagePrefix() + usable.provider
	w := ibmAPIKeyWAL{TokenKey: tokenKey, Endpoint: endpoint, AccountID: values["account_id"], IAMID: ibmIAMID(values["service_id"]), Name: name}
	description := fmt.Sprintf("PlanQK job key for entity %s", r.entityID)
	if r.org != "" {
		description += " in organization " + r.org
	}
	if r.jobID != "" {
		description += ", job " + r.jobID
	}
	key, walID, err := createIBMAPIKeyLogged(ctx, s, c, w, description+"; deleted when its Vault lease ends")
	if err != nil {
		// The IAM client's errors name calls and IAM's error codes, never
		// a key.
		return nil, derivationFailed(usable.provider, truncateForMessage(err.Error())), nil
	}
	now := time.Now().UTC()
	record := &ibmDerivedKey{TokenKey: tokenKey, KeyID: key.ID, EntityID: r.entityID, Endpoint: w.Endpoint, AccountID: w.AccountID, IAMID: w.IAMID, CreatedAt: now}
	if err := putDerivedKey(ctx, s, record); err != nil {
		// Nobody will hold the key: delete it now; the WAL entry stays
		// for the rollback should that fail too.
		if derr := c.deleteAPIKey(ctx, key.ID); derr == nil {
			_ = framework.DeleteWAL(ctx, s, walID)
		}
		return nil, nil, err
	}
	// The token may have been deleted or pointed at another service ID
	// while IAM made the key (derivations take no lock): its deletion or
	// rewrite lists the records a second time after storing its change,
	// so a record put before that is deleted there, and one put after it
	// sees the change here. Either way no key outlives its token.
	if current, err := storedIBMTarget(ctx, s, tokenKey); err != nil || current == nil || !record.madeFor(current) {
		if derr := c.deleteAPIKey(ctx, key.ID); derr == nil {
			_ = deleteDerivedKeyRecords(ctx, s, record)
			_ = framework.DeleteWAL(ctx, s, walID)
		}
		if err != nil {
			return nil, nil, err
		}
		return nil, respondError(http.StatusConflict, fmt.Sprintf("the %s token was changed or deleted while a job key was being made; the key was deleted, ask again", usable.provider)), nil
	}
	if err := framework.DeleteWAL(ctx, s, walID); err != nil {
		// The rollback would delete the key the job is about to hold.
		_ = c.deleteAPIKey(ctx, key.ID)
		_ = deleteDerivedKeyRecords(ctx, s, record)
		return nil, nil, err
	}
	field := "token"
	if usable.provider == "ibm-cloud" {
		field = "api_key"
	}
	return &derivedCredentials{
		values:         map[string]string{field: key.Value},
		expiresAt:      now.Add(ttl),
		renewable:      true,
		renewableUntil: now.Add(maxTTL),
		lease:          map[string]interface{}{"key_id": key.ID, "entity_id": r.entityID, "iam_id": w.IAMID},
	}, nil, nil
}

// revokeIBMServiceIDKey deletes the job key of a lease, unless revoke-all,
// offboarding or the token's deletion deleted it already.
func (b *backend) revokeIBMServiceIDKey(ctx context.Context, s logical.Storage, lease map[string]interface{}) error {
	keyID, _ := lease["key_id"].(string)
	entityID, _ := lease["entity_id"].(string)
	if keyID == "" || entityID == "" {
		return fmt.Errorf("%w: key_id or entity_id", errBadLeaseData)
	}
	record, err := getDerivedKey(ctx, s, derivedKeysByEntityPrefix+entityID+"/"+keyID)
	if err != nil || record == nil {
		return err
	}
	return b.deleteDerivedKey(ctx, s, record, nil)
}

// ibmKeyGoneRefusal refuses to renew a lease whose job key was deleted
// before it ended (revoke-all, offboarding, its token deleted or pointed
// elsewhere): its record is gone. One storage read.
func ibmKeyGoneRefusal(ctx context.Context, s logical.Storage, lease map[string]interface{}) (*logical.Response, error) {
	keyID, _ := lease["key_id"].(string)
	entityID, _ := lease["entity_id"].(string)
	if keyID == "" || entityID == "" {
		return nil, fmt.Errorf("%w: key_id or entity_id", errBadLeaseData)
	}
	record, err := getDerivedKey(ctx, s, derivedKeysByEntityPrefix+entityID+"/"+keyID)
	if err != nil {
		return nil, err
	}
	if record == nil {
		return logical.ErrorResponse("the IBM job key of this lease was deleted (revoke-all, offboarding, or its provider token was deleted or changed); it cannot be renewed"), nil
	}
	return nil, nil
}

// deleteDerivedKey deletes a job key at IAM and its records, with the
// management key of token (nil: the token stored now under the record's
// token key).
func (b *backend) deleteDerivedKey(ctx context.Context, s logical.Storage, record *ibmDerivedKey, token *providerTokenEntry) error {
	if token == nil {
		var err error
		if token, err = storedIBMTarget(ctx, s, record.TokenKey); err != nil {
			return err
		}
	}
	if token == nil || token.Derivation == nil || token.Derivation.Method != derivationIBMServiceIDKey {
		return fmt.Errorf("IBM job key %s: the provider token whose management key deletes it is gone or derives no IBM keys any more", record.KeyID)
	}
	c, err := newIBMIAM(record.Endpoint, token.Derivation.Values["manager_api_key"], b.ibmBearers)
	if err != nil {
		return fmt.Errorf("IBM job key %s: %w", record.KeyID, err)
	}
	if err := c.deleteAPIKey(ctx, record.KeyID); err != nil {
		return err
	}
	return deleteDerivedKeyRecords(ctx, s, record)
}

// deleteDerivedKeysOfToken deletes the job keys made with token, stored
// at tokenKey, with its management key: before the token is deleted or
// pointed at another service ID. It returns how many it deleted.
func (b *backend) deleteDerivedKeysOfToken(ctx context.Context, s logical.Storage, tokenKey string, token *providerTokenEntry) (int, error) {
	if token == nil || token.Derivation == nil || token.Derivation.Method != derivationIBMServiceIDKey {
		return 0, nil
	}
	prefix := derivedKeysByTokenPrefix + tokenKeyHash(tokenKey) + "/"
	keyIDs, err := s.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("listing a token's job keys: %w", err)
	}
	for i, keyID := range keyIDs {
		record, err := getDerivedKey(ctx, s, prefix+keyID)
		if err != nil {
			return i, err
		}
		// A rewrite's second pass leaves the keys of the token's new
		// service ID alone.
		if record == nil || !record.madeFor(token) {
			continue
		}
		if err := b.deleteDerivedKey(ctx, s, record, token); err != nil {
			return i, err
		}
	}
	if err := b.rollbackIBMAPIKeysOfToken(ctx, s, tokenKey, token); err != nil {
		return len(keyIDs), err
	}
	return len(keyIDs), nil
}

// rollbackIBMAPIKeysOfToken rolls back, now, the write-ahead log entries
// of keys made with token: a key made just before a crash has no record,
// and once the token is gone (or manages another service ID) Vault's
// rollback would have no management key to delete it with. A derivation
// in flight loses its key too; it answers 409 (see deriveIBMServiceIDKey).
// The log holds only entries of derivations in flight or interrupted, so
// listing it is cheap.
func (b *backend) rollbackIBMAPIKeysOfToken(ctx context.Context, s logical.Storage, tokenKey string, token *providerTokenEntry) error {
	ids, err := framework.ListWAL(ctx, s)
	if err != nil {
		return fmt.Errorf("listing the write-ahead log: %w", err)
	}
	for _, id := range ids {
		entry, err := framework.GetWAL(ctx, s, id)
		if err != nil {
			return fmt.Errorf("reading a write-ahead log entry: %w", err)
		}
		if entry == nil || entry.Kind != walKindIBMAPIKey {
			continue
		}
		w, err := parseIBMAPIKeyWAL(entry.Data)
		if err != nil || w.TokenKey != tokenKey {
			continue
		}
		if k := (&ibmDerivedKey{IAMID: w.IAMID, AccountID: w.AccountID}); !k.madeFor(token) {
			continue
		}
		c, err := newIBMIAM(w.Endpoint, token.Derivation.Values["manager_api_key"], b.ibmBearers)
		if err != nil {
			return fmt.Errorf("IBM job key %s: %w", w.Name, err)
		}
		if err := rollbackIBMAPIKey(ctx, c, w); err != nil {
			return err
		}
		if err := framework.DeleteWAL(ctx, s, id); err != nil {
			return fmt.Errorf("deleting a write-ahead log entry: %w", err)
		}
	}
	return nil
}

// deleteDerivedKeysOfEntity deletes the job keys made for the entity's
// jobs (revoke-all, offboarding). It returns how many it deleted.
func (b *backend) deleteDerivedKeysOfEntity(ctx context.Context, s logical.Storage, entityID string) (int, error) {
	prefix := derivedKeysByEntityPrefix + entityID + "/"
	keyIDs, err := s.List(ctx, prefix)
	if err != nil {
		return 0, fmt.Errorf("listing an entity's job keys: %w", err)
	}
	var errs []error
	deleted := 0
	for _, keyID := range keyIDs {
		record, err := getDerivedKey(ctx, s, prefix+keyID)
		if err == nil && record != nil {
			err = b.deleteDerivedKey(ctx, s, record, nil)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	return deleted, errors.Join(errs...)
}

// sameIBMTarget reports whether a rewritten token still manages the keys
// the old one made: the same service ID, account and endpoint.
func sameIBMTarget(old, updated *providerTokenEntry) bool {
	if updated == nil || updated.Derivation == nil || updated.Derivation.Method != derivationIBMServiceIDKey {
		return false
	}
	o, n := old.Derivation.Values, updated.Derivation.Values
	return ibmIAMID(o["service_id"]) == ibmIAMID(n["service_id"]) && o["account_id"] == n["account_id"] && o["iam_endpoint"] == n["iam_endpoint"]
}

// walRollback undoes what a crash left half done; Vault calls it for WAL
// entries older than WALRollbackMinAge.
func (b *backend) walRollback(ctx context.Context, req *logical.Request, kind string, data interface{}) error {
	switch kind {
	case walKindIBMAPIKey:
		w, err := parseIBMAPIKeyWAL(data)
		if err != nil {
			return err
		}
		token, err := storedIBMTarget(ctx, req.Storage, w.TokenKey)
		if err != nil {
			return err
		}
		if !(&ibmDerivedKey{IAMID: w.IAMID, AccountID: w.AccountID}).madeFor(token) {
			// Deleting or re-pointing the token rolled back the entries
			// it found (rollbackIBMAPIKeysOfToken); one written after
			// that by a derivation in flight that then died has no
			// management key left. Say so and let the entry go.
			b.Logger().Error("an IBM job key made before a crash cannot be rolled back: its provider token is gone or manages another service ID; delete it in IBM Cloud by name",
				"name", w.Name, "iam_id", w.IAMID)
			return nil
		}
		c, err := newIBMIAM(w.Endpoint, token.Derivation.Values["manager_api_key"], b.ibmBearers)
		if err != nil {
			return err
		}
		return rollbackIBMAPIKey(ctx, c, w)
	}
	return fmt.Errorf("unknown write-ahead log kind %q", kind)
}
