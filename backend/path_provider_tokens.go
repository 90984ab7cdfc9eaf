package backend

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	// providerTokenPrefix is seal-wrapped: its entries hold provider secrets.
	providerTokenPrefix = "provider-tokens/"

	maxProviderValueLength = 16 * 1024

	// secretHintMinLength is the shortest secret whose last characters a
	// read may show; shorter ones would give away too much of themselves.
	secretHintMinLength = 12
	secretHintLength    = 4
)

// providerTokenOwner is whose provider tokens a request addresses: a
// user's, found through the user's entity, or an organization's.
type providerTokenOwner struct {
	org  *orgTarget
	user *userTarget
}

// providerTokenOwnerOf tells the two path families apart by their schema,
// never by request data, which a caller controls.
func providerTokenOwnerOf(d *framework.FieldData) (org, user string) {
	if _, ok := d.Schema["org"]; ok {
		return d.Get("org").(string), ""
	}
	return "", d.Get("user").(string)
}

// authorizeProviderTokens applies the engine's own check and finds the
// owner: organizations need a member to read and an owner or maintainer to
// write; users' tokens need the user (or a platform admin).
func (b *backend) authorizeProviderTokens(ctx context.Context, req *logical.Request, d *framework.FieldData, write bool) (*providerTokenOwner, *logical.Response, error) {
	org, user := providerTokenOwnerOf(d)
	if org == "" {
		target, denied, err := b.authorizeUser(ctx, req, user)
		if denied != nil || err != nil {
			return nil, denied, err
		}
		return &providerTokenOwner{user: target}, nil, nil
	}
	need := roleMember
	if write {
		need = roleMaintainer
	}
	target, denied, err := b.authorizeOrg(ctx, req, org, need)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	return &providerTokenOwner{org: target}, nil, nil
}

// userProviderTokenOwner addresses the provider tokens of an entity known
// as user, for the engine's own sweeps, which act for no caller.
func userProviderTokenOwner(entityID, user string) *providerTokenOwner {
	return &providerTokenOwner{user: &userTarget{name: user, owner: &identity{entityID: entityID, name: user}}}
}

// stored reports whether the owner can have stored tokens: a user name no
// entity in the engine holds has none, nor an organization the engine has
// never learned.
func (o *providerTokenOwner) stored() bool {
	if o.org != nil {
		return o.org.id != ""
	}
	return o.user.owner != nil
}

func (o *providerTokenOwner) storagePrefix() string {
	if o.org != nil {
		return orgProviderTokenPrefix(o.org.id)
	}
	return userProviderTokenPrefix(o.user.entityID())
}

// lockKey names the lock that serialises writes of the owner's tokens.
func (o *providerTokenOwner) lockKey() string {
	if o.org != nil {
		return orgLockKey(o.org.id)
	}
	return entityLockKey(o.user.entityID())
}

// orgName is the organization's name, "" for a user's tokens.
func (o *providerTokenOwner) orgName() string {
	if o.org != nil {
		return o.org.name
	}
	return ""
}

// providerTokenEvent describes an event about the owner's provider token.
func (o *providerTokenOwner) providerTokenEvent(eventType string, entry *providerTokenEntry) *lifecycleEvent {
	event := &lifecycleEvent{
		Type: eventType, Org: o.orgName(), Name: entry.Provider,
		Details: map[string]string{"version": fmt.Sprint(entry.Version), "updated_by": entry.UpdatedBy},
	}
	if o.org != nil {
		event.OrgID = o.org.id
		event.Details["org_id"] = o.org.id
		event.Path = "orgs/" + o.org.name + "/provider-tokens/" + entry.Provider
	} else {
		event.EntityID, event.User = o.user.entityID(), o.user.name
		event.Path = "users/" + o.user.name + "/provider-tokens/" + entry.Provider
	}
	if !entry.ExpiresAt.IsZero() {
		event.Details["expires_at"] = formatTime(entry.ExpiresAt)
	}
	return event
}

