package backend

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	rolePrefix = "roles/"

	defaultRoleTTL    = time.Hour
	defaultRoleMaxTTL = 24 * time.Hour
)

// roleEntry is a template for short-lived PATs issued as Vault leases.
type roleEntry struct {
	TTL         time.Duration `json:"ttl"`
	MaxTTL      time.Duration `json:"max_ttl"`
	Description string        `json:"description"`
	// Scopes of the role's tokens; nil means the configured default scopes.
	Scopes []string `json:"scopes,omitempty"`
}

func (r *roleEntry) toResponseData() map[string]interface{} {
	return map[string]interface{}{
		"ttl":         int64(r.TTL.Seconds()),
		"max_ttl":     int64(r.MaxTTL.Seconds()),
		"description": r.Description,
		"scopes":      nonNil(r.Scopes),
	}
}

// roleFields describe a role as toResponseData returns it.
var roleFields = fieldSet{
	"ttl":         {Type: framework.TypeInt64, Description: "Lease TTL of the role's tokens, in seconds."},
	"max_ttl":     {Type: framework.TypeInt64, Description: "Longest a lease of the role may be renewed to, in seconds."},
	"description": {Type: framework.TypeString, Description: "What the role's tokens are for."},
	"scopes":      {Type: framework.TypeStringSlice, Description: "Scopes of the role's tokens; empty means the configured default scopes at issue time."},
}

func pathRoles(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "roles/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathRolesList,
					Responses: okResponse("The roles.", fieldSet{
						"keys": {Type: framework.TypeStringSlice, Description: "Names of the roles."},
					}).or(http.StatusNotFound, emptyListDescription),
				},
			},
			HelpSynopsis:    pathRolesListHelpSynopsis,
			HelpDescription: pathRolesListHelpDescription,
		},
		{
			Pattern: "roles/" + pathSegment("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": {
					Type:        framework.TypeString,
					Description: "Name of the role.",
					Required:    true,
				},
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Lease TTL of the tokens issued for this role.",
					Default:     int(defaultRoleTTL.Seconds()),
				},
				"max_ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Longest a lease of this role may be renewed to; the mount's max_lease_ttl and the engine's max_ttl also cap it.",
					Default:     int(defaultRoleMaxTTL.Seconds()),
				},
				"description": {
					Type:        framework.TypeString,
					Description: "What the role's tokens are for.",
				},
				"scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Scopes of the role's tokens, each one of the configured scopes; empty means the configured default scopes at issue time.",
				},
			},
			ExistenceCheck: b.pathRoleExistenceCheck,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.CreateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   noContentResponse("The role is stored."),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathRoleWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   noContentResponse("The role is stored."),
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathRoleRead,
					Responses: okResponse("The role.", roleFields).or(http.StatusNotFound, "There is no role of this name."),
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathRoleDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   noContentResponse("The role is deleted, or there was none of this name; leases issued for it can no longer be renewed."),
				},
			},
			HelpSynopsis:    pathRoleHelpSynopsis,
			HelpDescription: pathRoleHelpDescription,
		},
	}
}

func (b *backend) pathRoleExistenceCheck(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	role, err := b.getRole(ctx, req.Storage, d.Get("role").(string))
	return role != nil, err
}

func (b *backend) pathRolesList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := req.Storage.List(ctx, rolePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	role, err := b.getRole(ctx, req.Storage, d.Get("role").(string))
	if err != nil || role == nil {
		return nil, err
	}
	return &logical.Response{Data: role.toResponseData()}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if msg := checkNames(resourceName("role", name)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}

	lock := b.lockFor(rolePrefix + name)
	lock.Lock()
	defer lock.Unlock()

	role, err := b.getRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	updated := roleEntry{TTL: defaultRoleTTL, MaxTTL: defaultRoleMaxTTL}
	if role != nil {
		updated = *role
	}
	if v, ok := d.GetOk("ttl"); ok {
		updated.TTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("max_ttl"); ok {
		updated.MaxTTL = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("description"); ok {
		updated.Description = v.(string)
	}
	if v, ok := d.GetOk("scopes"); ok {
		updated.Scopes = nil
		if requested := normalizedList(v.([]string)); len(requested) > 0 {
			scopes, msg := cfg.requestedScopes(requested)
			if msg != "" {
				return logical.ErrorResponse(msg), nil
			}
			updated.Scopes = scopes
		}
	}

	switch {
	case updated.TTL <= 0:
		return logical.ErrorResponse("ttl must be greater than zero"), nil
	case updated.MaxTTL <= 0:
		return logical.ErrorResponse("max_ttl must be greater than zero"), nil
	case updated.TTL > updated.MaxTTL:
		return logical.ErrorResponse(fmt.Sprintf("ttl %s exceeds max_ttl %s", updated.TTL, updated.MaxTTL)), nil
	}
	if msg := checkDescription(updated.Description); msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	entry, err := logical.StorageEntryJSON(rolePrefix+name, &updated)
	if err != nil {
		return nil, fmt.Errorf("encoding role: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing role: %w", err)
	}
	b.roles.set(name, &updated)
	return nil, nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("role").(string)
	if msg := checkNames(resourceName("role", name)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	lock := b.lockFor(rolePrefix + name)
	lock.Lock()
	defer lock.Unlock()

	if err := req.Storage.Delete(ctx, rolePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role: %w", err)
	}
	b.roles.remove(name)
	return nil, nil
}

// getRole returns the named role, or nil when there is none. Roles are read
// on every lease issue, so they are served from memory after the first read
// and dropped by invalidate when another node changes them.
func (b *backend) getRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	if CheckName(name) != nil {
		// No role can have this name; never use it as a storage key.
		return nil, nil
	}
	if role, ok := b.roles.get(name); ok {
		return role, nil
	}
	generation := b.roles.begin()

	entry, err := s.Get(ctx, rolePrefix+name)
	if err != nil {
		return nil, fmt.Errorf("reading role: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	role := &roleEntry{}
	if err := entry.DecodeJSON(role); err != nil {
		return nil, fmt.Errorf("decoding role: %w", err)
	}
	b.roles.fill(name, role, generation)
	return role, nil
}

const pathRolesListHelpSynopsis = `List the roles for short-lived personal access tokens.`

const pathRolesListHelpDescription = `
Roles are templates for the short-lived PATs that runtimes read from
users/<user>/creds/<role> as Vault leases.
`

const pathRoleHelpSynopsis = `Manage a role for short-lived personal access tokens issued as leases.`

const pathRoleHelpDescription = `
A role sets the lease of the PATs issued at users/<user>/creds/<role>:

  ttl          lease TTL (default 1h)
  max_ttl      longest the lease may be renewed to (default 24h)
  description  what the role's tokens are for
  scopes       scopes of the role's tokens (default: the configured
               default_scopes)

The lease is also capped by the engine's max_ttl and by the mount's
max_lease_ttl. When the lease expires or is revoked the token stops
verifying.

  vault write planqk/roles/runtime ttl=15m max_ttl=2h description="job runtimes"
`
