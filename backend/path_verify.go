package backend

import (
	"context"
	"strings"
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
					Callback:  b.pathVerify,
					Responses: okResponse(verifyResponseDescription, verifyFields),
				},
				// The token in a header, as the PlanQK SDKs send it: Vault
				// answers a read without asking the plugin's existence
				// check first, one round trip fewer than a POST.
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathVerifyHeader,
					// An operation id of its own: OpenAPI needs them unique.
					DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "personal-access-token-in-header"},
					Responses:    okResponse(verifyResponseDescription, verifyFields),
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
	return b.verifyResponse(ctx, req.Storage, token)
}

// verifyResponse is verify's answer for token, however it was sent.
func (b *backend) verifyResponse(ctx context.Context, s logical.Storage, token string) (*logical.Response, error) {
	active, err := b.introspectToken(ctx, s, token)
	if err != nil {
		return nil, err
	}
	if active == nil {
		return &logical.Response{Data: map[string]interface{}{"active": false}}, nil
	}
	return &logical.Response{Data: active.verifyResponseData()}, nil
}

// authTokenHeader is the header the PlanQK SDKs send a PAT in. It reaches
// the engine only on a mount tuned with
// passthrough_request_headers=X-Auth-Token.
const authTokenHeader = "X-Auth-Token"

func (b *backend) pathVerifyHeader(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if _, inURL := req.Data["token"]; inURL {
		return logical.ErrorResponse("never put a token in a URL, where logs keep it: send it in the " + authTokenHeader + " header, or POST it in the body"), nil
	}
	token := headerValue(req.Headers, authTokenHeader)
	if token == "" {
		return logical.ErrorResponse("send the token in the " + authTokenHeader + " header (the mount must pass it through: vault secrets tune -passthrough-request-headers=" + authTokenHeader + "), or POST it in the body"), nil
	}
	return b.verifyResponse(ctx, req.Storage, token)
}

// headerValue returns the first value of a request header, whatever the
// case of its name.
func headerValue(headers map[string][]string, name string) string {
	for key, values := range headers {
		if strings.EqualFold(key, name) && len(values) > 0 {
			return values[0]
		}
	}
	return ""
}

// activeToken is a token that verifies, with its owner as Vault's identity
// store describes the owner now.
type activeToken struct {
	record *tokenRecord
	owner  *identity
	scopes []string
}

// verifyFields describe verify's answer; an inactive token has only
// active.
var verifyFields = tokenFields.with(fieldSet{
	"active":        {Type: framework.TypeBool, Description: "Whether the token verifies. When false, no other field is present."},
	"kind":          {Type: framework.TypeString, Description: "How the token was issued: a named token, or a lease of a role.", AllowedValues: []interface{}{tokenKindNamed, tokenKindLease}},
	"role":          {Type: framework.TypeString, Description: "The role of a token issued as a lease; empty for a named token."},
	"organizations": organizationsField,
})

const verifyResponseDescription = `Always 200: "active" says whether the token verifies; an active token's owner and organizations are live from Vault's identity store.`

func (a *activeToken) verifyResponseData() map[string]interface{} {
	return map[string]interface{}{
		"active":        true,
		"token_id":      a.record.TokenID,
		"kind":          a.record.kind(),
		"name":          a.record.Name,
		"user":          a.owner.name,
		"entity_id":     a.owner.entityID,
		"role":          a.record.Role,
		"scopes":        a.scopes,
		"created_at":    formatTime(a.record.CreatedAt),
		"expires_at":    formatTime(a.record.ExpiresAt),
		"organizations": a.owner.organizations(),
	}
}

// introspectToken returns the token's record and owner if the token is
// active, nil if it is not. A token with a wrong prefix or checksum costs
// no storage access; otherwise at most one read, none when the record is
// cached.
func (b *backend) introspectToken(ctx context.Context, s logical.Storage, token string) (*activeToken, error) {
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	if !wellFormedToken(token, cfg.TokenPrefix) {
		return nil, nil
	}
	hmacKey, err := b.getSalt(ctx, s, false)
	if err != nil || hmacKey == nil {
		return nil, err
	}
	record, err := b.getCachedTokenRecord(ctx, s, hmacKey.GetHMAC(token))
	if err != nil {
		return nil, err
	}
	if record == nil || record.expired(time.Now()) {
		return nil, nil
	}
	owner, err := b.lookupIdentity(ctx, s, record.EntityID)
	if err != nil {
		return nil, err
	}
	if owner == nil || owner.disabled {
		return nil, nil
	}
	b.lastUse.note(record, time.Now(), cfg.LastUsedGranularity)
	return &activeToken{record: record, owner: owner, scopes: cfg.effectiveScopes(record.Scopes, record.Scoped)}, nil
}

// getCachedTokenRecord is getTokenRecord served from memory when it can be.
// Every path that changes or deletes a record on this node updates or drops
// its cached copy, and Invalidate drops copies that other nodes change;
// expiry is checked by the caller on every use.
func (b *backend) getCachedTokenRecord(ctx context.Context, s logical.Storage, hash string) (*tokenRecord, error) {
	if record, ok := b.records.get(hash); ok {
		return record, nil
	}
	generation := b.records.begin()
	record, err := getTokenRecord(ctx, s, hash)
	if err != nil || record == nil {
		return nil, err
	}
	b.records.fill(hash, record, generation)
	return record, nil
}

const pathVerifyHelpSynopsis = `Introspect a personal access token, for the PlanQK API.`

const pathVerifyHelpDescription = `
POST the token in the request body, or GET with the token in the
X-Auth-Token header (the header PlanQK's SDKs send; the mount must pass it
through: vault secrets tune -passthrough-request-headers=X-Auth-Token).
Never put it in the URL. The answer is always status 200 with "active". A token that is unknown, malformed, expired,
revoked, or whose owner entity is gone or disabled is active=false. A token
with a wrong prefix or checksum is refused without touching storage.

An active token also returns token_id, kind ("named" or "lease"), name,
user (the owner entity's live name), entity_id, role (for tokens issued as
leases), scopes, created_at, expires_at and organizations: the owner's
organizations with their role, from the owner's identity groups (reused for
at most identity_cache_ttl). Key users on entity_id: a user name can be
changed, and a new entity can take an old one.

  vault write planqk/verify token=plqk_...
  curl -H "X-Vault-Token: $VERIFIER_TOKEN" -H "X-Auth-Token: plqk_..." \
       $VAULT_ADDR/v1/planqk/verify
`