func userProviderTokenPrefix(entityID string) string {
	return providerTokenPrefix + "entities/" + entityID + "/"
}

// providerTokenEntry is a stored provider access token.
type providerTokenEntry struct {
	Provider string            `json:"provider"`
	Values   map[string]string `json:"values"`
	// SecretFields are the fields that were secret when the token was
	// written, so that a later catalogue change cannot expose them.
	SecretFields []string  `json:"secret_fields"`
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	UpdatedBy    string    `json:"updated_by"`
	// ExpiresAt is when the provider says the credential expires, if the
	// writer said so.
	ExpiresAt time.Time `json:"expires_at,omitempty"`
	// NoticesSent are the expiry_notices thresholds already reminded of.
	NoticesSent []string `json:"notices_sent,omitempty"`
	// LastUsedAt and LastUsedBy are when a job last used this version
	// (resolve, runtime, exchange), rounded down to last_used_granularity,
	// and the entity id of the member it ran for.
	LastUsedAt time.Time `json:"last_used_at,omitempty"`
	LastUsedBy string    `json:"last_used_by,omitempty"`
	// UseNotified holds, for an organization's token, the members whose
	// use of this version was notified in the latest granule (entity id ->
	// granule), so that a restart or another active node within the
	// granule does not notify them again. Never in a response.
	UseNotified map[string]time.Time `json:"use_notified,omitempty"`
	// LegacyName is the user name v0.1.0 kept the token under, for tokens
	// the upgrade moved.
	LegacyName string `json:"legacy_name,omitempty"`
	// Derivation is what deriving short-lived credentials needs (derive.go);
	// nil for a static key only. Kept apart from Values, which answers hand
	// out.
	Derivation *derivationEntry `json:"derivation,omitempty"`
}

// withSecretsOf returns the entry with every field treated as secret that
// was secret when it was written, is secret in the provider's definition
// now, or is no field of that definition: a catalogue change can hide a
// stored value from reads, never expose one.
func (e *providerTokenEntry) withSecretsOf(provider *providerEntry) *providerTokenEntry {
	shown := *e
	shown.SecretFields = slices.Clone(e.SecretFields)
	for name := range e.Values {
		var field providerField
		known := false
		if provider != nil {
			field, known = provider.field(name)
		}
		if (!known || field.Secret) && !slices.Contains(shown.SecretFields, name) {
			shown.SecretFields = append(shown.SecretFields, name)
		}
	}
	return &shown
}

// toResponseData returns the entry's metadata: never a secret value.
func (e *providerTokenEntry) toResponseData(o *providerTokenOwner) map[string]interface{} {
	secret := make(map[string]bool, len(e.SecretFields))
	for _, name := range e.SecretFields {
		secret[name] = true
	}
	fields := make([]string, 0, len(e.Values))
	hints := make(map[string]interface{})
	settings := make(map[string]interface{})
	for name, value := range e.Values {
		fields = append(fields, name)
		if secret[name] {
			hints[name] = secretHint(value)
		} else {
			settings[name] = value
		}
	}
	sort.Strings(fields)

	data := e.commonResponseData(o)
	if o.org != nil {
		data["org_id"] = o.org.id
	}
	data["fields"] = fields
	data["secret_hints"] = hints
	data["settings"] = settings
	data["created_at"] = formatTime(e.CreatedAt)
	data["updated_at"] = formatTime(e.UpdatedAt)
	data["updated_by"] = e.UpdatedBy
	data["last_used_at"] = formatOptionalTime(e.LastUsedAt)
	data["last_used_by"] = e.LastUsedBy
	data["expires_at"] = ""
	if !e.ExpiresAt.IsZero() {
		data["expires_at"] = formatTime(e.ExpiresAt)
	}
	if e.Derivation != nil {
		data["derivation"] = e.Derivation.toResponseData(derivationMethodOf(e.Derivation.Method))
	}
	return data
}

