package backend

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The inventory answers a security team's questions - which tokens exist,
// whose, with what scopes, expiring when, last used when - without ever
// showing a secret, a hint of one, or a token's HMAC.
const (
	defaultInventoryLimit = 100
	maxInventoryLimit     = 1000
	// inventoryEntityBudget bounds the owners one page reads, so that a
	// page with a selective filter costs a bounded amount; such a page may
	// hold fewer than limit tokens and still have a next_after.
	inventoryEntityBudget = 100
	// recountPath keeps the last recount's result.
	recountPath = "inventory/recount"
	// recountWait is how long a read of the counts waits for a recount
	// it started before it answers with the last one.
	recountWait = 2 * time.Second
	// unusedAfter is the "unused for 90 days" of the counts.
	unusedAfter = 90 * 24 * time.Hour
	// afterEverything sorts after every key of an owner: names and ids use
	// no character above 'z'.
	afterEverything = "~"
)

func pathInventory(b *backend) []*framework.Path {
	paging := map[string]*framework.FieldSchema{
		"after": {
			Type:        framework.TypeString,
			Description: "Start after this key: the next_after of the previous page.",
			Query:       true,
		},
		"limit": {
			Type:        framework.TypeInt,
			Description: fmt.Sprintf("Most keys in one page (default %d, at most %d).", defaultInventoryLimit, maxInventoryLimit),
			Query:       true,
		},
	}
	tokenFields := map[string]*framework.FieldSchema{
		"user":            {Type: framework.TypeString, Description: "Only this user's tokens (the entity's current name).", Query: true},
		"kind":            {Type: framework.TypeString, Description: `Only "named" or only "lease" tokens.`, Query: true},
		"scope":           {Type: framework.TypeString, Description: "Only tokens holding this scope.", Query: true},
		"expiring_within": {Type: framework.TypeDurationSecond, Description: "Only live tokens that expire within this duration.", Query: true},
		"unused_for":      {Type: framework.TypeDurationSecond, Description: "Only tokens not used for this long (never used and older than it, or last used before it).", Query: true},
		"expired":         {Type: framework.TypeString, Description: `"true": only expired tokens awaiting tidy; "false": only live ones; empty: both.`, Query: true},
		"revoked_reason":  {Type: framework.TypeString, Description: `"leaked": instead of live tokens, the tokens leaks/revoke revoked in the last 90 days, with where they leaked.`, Query: true},
	}
	for name, field := range paging {
		tokenFields[name] = field
	}
	return []*framework.Path{
		{
			Pattern: "inventory$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "read",
				OperationSuffix: "inventory",
			},
			Fields: map[string]*framework.FieldSchema{
				"refresh": {Type: framework.TypeBool, Description: "Count now instead of reusing counts up to a minute old.", Query: true},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathInventoryRead,
					Responses: okResponse("The counts; each group is an object of counts or names, as the help describes.", inventoryCountsFields),
				},
			},
			HelpSynopsis:    pathInventoryHelpSynopsis,
			HelpDescription: pathInventoryHelpDescription,
		},
		{
			Pattern: "inventory/tokens/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "inventory-tokens",
			},
			Fields: tokenFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathInventoryTokens,
					Responses: okResponse("A page of tokens.", inventoryPageFields(
						"Keys of the page's tokens in order: <entity id>/named/<name> and <entity id>/lease/<token id>.",
						"For each key: user, entity_id, owner_state (active, disabled, deleted), kind, name, role, token_id, scopes, created_at, expires_at and last_used_at (empty if never used). Never a secret or an HMAC.",
					)),
				},
			},
			HelpSynopsis:    pathInventoryTokensHelpSynopsis,
			HelpDescription: pathInventoryTokensHelpDescription,
		},
		{
			Pattern: "inventory/provider-tokens/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "inventory-provider-tokens",
			},
			Fields: paging,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathInventoryProviderTokens,
					Responses: okResponse("A page of provider tokens.", inventoryPageFields(
						"Keys of the page's provider tokens in order: orgs/<org id>/<provider>, unclaimed/<name>/<provider>, unclaimed-orgs/<org name>/<provider> and users/<entity id>/<provider>.",
						"For each key: owner_kind (user, organization, unclaimed), owner, entity_id, provider, version, created_at, updated_at, updated_by, expires_at (empty if not given), last_used_at, last_used_by and last_used_by_name (the entity id and live name of the member whose job last used it; empty if never). No secret, no hint.",
					)),
				},
			},
			HelpSynopsis:    pathInventoryProviderTokensHelpSynopsis,
			HelpDescription: pathInventoryProviderTokensHelpDescription,
		},
	}
}

// inventoryPageFields describe a page of an inventory list; keys and
// key_info are absent from an empty page.
func inventoryPageFields(keys, keyInfo string) fieldSet {
	return fieldSet{
		"keys":       {Type: framework.TypeStringSlice, Description: keys},
		"key_info":   {Type: framework.TypeMap, Description: keyInfo},
		"next_after": {Type: framework.TypeString, Description: "Where the next page starts (its after); empty when there is no more."},
	}
}

