package backend

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathResolve(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "resolve/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "resolve",
				OperationSuffix: "provider-token",
			},
			Fields: withDeriveFields(map[string]*framework.FieldSchema{
				"provider": {
					Type:        framework.TypeString,
					Description: "Name of the provider.",
					Required:    true,
				},
				"org": {
					Type:        framework.TypeString,
					Description: "Organization whose token to prefer; the caller must be a member.",
					Query:       true,
				},
			}),
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathResolve,
					Responses: okResponse("The effective token with its secret values, in env and also each of the provider's fields (see providers/{provider}) as a top-level string field holding its value, which OpenAPI cannot name: they differ by provider.", resolvedFields).
						or(http.StatusForbidden, forbiddenDescription).
						or(http.StatusNotFound, `No token of this provider is stored for the organization or the caller. Body: {"errors": ["<reason>"]}.`),
				},
			},
			HelpSynopsis:    pathResolveHelpSynopsis,
			HelpDescription: pathResolveHelpDescription,
		},
	}
}

func (b *backend) pathResolve(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	provider, org := d.Get("provider").(string), d.Get("org").(string)
	if req.EntityID == "" {
		return logical.ErrorResponse("resolve needs the request's token to have an identity entity: provider tokens are resolved for a user"), nil
	}
	params, msg := parseDeriveParams(d)
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if org != "" {
		if msg := checkNames(orgName(org)); msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	}
	caller, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return denied, err
	}

	target, denied, err := b.memberOrg(ctx, req.Storage, caller, org)
	if denied != nil || err != nil {
		return denied, err
	}
	usable, err := b.usableProviderToken(ctx, req.Storage, caller, target, provider)
	if err != nil {
		return nil, err
	}
	if usable == nil {
		if org != "" {
			return notFound(fmt.Sprintf("no %q token is stored for organization %q or for user %q", provider, org, caller.name)), nil
		}
		return notFound(fmt.Sprintf("no %q token is stored for user %q", provider, caller.name)), nil
	}
	return b.jobResponse(ctx, req.Storage, usable, caller, params, nil)
}

// jobResponse answers with the credentials a job gets from the token
// (jobCredentials) as resolve does, with extra data; derived credentials
// under a lease of their own. The use is noted once the answer is made.
func (b *backend) jobResponse(ctx context.Context, s logical.Storage, usable *usableToken, caller *identity, params deriveParams, extra map[string]interface{}) (*logical.Response, error) {
	answer, creds, denied, err := b.jobCredentials(ctx, s, usable, caller, params)
	if denied != nil || err != nil {
		return denied, err
	}
	resp, err := b.resolvedResponse(ctx, s, answer)
	if err == nil {
		err = b.noteProviderTokenUse(ctx, s, usable, caller)
	}
	if err != nil {
		if creds != nil {
			b.undoDerived(ctx, s, []*derivedCredentials{creds})
		}
		return nil, err
	}
	for key, value := range derivedResponseData(answer) {
		resp.Data[key] = value
	}
	for key, value := range extra {
		resp.Data[key] = value
	}
	if creds == nil {
		return resp, nil
	}
	return b.leaseDerived(resp, []*derivedCredentials{creds}), nil
}

// memberOrg returns the organization org (if not "") for a caller who
// must be a member of it (or a platform admin), or a response saying why
// not.
func (b *backend) memberOrg(ctx context.Context, s logical.Storage, caller *identity, org string) (*orgTarget, *logical.Response, error) {
	if org == "" {
		return nil, nil, nil
	}
	if caller.roleIn(org) < roleMember {
		return nil, forbidden(fmt.Sprintf("entity %q is not a member of organization %q", caller.name, org)), nil
	}
	return b.orgOf(ctx, s, caller, org)
}