func (e *providerTokenEntry) commonResponseData(o *providerTokenOwner) map[string]interface{} {
	data := map[string]interface{}{
		"provider": e.Provider,
		"version":  e.Version,
	}
	if o.org != nil {
		data["org"] = o.org.name
	} else {
		data["user"] = o.user.name
		data["entity_id"] = o.user.entityID()
	}
	return data
}

// providerTokenFields describe a stored provider token as toResponseData
// returns it, with the owner's fields of its path family: never a secret
// value.
var providerTokenFields = fieldSet{
	"provider":          {Type: framework.TypeString, Description: "Name of the provider."},
	"version":           {Type: framework.TypeInt, Description: "Version of the token, counting from 1; each write increments it."},
	"fields":            {Type: framework.TypeStringSlice, Description: "Names of the fields the token holds, sorted."},
	"secret_hints":      {Type: framework.TypeMap, Description: `For each secret field: "****" and, for secrets of 12 characters or more, their last 4 characters.`},
	"settings":          {Type: framework.TypeMap, Description: "The non-secret fields with their values."},
	"created_at":        {Type: framework.TypeTime, Description: "When the first version was written (RFC 3339)."},
	"updated_at":        {Type: framework.TypeTime, Description: "When this version was written (RFC 3339)."},
	"updated_by":        {Type: framework.TypeString, Description: "Id of the identity entity that wrote this version; empty for a token without an entity."},
	"expires_at":        {Type: framework.TypeString, Description: "When the provider says the credential expires, as the writer gave it (RFC 3339); empty if not given."},
	"last_used_at":      {Type: framework.TypeString, Description: "When resolve, a runtime read or the exchange last gave this version to a job, rounded down to last_used_granularity and recorded within about a minute (RFC 3339); empty if never."},
	"last_used_by":      {Type: framework.TypeString, Description: "Entity id of the member (or user) that job ran for; empty if never used."},
	"last_used_by_name": {Type: framework.TypeString, Description: "That entity's live name; empty if never used or the entity is gone."},
	"derivation":        {Type: framework.TypeMap, Description: `How jobs get credentials derived from this token instead of its stored key: {"method": "<method>", "fields": [...], "settings": {...}, "secret_hints": {...}} (hints as for the token's secrets); absent when the token is a static key only.`},
}

var (
	userProviderTokenOwnerFields = fieldSet{
		"user":      {Type: framework.TypeString, Description: "The user, as named in the path."},
		"entity_id": {Type: framework.TypeString, Description: "Id of the user's identity entity."},
	}
	orgProviderTokenOwnerFields = fieldSet{
		"org":    {Type: framework.TypeString, Description: "The organization, as named in the path."},
		"org_id": {Type: framework.TypeString, Description: "The organization's stable id (planqk_org_id), under which its tokens are kept."},
	}
)

func secretHint(value string) string {
	runes := []rune(value)
	if len(runes) < secretHintMinLength {
		return "****"
	}
	return "****" + string(runes[len(runes)-secretHintLength:])
}

