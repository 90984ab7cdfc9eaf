package backend

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/salt"
	"github.com/hashicorp/vault/sdk/logical"
)

// Leaked tokens. A secret scanner (GitHub's partner program through
// cmd/planqk-leak-receiver, gitleaks in CI, an incident responder) hands
// leaks/revoke the values it found; each active PAT among them is revoked
// at once, named or leased, its owner is told (pat-leaked), and where it
// leaked is kept under leaked/<entity id>/<token id> for leakRetention, for
// the owner's settings page and the inventory. The answer says per value
// only whether it was a live PAT: never whose.
const (
	leakedPrefix = "leaked/"
	// maxLeakBatch bounds one request: each value costs an HMAC and up to
	// six storage round trips. GitHub's batches are split by the receiver.
	maxLeakBatch = 100
	// leakRetention is how long where a token leaked stays visible after
	// its revocation; tidy removes older entries.
	leakRetention      = 90 * 24 * time.Hour
	maxLeakURLBytes    = 2048
	maxLeakSourceBytes = 64
	maxLeakTypeBytes   = 64

	// The labels of leaks/revoke, as GitHub's feedback names the first two.
	leakTruePositive  = "true_positive"  // an active PAT, now revoked
	leakFalsePositive = "false_positive" // not a PAT of this engine: prefix, length, alphabet or checksum
	leakInactive      = "inactive"       // well formed, but not active: revoked, expired, or never issued

	// withheldLeakURL replaces a url or source that holds the token itself
	// or any other well-formed PAT of the engine.
	withheldLeakURL = "(withheld: it contained a token)"
)

func leakedEntityPrefix(entityID string) string { return leakedPrefix + entityID + "/" }
func leakedPath(entityID, tokenID string) string {
	return leakedEntityPrefix(entityID) + tokenID
}

func pathLeaks(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "leaks/revoke$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "revoke",
				OperationSuffix: "leaked-tokens",
			},
			Fields: map[string]*framework.FieldSchema{
				"leaks": {
					Type:        framework.TypeSlice,
					Description: fmt.Sprintf(`The leaked values, at most %d: a list of objects {"token": "<value>", "url": "<where it was found>", "source": "<what kind of place: content, commit, ci-log...>", "type": "<the scanner's name for the secret type>"}; all but token optional. The shape of a GitHub secret-scanning alert.`, maxLeakBatch),
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathLeaksRevoke,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("One label per value, in the order given; never whose a token was.", fieldSet{
						"labels":  {Type: framework.TypeStringSlice, Description: `Per value: "true_positive" (an active PAT, now revoked), "false_positive" (not a PAT of this engine: prefix, length, alphabet or checksum), "inactive" (well formed but not active: already revoked, expired or never issued).`},
						"revoked": {Type: framework.TypeInt, Description: "How many values were active PATs and are now revoked."},
					}),
				},
			},
			HelpSynopsis:    pathLeaksRevokeHelpSynopsis,
			HelpDescription: pathLeaksRevokeHelpDescription,
		},
		{
			Pattern: "users/" + pathSegment("user") + "/leaks/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "user-leaked-tokens",
			},
			Fields: map[string]*framework.FieldSchema{"user": userNameField()},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathUserLeaks,
					Responses: okResponse("The user's tokens revoked because they leaked, within the retention.", fieldSet{
						"keys":     {Type: framework.TypeStringSlice, Description: "Token ids of the revoked tokens."},
						"key_info": {Type: framework.TypeMap, Description: "For each token id: " + leakedEntryDescription},
					}).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, emptyListDescription),
				},
			},
			HelpSynopsis:    pathUserLeaksHelpSynopsis,
			HelpDescription: pathUserLeaksHelpDescription,
		},
	}
}

const leakedEntryDescription = "kind, name, role, token_id, scopes, created_at, expires_at, revoked_at, revoked_reason (leaked), leak_url, leak_source, leak_type and reported_by. Never the value."

// leakReport is one value a scanner found, with where.
type leakReport struct {
	token  string
	url    string
	source string
	kind   string // the scanner's secret type
}

