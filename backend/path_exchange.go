package backend

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// The exchange serves a platform service - the one that submits a user's
// job to a quantum provider - which holds the user's PAT but no Vault
// identity of the user: it answers, for the PAT's owner, what resolve and
// the runtime read would answer that owner.
const (
	// scopeQuantumTokens is the scope that lets a PAT have its owner's (and
	// the owner's organizations') provider tokens used on its behalf.
	scopeQuantumTokens = "quantum_tokens"
	// orgIDHeader is the header the PlanQK SDK sends the organization in
	// (planqk/context.py). It reaches the engine only on a mount tuned with
	// passthrough_request_headers=X-OrganizationId.
	orgIDHeader = "X-OrganizationId"
	// notActiveMessage is the one answer for a token that is inactive,
	// expired, revoked, garbled, unknown or not a PAT at all: it tells a
	// caller nothing about which.
	notActiveMessage = "the personal access token is not active"
)

func pathExchange(b *backend) []*framework.Path {
	tokenField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "The personal access token, in the request body of a POST only; a GET sends it in the X-Auth-Token header.",
	}
	orgField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Organization the job runs for, as resolve's org; or send it in the X-OrganizationId header, as the PlanQK SDK does. The PAT's owner must be a member.",
		Query:       true,
	}
	operations := func(callback exchangeFunc, description string, fields fieldSet, suffix string) map[logical.Operation]framework.OperationHandler {
		responses := func() responses {
			return okResponse(description, fields).
				or(http.StatusUnauthorized, `The PAT is not active: unknown, malformed, expired, revoked, or its owner is disabled or deleted - one answer for all. Body: {"errors": ["`+notActiveMessage+`"]}.`).
				or(http.StatusForbidden, `The PAT lacks the scope `+scopeQuantumTokens+`, or its owner is not a member of org. Body: {"errors": ["<reason>"]}.`).
				or(http.StatusNotFound, `No token of this provider is stored for the organization or the PAT's owner. Body: {"errors": ["<reason>"]}.`)
		}
		// The exchange writes nothing to storage: like verify, performance
		// standbys answer it themselves.
		return map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.exchangeHandler(callback, false),
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: suffix + "-with-header"},
				Responses:    responses(),
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:  b.exchangeHandler(callback, true),
				Responses: responses(),
			},
		}
	}
	return []*framework.Path{
		{
			Pattern: "exchange/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "exchange",
				OperationSuffix: "provider-token",
			},
			Fields: withDeriveFields(map[string]*framework.FieldSchema{
				"provider": {Type: framework.TypeString, Description: "Name of the provider.", Required: true},
				"token":    tokenField,
				"org":      orgField,
			}),
			Operations: operations(b.exchangeProviderToken,
				"What resolve/{provider} answers the PAT's owner - the provider's fields as top-level strings, env, source, org, version - and on_behalf_of.",
				exchangeFields, "provider-token"),
			HelpSynopsis:    pathExchangeHelpSynopsis,
			HelpDescription: pathExchangeHelpDescription,
		},
		{
			Pattern: "exchange$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "exchange",
				OperationSuffix: "runtime-environment",
			},
			Fields: withDeriveFields(map[string]*framework.FieldSchema{
				"token": tokenField,
				"org":   orgField,
			}),
			Operations: operations(b.exchangeEnvironment,
				"Every provider token the PAT's owner may use, as the runtime read's env and dotenv, without issuing a PAT.",
				exchangeEnvironmentFields, "runtime-environment"),
			HelpSynopsis:    pathExchangeEnvironmentHelpSynopsis,
			HelpDescription: pathExchangeEnvironmentHelpDescription,
		},
	}
}

var onBehalfOfField = &framework.FieldSchema{
	Type:        framework.TypeMap,
	Description: "Whom the answer is for: entity_id and user (the PAT owner's live name), token_id and kind of the PAT. Never the PAT.",
}

// exchangeFields describe the exchange's answer for one provider:
// resolve's, and for whom.
var exchangeFields = resolvedFields.with(fieldSet{"on_behalf_of": onBehalfOfField})