func pathProviderTokens(b *backend) []*framework.Path {
	userField := userNameField()
	orgField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the organization (the planqk_org metadata of its identity groups).",
		Required:    true,
	}
	providerField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the provider in the catalogue at providers/.",
		Required:    true,
	}
	tokenOperations := func(suffix string, ownerFields fieldSet) map[logical.Operation]framework.OperationHandler {
		fields := providerTokenFields.with(ownerFields)
		return map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathProviderTokenRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: suffix},
				Responses: okResponse("The token's metadata: never a secret value.", fields).
					or(http.StatusForbidden, forbiddenDescription).
					or(http.StatusNotFound, "No token for this provider is stored here."),
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathProviderTokenWrite,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "write", OperationSuffix: suffix},
				Responses:                   okResponse("The stored version's metadata: never a secret value.", fields).or(http.StatusForbidden, forbiddenDescription),
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                    b.pathProviderTokenDelete,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				DisplayAttrs:                &framework.DisplayAttributes{OperationSuffix: suffix},
				Responses:                   noContentResponse("The token is deleted, or none was stored.").or(http.StatusForbidden, forbiddenDescription),
			},
		}
	}
	listOperations := func(suffix string) map[logical.Operation]framework.OperationHandler {
		return map[logical.Operation]framework.OperationHandler{
			logical.ListOperation: &framework.PathOperation{
				Callback:     b.pathProviderTokensList,
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: suffix},
				Responses: okResponse("The providers for which a token is stored.", fieldSet{
					"keys":     {Type: framework.TypeStringSlice, Description: "Names of the providers."},
					"key_info": {Type: framework.TypeMap, Description: "For each provider, what reading its token returns: metadata, hints and settings, never a secret."},
				}).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, emptyListDescription),
			},
		}
	}

	return []*framework.Path{
		{
			Pattern:         "users/" + pathSegment("user") + "/provider-tokens/?$",
			DisplayAttrs:    &framework.DisplayAttributes{OperationPrefix: operationPrefixPlanqk},
			Fields:          map[string]*framework.FieldSchema{"user": userField},
			Operations:      listOperations("user-provider-tokens"),
			HelpSynopsis:    pathProviderTokensListHelpSynopsis,
			HelpDescription: pathProviderTokensListHelpDescription,
		},
		{
			Pattern:      "users/" + pathSegment("user") + "/provider-tokens/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixPlanqk},
			Fields: map[string]*framework.FieldSchema{
				"user":     userField,
				"provider": providerField,
			},
			TakesArbitraryInput: true,
			Operations:          tokenOperations("user-provider-token", userProviderTokenOwnerFields),
			HelpSynopsis:        pathProviderTokenHelpSynopsis,
			HelpDescription:     pathProviderTokenHelpDescription,
		},
		{
			Pattern: "orgs/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "organizations",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathOrgsList,
					Responses: okResponse("The organizations with provider tokens that the caller may see.", fieldSet{
						"keys": {Type: framework.TypeStringSlice, Description: "Names of the organizations."},
					}).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, emptyListDescription),
				},
			},
			HelpSynopsis:    pathOrgsListHelpSynopsis,
			HelpDescription: pathOrgsListHelpDescription,
		},
		{
			Pattern:         "orgs/" + pathSegment("org") + "/provider-tokens/?$",
			DisplayAttrs:    &framework.DisplayAttributes{OperationPrefix: operationPrefixPlanqk},
			Fields:          map[string]*framework.FieldSchema{"org": orgField},
			Operations:      listOperations("organization-provider-tokens"),
			HelpSynopsis:    pathProviderTokensListHelpSynopsis,
			HelpDescription: pathProviderTokensListHelpDescription,
		},
		{
			Pattern:      "orgs/" + pathSegment("org") + "/provider-tokens/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixPlanqk},
			Fields: map[string]*framework.FieldSchema{
				"org":      orgField,
				"provider": providerField,
			},
			TakesArbitraryInput: true,
			Operations:          tokenOperations("organization-provider-token", orgProviderTokenOwnerFields),
			HelpSynopsis:        pathProviderTokenHelpSynopsis,
			HelpDescription:     pathProviderTokenHelpDescription,
		},
	}
}

func (b *backend) pathProviderTokensList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	owner, denied, err := b.authorizeProviderTokens(ctx, req, d, false)
	if denied != nil || err != nil {
		return denied, err
	}
	if !owner.stored() {
		return logical.ListResponse(nil), nil
	}
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	providers, err := req.Storage.List(ctx, owner.storagePrefix())
	if err != nil {
		return nil, fmt.Errorf("listing provider tokens: %w", err)
	}
	// What a read of each shows (never a secret), so that a settings page
	// makes one request, not one per provider; served from the cache.
	keys := make([]string, 0, len(providers))
	keyInfo := make(map[string]interface{}, len(providers))
	for _, provider := range providers {
		entry, err := b.cachedProviderToken(ctx, req.Storage, owner.storagePrefix(), provider)
		if err != nil {
			return nil, err
		}
		if entry != nil { // else deleted since the list
			keys = append(keys, provider)
			keyInfo[provider] = b.namedLastUse(ctx, req.Storage, entry.withSecretsOf(catalogue[provider]).toResponseData(owner))
		}
	}
	return logical.ListResponseWithInfo(keys, keyInfo), nil
}