// parseLeakReports checks the whole batch before anything is revoked; the
// message names an item by its position, never by its value.
func parseLeakReports(raw interface{}) ([]leakReport, string) {
	items, ok := raw.([]interface{})
	if !ok || len(items) == 0 {
		return nil, "leaks is required: a list of objects with a token each"
	}
	if len(items) > maxLeakBatch {
		return nil, fmt.Sprintf("leaks holds %d items, at most %d are taken in one request", len(items), maxLeakBatch)
	}
	reports := make([]leakReport, 0, len(items))
	for i, item := range items {
		object, ok := item.(map[string]interface{})
		if !ok {
			return nil, fmt.Sprintf("leaks[%d] must be an object with a token", i)
		}
		var report leakReport
		for key, value := range object {
			text, ok := value.(string)
			if !ok {
				if plainKey(key) {
					return nil, fmt.Sprintf("leaks[%d].%s must be a string", i, key)
				}
				return nil, fmt.Sprintf("leaks[%d] has a value that is not a string", i)
			}
			switch key {
			case "token":
				report.token = text
			case "url":
				report.url = text
			case "source":
				report.source = text
			case "type":
				report.kind = text
			default:
				if plainKey(key) {
					return nil, fmt.Sprintf("leaks[%d] has the unknown key %q: token, url, source and type are taken", i, key)
				}
				return nil, fmt.Sprintf("leaks[%d] has an unknown key: token, url, source and type are taken", i)
			}
		}
		switch {
		case report.token == "":
			return nil, fmt.Sprintf("leaks[%d].token is required", i)
		case !printable(report.url, maxLeakURLBytes):
			return nil, fmt.Sprintf("leaks[%d].url must be printable UTF-8 of at most %d bytes", i, maxLeakURLBytes)
		case !printable(report.source, maxLeakSourceBytes):
			return nil, fmt.Sprintf("leaks[%d].source must be printable UTF-8 of at most %d bytes", i, maxLeakSourceBytes)
		case !printable(report.kind, maxLeakTypeBytes):
			return nil, fmt.Sprintf("leaks[%d].type must be printable UTF-8 of at most %d bytes", i, maxLeakTypeBytes)
		}
		// Where it leaked is shown to the owner and sent in notifications,
		// which must never carry the value: a url holding the token (one
		// leaked in a query string) is withheld.
		if strings.Contains(report.url, report.token) {
			report.url = withheldLeakURL
		}
		if strings.Contains(report.source, report.token) {
			report.source = withheldLeakURL
		}
		if strings.Contains(report.kind, report.token) {
			report.kind = ""
		}
		reports = append(reports, report)
	}
	return reports, ""
}

// plainKey reports whether a caller's key may be named in a message: a
// short word, which no token is (a PAT is at least 38 characters), so
// that a value sent as a key is never echoed into an error (and from there
// into Vault's audit log, which keeps errors in clear).
func plainKey(key string) bool {
	if key == "" || len(key) > 24 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !isWordByte(c) && c != '-' {
			return false
		}
	}
	return true
}

// holdsWellFormedToken reports whether s contains a well-formed PAT with
// the prefix anywhere: a url or source that holds one (the reported value,
// or another live token beside it) must not reach the owner's page or a
// notification.
func holdsWellFormedToken(s, prefix string) bool {
	n := len(prefix) + tokenRandomLength + tokenChecksumLength
	for start := 0; ; {
		i := strings.Index(s[start:], prefix)
		if i < 0 {
			return false
		}
		at := start + i
		if at+n <= len(s) && wellFormedToken(s[at:at+n], prefix) {
			return true
		}
		start = at + 1
	}
}

// withholdTokens withholds a url or source that holds a PAT of the engine,
// and drops such a type.
func (r *leakReport) withholdTokens(prefix string) {
	if holdsWellFormedToken(r.url, prefix) {
		r.url = withheldLeakURL
	}
	if holdsWellFormedToken(r.source, prefix) {
		r.source = withheldLeakURL
	}
	if holdsWellFormedToken(r.kind, prefix) {
		r.kind = ""
	}
}