// exchangeEnvironmentFields describe the exchange's answer for every
// provider: the runtime read's environment, without a PAT.
var exchangeEnvironmentFields = fieldSet{
	"org":          runtimeFields["org"],
	"env":          {Type: framework.TypeMap, Description: "The job's environment, variable -> value (strings): PLANQK_ORGANIZATION_ID with an org, and every usable provider token under the variables its SDK reads. Not the PAT, which the caller holds.", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"dotenv":       runtimeFields["dotenv"],
	"providers":    runtimeFields["providers"],
	"on_behalf_of": onBehalfOfField,
	"expires_at":   {Type: framework.TypeString, Description: "When the first of the credentials derived for the job expires (RFC 3339), the end of the answer's lease. Absent when env holds stored keys only."},
}

// exchangeRequest is an exchange the engine admitted: an active PAT with
// the scope quantum_tokens, and an organization its owner is a member of
// (or none).
type exchangeRequest struct {
	pat    *activeToken
	org    string
	target *orgTarget // nil without org
	params deriveParams
}

func (e *exchangeRequest) onBehalfOf() map[string]interface{} {
	return map[string]interface{}{
		"entity_id": e.pat.owner.entityID,
		"user":      e.pat.owner.name,
		"token_id":  e.pat.record.TokenID,
		"kind":      e.pat.record.kind(),
	}
}

// exchangeFunc answers an admitted exchange.
type exchangeFunc func(context.Context, *logical.Request, *framework.FieldData, *exchangeRequest) (*logical.Response, error)

// exchangeHandler reads the PAT and the organization the way the request
// sent them - a POST in the body, a GET in the X-Auth-Token header - checks
// them, and hands the admitted exchange to handle.
func (b *backend) exchangeHandler(handle exchangeFunc, inBody bool) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		var token string
		if inBody {
			token = d.Get("token").(string)
			if token == "" {
				return logical.ErrorResponse("send the personal access token as token in the request body, or GET with it in the " + authTokenHeader + " header"), nil
			}
		} else {
			if _, inURL := req.Data["token"]; inURL {
				return logical.ErrorResponse("never put a token in a URL, where logs keep it: send it in the " + authTokenHeader + " header, or POST it in the body"), nil
			}
			token = headerValue(req.Headers, authTokenHeader)
			if token == "" {
				return logical.ErrorResponse("send the personal access token in the " + authTokenHeader + " header (the mount must pass it through: vault secrets tune -passthrough-request-headers=" + authTokenHeader + "), or POST it in the body"), nil
			}
		}
		params, msg := parseDeriveParams(d)
		if msg != "" {
			return logical.ErrorResponse(msg), nil
		}
		// Both are checked as names before either is compared or repeated:
		// a header or field that is not a name is never echoed.
		org := d.Get("org").(string)
		if org != "" {
			if msg := checkNames(orgName(org)); msg != "" {
				return logical.ErrorResponse(msg), nil
			}
		}
		if header := headerValue(req.Headers, orgIDHeader); header != "" {
			if msg := checkNames(namedValue{"the " + orgIDHeader + " header", header, CheckOrgName}); msg != "" {
				return logical.ErrorResponse(msg), nil
			}
			if org != "" && org != header {
				return logical.ErrorResponse(fmt.Sprintf("org %q and the %s header %q name different organizations: send one", org, orgIDHeader, header)), nil
			}
			org = header
		}

		pat, err := b.introspectToken(ctx, req.Storage, token)
		if err != nil {
			return nil, err
		}
		if pat == nil {
			return respondError(http.StatusUnauthorized, notActiveMessage), nil
		}
		if !slices.Contains(pat.scopes, scopeQuantumTokens) {
			return forbidden(fmt.Sprintf("personal access token %s lacks the scope %q, which lets provider tokens be used on its behalf", pat.record.TokenID, scopeQuantumTokens)), nil
		}
		target, denied, err := b.memberOrg(ctx, req.Storage, pat.owner, org)
		if denied != nil || err != nil {
			return denied, err
		}
		return handle(ctx, req, d, &exchangeRequest{pat: pat, org: org, target: target, params: params})
	}
}