// inventoryCountsFields describe the inventory's counts.
var inventoryCountsFields = fieldSet{
	"computed_at":     {Type: framework.TypeTime, Description: "When the last recount finished (RFC 3339), which made tokens, owners and orphans; empty before the first."},
	"stored":          {Type: framework.TypeMap, Description: "Counts kept as writes happen, exact now without reading any owner: named_tokens and leased_tokens stored (expired ones included until tidy removes them)."},
	"recount":         {Type: framework.TypeMap, Description: "The running or last recount: state (idle, running, finished, error), started_at, finished_at, error, and drift - what the kept counts held minus what the recount found (nonzero only after interrupted writes), by named_tokens, leased_tokens, provider_tokens_by_provider and provider_tokens_by_owner_kind."},
	"tokens":          {Type: framework.TypeMap, Description: "Counts of tokens: active_named, active_leases, expiring_within (by expiry_notices threshold), unused_for_90_days, expired_awaiting_tidy, of_inactive_owners."},
	"owners":          {Type: framework.TypeMap, Description: "Counts of owner entities by state: active, disabled, deleted."},
	"provider_tokens": {Type: framework.TypeMap, Description: "Counts of provider tokens, kept as writes happen: by_provider and by_owner_kind (user, organization, unclaimed)."},
	"orphans":         {Type: framework.TypeMap, Description: "Lists: deleted_owner_entities, organizations_without_a_known_member, unclaimed_provider_tokens_from_v0_1_0."},
}

// inventoryToken is one token as the inventory shows it.
type inventoryToken struct {
	key        string
	entityID   string
	kind       string
	name       string
	role       string
	tokenID    string
	scopes     []string
	createdAt  time.Time
	expiresAt  time.Time
	lastUsedAt time.Time
	// leak is set for a token revoked because it leaked.
	leak *leakedEntry
}

func (t *inventoryToken) toResponseData(owner *ownerState) map[string]interface{} {
	if t.leak != nil {
		data := t.leak.toResponseData()
		data["user"], data["entity_id"], data["owner_state"] = owner.name, t.entityID, owner.state
		return data
	}
	return map[string]interface{}{
		"user":         owner.name,
		"entity_id":    t.entityID,
		"owner_state":  owner.state,
		"kind":         t.kind,
		"name":         t.name,
		"role":         t.role,
		"token_id":     t.tokenID,
		"scopes":       t.scopes,
		"created_at":   formatTime(t.createdAt),
		"expires_at":   formatTime(t.expiresAt),
		"last_used_at": formatOptionalTime(t.lastUsedAt),
	}
}

// ownerState is an owner entity as the identity store describes it now.
type ownerState struct {
	name  string // live name, or the name last seen for a deleted entity
	state string // "active", "disabled" or "deleted"
}