func (b *backend) pathProviderTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	owner, denied, err := b.authorizeProviderTokens(ctx, req, d, false)
	if denied != nil || err != nil || !owner.stored() {
		return denied, err
	}
	provider := d.Get("provider").(string)
	entry, err := b.cachedProviderToken(ctx, req.Storage, owner.storagePrefix(), provider)
	if err != nil || entry == nil {
		return nil, err
	}
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: b.namedLastUse(ctx, req.Storage, entry.withSecretsOf(catalogue[provider]).toResponseData(owner))}, nil
}

func (b *backend) pathProviderTokenWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("provider").(string)
	owner, denied, err := b.authorizeProviderTokens(ctx, req, d, true)
	if denied != nil || err != nil {
		return denied, err
	}
	switch {
	case !owner.stored() && owner.org != nil:
		return logical.ErrorResponse(fmt.Sprintf("organization %q has no id registered with the engine, and a plugin cannot look groups up by name: an operator applies it with planqk-bootstrap org %s (or one of its members uses it first)", owner.org.name, owner.org.name)), nil
	case !owner.stored():
		return logical.ErrorResponse(fmt.Sprintf("no entity named %q has used the engine yet, and a plugin cannot look entities up by name: the user stores their own provider tokens (or does anything in the engine first)", owner.user.name)), nil
	}
	catalogue, err := b.catalogue(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	provider := catalogue[name]
	if provider == nil {
		return logical.ErrorResponse(fmt.Sprintf("unknown provider %q: see providers/ for the catalogue", name)), nil
	}
	body := make(map[string]interface{}, len(req.Data))
	for key, value := range req.Data {
		body[key] = value
	}
	expiresAt, msg := takeExpiresAt(body)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	derivation, msg := takeDerivation(name, provider, body)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if msg := cfg.checkDerivationEndpoints(derivation); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	values, msg := validateProviderValues(name, provider, body, derivation != nil)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	lock := b.lockFor(owner.lockKey())
	lock.Lock()
	defer lock.Unlock()

	if owner.user != nil && owner.user.self {
		if err := b.registerOwner(ctx, req.Storage, owner.user.owner); err != nil {
			return nil, err
		}
	}
	// From the cache, which every write and delete under this lock updates.
	existing, err := b.cachedProviderToken(ctx, req.Storage, owner.storagePrefix(), name)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	entry := &providerTokenEntry{
		Provider:   name,
		Values:     values,
		Version:    1,
		CreatedAt:  now,
		UpdatedAt:  now,
		UpdatedBy:  req.EntityID,
		ExpiresAt:  expiresAt,
		Derivation: derivation,
	}
	if existing != nil {
		entry.Version = existing.Version + 1
		entry.CreatedAt = existing.CreatedAt
	}
	for _, f := range provider.Fields {
		if f.Secret {
			entry.SecretFields = append(entry.SecretFields, f.Name)
		}
	}

	// Job keys the old token made that the new one cannot manage go
	// first, with the old management key.
	if existing != nil && existing.Derivation != nil && existing.Derivation.Method == derivationIBMServiceIDKey && !sameIBMTarget(existing, entry) {
		if _, err := b.deleteDerivedKeysOfToken(ctx, req.Storage, owner.storagePrefix()+name, existing); err != nil {
			b.Logger().Error("a provider token's IBM job keys could not be deleted before it was rewritten", "provider", name, "error", err)
			return respondError(http.StatusBadGateway, fmt.Sprintf("the %s token's open IBM job keys could not be deleted with its current management key, so it was not changed: %s", name, truncateForMessage(err.Error()))), nil
		}
	}
	if err := b.putProviderToken(ctx, req.Storage, owner.storagePrefix(), entry); err != nil {
		return nil, err
	}
	if existing != nil && existing.Derivation != nil && existing.Derivation.Method == derivationIBMServiceIDKey && !sameIBMTarget(existing, entry) {
		// A job key recorded while the old token was being replaced.
		if _, err := b.deleteDerivedKeysOfToken(ctx, req.Storage, owner.storagePrefix()+name, existing); err != nil {
			b.Logger().Error("an IBM job key made while its provider token was rewritten could not be deleted", "provider", name, "error", err)
		}
	}
	b.notify(ctx, req.Storage, owner.providerTokenEvent(eventProviderTokenWritten, entry))
	return &logical.Response{Data: b.namedLastUse(ctx, req.Storage, entry.toResponseData(owner))}, nil
}

