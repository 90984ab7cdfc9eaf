package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// introspectTokenType is the OAuth 2.0 token type of a PAT (RFC 6749
// section 7.1): whoever holds it may use it.
const introspectTokenType = "bearer"

func pathIntrospect(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "introspect$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "introspect",
				OperationSuffix: "personal-access-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"token": {
					Type:        framework.TypeString,
					Description: "The personal access token to introspect, in the request body (form or JSON) only.",
					Required:    true,
				},
				"token_type_hint": {
					Type:        framework.TypeString,
					Description: "Accepted and ignored, as RFC 7662 allows: this endpoint knows one kind of token.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				// Like verify, introspect writes nothing: performance
				// standbys answer it themselves.
				logical.UpdateOperation: &framework.PathOperation{
					Callback: b.pathIntrospect,
				},
			},
			HelpSynopsis:    pathIntrospectHelpSynopsis,
			HelpDescription: pathIntrospectHelpDescription,
		},
	}
}

// introspectionResponse is an RFC 7662 section 2.2 response. An inactive
// token gets only "active": false.
type introspectionResponse struct {
	Active        bool                     `json:"active"`
	Scope         string                   `json:"scope,omitempty"`
	ClientID      string                   `json:"client_id,omitempty"`
	Username      string                   `json:"username,omitempty"`
	TokenType     string                   `json:"token_type,omitempty"`
	Exp           int64                    `json:"exp,omitempty"`
	Iat           int64                    `json:"iat,omitempty"`
	Sub           string                   `json:"sub,omitempty"`
	Jti           string                   `json:"jti,omitempty"`
	Kind          string                   `json:"kind,omitempty"`
	Organizations []map[string]interface{} `json:"organizations,omitempty"`
	// OrgRoles is organizations as "<org>:<role>" strings: gateways such
	// as mod_auth_openidc forward string arrays as headers, not objects.
	OrgRoles []string `json:"org_roles,omitempty"`
}

func (a *activeToken) introspectionResponse() *introspectionResponse {
	return &introspectionResponse{
		Active:        true,
		Scope:         strings.Join(a.scopes, " "),
		ClientID:      a.record.Name,
		Username:      a.owner.name,
		TokenType:     introspectTokenType,
		Exp:           a.record.ExpiresAt.Unix(),
		Iat:           a.record.CreatedAt.Unix(),
		Sub:           a.owner.entityID,
		Jti:           a.record.TokenID,
		Kind:          a.record.kind(),
		Organizations: a.owner.organizations(),
		OrgRoles:      a.owner.orgRoles(),
	}
}

// pathIntrospect answers exactly RFC 7662's JSON, without Vault's envelope,
// so that API gateways validate PATs with their stock introspection
// clients. Its costs are verify's.
func (b *backend) pathIntrospect(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	token := d.Get("token").(string)
	if token == "" {
		// RFC 7662 section 2.1 makes token required; RFC 6749 section 5.2
		// names the error.
		return rawJSON(http.StatusBadRequest, map[string]string{
			"error":             "invalid_request",
			"error_description": "token is required in the request body",
		})
	}
	active, err := b.introspectToken(ctx, req.Storage, token)
	if err != nil {
		return nil, err
	}
	if active == nil {
		return rawJSON(http.StatusOK, &introspectionResponse{Active: false})
	}
	return rawJSON(http.StatusOK, active.introspectionResponse())
}

// rawJSON is a response Vault writes as it is, without its envelope.
func rawJSON(status int, body interface{}) (*logical.Response, error) {
	encoded, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encoding response: %w", err)
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPContentType: "application/json",
		logical.HTTPStatusCode:  status,
		logical.HTTPRawBody:     encoded,
	}}, nil
}

const pathIntrospectHelpSynopsis = `Introspect a personal access token as RFC 7662 defines, for API gateways.`

const pathIntrospectHelpDescription = `
The OAuth 2.0 token introspection endpoint (RFC 7662) that API gateways -
Kong's oauth2-introspection, Apache mod_auth_openidc, Traefik, Envoy,
nginx - call to validate the PATs their clients present. POST the token as
a form (Content-Type: application/x-www-form-urlencoded, token=...,
token_type_hint is ignored) or as JSON, authenticated with a Vault token
(Authorization: Bearer or X-Vault-Token) whose policy grants update here
(planqk-verifier does).

The answer is RFC 7662's JSON itself, status 200, without Vault's "data"
envelope. An active token:

  {"active": true, "scope": "api quantum_tokens", "client_id": "laptop",
   "username": "alice", "token_type": "bearer", "exp": 1767225600,
   "iat": 1764633600, "sub": "<entity id>", "jti": "<token id>",
   "kind": "named", "organizations": [{"name": "acme", "role": "owner"}],
   "org_roles": ["acme:owner"]}

username is the owner entity's live name, sub its entity id (key users on
sub: a name can change), client_id the token's name (the role for a leased
token), kind "named" or "lease", organizations the owner's live roles, and
org_roles the same as "<org>:<role>" strings, which gateways forward. An
unknown, malformed, expired or revoked token, or one whose owner is
disabled or deleted, is {"active": false}. A token with a wrong prefix or
checksum costs no storage access.

  curl -H "Authorization: Bearer $VERIFIER_TOKEN" \
       -d token=plqk_... $VAULT_ADDR/v1/planqk/introspect
`
