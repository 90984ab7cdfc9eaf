package backend

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-secure-stdlib/parseutil"
	"github.com/hashicorp/go-secure-stdlib/strutil"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	configPath = "config"

	defaultTokenPrefix      = "plqk_"
	defaultTokenTTL         = 720 * time.Hour
	defaultTokenMaxTTL      = 8760 * time.Hour
	defaultIdentityCacheTTL = 5 * time.Second
	defaultTidyInterval     = time.Hour
	defaultLastUsedGrain    = time.Hour
	maxExpiryNotices        = 8

	maxIdentityCacheTTL = 5 * time.Minute
	maxScopes           = 32
)

// defaultExpiryNotices are when owners hear that a token expires: a week
// and a day before, as the big code hosts warn.
var defaultExpiryNotices = []time.Duration{168 * time.Hour, 24 * time.Hour}

// defaultScopes are the scopes PlanQK gives its personal access tokens.
var defaultScopes = []string{"api", "quantum_tokens"}

// scopeRegex keeps scopes to what RFC 6749 allows in a space-separated
// scope string, narrowed to names a policy author can read.
var scopeRegex = regexp.MustCompile(`^[a-z][a-z0-9_:.-]{0,63}$`)

// tokenPrefixRegex keeps prefixes short, lower-case and ending in an
// underscore, so that a prefix never looks like part of the random body.
var tokenPrefixRegex = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}_$`)

// configEntry is the mount's configuration. It holds no key material: the
// HMAC key lives in its own seal-wrapped entry.
type configEntry struct {
	TokenPrefix      string        `json:"token_prefix"`
	DefaultTTL       time.Duration `json:"default_ttl"`
	MaxTTL           time.Duration `json:"max_ttl"`
	IdentityCacheTTL time.Duration `json:"identity_cache_ttl"`
	TidyInterval     time.Duration `json:"tidy_interval"`

	// Scopes are the scopes a PAT may carry; DefaultScopes those of a PAT
	// created without scopes, and of every PAT issued before scopes existed.
	Scopes []string `json:"scopes,omitempty"`
	// No omitempty: an empty list ("tokens created without scopes get
	// none") must survive storage, not decode back to the defaults.
	DefaultScopes []string `json:"default_scopes"`

	// AdminGroups, when set, are the only identity groups (by name or id)
	// whose planqk_org=* planqk_role=admin metadata makes a platform admin.
	AdminGroups []string `json:"admin_groups,omitempty"`
	// OrgGroupNameTemplate, when set, is the only group name that may give
	// a role in an organization, e.g. "planqk-{{org}}-{{role}}s".
	OrgGroupNameTemplate string `json:"org_group_name_template,omitempty"`

	// ExpiryNotices are how long before a token's expiry its owner is
	// notified, longest first.
	ExpiryNotices []time.Duration `json:"expiry_notices"`
	// LastUsedGranularity is how finely verify and introspect record when
	// a token was last used; 0 records nothing.
	LastUsedGranularity time.Duration `json:"last_used_granularity"`
	// OffboardingGrace is how long after its owner entity is deleted a
	// user's tokens and provider tokens are kept before tidy removes them.
	OffboardingGrace time.Duration `json:"offboarding_grace"`
	// DisabledGrace is how long after its owner entity is disabled (and
	// not enabled again) tidy keeps the user's tokens and provider tokens;
	// 0 keeps them for as long as the entity exists. A disabled entity's
	// tokens stop verifying at once either way, and work again when it is
	// enabled within the grace.
	DisabledGrace time.Duration `json:"disabled_grace"`
	// WebhookURL receives lifecycle notifications (Standard Webhooks);
	// empty sends none.
	WebhookURL string `json:"webhook_url,omitempty"`
	// STSEndpoint is the AWS STS endpoint derivations use when their token
	// names none; empty is AWS's own (sovereign clouds and tests set it).
	STSEndpoint string `json:"sts_endpoint,omitempty"`
	// IAMEndpoint is the IBM Cloud IAM endpoint derivations use when their
	// token names none; empty is IBM Cloud's public one.
	IAMEndpoint string `json:"iam_endpoint,omitempty"`
	// AllowedEndpoints are the endpoints besides the providers' own that a
	// provider token's derivation may name (derive_endpoints.go).
	AllowedEndpoints []string `json:"allowed_endpoints,omitempty"`
}

func defaultConfig() *configEntry {
	return &configEntry{
		TokenPrefix:      defaultTokenPrefix,
		DefaultTTL:       defaultTokenTTL,
		MaxTTL:           defaultTokenMaxTTL,
		IdentityCacheTTL: defaultIdentityCacheTTL,
		TidyInterval:     defaultTidyInterval,
		Scopes:           defaultScopes,
		DefaultScopes:    defaultScopes,

		ExpiryNotices:       defaultExpiryNotices,
		LastUsedGranularity: defaultLastUsedGrain,
		DisabledGrace:       defaultDisabledGrace,
	}
}

// defaultDisabledGrace is how long a disabled entity's data is kept by
// default: long enough that disabling someone during an incident never
// costs them their tokens.
const defaultDisabledGrace = 30 * 24 * time.Hour

// grantsAdmin reports whether group, which carries the admin metadata, may
// make its members platform admins.
func (c *configEntry) grantsAdmin(group *logical.Group) bool {
	return len(c.AdminGroups) == 0 || slices.ContainsFunc(c.AdminGroups, func(g string) bool {
		return g == group.ID || sameGroupName(g, group.Name)
	})
}

// grantsOrgRole reports whether group may give its members role in org.
func (c *configEntry) grantsOrgRole(group *logical.Group, org string, role orgRole) bool {
	if c.OrgGroupNameTemplate == "" {
		return true
	}
	return sameGroupName(group.Name, orgGroupName(c.OrgGroupNameTemplate, org, role))
}

// sameGroupName reports whether Vault takes a and b for one group name:
// its identity store tells names apart after strings.ToLower. Not
// strings.EqualFold: Unicode case folding also takes "ſ" (long s) for "s",
// and Vault keeps "planqk-acme-ownerſ" as a group of its own, which anyone
// who may create groups could name so.
func sameGroupName(a, b string) bool {
	return strings.ToLower(a) == strings.ToLower(b)
}

// orgGroupName renders the organization group name template.
func orgGroupName(template, org string, role orgRole) string {
	return strings.NewReplacer("{{org}}", org, "{{role}}", role.String()).Replace(template)
}

// effectiveScopes returns the scopes a token holds now: exactly those it
// was issued with when scoped (the record says so, even for none), or the
// default scopes for a token issued before scopes existed (v0.1.0 wrote
// neither field), less any scope the operator has since withdrawn from the
// allowed list. Never nil, so an empty set answers [] and not null.
func (c *configEntry) effectiveScopes(scopes []string, scoped bool) []string {
	if !scoped && len(scopes) == 0 {
		scopes = c.DefaultScopes
	}
	return c.allowedScopes(scopes)
}

// allowedScopes returns scopes less those no longer allowed; never nil.
func (c *configEntry) allowedScopes(scopes []string) []string {
	held := make([]string, 0, len(scopes))
	for _, scope := range scopes {
		if slices.Contains(c.Scopes, scope) {
			held = append(held, scope)
		}
	}
	return held
}

// requestedScopes validates the scopes asked for at issue time; none asked
// for means the default scopes. The message names what is wrong.
func (c *configEntry) requestedScopes(requested []string) ([]string, string) {
	if len(requested) == 0 {
		return slices.Clone(c.DefaultScopes), ""
	}
	var scopes []string
	for _, scope := range requested {
		scope = strings.TrimSpace(scope)
		if !slices.Contains(c.Scopes, scope) {
			return nil, fmt.Sprintf("scope %q is not one of the allowed scopes (%s)", scope, strings.Join(c.Scopes, ", "))
		}
		if !slices.Contains(scopes, scope) {
			scopes = append(scopes, scope)
		}
	}
	slices.Sort(scopes)
	return scopes, ""
}

func (c *configEntry) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"token_prefix":            c.TokenPrefix,
		"default_ttl":             int64(c.DefaultTTL.Seconds()),
		"max_ttl":                 int64(c.MaxTTL.Seconds()),
		"identity_cache_ttl":      int64(c.IdentityCacheTTL.Seconds()),
		"tidy_interval":           int64(c.TidyInterval.Seconds()),
		"scopes":                  c.Scopes,
		"default_scopes":          c.DefaultScopes,
		"admin_groups":            nonNil(c.AdminGroups),
		"org_group_name_template": c.OrgGroupNameTemplate,
		"expiry_notices":          formatDurations(c.ExpiryNotices),
		"last_used_granularity":   int64(c.LastUsedGranularity.Seconds()),
		"offboarding_grace":       int64(c.OffboardingGrace.Seconds()),
		"disabled_grace":          int64(c.DisabledGrace.Seconds()),
		"webhook_url":             redactedURL(c.WebhookURL),
		"sts_endpoint":            c.STSEndpoint,
		"iam_endpoint":            c.IAMEndpoint,
		"allowed_endpoints":       nonNil(c.AllowedEndpoints),
	}
}

// configFields describe the configuration as toResponseData returns it:
// durations in whole seconds, expiry_notices as Go durations.
var configFields = fieldSet{
	"token_prefix":            {Type: framework.TypeString, Description: "Prefix of every personal access token."},
	"default_ttl":             {Type: framework.TypeInt64, Description: "Lifetime of a token created without a ttl, in seconds."},
	"max_ttl":                 {Type: framework.TypeInt64, Description: "Longest lifetime a token may have, in seconds; 0 means no cap."},
	"identity_cache_ttl":      {Type: framework.TypeInt64, Description: "How long what Vault's identity store said about an entity is reused, in seconds."},
	"tidy_interval":           {Type: framework.TypeInt64, Description: "How often the periodic sweep runs, in seconds; 0 means only on request."},
	"scopes":                  {Type: framework.TypeStringSlice, Description: "The scopes a token may carry."},
	"default_scopes":          {Type: framework.TypeStringSlice, Description: "Scopes of a token created without scopes, and of tokens issued before scopes existed."},
	"admin_groups":            {Type: framework.TypeStringSlice, Description: "The only identity groups (names or ids) trusted to make platform admins; empty trusts any group with the admin metadata."},
	"org_group_name_template": {Type: framework.TypeString, Description: "The only group name that gives a role in an organization; empty trusts any group with the metadata."},
	"expiry_notices":          {Type: framework.TypeStringSlice, Description: `How long before expiry owners are reminded, longest first, as Go durations such as "168h0m0s".`},
	"last_used_granularity":   {Type: framework.TypeInt64, Description: "How finely last use is recorded, in seconds; 0 records nothing."},
	"offboarding_grace":       {Type: framework.TypeInt64, Description: "How long tidy keeps a deleted entity's tokens and provider tokens, in seconds."},
	"disabled_grace":          {Type: framework.TypeInt64, Description: "How long tidy keeps a disabled entity's tokens and provider tokens, in seconds; 0 keeps them while the entity exists."},
	"webhook_url":             {Type: framework.TypeString, Description: "Where lifecycle notifications are sent, shown as scheme and host only (its path and query may carry the receiver's token); empty sends none."},
	"sts_endpoint":            {Type: framework.TypeString, Description: "The AWS STS endpoint of derivations whose token names none; empty is AWS's own."},
	"iam_endpoint":            {Type: framework.TypeString, Description: "The IBM Cloud IAM endpoint of derivations whose token names none; empty is IBM Cloud's public one."},
	"allowed_endpoints":       {Type: framework.TypeStringSlice, Description: "Endpoints besides the providers' own https ones that a provider token's sts_endpoint or iam_endpoint may name."},
}

func formatDurations(durations []time.Duration) []string {
	out := make([]string, 0, len(durations))
	for _, d := range durations {
		out = append(out, d.String())
	}
	return out
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// tokenTTL returns the lifetime of a new PAT: the requested one, or the
// default, never past max_ttl (0 means no cap).
func (c *configEntry) tokenTTL(requested time.Duration) (time.Duration, error) {
	if requested < 0 {
		return 0, fmt.Errorf("ttl must not be negative")
	}
	if requested == 0 {
		requested = c.DefaultTTL
		if c.MaxTTL > 0 && requested > c.MaxTTL {
			requested = c.MaxTTL
		}
		return requested, nil
	}
	if c.MaxTTL > 0 && requested > c.MaxTTL {
		return 0, fmt.Errorf("ttl %s exceeds the max_ttl of %s", requested, c.MaxTTL)
	}
	return requested, nil
}

func pathConfig(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: configPath + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
			},
			Fields: map[string]*framework.FieldSchema{
				"token_prefix": {
					Type:        framework.TypeString,
					Description: "Prefix of every personal access token, for secret scanning. Lower-case letters and digits ending in '_'.",
					Default:     defaultTokenPrefix,
				},
				"default_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Lifetime of a personal access token created without a ttl.",
					Default:     int(defaultTokenTTL.Seconds()),
				},
				"max_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Longest lifetime a personal access token may have; 0 means no cap.",
					Default:     int(defaultTokenMaxTTL.Seconds()),
				},
				"identity_cache_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "How long the engine may reuse what Vault's identity store said about an entity (its name, groups and roles); 0 asks the identity store on every request.",
					Default:     int(defaultIdentityCacheTTL.Seconds()),
				},
				"tidy_interval": {
					Type:        framework.TypeDurationSecond,
					Description: "How often the periodic sweep removes expired tokens; 0 disables the periodic sweep (tidy still works on request).",
					Default:     int(defaultTidyInterval.Seconds()),
				},
				"scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "The scopes a personal access token may carry.",
					Default:     strings.Join(defaultScopes, ","),
				},
				"default_scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "The scopes of a personal access token created without scopes, and of tokens issued before scopes existed; each must be one of scopes.",
					Default:     strings.Join(defaultScopes, ","),
				},
				"admin_groups": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Names or ids of the only identity groups whose metadata planqk_org=* planqk_role=admin makes platform admins; empty trusts any group with that metadata.",
				},
				"org_group_name_template": {
					Type:        framework.TypeString,
					Description: "When set, only a group with this name gives a role in an organization, {{org}} and {{role}} replaced (e.g. planqk-{{org}}-{{role}}s); empty trusts any group with planqk_org and planqk_role metadata.",
				},
				"expiry_notices": {
					Type:        framework.TypeCommaStringSlice,
					Description: "How long before a PAT or provider token expires its owner is notified, e.g. 168h,24h; empty sends no reminders.",
					Default:     "168h,24h",
				},
				"last_used_granularity": {
					Type:        framework.TypeDurationSecond,
					Description: "How finely verify and introspect record when a token was last used (as the big code hosts show it); 0 records nothing.",
					Default:     int(defaultLastUsedGrain.Seconds()),
				},
				"offboarding_grace": {
					Type:        framework.TypeDurationSecond,
					Description: "How long after a user's entity is deleted tidy keeps the user's tokens and provider tokens; they stop verifying at once either way.",
				},
				"disabled_grace": {
					Type:        framework.TypeDurationSecond,
					Description: "How long after a user's entity is disabled tidy keeps the user's tokens and provider tokens; 0 keeps them while the entity exists. They stop verifying at once and work again if the entity is enabled before then.",
					Default:     int(defaultDisabledGrace.Seconds()),
				},
				"webhook_url": {
					Type:        framework.TypeString,
					Description: "Where lifecycle notifications are sent as Standard Webhooks: https, or http to a loopback address; empty sends none.",
				},
				"sts_endpoint": {
					Type:        framework.TypeString,
					Description: "The AWS STS endpoint that aws_assume_role derivations call when their token names no sts_endpoint, e.g. https://sts.eu-central-1.amazonaws.com: https, or http to a loopback address; empty is AWS's global endpoint.",
				},
				"allowed_endpoints": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Endpoints a provider token's sts_endpoint or iam_endpoint may name besides the providers' own https ones (sts[.<region>].amazonaws.com, [private.]iam.cloud.ibm.com): a sovereign cloud, a private endpoint, a stand-in on loopback. Token endpoints are written by organization owners and users, so anything else is refused.",
				},
				"iam_endpoint": {
					Type:        framework.TypeString,
					Description: "The IBM Cloud IAM endpoint that ibm_service_id_key derivations call when their token names no iam_endpoint, e.g. https://private.iam.cloud.ibm.com: https, or http to a loopback address; empty is https://iam.cloud.ibm.com.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathConfigRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "configuration"},
					Responses:    okResponse("The configuration, or the defaults when none was written. It holds no key material.", configFields),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathConfigWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "configure"},
					Responses:                   okResponse("The configuration as stored, with a warning when token_prefix changed.", configFields),
				},
			},
			HelpSynopsis:    pathConfigHelpSynopsis,
			HelpDescription: pathConfigHelpDescription,
		},
	}
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: cfg.toResponseData()}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	lock := b.lockFor(configPath)
	lock.Lock()
	defer lock.Unlock()

	current, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	cfg := *current

	if v, ok := d.GetOk("token_prefix"); ok {
		cfg.TokenPrefix = v.(string)
	}
	if v, ok := d.GetOk("default_ttl"); ok {
		cfg.DefaultTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("max_ttl"); ok {
		cfg.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("identity_cache_ttl"); ok {
		cfg.IdentityCacheTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("tidy_interval"); ok {
		cfg.TidyInterval = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("scopes"); ok {
		cfg.Scopes = normalizedList(v.([]string))
	}
	if v, ok := d.GetOk("default_scopes"); ok {
		cfg.DefaultScopes = normalizedList(v.([]string))
	}
	if v, ok := d.GetOk("admin_groups"); ok {
		cfg.AdminGroups = normalizedList(v.([]string))
	}
	if v, ok := d.GetOk("org_group_name_template"); ok {
		cfg.OrgGroupNameTemplate = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("expiry_notices"); ok {
		notices, msg := parseExpiryNotices(v.([]string))
		if msg != "" {
			return logical.ErrorResponse(msg), nil
		}
		cfg.ExpiryNotices = notices
	}
	if v, ok := d.GetOk("last_used_granularity"); ok {
		cfg.LastUsedGranularity = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("offboarding_grace"); ok {
		cfg.OffboardingGrace = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("disabled_grace"); ok {
		cfg.DisabledGrace = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("webhook_url"); ok {
		cfg.WebhookURL = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("sts_endpoint"); ok {
		cfg.STSEndpoint = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("iam_endpoint"); ok {
		cfg.IAMEndpoint = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("allowed_endpoints"); ok {
		cfg.AllowedEndpoints = nil
		for _, e := range normalizedList(v.([]string)) {
			cfg.AllowedEndpoints = append(cfg.AllowedEndpoints, normalizedEndpoint(e))
		}
	}

	if msg := cfg.validate(); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	entry, err := logical.StorageEntryJSON(configPath, &cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding configuration: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing configuration: %w", err)
	}

	b.configCache.set(configPath, &cfg)
	// Identities were judged under the old group bindings.
	b.identities.purge()

	resp := &logical.Response{Data: cfg.toResponseData()}
	if cfg.TokenPrefix != current.TokenPrefix {
		resp.AddWarning(fmt.Sprintf("token_prefix changed from %q to %q: personal access tokens issued with the old prefix no longer verify; rotate them", current.TokenPrefix, cfg.TokenPrefix))
	}
	return resp, nil
}

// validate returns a message naming the first invalid field, or "".
func (c *configEntry) validate() string {
	switch {
	case !tokenPrefixRegex.MatchString(c.TokenPrefix):
		return fmt.Sprintf("token_prefix %q is invalid: use 1-15 lower-case letters or digits, starting with a letter and followed by '_'", c.TokenPrefix)
	case c.DefaultTTL <= 0:
		return "default_ttl must be greater than zero: every personal access token expires"
	case c.MaxTTL < 0:
		return "max_ttl must not be negative"
	case c.MaxTTL > 0 && c.DefaultTTL > c.MaxTTL:
		return fmt.Sprintf("default_ttl %s exceeds max_ttl %s", c.DefaultTTL, c.MaxTTL)
	case c.IdentityCacheTTL < 0 || c.IdentityCacheTTL > maxIdentityCacheTTL:
		return fmt.Sprintf("identity_cache_ttl must be between 0 and %s", maxIdentityCacheTTL)
	case c.TidyInterval < 0:
		return "tidy_interval must not be negative"
	case len(c.Scopes) == 0:
		return "scopes must name at least one scope"
	case len(c.Scopes) > maxScopes:
		return fmt.Sprintf("scopes may name at most %d scopes", maxScopes)
	}
	for _, scope := range c.Scopes {
		if !scopeRegex.MatchString(scope) {
			return fmt.Sprintf("scope %q is invalid: use 1-64 lower-case letters, digits, '_', ':', '.' or '-', starting with a letter", scope)
		}
	}
	for _, scope := range c.DefaultScopes {
		if !slices.Contains(c.Scopes, scope) {
			return fmt.Sprintf("default_scopes: %q is not one of scopes", scope)
		}
	}
	for _, group := range c.AdminGroups {
		if group == "" || len(group) > MaxNameLength {
			return "admin_groups: each entry must be a group name or id of 1-128 characters"
		}
	}
	if t := c.OrgGroupNameTemplate; t != "" && (!strings.Contains(t, "{{org}}") || !strings.Contains(t, "{{role}}")) {
		return "org_group_name_template must contain {{org}} and {{role}}"
	}
	switch {
	case c.LastUsedGranularity < 0:
		return "last_used_granularity must not be negative"
	case c.LastUsedGranularity > 0 && c.LastUsedGranularity < time.Minute:
		return "last_used_granularity must be 0 (off) or at least 1m: finer would write on nearly every verify"
	case c.OffboardingGrace < 0:
		return "offboarding_grace must not be negative"
	case c.DisabledGrace < 0:
		return "disabled_grace must not be negative"
	}
	if msg := checkWebhookURL(c.WebhookURL); msg != "" {
		return msg
	}
	if c.STSEndpoint != "" {
		if msg := checkOutboundURL("sts_endpoint", c.STSEndpoint, true); msg != "" {
			return msg
		}
	}
	if c.IAMEndpoint != "" {
		if msg := checkIAMEndpoint(c.IAMEndpoint); msg != "" {
			return msg
		}
	}
	for _, e := range c.AllowedEndpoints {
		if msg := checkOutboundURL("allowed_endpoints", e, true); msg != "" {
			return msg
		}
	}
	return ""
}

// parseExpiryNotices reads durations such as 168h,24h, longest first.
func parseExpiryNotices(values []string) ([]time.Duration, string) {
	notices := []time.Duration{}
	for _, v := range normalizedList(values) {
		// As every other duration field: 168h, 7d or seconds.
		d, err := parseutil.ParseDurationSecond(v)
		if err != nil || d <= 0 {
			return nil, fmt.Sprintf("expiry_notices: %q is not a positive duration such as 168h or 7d", v)
		}
		if !slices.Contains(notices, d) {
			notices = append(notices, d)
		}
	}
	if len(notices) > maxExpiryNotices {
		return nil, fmt.Sprintf("expiry_notices may hold at most %d durations", maxExpiryNotices)
	}
	slices.SortFunc(notices, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	return notices, ""
}

// redactedURL shows a URL's scheme and host, and "/…" for a path or query,
// which receivers often use to carry a token (the auditor policy reads the
// configuration).
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if raw == "" || err != nil {
		return ""
	}
	shown := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		shown += "/…"
	}
	return shown
}

// checkWebhookURL accepts https URLs, and http ones to loopback addresses
// (a receiver on the same host); the message names what is wrong.
func checkWebhookURL(raw string) string {
	if raw == "" {
		return ""
	}
	return checkOutboundURL("webhook_url", raw, false)
}

// checkOutboundURL is the rule for every URL the engine sends requests to
// (webhook_url, iam_endpoint): absolute, without credentials, https - or
// http only to a loopback address, for a receiver or stand-in on the same
// host. An endpoint (bare) takes no query or fragment either. The message
// names the field and what is wrong, never the value.
func checkOutboundURL(field, raw string, bare bool) string {
	malformed := field + " must be an absolute http(s) URL without credentials"
	if bare {
		malformed += ", query or fragment"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || (bare && (u.RawQuery != "" || u.Fragment != "")) {
		return malformed
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return ""
		}
		return field + " must use https (http only to a loopback address)"
	}
	return malformed
}

// normalizedList drops the empty entries and repeats of a list field
// (whose entries the framework has trimmed), keeping the first order.
func normalizedList(values []string) []string {
	return strutil.RemoveDuplicatesStable(values, false)
}

// getConfig returns the stored configuration, or the defaults when none is
// stored. It is on every hot path, so it is served from memory after the
// first read and dropped by invalidate when another node changes it.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	if cfg, ok := b.configCache.get(configPath); ok {
		return cfg, nil
	}
	generation := b.configCache.begin()

	entry, err := s.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg := defaultConfig()
	if entry != nil {
		if err := entry.DecodeJSON(cfg); err != nil {
			return nil, fmt.Errorf("decoding configuration: %w", err)
		}
	}
	b.configCache.fill(configPath, cfg, generation)
	return cfg, nil
}

const pathConfigHelpSynopsis = `Configure personal access tokens: prefix, lifetimes, identity caching and tidying.`

const pathConfigHelpDescription = `
Reading returns the configuration; it never holds or shows key material (the
HMAC key that protects stored tokens lives in a separate seal-wrapped entry).

  token_prefix        prefix of every PAT (default "plqk_"); changing it makes
                      tokens with the old prefix stop verifying
  default_ttl         lifetime of a PAT created without ttl (default 720h)
  max_ttl             longest PAT lifetime; 0 = no cap (default 8760h)
  identity_cache_ttl  how long an entity's name, organizations and roles may
                      be reused before asking Vault's identity store again
                      (default 5s; 0 = ask on every request)
  tidy_interval       how often the periodic sweep removes expired tokens
                      (default 1h; 0 = only on request at tidy)
  scopes              the scopes a PAT may carry (default api,quantum_tokens)
  default_scopes      scopes of a PAT created without scopes, and of PATs
                      issued before scopes existed (default api,quantum_tokens)
  admin_groups        identity groups (names or ids) trusted to make platform
                      admins; empty trusts any group with the admin metadata
  org_group_name_template
                      only a group of this name gives an organization role,
                      e.g. planqk-{{org}}-{{role}}s; empty trusts any group
  expiry_notices      when owners are reminded before a token expires
                      (default 168h,24h; empty for none)
  last_used_granularity
                      how finely last use is recorded (default 1h; 0 = off)
  offboarding_grace   how long tidy keeps a deleted entity's tokens and
                      provider tokens (default 0)
  disabled_grace      how long tidy keeps a disabled entity's tokens and
                      provider tokens (default 720h; 0 = while the entity
                      exists); enabled again before then, it has them back
  webhook_url         where lifecycle notifications go (Standard Webhooks);
                      the signing secret is at notifications/webhook-secret
`