// takeExpiresAt removes the optional expires_at from a write's body and
// parses it; the message names what is wrong.
func takeExpiresAt(body map[string]interface{}) (time.Time, string) {
	raw, ok := body["expires_at"]
	if !ok {
		return time.Time{}, ""
	}
	delete(body, "expires_at")
	text, ok := raw.(string)
	if !ok {
		return time.Time{}, "expires_at must be an RFC 3339 time such as 2027-03-31T00:00:00Z"
	}
	if text == "" {
		return time.Time{}, ""
	}
	expiresAt, err := time.Parse(time.RFC3339, text)
	if err != nil {
		return time.Time{}, "expires_at must be an RFC 3339 time such as 2027-03-31T00:00:00Z"
	}
	if !expiresAt.After(time.Now()) {
		return time.Time{}, "expires_at must be in the future"
	}
	return expiresAt.UTC().Truncate(time.Second), ""
}

// validateProviderValues checks a write's body against the provider's
// fields; the message names the offending field, never its value. With a
// derivation the stored key is optional: all the required fields, or none.
func validateProviderValues(name string, provider *providerEntry, data map[string]interface{}, derivable bool) (map[string]string, string) {
	values := make(map[string]string, len(data))
	for key, raw := range data {
		field, ok := provider.field(key)
		if !ok {
			return nil, fmt.Sprintf("unknown field %q for provider %q (fields: %s)", truncateForMessage(key), name, provider.fieldNames())
		}
		value, ok := raw.(string)
		switch {
		case !ok:
			return nil, fmt.Sprintf("field %q must be a string", key)
		case !utf8.ValidString(value):
			return nil, fmt.Sprintf("field %q must be valid UTF-8", key)
		case strings.ContainsRune(value, utf8.RuneError):
			// Vault's JSON decoding turns bytes that are not UTF-8 into
			// U+FFFD; storing that would silently corrupt a credential.
			return nil, fmt.Sprintf("field %q contains U+FFFD: the value was not valid UTF-8 as sent", key)
		case strings.IndexByte(value, 0) >= 0:
			return nil, fmt.Sprintf("field %q must not contain NUL: no environment variable can hold it", key)
		case len(value) > maxProviderValueLength:
			return nil, fmt.Sprintf("field %q must be at most %d bytes", key, maxProviderValueLength)
		case value == "":
			continue
		}
		if field.splitter != nil {
			if _, ok := field.splitter.split(value); !ok {
				return nil, fmt.Sprintf("field %q must be of the form %s", key, field.splitter.format)
			}
		}
		values[key] = value
	}
	var given, missing []string
	for _, f := range provider.Fields {
		if _, ok := values[f.Name]; f.Required && !ok {
			missing = append(missing, f.Name)
		} else if f.Required {
			given = append(given, f.Name)
		}
	}
	switch {
	case len(missing) == 0:
	case !derivable:
		return nil, fmt.Sprintf("missing required field %q for provider %q", missing[0], name)
	case len(given) > 0:
		return nil, fmt.Sprintf("missing required field %q for provider %q: beside a derivation, store the whole key or none of it", missing[0], name)
	}
	return values, ""
}