func printable(s string, maxBytes int) bool {
	if len(s) > maxBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (b *backend) pathLeaksRevoke(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	// Strictly a list: the framework would take one object, or a string,
	// as a list of one.
	if raw, ok := req.Data["leaks"]; ok {
		if _, isList := raw.([]interface{}); !isList {
			return logical.ErrorResponse("leaks must be a list of objects with a token each"), nil
		}
	}
	reports, msg := parseLeakReports(d.Get("leaks"))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	// No key yet means no token was ever issued: nothing to revoke.
	hmacKey, err := b.getSalt(ctx, req.Storage, false)
	if err != nil {
		return nil, err
	}
	labels := make([]string, len(reports))
	revoked := 0
	for i, report := range reports {
		report.withholdTokens(cfg.TokenPrefix)
		// An error stops the batch; what was revoked stays revoked, and
		// sending the batch again answers inactive for those.
		label, err := b.revokeLeaked(ctx, req, cfg, hmacKey, report)
		if err != nil {
			return nil, fmt.Errorf("revoking leaks[%d]: %w", i, err)
		}
		labels[i] = label
		if label == leakTruePositive {
			revoked++
		}
	}
	return &logical.Response{Data: map[string]interface{}{"labels": labels, "revoked": revoked}}, nil
}

// revokeLeaked revokes the token of one report if it is an active PAT. A
// value of the wrong shape costs no storage access, an unknown one a read.
func (b *backend) revokeLeaked(ctx context.Context, req *logical.Request, cfg *configEntry, hmacKey *salt.Salt, report leakReport) (string, error) {
	if !wellFormedToken(report.token, cfg.TokenPrefix) {
		return leakFalsePositive, nil
	}
	if hmacKey == nil {
		return leakInactive, nil
	}
	hash := hmacKey.GetHMAC(report.token)
	record, err := getTokenRecord(ctx, req.Storage, hash)
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	if record == nil || record.expired(now) || !validEntityID(record.EntityID) {
		return leakInactive, nil
	}
	entityID := record.EntityID
	// For the notification; asked of Vault before the lock.
	ownerName := b.liveNameOf(ctx, req.Storage, entityID)

	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	// Again under the lock: a concurrent revocation may have won.
	if record, err = getTokenRecord(ctx, req.Storage, hash); err != nil {
		return "", err
	}
	if record == nil || record.expired(now) {
		return leakInactive, nil
	}
	if err := b.revokeLeakedLocked(ctx, req.Storage, record); err != nil {
		return "", err
	}
	entry := &leakedEntry{
		TokenID: record.TokenID, Kind: record.kind(), Name: record.Name, Role: record.Role, Scopes: cfg.effectiveScopes(record.Scopes, record.Scoped),
		CreatedAt: record.CreatedAt, ExpiresAt: record.ExpiresAt, RevokedAt: now.Truncate(time.Second),
		URL: report.url, Source: report.source, Type: report.kind, ReportedBy: req.DisplayName,
	}
	if err := putLeakedEntry(ctx, req.Storage, entityID, entry); err != nil {
		// The token is revoked; only the record of where it leaked is lost.
		b.Logger().Error("a leaked token was revoked but where it leaked could not be stored", "entity_id", entityID, "token_id", record.TokenID, "error", err)
	}
	event := patEvent(eventPATLeaked, entityID, ownerName, record)
	event.Details["reason"] = "leaked"
	event.Details["url"] = report.url
	event.Details["source"] = report.source
	event.Details["revoked_at"] = formatTime(entry.RevokedAt)
	b.notify(ctx, req.Storage, event)
	b.Logger().Warn("revoked a leaked personal access token", "entity_id", entityID, "token_id", record.TokenID, "kind", record.kind(), "source", report.source, "reported_by", req.DisplayName)
	return leakTruePositive, nil
}

// revokeLeakedLocked deletes the token: a named one from its owner's index
// too, a leased one with its marker (its Vault lease then ends finding
// nothing to revoke). The caller holds the entity's lock.
func (b *backend) revokeLeakedLocked(ctx context.Context, s logical.Storage, record *tokenRecord) error {
	entityID := record.EntityID
	if record.Role != "" {
		leases, counted := b.leaseCounts.get(entityID)
		if err := b.revokeLease(ctx, s, entityID, record.Hash); err != nil {
			return err
		}
		if counted && leases > 0 {
			b.leaseCounts.set(entityID, leases-1)
		}
		return nil
	}
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return err
	}
	if summary := index.Tokens[record.Name]; summary != nil && summary.Hash == record.Hash {
		_, err := b.revokeNamedToken(ctx, s, entityID, index, record.Name)
		return err
	}
	// A record its index no longer lists (left by a crash): it still
	// verified, so it goes.
	if err := deleteTokenRecord(ctx, s, record.Hash); err != nil {
		return err
	}
	b.records.remove(record.Hash)
	return nil
}

