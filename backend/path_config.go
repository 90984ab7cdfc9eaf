package backend

import (
	"context"
	"fmt"
	"regexp"
	"time"

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

	maxIdentityCacheTTL = 5 * time.Minute
)

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
}

func defaultConfig() *configEntry {
	return &configEntry{
		TokenPrefix:      defaultTokenPrefix,
		DefaultTTL:       defaultTokenTTL,
		MaxTTL:           defaultTokenMaxTTL,
		IdentityCacheTTL: defaultIdentityCacheTTL,
		TidyInterval:     defaultTidyInterval,
	}
}

func (c *configEntry) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"token_prefix":       c.TokenPrefix,
		"default_ttl":        int64(c.DefaultTTL.Seconds()),
		"max_ttl":            int64(c.MaxTTL.Seconds()),
		"identity_cache_ttl": int64(c.IdentityCacheTTL.Seconds()),
		"tidy_interval":      int64(c.TidyInterval.Seconds()),
	}
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
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathConfigRead,
					DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "configuration"},
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                  b.pathConfigWrite,
					ForwardPerformanceStandby: true,
					DisplayAttrs:              &framework.DisplayAttributes{OperationVerb: "configure"},
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

	b.cacheLock.Lock()
	b.config = &cfg
	b.cacheLock.Unlock()

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
	}
	return ""
}

// getConfig returns the stored configuration, or the defaults when none is
// stored. It is on every hot path, so it is served from memory after the
// first read and dropped by invalidate when another node changes it.
func (b *backend) getConfig(ctx context.Context, s logical.Storage) (*configEntry, error) {
	b.cacheLock.RLock()
	cfg := b.config
	b.cacheLock.RUnlock()
	if cfg != nil {
		return cfg, nil
	}

	entry, err := s.Get(ctx, configPath)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	cfg = defaultConfig()
	if entry != nil {
		if err := entry.DecodeJSON(cfg); err != nil {
			return nil, fmt.Errorf("decoding configuration: %w", err)
		}
	}

	b.cacheLock.Lock()
	b.config = cfg
	b.cacheLock.Unlock()
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
`