func (p *providerEntry) fieldNames() string {
	names := make([]string, 0, len(p.Fields))
	for _, f := range p.Fields {
		names = append(names, f.Name)
	}
	return strings.Join(names, ", ")
}

func (b *backend) pathProviderTokenDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	owner, denied, err := b.authorizeProviderTokens(ctx, req, d, true)
	if denied != nil || err != nil || !owner.stored() {
		return denied, err
	}
	lock := b.lockFor(owner.lockKey())
	lock.Lock()
	defer lock.Unlock()
	existing, err := b.cachedProviderToken(ctx, req.Storage, owner.storagePrefix(), d.Get("provider").(string))
	if err != nil || existing == nil {
		return nil, err
	}
	if err := b.deleteProviderToken(ctx, req.Storage, owner.storagePrefix(), existing.Provider); err != nil {
		return nil, err
	}
	b.notify(ctx, req.Storage, owner.providerTokenEvent(eventProviderTokenDeleted, existing))
	return nil, nil
}

// pathOrgsList lists the organizations that have provider tokens; a caller
// with an entity sees only its own organizations unless it is an admin.
func (b *backend) pathOrgsList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	caller, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return denied, err
	}
	ids, err := listProviderTokenOrgs(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	orgs := make([]string, 0, len(ids))
	for _, orgID := range ids {
		name, err := b.cachedOrgName(ctx, req.Storage, orgID)
		if err != nil {
			return nil, err
		}
		if name == "" {
			continue // never learned: addressable by no name
		}
		switch {
		case caller == nil || caller.admin:
			// Listed under the name only if the name addresses this id
			// for them: an organization created anew leaves its old id
			// reachable by no name (the inventory lists it).
			pointed, err := b.cachedOrgPointer(ctx, req.Storage, name)
			if err != nil {
				return nil, err
			}
			if pointed == orgID {
				orgs = append(orgs, name)
			}
		case caller.roleIn(name) >= roleMember && caller.orgIDs[name] == orgID:
			orgs = append(orgs, name)
		}
	}
	return logical.ListResponse(orgs), nil
}

// putProviderToken stores the provider token under prefix (an owner's)
// and caches it for resolve, with its next expiry reminder in the due
// index and, if it is new, in the counts; the caller holds the owner's
// lock.
func (b *backend) putProviderToken(ctx context.Context, s logical.Storage, prefix string, token *providerTokenEntry) error {
	existing, err := b.cachedProviderToken(ctx, s, prefix, token.Provider)
	if err != nil {
		return err
	}
	subject, kind := providerTokenSubject(prefix)
	if kind != ownerKindUnclaimed && !token.ExpiresAt.IsZero() {
		cfg, err := b.getConfig(ctx, s)
		if err != nil {
			return err
		}
		if due := providerTokenDue(token, cfg.ExpiryNotices); !due.IsZero() {
			if _, err := b.markDue(ctx, s, subject, due); err != nil {
				return err
			}
		}
	}
	entry, err := logical.StorageEntryJSON(prefix+token.Provider, token)
	if err != nil {
		return fmt.Errorf("encoding provider token: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing provider token: %w", err)
	}
	b.providerTokens.set(entry.Key, token)
	if existing == nil {
		delta := &countShard{}
		delta.addProviderTokens(kind, token.Provider, 1)
		return b.applyCount(ctx, s, subject, delta)
	}
	return nil
}