// usableProviderToken returns the token of provider the caller may use:
// the organization's when org (of which the caller is a member) has one
// and its settings admit the caller's role (orgs/<org>/settings), else the
// caller's own, by its entity id (never by name); nil when
// neither exists. Tokens and their absence come from the provider-token
// cache, which every write, delete and invalidation updates. It notes no
// use: the caller does, for what it hands out.
func (b *backend) usableProviderToken(ctx context.Context, s logical.Storage, caller *identity, org *orgTarget, provider string) (*usableToken, error) {
	type candidate struct {
		owner  *providerTokenOwner
		source string
	}
	own := candidate{&providerTokenOwner{user: &userTarget{name: caller.name, owner: caller, self: true}}, sourceUser}
	candidates := []candidate{own}
	if org != nil && org.id != "" {
		settings, err := b.cachedOrgSettings(ctx, s, org.id)
		if err != nil {
			return nil, err
		}
		if settings.admits(caller.roleIn(org.name)) {
			candidates = []candidate{{&providerTokenOwner{org: org}, sourceOrganization}, own}
		}
	}
	for _, candidate := range candidates {
		entry, err := b.cachedProviderToken(ctx, s, candidate.owner.storagePrefix(), provider)
		if err != nil {
			return nil, err
		}
		if entry != nil {
			return &usableToken{provider: provider, source: candidate.source, owner: candidate.owner, entry: entry}, nil
		}
	}
	return nil, nil
}

// resolvedFields describe resolve's answer, less the provider's own
// fields, which differ by provider.
var resolvedFields = derivedResponseFields.with(fieldSet{
	"provider":  {Type: framework.TypeString, Description: "Name of the provider."},
	"version":   {Type: framework.TypeInt, Description: "Version of the stored token."},
	"source":    {Type: framework.TypeString, Description: "Whose token it is.", AllowedValues: []interface{}{"organization", "user"}},
	"org":       {Type: framework.TypeString, Description: "The organization whose token it is; empty for the caller's own."},
	"user":      {Type: framework.TypeString, Description: "The caller's name, for the caller's own token; absent for an organization's."},
	"entity_id": {Type: framework.TypeString, Description: "The caller's entity id, for the caller's own token; absent for an organization's."},
	"env":       {Type: framework.TypeMap, Description: "The token's values under the environment variables the provider's SDK reads, with the provider's env_constants: variable -> value (strings).", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
})

// resolvedResponse returns the token's values as top-level string fields -
// which audit devices HMAC - for templates such as {{ .Data.token }}, and
// as env, under the variables the provider's SDK reads.
func (b *backend) resolvedResponse(ctx context.Context, s logical.Storage, usable *usableToken) (*logical.Response, error) {
	catalogue, err := b.catalogue(ctx, s)
	if err != nil {
		return nil, err
	}
	entry := usable.entry
	data := entry.commonResponseData(usable.owner)
	for name, value := range entry.Values {
		data[name] = value
	}
	data["source"] = usable.source
	data["org"] = usable.owner.orgName()
	env, warnings := map[string]string{}, []string(nil)
	if provider := catalogue[entry.Provider]; provider != nil {
		env, warnings = provider.environment(entry.Provider, entry.Values)
	} else {
		warnings = append(warnings, fmt.Sprintf("provider %q is no longer in the catalogue: env is empty", entry.Provider))
	}
	data["env"] = env
	resp := &logical.Response{Data: data}
	for _, warning := range warnings {
		resp.AddWarning(warning)
	}
	return resp, nil
}

const pathResolveHelpSynopsis = `Return the caller's effective provider access token, with its secret values.`

const pathResolveHelpDescription = `
What a runtime injects to run jobs on a provider. With org, the caller must
be a member of the organization (any role): the organization's token is
returned if one is stored, otherwise the caller's own. Without org, the
caller's own token. None: 404.

The response holds the provider's fields with their values; env, the same
values under the environment variables the provider's SDK reads (with the
provider's fixed variables, see providers/<provider>); and source
("organization" or "user"), org, provider and version. Needs a token with
an identity entity. users/<user>/runtime/<role> gives a job all providers'
variables and a leased PAT in one read.

  vault read planqk/resolve/ibm-quantum org=acme
`