func (b *backend) ownerStateOf(ctx context.Context, s logical.Storage, entityID string) (*ownerState, error) {
	id, err := b.lookupIdentity(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	switch {
	case id == nil:
		return &ownerState{name: b.liveNameOf(ctx, s, entityID), state: "deleted"}, nil
	case id.disabled:
		return &ownerState{name: id.name, state: "disabled"}, nil
	}
	return &ownerState{name: id.name, state: "active"}, nil
}

// entityTokens returns every token of the entity, sorted by key: its index
// and its lease markers, one read and one list plus a read per lease.
func entityTokens(ctx context.Context, s logical.Storage, cfg *configEntry, entityID string) ([]*inventoryToken, error) {
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	markers, err := entityLeaseMarkers(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	return inventoryTokensOf(cfg, entityID, index, markers), nil
}

// entityLeaseMarkers reads every lease marker of the entity.
func entityLeaseMarkers(ctx context.Context, s logical.Storage, entityID string) ([]*leaseMarker, error) {
	hashes, err := listLeaseHashes(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	markers := make([]*leaseMarker, 0, len(hashes))
	for _, hash := range hashes {
		marker, err := getLeaseMarker(ctx, s, entityID, hash)
		if err != nil {
			return nil, err
		}
		if marker != nil {
			markers = append(markers, marker)
		}
	}
	return markers, nil
}

// inventoryTokensOf returns the tokens of an index and lease markers,
// sorted by key.
func inventoryTokensOf(cfg *configEntry, entityID string, index *tokenIndex, markers []*leaseMarker) []*inventoryToken {
	var tokens []*inventoryToken
	for name, summary := range index.Tokens {
		tokens = append(tokens, &inventoryToken{
			key: entityID + "/named/" + name, entityID: entityID, kind: tokenKindNamed, name: name,
			tokenID: summary.TokenID, scopes: cfg.effectiveScopes(summary.Scopes, summary.Scoped),
			createdAt: summary.CreatedAt, expiresAt: summary.ExpiresAt, lastUsedAt: summary.LastUsedAt,
		})
	}
	for _, marker := range markers {
		tokens = append(tokens, &inventoryToken{
			key: entityID + "/lease/" + marker.TokenID, entityID: entityID, kind: tokenKindLease, name: marker.Role, role: marker.Role,
			tokenID: marker.TokenID, scopes: cfg.effectiveScopes(marker.Scopes, marker.Scoped),
			createdAt: marker.CreatedAt, expiresAt: marker.ExpiresAt, lastUsedAt: marker.LastUsedAt,
		})
	}
	sort.Slice(tokens, func(i, j int) bool { return tokens[i].key < tokens[j].key })
	return tokens
}

// tokenFilter is what inventory/tokens was asked to keep.
type tokenFilter struct {
	kind           string
	scope          string
	expiringWithin time.Duration
	unusedFor      time.Duration
	expired        string
}

func (f *tokenFilter) keeps(t *inventoryToken, now time.Time) bool {
	expired := !now.Before(t.expiresAt)
	switch {
	case f.kind != "" && t.kind != f.kind:
		return false
	case f.scope != "" && !slices.Contains(t.scopes, f.scope):
		return false
	case f.expired == "true" && !expired, f.expired == "false" && expired:
		return false
	case f.expiringWithin > 0 && (expired || t.expiresAt.Sub(now) > f.expiringWithin):
		return false
	case f.unusedFor > 0 && !unusedFor(t, now, f.unusedFor):
		return false
	}
	return true
}

// unusedFor reports whether the token went unused for d: never used and
// older than d, or last used more than d ago.
func unusedFor(t *inventoryToken, now time.Time, d time.Duration) bool {
	if t.lastUsedAt.IsZero() {
		return now.Sub(t.createdAt) >= d
	}
	return now.Sub(t.lastUsedAt) >= d
}

// page reads the limit and after of a paged list; the message names what
// is wrong.
func page(d *framework.FieldData) (after string, limit int, msg string) {
	limit = d.Get("limit").(int)
	switch {
	case limit == 0:
		limit = defaultInventoryLimit
	case limit < 0 || limit > maxInventoryLimit:
		return "", 0, fmt.Sprintf("limit must be between 1 and %d", maxInventoryLimit)
	}
	return d.Get("after").(string), limit, ""
}

func (b *backend) pathInventoryTokens(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	after, limit, msg := page(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	filter := &tokenFilter{
		kind:           d.Get("kind").(string),
		scope:          d.Get("scope").(string),
		expiringWithin: time.Duration(d.Get("expiring_within").(int)) * time.Second,
		unusedFor:      time.Duration(d.Get("unused_for").(int)) * time.Second,
		expired:        d.Get("expired").(string),
	}
	switch {
	case filter.kind != "" && filter.kind != tokenKindNamed && filter.kind != tokenKindLease:
		return logical.ErrorResponse(`kind must be "named" or "lease"`), nil
	case filter.expired != "" && filter.expired != "true" && filter.expired != "false":
		return logical.ErrorResponse(`expired must be "true" or "false"`), nil
	case filter.expiringWithin < 0 || filter.unusedFor < 0:
		return logical.ErrorResponse("expiring_within and unused_for must not be negative"), nil
	}
	leaked := false
	switch d.Get("revoked_reason").(string) {
	case "":
	case "leaked":
		if filter.expired != "" || filter.expiringWithin != 0 || filter.unusedFor != 0 {
			return logical.ErrorResponse("revoked_reason=leaked lists revoked tokens: expired, expiring_within and unused_for do not apply"), nil
		}
		leaked = true
	default:
		return logical.ErrorResponse(`revoked_reason must be "leaked"`), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}

	var entities []string
	if user := d.Get("user").(string); user != "" {
		if msg := checkNames(userName(user)); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
		owner, err := b.entityOfUser(ctx, req.Storage, user)
		if err != nil {
			return nil, err
		}
		if owner != nil {
			entities = []string{owner.entityID}
		}
	} else if leaked {
		if entities, err = listLeakedEntities(ctx, req.Storage); err != nil {
			return nil, err
		}
		sort.Strings(entities)
	} else {
		// Shared with the pages asked for at the same time, and sorted:
		// read only.
		if entities, err = b.ownerListing.list(ctx, req.Storage); err != nil {
			return nil, err
		}
	}
	afterEntity, _, _ := strings.Cut(after, "/")

	now := time.Now()
	keys := make([]string, 0, limit)
	keyInfo := make(map[string]interface{}, limit)
	next, scanned, lastEntity := "", 0, ""
	for _, entityID := range entities {
		if entityID < afterEntity || next != "" {
			continue
		}
		if scanned == inventoryEntityBudget {
			// More owners remain: the next page starts after the last one read.
			next = lastEntity + "/" + afterEverything
			break
		}
		scanned++
		lastEntity = entityID
		var tokens []*inventoryToken
		if leaked {
			tokens, err = leakedInventoryTokens(ctx, req.Storage, entityID, now)
		} else {
			tokens, err = entityTokens(ctx, req.Storage, cfg, entityID)
		}
		if err != nil {
			return nil, err
		}
		var owner *ownerState
		for _, token := range tokens {
			if token.key <= after || !filter.keeps(token, now) {
				continue
			}
			if owner == nil {
				if owner, err = b.ownerStateOf(ctx, req.Storage, entityID); err != nil {
					return nil, err
				}
			}
			keys = append(keys, token.key)
			keyInfo[token.key] = token.toResponseData(owner)
			if len(keys) == limit {
				next = token.key
				break
			}
		}
	}
	resp := logical.ListResponseWithInfo(keys, keyInfo)
	resp.Data["next_after"] = next
	return resp, nil
}

// inventoryProviderToken is one provider token as the inventory shows it.
type inventoryProviderToken struct {
	key       string
	ownerKind string // "user", "organization" or "unclaimed"
	owner     string
	entityID  string
	entry     *providerTokenEntry
}

func (t *inventoryProviderToken) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"owner_kind": t.ownerKind,
		"owner":      t.owner,
		"entity_id":  t.entityID,
		"provider":   t.entry.Provider,
		"version":    t.entry.Version,
		"created_at": formatTime(t.entry.CreatedAt),
		"updated_at": formatTime(t.entry.UpdatedAt),
		"updated_by": t.entry.UpdatedBy,
		"expires_at": formatOptionalTime(t.entry.ExpiresAt),
		// The live name is added by the list (namedLastUse).
		"last_used_at": formatOptionalTime(t.entry.LastUsedAt),
		"last_used_by": t.entry.LastUsedBy,
	}
}

// providerTokenGroups lists, in key order, the storage prefixes holding
// provider tokens and how the inventory names their owners.
func (b *backend) providerTokenGroups(ctx context.Context, s logical.Storage) ([]providerTokenGroup, error) {
	var groups []providerTokenGroup
	for _, family := range []struct{ kind, listPrefix, keyPrefix string }{
		{"organization", orgProviderTokensPrefix, "orgs/"},
		{"unclaimed", unclaimedProviderTokenPrefix, "unclaimed/"},
		{"unclaimed", unclaimedOrgProviderTokenPrefix, "unclaimed-orgs/"},
		{"user", providerTokenPrefix + "entities/", "users/"},
	} {
		owners, err := s.List(ctx, family.listPrefix)
		if err != nil {
			return nil, fmt.Errorf("listing provider token owners: %w", err)
		}
		for _, owner := range owners {
			owner = strings.TrimSuffix(owner, "/")
			groups = append(groups, providerTokenGroup{
				kind: family.kind, owner: owner, storagePrefix: family.listPrefix + owner + "/", keyPrefix: family.keyPrefix + owner + "/",
			})
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i].keyPrefix < groups[j].keyPrefix })
	return groups, nil
}

type providerTokenGroup struct {
	kind          string
	owner         string // organization id, entity id, or the user or organization name tokens were kept under before ids
	storagePrefix string
	keyPrefix     string
}

func (b *backend) pathInventoryProviderTokens(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	after, limit, msg := page(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	groups, err := b.providerTokenGroups(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, limit)
	keyInfo := make(map[string]interface{}, limit)
	next, scanned, lastGroup := "", 0, ""
	for _, group := range groups {
		if group.keyPrefix+afterEverything <= after || next != "" {
			continue
		}
		if scanned == inventoryEntityBudget {
			// More owners remain: the next page starts after the last one read.
			next = lastGroup + afterEverything
			break
		}
		scanned++
		lastGroup = group.keyPrefix
		providers, err := req.Storage.List(ctx, group.storagePrefix)
		if err != nil {
			return nil, fmt.Errorf("listing provider tokens: %w", err)
		}
		sort.Strings(providers)
		for _, provider := range providers {
			key := group.keyPrefix + provider
			if key <= after {
				continue
			}
			entry, err := getProviderToken(ctx, req.Storage, group.storagePrefix, provider)
			if err != nil {
				return nil, err
			}
			if entry == nil {
				continue
			}
			item := &inventoryProviderToken{key: key, ownerKind: group.kind, owner: group.owner, entry: entry}
			switch group.kind {
			case "user":
				item.entityID = group.owner
				item.owner = b.liveNameOf(ctx, req.Storage, group.owner)
			case "organization":
				if item.owner, err = b.orgNameOf(ctx, req.Storage, group.owner); err != nil {
					return nil, err
				}
			}
			keys = append(keys, key)
			keyInfo[key] = b.namedLastUse(ctx, req.Storage, item.toResponseData())
			if len(keys) == limit {
				next = key
				break
			}
		}
	}
	resp := logical.ListResponseWithInfo(keys, keyInfo)
	resp.Data["next_after"] = next
	return resp, nil
}

// inventoryFigures are the counts that depend on the time and on each
// owner's state in Vault, made by the last recount.
type inventoryFigures struct {
	ActiveNamed        int            `json:"active_named"`
	ActiveLeases       int            `json:"active_leases"`
	ExpiringWithin     map[string]int `json:"expiring_within"`
	UnusedFor90Days    int            `json:"unused_for_90_days"`
	ExpiredAwaiting    int            `json:"expired_awaiting_tidy"`
	OfInactiveOwners   int            `json:"of_inactive_owners"`
	Owners             map[string]int `json:"owners"`
	DeletedOwners      []string       `json:"deleted_owners,omitempty"`
	OrgsWithoutMembers []string       `json:"orgs_without_members,omitempty"`
	Unclaimed          []string       `json:"unclaimed,omitempty"`
}

// recountResult is what the last recount found and corrected.
type recountResult struct {
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Figures    *inventoryFigures `json:"figures"`
	// Drift is what the counters held minus what the recount found.
	Drift *countShard `json:"drift"`
}

// countsCache is the last recount (also stored at recountPath, so that it
// survives a restart or a failover) and the one running on this node.
type countsCache struct {
	mu      sync.Mutex
	loaded  bool
	last    *recountResult
	running bool
	started time.Time
	lastErr error
	done    chan struct{}
}

// recountError is why the last recount failed; nil if it did not.
func (b *backend) recountError() error {
	b.counts.mu.Lock()
	defer b.counts.mu.Unlock()
	return b.counts.lastErr
}

func (c *countsCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded, c.last = false, nil
}

// lastRecount returns the last recount's result, nil if none finished.
func (b *backend) lastRecount(ctx context.Context, s logical.Storage) (*recountResult, error) {
	b.counts.mu.Lock()
	defer b.counts.mu.Unlock()
	if b.counts.loaded {
		return b.counts.last, nil
	}
	entry, err := s.Get(ctx, recountPath)
	if err != nil {
		return nil, fmt.Errorf("reading the last recount: %w", err)
	}
	var last *recountResult
	if entry != nil {
		last = &recountResult{}
		if err := entry.DecodeJSON(last); err != nil {
			return nil, fmt.Errorf("decoding the last recount: %w", err)
		}
	}
	b.counts.last, b.counts.loaded = last, true
	return last, nil
}

// startRecount starts a recount in the background unless one runs, and
// returns a channel closed when the running one ends and whether it
// started this one. With rebuild the recount also writes every subject's
// due entry, forgetting which this node remembers writing.
func (b *backend) startRecount(s logical.Storage, rebuild bool) (<-chan struct{}, bool) {
	b.counts.mu.Lock()
	defer b.counts.mu.Unlock()
	if b.counts.running {
		return b.counts.done, false
	}
	done := make(chan struct{})
	b.counts.running, b.counts.done, b.counts.started = true, done, time.Now().UTC()
	go func() {
		defer close(done)
		// The request's context ends with the request; the recount runs on.
		result, err := b.recount(context.Background(), s, time.Now(), rebuild)
		b.counts.mu.Lock()
		defer b.counts.mu.Unlock()
		b.counts.running, b.counts.lastErr = false, err
		if err != nil {
			b.Logger().Error("recounting the inventory failed", "error", err)
			return
		}
		b.counts.last, b.counts.loaded = result, true
	}()
	return done, true
}

// recountNow runs a recount of its own to the end and returns its error.
func (b *backend) recountNow(s logical.Storage, rebuild bool) error {
	for {
		done, started := b.startRecount(s, rebuild)
		<-done
		if started {
			return b.recountError()
		}
	}
}

// recountStatus describes the running or last recount.
func (b *backend) recountStatus(last *recountResult) map[string]interface{} {
	b.counts.mu.Lock()
	defer b.counts.mu.Unlock()
	status := map[string]interface{}{"state": "idle", "started_at": "", "finished_at": "", "error": "", "drift": map[string]interface{}{}}
	if last != nil {
		status["state"] = "finished"
		status["started_at"], status["finished_at"] = formatTime(last.StartedAt), formatTime(last.FinishedAt)
		status["drift"] = countsData(last.Drift)
	}
	if b.counts.lastErr != nil {
		status["state"], status["error"] = "error", b.counts.lastErr.Error()
	}
	if b.counts.running {
		status["state"], status["started_at"], status["finished_at"] = "running", formatTime(b.counts.started), ""
	}
	return status
}

// countsData describes counter values (or a drift) as the API shows them.
func countsData(c *countShard) map[string]interface{} {
	if c == nil {
		c = &countShard{}
	}
	byProvider := make(map[string]int)
	byOwnerKind := map[string]int{ownerKindUser: 0, ownerKindOrganization: 0, ownerKindUnclaimed: 0}
	for kind, providers := range c.ProviderTokens {
		for provider, n := range providers {
			byProvider[provider] += n
			byOwnerKind[kind] += n
		}
	}
	return map[string]interface{}{
		"named_tokens":                  c.Named,
		"leased_tokens":                 c.Leases,
		"provider_tokens_by_provider":   byProvider,
		"provider_tokens_by_owner_kind": byOwnerKind,
	}
}

func (b *backend) pathInventoryRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	last, err := b.lastRecount(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if d.Get("refresh").(bool) || last == nil {
		// A small mount's recount is answered at once; a large one's
		// runs on in the background while this answer uses the last.
		done, _ := b.startRecount(req.Storage, false)
		select {
		case <-done:
		case <-time.After(recountWait):
		case <-ctx.Done():
		}
		if last, err = b.lastRecount(ctx, req.Storage); err != nil {
			return nil, err
		}
	}
	stored, err := b.storedCounts(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	figures := &inventoryFigures{Owners: map[string]int{"active": 0, "disabled": 0, "deleted": 0}, ExpiringWithin: make(map[string]int)}
	computedAt := ""
	if last != nil && last.Figures != nil {
		figures, computedAt = last.Figures, formatTime(last.FinishedAt)
	}
	expiring := make(map[string]int, len(cfg.ExpiryNotices))
	for _, threshold := range cfg.ExpiryNotices {
		expiring[threshold.String()] = figures.ExpiringWithin[threshold.String()]
	}
	live := countsData(stored)
	return &logical.Response{Data: map[string]interface{}{
		"computed_at": computedAt,
		"tokens": map[string]interface{}{
			"active_named":          figures.ActiveNamed,
			"active_leases":         figures.ActiveLeases,
			"expiring_within":       expiring,
			"unused_for_90_days":    figures.UnusedFor90Days,
			"expired_awaiting_tidy": figures.ExpiredAwaiting,
			"of_inactive_owners":    figures.OfInactiveOwners,
		},
		"owners": figures.Owners,
		"provider_tokens": map[string]interface{}{
			"by_provider":   live["provider_tokens_by_provider"],
			"by_owner_kind": live["provider_tokens_by_owner_kind"],
		},
		"orphans": map[string]interface{}{
			"deleted_owner_entities":                nonNil(figures.DeletedOwners),
			"organizations_without_a_known_member":  nonNil(figures.OrgsWithoutMembers),
			"unclaimed_provider_tokens_from_v0_1_0": nonNil(figures.Unclaimed),
		},
		"stored":  map[string]interface{}{"named_tokens": stored.Named, "leased_tokens": stored.Leases},
		"recount": b.recountStatus(last),
	}}, nil
}

// recount reads every owner, organization and unclaimed provider token
// once: it makes the figures that depend on time and identity, sets the
// counters to what it finds (correcting the drift an interrupted write
// left, reported), and writes each subject's due entry, so that it also
// builds an upgraded mount's due index and repairs it (tidy repair=true).
// Writers go on meanwhile: each subject is counted under its lock.
func (b *backend) recount(ctx context.Context, s logical.Storage, now time.Time, rebuild bool) (*recountResult, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	built, err := b.dueIndexBuilt(ctx, s)
	if err != nil {
		return nil, err
	}
	if rebuild = rebuild || !built; rebuild {
		b.dueMarks.purge()
	}
	entities, err := listOwnerEntities(ctx, s)
	if err != nil {
		return nil, err
	}
	// Provider tokens of an entity with no other entry are counted too.
	userTokenOwners, err := s.List(ctx, providerTokenPrefix+"entities/")
	if err != nil {
		return nil, fmt.Errorf("listing provider token owners: %w", err)
	}
	seen := make(map[string]bool, len(entities))
	for _, id := range entities {
		seen[id] = true
	}
	for _, key := range userTokenOwners {
		if id := strings.TrimSuffix(key, "/"); validEntityID(id) && !seen[id] {
			entities, seen[id] = append(entities, id), true
		}
	}
	orgs, err := listProviderTokenOrgs(ctx, s)
	if err != nil {
		return nil, err
	}
	var unclaimed []unclaimedGroup
	for _, family := range []struct {
		prefix, display string
		subject         func(string) string
	}{
		{unclaimedProviderTokenPrefix, "", unclaimedSubject},
		{unclaimedOrgProviderTokenPrefix, "unclaimed-orgs/", unclaimedOrgSubject},
	} {
		names, err := s.List(ctx, family.prefix)
		if err != nil {
			return nil, fmt.Errorf("listing unclaimed provider tokens: %w", err)
		}
		for _, name := range names {
			name = strings.TrimSuffix(name, "/")
			unclaimed = append(unclaimed, unclaimedGroup{subject: family.subject(name), prefix: family.prefix + name + "/", display: family.display + name + "/"})
		}
	}
	listed := make(map[string]bool, len(entities)+len(orgs)+len(unclaimed))
	for _, id := range entities {
		listed[entitySubject(id)] = true
	}
	for _, org := range orgs {
		listed[orgSubject(org)] = true
	}
	for _, group := range unclaimed {
		listed[group.subject] = true
	}
	r := &b.counters.recount
	if !r.begin(listed) {
		return nil, fmt.Errorf("a recount is already running")
	}
	result := &recountResult{StartedAt: now.UTC()}
	figures, err := b.recountSubjects(ctx, s, cfg, entities, orgs, unclaimed, now, rebuild)
	if err != nil {
		r.abort()
		return nil, err
	}
	drift, err := b.finishRecount(ctx, s)
	if err != nil {
		return nil, err
	}
	if !drift.empty() {
		b.Logger().Warn("the inventory counts had drifted (interrupted writes); corrected", "named", drift.Named, "leases", drift.Leases)
	}
	result.Figures, result.Drift, result.FinishedAt = figures, drift, time.Now().UTC()
	if !built {
		if err := b.putDueIndexBuilt(ctx, s); err != nil {
			return nil, err
		}
	}
	entry, err := logical.StorageEntryJSON(recountPath, result)
	if err != nil {
		return nil, fmt.Errorf("encoding the recount: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing the recount: %w", err)
	}
	return result, nil
}

// unclaimedGroup is a v0.1.0 name whose provider tokens the upgrade set
// aside: its subject, storage prefix and how the inventory shows it.
type unclaimedGroup struct {
	subject, prefix, display string
}

func (b *backend) recountSubjects(ctx context.Context, s logical.Storage, cfg *configEntry, entities, orgs []string, unclaimed []unclaimedGroup, now time.Time, rebuild bool) (*inventoryFigures, error) {
	f := &inventoryFigures{
		ExpiringWithin: make(map[string]int, len(cfg.ExpiryNotices)),
		Owners:         map[string]int{"active": 0, "disabled": 0, "deleted": 0},
	}
	knownOrgs := make(map[string]bool)
	for _, entityID := range entities {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		id, err := b.lookupIdentity(ctx, s, entityID)
		if err != nil {
			return nil, err
		}
		switch {
		case id == nil:
			f.Owners["deleted"]++
			f.DeletedOwners = append(f.DeletedOwners, entityID)
		case id.disabled:
			f.Owners["disabled"]++
		default:
			f.Owners["active"]++
			for _, orgID := range id.orgIDs {
				knownOrgs[orgID] = true
			}
		}
		tokens, err := b.recountEntity(ctx, s, cfg, entityID, now, rebuild)
		if err != nil {
			return nil, err
		}
		for _, token := range tokens {
			if !now.Before(token.expiresAt) {
				f.ExpiredAwaiting++
				continue
			}
			if id == nil || id.disabled {
				// They do not verify; tidy removes them after the grace.
				f.OfInactiveOwners++
				continue
			}
			if token.kind == tokenKindNamed {
				f.ActiveNamed++
			} else {
				f.ActiveLeases++
			}
			for _, threshold := range cfg.ExpiryNotices {
				if token.expiresAt.Sub(now) <= threshold {
					f.ExpiringWithin[threshold.String()]++
				}
			}
			if unusedFor(token, now, unusedAfter) {
				f.UnusedFor90Days++
			}
		}
	}
	for _, org := range orgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.recountOrg(ctx, s, cfg, org, rebuild); err != nil {
			return nil, err
		}
		if !knownOrgs[org] {
			name, err := b.orgNameOf(ctx, s, org)
			if err != nil {
				return nil, err
			}
			f.OrgsWithoutMembers = append(f.OrgsWithoutMembers, name)
		}
	}
	for _, group := range unclaimed {
		providers, err := s.List(ctx, group.prefix)
		if err != nil {
			return nil, fmt.Errorf("listing unclaimed provider tokens: %w", err)
		}
		found := &countShard{}
		for _, provider := range providers {
			found.addProviderTokens(ownerKindUnclaimed, provider, 1)
			f.Unclaimed = append(f.Unclaimed, group.display+provider)
		}
		b.counters.recount.count(group.subject, found)
	}
	sort.Strings(f.DeletedOwners)
	sort.Strings(f.OrgsWithoutMembers)
	sort.Strings(f.Unclaimed)
	return f, nil
}

// recountEntity counts the entity's tokens and provider tokens under its
// lock, with rebuild writes its next due entry, and returns its tokens.
func (b *backend) recountEntity(ctx context.Context, s logical.Storage, cfg *configEntry, entityID string, now time.Time, rebuild bool) ([]*inventoryToken, error) {
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	markers, err := entityLeaseMarkers(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	found := &countShard{Named: len(index.Tokens), Leases: len(markers)}
	next := index.nextDue(cfg.ExpiryNotices)
	for _, marker := range markers {
		next = earlier(next, marker.ExpiresAt)
	}
	prefix := userProviderTokenPrefix(entityID)
	providers, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("listing provider tokens: %w", err)
	}
	for _, provider := range providers {
		token, err := getProviderToken(ctx, s, prefix, provider)
		if err != nil {
			return nil, err
		}
		if token == nil {
			continue
		}
		found.addProviderTokens(ownerKindUser, provider, 1)
		if now.Before(token.ExpiresAt) {
			next = earlier(next, providerTokenDue(token, cfg.ExpiryNotices))
		}
	}
	if !rebuild {
		b.counters.recount.count(entitySubject(entityID), found)
		return inventoryTokensOf(cfg, entityID, index, markers), nil
	}
	owner, err := getOwner(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	if owner != nil && !owner.InactiveSince.IsZero() {
		next = earlier(next, now)
	}
	if !next.IsZero() {
		hour, err := b.markDue(ctx, s, entitySubject(entityID), next)
		if err != nil {
			return nil, err
		}
		if len(index.Tokens) > 0 && index.DueHour != hour {
			index.DueHour = hour
			if err := b.putTokenIndex(ctx, s, entityID, index); err != nil {
				return nil, err
			}
		}
	}
	b.counters.recount.count(entitySubject(entityID), found)
	return inventoryTokensOf(cfg, entityID, index, markers), nil
}

// recountOrg counts an organization's provider tokens under its lock and,
// with rebuild, writes its next due entry.
func (b *backend) recountOrg(ctx context.Context, s logical.Storage, cfg *configEntry, orgID string, rebuild bool) error {
	owner := &providerTokenOwner{org: &orgTarget{id: orgID}}
	lock := b.lockFor(owner.lockKey())
	lock.Lock()
	defer lock.Unlock()
	providers, err := s.List(ctx, owner.storagePrefix())
	if err != nil {
		return fmt.Errorf("listing provider tokens: %w", err)
	}
	found := &countShard{}
	var next time.Time
	for _, provider := range providers {
		token, err := getProviderToken(ctx, s, owner.storagePrefix(), provider)
		if err != nil {
			return err
		}
		if token == nil {
			continue
		}
		found.addProviderTokens(ownerKindOrganization, provider, 1)
		if time.Now().Before(token.ExpiresAt) {
			next = earlier(next, providerTokenDue(token, cfg.ExpiryNotices))
		}
	}
	if rebuild && !next.IsZero() {
		if _, err := b.markDue(ctx, s, orgSubject(orgID), next); err != nil {
			return err
		}
	}
	b.counters.recount.count(orgSubject(orgID), found)
	return nil
}

const pathInventoryHelpSynopsis = `Counts for a governance dashboard: tokens, owners, provider tokens, orphans.`

const pathInventoryHelpDescription = `
tokens: live named PATs and leased PATs of active owners, how many expire
within each of the expiry_notices thresholds, how many went unused for 90
days (never used and older, or last used before), expired ones tidy has not
yet removed, and those of deleted or disabled owners (they do not verify;
tidy removes them after offboarding_grace, or disabled_grace for a
disabled owner).
owners: the owner entities by state (active, disabled, deleted).
provider_tokens: by provider and by owner kind (user, organization,
unclaimed). orphans: owner entities that were deleted (tidy offboards them
after offboarding_grace), organizations with provider tokens but no member
among the engine's users (a plugin cannot list identity groups, so "no
known member" is what it can tell), and v0.1.0 provider tokens the upgrade
could not attribute.

Counting reads every owner; the counts are reused for a minute
(computed_at says when they were made) unless refresh=true.

  vault read planqk/inventory
  vault read planqk/inventory refresh=true
`

const pathInventoryTokensHelpSynopsis = `Every PAT and leased PAT of every user, paged and filtered; never a secret.`

const pathInventoryTokensHelpDescription = `
Keys are <entity id>/named/<name> and <entity id>/lease/<token id>, in
order; key_info gives each token's user (the entity's live name), entity_id,
owner_state (active, disabled, deleted), kind, name, role, token_id, scopes,
created_at, expires_at and last_used_at. Never a secret or an HMAC.

Paging: limit (default 100, at most 1000) and after, the next_after of the
previous page ("" when there is no more). A page reads at most 100 owners,
so with a selective filter it may hold fewer keys than limit and still
have a next_after: keep going until next_after is "".

Filters: user, kind (named, lease), scope, expiring_within (a duration),
unused_for (a duration), expired (true: only expired ones awaiting tidy;
false: only live ones). revoked_reason=leaked lists instead the tokens
leaks/revoke revoked in the last 90 days, keyed <entity id>/leaked/<token
id>, with revoked_at, revoked_reason, leak_url, leak_source, leak_type and
reported_by (user, kind and scope filter them too).

  vault list planqk/inventory/tokens
  vault list -format=json planqk/inventory/tokens expiring_within=168h
  vault list planqk/inventory/tokens after=<next_after> limit=500
  vault list -format=json planqk/inventory/tokens revoked_reason=leaked
`

const pathInventoryProviderTokensHelpSynopsis = `Every provider token of every user and organization, paged; never a secret.`

const pathInventoryProviderTokensHelpDescription = `
Keys are orgs/<org id>/<provider>, users/<entity id>/<provider> and, for
v0.1.0 tokens the upgrade could not attribute, unclaimed/<name>/<provider>,
and for organizations' tokens from before organization ids that no
organization has claimed yet, unclaimed-orgs/<org name>/<provider>;
key_info gives owner_kind, owner (the organization's name, the user's live
name, or the name tokens were kept under), entity_id, provider, version, created_at, updated_at,
updated_by, expires_at (when the writer gave one), and last_used_at,
last_used_by and last_used_by_name: when a job last used the token and for
whom (entity id, live name). No secret, no hint.
Paging as inventory/tokens.

  vault list -format=json planqk/inventory/provider-tokens
`
