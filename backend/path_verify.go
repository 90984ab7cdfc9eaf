package backend

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathVerify(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "verify$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "verify",
				OperationSuffix: "personal-access-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"token": {
					Type:        framework.TypeString,
					Description: "The personal access token to introspect, in the request body only.",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				// Verify writes nothing, so performance standbys answer it
				// themselves: it is the engine's highest-volume operation.
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathVerify,
				},
			},
			HelpSynopsis:    pathVerifyHelpSynopsis,
			HelpDescription: pathVerifyHelpDescription,
		},
	}
}

func (b *backend) pathVerify(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	token := d.Get("token").(string)
	if token == "" {
		return logical.ErrorResponse("token is required in the request body"), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if !wellFormedToken(token, cfg.TokenPrefix) {
		return inactive(), nil
	}
	hmacKey, err := b.getSalt(ctx, req.Storage, false)
	if err != nil {
		return nil, err
	}
	if hmacKey == nil {
		return inactive(), nil
	}
	record, err := getTokenRecord(ctx, req.Storage, hmacKey.GetHMAC(token))
	if err != nil {
		return nil, err
	}
	if record == nil || record.expired(time.Now()) {
		return inactive(), nil
	}
	owner, err := b.lookupIdentity(ctx, req.Storage, record.EntityID)
	if err != nil {
		return nil, err
	}
	if owner == nil || owner.disabled {
		return inactive(), nil
	}

	return &logical.Response{Data: map[string]interface{}{
		"active":        true,
		"token_id":      record.TokenID,
		"name":          record.Name,
		"user":          record.User,
		"entity_id":     record.EntityID,
		"role":          record.Role,
		"created_at":    formatTime(record.CreatedAt),
		"expires_at":    formatTime(record.ExpiresAt),
		"organizations": owner.organizations(),
	}}, nil
}

func inactive() *logical.Response {
	return &logical.Response{Data: map[string]interface{}{"active": false}}
}

const pathVerifyHelpSynopsis = `Introspect a personal access token, for the PlanQK API.`

const pathVerifyHelpDescription = `
Send the token in the request body (never in the URL): the answer is always
status 200 with "active". A token that is unknown, malformed, expired,
revoked, or whose owner entity is gone or disabled is active=false. A token
with a wrong prefix or checksum is refused without touching storage.

An active token also returns token_id, name, user, entity_id, role (for
tokens issued as leases), created_at, expires_at and organizations: the
owner's organizations with their role, from the owner's identity groups
(reused for at most identity_cache_ttl).

  vault write planqk/verify token=plqk_...
`