// leakedEntry is a token revoked because it leaked, kept for
// leakRetention under leaked/<entity id>/<token id>.
type leakedEntry struct {
	TokenID    string    `json:"token_id"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Role       string    `json:"role,omitempty"`
	Scopes     []string  `json:"scopes,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RevokedAt  time.Time `json:"revoked_at"`
	URL        string    `json:"url,omitempty"`
	Source     string    `json:"source,omitempty"`
	Type       string    `json:"type,omitempty"`
	ReportedBy string    `json:"reported_by,omitempty"`
}

func (e *leakedEntry) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"kind":           e.Kind,
		"name":           e.Name,
		"role":           e.Role,
		"token_id":       e.TokenID,
		"scopes":         nonNil(e.Scopes),
		"created_at":     formatTime(e.CreatedAt),
		"expires_at":     formatTime(e.ExpiresAt),
		"revoked_at":     formatTime(e.RevokedAt),
		"revoked_reason": "leaked",
		"leak_url":       e.URL,
		"leak_source":    e.Source,
		"leak_type":      e.Type,
		"reported_by":    e.ReportedBy,
	}
}

func putLeakedEntry(ctx context.Context, s logical.Storage, entityID string, entry *leakedEntry) error {
	stored, err := logical.StorageEntryJSON(leakedPath(entityID, entry.TokenID), entry)
	if err != nil {
		return fmt.Errorf("encoding leaked token entry: %w", err)
	}
	if err := s.Put(ctx, stored); err != nil {
		return fmt.Errorf("storing leaked token entry: %w", err)
	}
	return nil
}

func getLeakedEntry(ctx context.Context, s logical.Storage, entityID, tokenID string) (*leakedEntry, error) {
	stored, err := s.Get(ctx, leakedPath(entityID, tokenID))
	if err != nil {
		return nil, fmt.Errorf("reading leaked token entry: %w", err)
	}
	if stored == nil {
		return nil, nil
	}
	var entry leakedEntry
	if err := stored.DecodeJSON(&entry); err != nil {
		return nil, fmt.Errorf("decoding leaked token entry: %w", err)
	}
	return &entry, nil
}

// leakedEntries returns the entity's leaked tokens still within the
// retention, sorted by token id: a list and a read each.
func leakedEntries(ctx context.Context, s logical.Storage, entityID string, now time.Time) ([]*leakedEntry, error) {
	ids, err := s.List(ctx, leakedEntityPrefix(entityID))
	if err != nil {
		return nil, fmt.Errorf("listing leaked tokens: %w", err)
	}
	sort.Strings(ids)
	var entries []*leakedEntry
	for _, id := range ids {
		entry, err := getLeakedEntry(ctx, s, entityID, id)
		if err != nil {
			return nil, err
		}
		if entry != nil && now.Sub(entry.RevokedAt) < leakRetention {
			entries = append(entries, entry)
		}
	}
	return entries, nil
}

// leakedInventoryTokens returns the entity's leaked tokens as the
// inventory lists them, sorted by key.
func leakedInventoryTokens(ctx context.Context, s logical.Storage, entityID string, now time.Time) ([]*inventoryToken, error) {
	entries, err := leakedEntries(ctx, s, entityID, now)
	if err != nil {
		return nil, err
	}
	tokens := make([]*inventoryToken, 0, len(entries))
	for _, entry := range entries {
		tokens = append(tokens, &inventoryToken{
			key: entityID + "/leaked/" + entry.TokenID, entityID: entityID, kind: entry.Kind, name: entry.Name, role: entry.Role,
			tokenID: entry.TokenID, scopes: entry.Scopes, createdAt: entry.CreatedAt, expiresAt: entry.ExpiresAt, leak: entry,
		})
	}
	return tokens, nil
}

