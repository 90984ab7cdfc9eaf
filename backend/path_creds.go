package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "users/" + framework.GenericNameRegex("user") + "/creds/" + framework.GenericNameRegex("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "generate",
				OperationSuffix: "leased-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"user": {
					Type:        framework.TypeString,
					Description: "Name of the user: the Vault identity entity's name.",
					Required:    true,
				},
				"role": {
					Type:        framework.TypeString,
					Description: "Name of the role that sets the lease.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:                  b.pathCredsRead,
					ForwardPerformanceStandby: true,
				},
			},
			HelpSynopsis:    pathCredsHelpSynopsis,
			HelpDescription: pathCredsHelpDescription,
		},
	}
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	user, roleName := d.Get("user").(string), d.Get("role").(string)
	owner, errResp, err := b.requireTokenOwner(ctx, req, user)
	if errResp != nil || err != nil {
		return errResp, err
	}
	role, err := b.getRole(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return logical.ErrorResponse(fmt.Sprintf("role %q does not exist", roleName)), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	ttl, maxTTL := role.leaseTTLs(cfg)

	token, err := b.newToken(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	// The record's expiry is the lease's: Vault revokes the lease, and with
	// it the record, at that instant, and verify refuses the token from then
	// on even before the revocation runs.
	record := token.record(user, roleName, owner.entityID, roleName, ttl)
	if err := putTokenRecord(ctx, req.Storage, record); err != nil {
		return nil, err
	}

	resp := b.Secret(secretPATType).Response(
		map[string]interface{}{
			"token":      token.secret,
			"token_id":   record.TokenID,
			"name":       record.Name,
			"user":       user,
			"role":       roleName,
			"created_at": formatTime(record.CreatedAt),
			"expires_at": formatTime(record.ExpiresAt),
		},
		leaseInternalData{Hash: record.Hash, User: user, Role: roleName, TokenID: record.TokenID}.toMap(),
	)
	resp.Secret.TTL = ttl
	resp.Secret.MaxTTL = maxTTL
	return resp, nil
}

// leaseTTLs returns the TTL and max TTL of a lease issued for the role,
// capped by the engine's max_ttl.
func (r *roleEntry) leaseTTLs(cfg *configEntry) (ttl, maxTTL time.Duration) {
	ttl, maxTTL = r.TTL, r.MaxTTL
	if cfg.MaxTTL > 0 && maxTTL > cfg.MaxTTL {
		maxTTL = cfg.MaxTTL
	}
	if ttl > maxTTL {
		ttl = maxTTL
	}
	return ttl, maxTTL
}

const pathCredsHelpSynopsis = `Issue a short-lived personal access token as a Vault lease.`

const pathCredsHelpDescription = `
Reading issues a PAT for the caller, shaped by the role, as a Vault lease:
Vault Agent and runtimes renew it like any other lease, and when the lease
expires or is revoked (vault lease revoke) the token stops verifying. Only
the user's own identity entity may read it.

  vault read planqk/users/alice/creds/runtime
`