// deleteProviderToken deletes the provider token under prefix and its
// cached copy, and counts it out; the caller holds the owner's lock.
func (b *backend) deleteProviderToken(ctx context.Context, s logical.Storage, prefix, provider string) error {
	existing, err := b.cachedProviderToken(ctx, s, prefix, provider)
	if err != nil {
		return err
	}
	// Its job keys go first, while its management key is still there.
	if _, err := b.deleteDerivedKeysOfToken(ctx, s, prefix+provider, existing); err != nil {
		return fmt.Errorf("deleting the IBM job keys of a provider token: %w", err)
	}
	if err := s.Delete(ctx, prefix+provider); err != nil {
		return fmt.Errorf("deleting provider token: %w", err)
	}
	b.providerTokens.remove(prefix + provider)
	// A job key recorded while the token was being deleted: derivations
	// take no lock, and one that stores its record after this pass sees
	// the token gone and deletes its key itself.
	if _, err := b.deleteDerivedKeysOfToken(ctx, s, prefix+provider, existing); err != nil {
		b.Logger().Error("an IBM job key made while its provider token was deleted could not be deleted", "error", err)
	}
	if existing != nil {
		subject, kind := providerTokenSubject(prefix)
		delta := &countShard{}
		delta.addProviderTokens(kind, provider, -1)
		return b.applyCount(ctx, s, subject, delta)
	}
	return nil
}

// cachedProviderToken is getProviderToken served from memory when it can
// be, for resolve and the runtime read, which run on every job: a token, or
// its absence, is cached until this node changes it or Invalidate reports
// another node's change. The cache holds provider secrets in the plugin's
// memory, where they pass on every resolve anyway; it is bounded
// (providerTokenCacheSize entries).
func (b *backend) cachedProviderToken(ctx context.Context, s logical.Storage, prefix, provider string) (*providerTokenEntry, error) {
	if token, ok := b.providerTokens.get(prefix + provider); ok {
		return token, nil
	}
	generation := b.providerTokens.begin()
	token, err := getProviderToken(ctx, s, prefix, provider)
	if err != nil {
		return nil, err
	}
	b.providerTokens.fill(prefix+provider, token, generation)
	return token, nil
}

// listProviderTokenOrgs returns the ids of the organizations that have
// provider tokens.
func listProviderTokenOrgs(ctx context.Context, s logical.Storage) ([]string, error) {
	keys, err := s.List(ctx, orgProviderTokensPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing organizations: %w", err)
	}
	orgs := make([]string, 0, len(keys))
	for _, key := range keys {
		orgs = append(orgs, strings.TrimSuffix(key, "/"))
	}
	return orgs, nil
}

// getProviderToken reads the provider token stored under prefix (an owner's).
func getProviderToken(ctx context.Context, s logical.Storage, prefix, provider string) (*providerTokenEntry, error) {
	entry, err := s.Get(ctx, prefix+provider)
	if err != nil {
		return nil, fmt.Errorf("reading provider token: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var token providerTokenEntry
	if err := entry.DecodeJSON(&token); err != nil {
		return nil, fmt.Errorf("decoding provider token: %w", err)
	}
	return &token, nil
}

const pathProviderTokensListHelpSynopsis = `List the providers for which a user or an organization has stored an access token.`

const pathProviderTokensListHelpDescription = `
Lists provider names. An organization's list needs any role in it.
`

const pathProviderTokenHelpSynopsis = `Store, read or delete a user's or an organization's own provider access token.`

const pathProviderTokenHelpDescription = `
"Bring your own token": credentials for a quantum backend provider, used by
runtimes through resolve/<provider>. The body's keys are the provider's
fields (see providers/<provider>); unknown fields, non-string values and
missing required fields are refused. Each write replaces the token and
increments its version.

Reads return metadata only - the field names, a hint of each secret (its
last 4 characters, for secrets of 12 characters or more), non-secret
settings, version, created_at, updated_at and updated_by (entity id) - and
never a secret value.

For an organization, a request carrying an identity entity needs the owner
or maintainer role to write or delete and any role to read; requests
without an entity are governed by ACL policies alone.

  vault write planqk/users/alice/provider-tokens/ibm-quantum token=... instance=ibm-q/open/main
  vault write planqk/orgs/acme/provider-tokens/aws-braket access_key_id=... secret_access_key=... region=us-east-1
  vault read  planqk/orgs/acme/provider-tokens/aws-braket
`

const pathOrgsListHelpSynopsis = `List the organizations that have provider access tokens.`

const pathOrgsListHelpDescription = `
A caller with an identity entity sees only the organizations it belongs to
(platform admins see all).
`