// listLeakedEntities returns the entities with leaked tokens on record.
func listLeakedEntities(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, leakedPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing entities with leaked tokens: %w", err)
	}
	ids := make([]string, 0, len(keys))
	for _, key := range keys {
		if id := strings.TrimSuffix(key, "/"); validEntityID(id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// pruneLeaked deletes leaked-token entries older than leakRetention; tidy
// runs it. Entries are written once and only deleted here, so no lock is
// needed.
func pruneLeaked(ctx context.Context, s logical.Storage, now time.Time) (int, error) {
	entities, err := listLeakedEntities(ctx, s)
	if err != nil {
		return 0, err
	}
	pruned := 0
	for _, entityID := range entities {
		ids, err := s.List(ctx, leakedEntityPrefix(entityID))
		if err != nil {
			return pruned, fmt.Errorf("listing leaked tokens: %w", err)
		}
		for _, id := range ids {
			entry, err := getLeakedEntry(ctx, s, entityID, id)
			if err != nil {
				return pruned, err
			}
			if entry != nil && now.Sub(entry.RevokedAt) < leakRetention {
				continue
			}
			if err := s.Delete(ctx, leakedPath(entityID, id)); err != nil {
				return pruned, fmt.Errorf("deleting leaked token entry: %w", err)
			}
			pruned++
		}
	}
	return pruned, nil
}

// pathUserLeaks lists the user's tokens revoked because they leaked, for
// the owner's settings page.
func (b *backend) pathUserLeaks(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil || target.owner == nil {
		return denied, err
	}
	entries, err := leakedEntries(ctx, req.Storage, target.entityID(), time.Now())
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(entries))
	keyInfo := make(map[string]interface{}, len(entries))
	for _, entry := range entries {
		keys = append(keys, entry.TokenID)
		keyInfo[entry.TokenID] = entry.toResponseData()
	}
	return logical.ListResponseWithInfo(keys, keyInfo), nil
}

const pathLeaksRevokeHelpSynopsis = `Revoke leaked personal access tokens by value, for secret scanners and incident responders.`

const pathLeaksRevokeHelpDescription = `
Takes the values a scanner found (at most 100 a request) with where each
was found, and revokes every one that is an active PAT of this engine,
named or leased, at once. The answer has one label per value, in order:
true_positive (was active, now revoked), false_positive (not a PAT of this
engine: wrong prefix, length, alphabet or checksum; checked without storage)
or inactive (well formed, but already revoked, expired or never issued).
It never says whose a token was. Sending the same values again revokes
nothing more and answers inactive.

For each revoked token the owner is told (a pat-leaked notification with
the token's id and name, the url and the source, never the value), and the
url and source are kept with the token's id for 90 days: the owner sees
them at users/<user>/leaks, security teams at
inventory/tokens?revoked_reason=leaked. A url or source that contains the
token itself, or any other well-formed PAT of this engine, is withheld. A
leased token's Vault lease stays listed until it ends; its token no longer
verifies.

The values are in the request body only. Vault's audit devices HMAC them
like every string of a request; the engine never logs them, never puts
them in an error or a notification. Grant it with the planqk-scanner policy.

  vault write planqk/leaks/revoke - <<EOF
  {"leaks": [{"token": "plqk_...", "url": "https://github.com/o/r/blob/c/f", "source": "content"}]}
  EOF
`

const pathUserLeaksHelpSynopsis = `A user's tokens revoked because they leaked, with where they leaked.`

const pathUserLeaksHelpDescription = `
Lists, by token id, the user's tokens that leaks/revoke revoked in the last
90 days: ` + leakedEntryDescription + `
A user lists their own; platform admins anyone's.

  vault list -format=json planqk/users/alice/leaks
`