// exchangeProviderToken answers what resolve answers the PAT's owner.
func (b *backend) exchangeProviderToken(ctx context.Context, req *logical.Request, d *framework.FieldData, e *exchangeRequest) (*logical.Response, error) {
	provider := d.Get("provider").(string)
	owner := e.pat.owner
	usable, err := b.usableProviderToken(ctx, req.Storage, owner, e.target, provider)
	if err != nil {
		return nil, err
	}
	if usable == nil {
		if e.org != "" {
			return notFound(fmt.Sprintf("no %q token is stored for organization %q or for user %q", provider, e.org, owner.name)), nil
		}
		return notFound(fmt.Sprintf("no %q token is stored for user %q", provider, owner.name)), nil
	}
	return b.jobResponse(ctx, req.Storage, usable, owner, e.params, map[string]interface{}{"on_behalf_of": e.onBehalfOf()})
}

// exchangeEnvironment answers the runtime read's environment for the PAT's
// owner, without issuing a PAT.
func (b *backend) exchangeEnvironment(ctx context.Context, req *logical.Request, _ *framework.FieldData, e *exchangeRequest) (*logical.Response, error) {
	runtime, denied, err := b.runtimeEnvironment(ctx, req.Storage, e.pat.owner, e.target, e.params)
	if denied != nil || err != nil {
		return denied, err
	}
	data, err := runtime.responseData(e.org)
	if err != nil {
		b.undoDerived(ctx, req.Storage, runtime.derived)
		return nil, err
	}
	data["on_behalf_of"] = e.onBehalfOf()
	if len(runtime.derived) > 0 {
		data["expires_at"] = formatTime(earliestExpiry(runtime.derived))
	}
	b.noteUses(ctx, req.Storage, runtime, e.pat.owner)
	resp := &logical.Response{Data: data}
	for _, warning := range runtime.warnings {
		resp.AddWarning(warning)
	}
	return b.leaseDerived(resp, runtime.derived), nil
}

const pathExchangeHelpSynopsis = `Exchange a user's PAT for the provider token a job of theirs may use.`

const pathExchangeHelpDescription = `
For the platform service that runs a user's job on a quantum provider: it
holds the user's PAT (the x-auth-token the PlanQK SDK sent) but no Vault
identity of the user. Its Vault token needs the planqk-broker policy.

The answer is exactly what resolve/<provider> answers the PAT's owner - the
organization's token when the owner is a live member of org (any role the
organization admits, see orgs/<org>/settings) and the organization has one,
else the owner's own - plus on_behalf_of: the owner's entity_id and live
name, and the PAT's token_id and kind.

  GET  with the PAT in the X-Auth-Token header (the mount must pass it
       through), so that it is in no request body or audit entry;
  POST with token=<PAT> in the body (Vault Agent templates; audit devices
       HMAC it).
The organization: org=<name>, or the X-OrganizationId header the PlanQK SDK
sends (passed through like X-Auth-Token); both must agree.

A PAT that is unknown, malformed, expired, revoked, or whose owner is
disabled or deleted: 401 "the personal access token is not active", one
answer for all. A PAT without the scope quantum_tokens: 403 naming it. An
owner who is not a member of org: 403. No token: 404. Warm, an exchange
makes no storage round trip.

  curl -H "X-Vault-Token: $BROKER_TOKEN" -H "X-Auth-Token: plqk_..." \
       -H "X-OrganizationId: acme" $VAULT_ADDR/v1/planqk/exchange/ibm-quantum
`

const pathExchangeEnvironmentHelpSynopsis = `Exchange a user's PAT for every provider token a job of theirs may use, as environment variables.`

const pathExchangeEnvironmentHelpDescription = `
The exchange for every provider at once: the env and dotenv that
users/<user>/runtime/<role> builds for the PAT's owner (with org,
PLANQK_ORGANIZATION_ID), without issuing a PAT and without the caller's
PAT in it; providers names each provider with the source of its token;
on_behalf_of as exchange/<provider>. The same input, checks and refusals
as exchange/<provider>; nothing usable is an empty env, not a 404.

  curl -H "X-Vault-Token: $BROKER_TOKEN" -H "X-Auth-Token: plqk_..." \
       -H "X-OrganizationId: acme" $VAULT_ADDR/v1/planqk/exchange
`
