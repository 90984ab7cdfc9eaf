package backend

import (
	"context"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Unclaimed provider tokens are those the upgrade from v0.1.0 could not
// attribute to an entity (see migrate.go): live credentials that nobody
// can resolve. An operator either gives one to the entity it belongs to -
// a decision the engine cannot make, which is why it was set aside - or
// deletes it. The inventory lists them as unclaimed/<name>/<provider>.

func pathUnclaimed(b *backend) []*framework.Path {
	fields := map[string]*framework.FieldSchema{
		"name": {
			Type:        framework.TypeString,
			Description: "The v0.1.0 user name the token was stored under.",
			Required:    true,
		},
		"provider": {
			Type:        framework.TypeString,
			Description: "Name of the provider.",
			Required:    true,
		},
	}
	claimFields := map[string]*framework.FieldSchema{
		"entity_id": {
			Type:        framework.TypeString,
			Description: "Id of the identity entity the token belongs to; it must exist and must not have a token for this provider already.",
			Required:    true,
		},
	}
	for name, field := range fields {
		claimFields[name] = field
	}
	return []*framework.Path{
		{
			Pattern: "unclaimed/" + pathSegment("name") + "/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "unclaimed-provider-token",
			},
			Fields: fields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathUnclaimedDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: noContentResponse("Deleted, or there was no such token.").
						or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathUnclaimedHelpSynopsis,
			HelpDescription: pathUnclaimedHelpDescription,
		},
		{
			Pattern: "unclaimed-orgs/" + pathSegment("org") + "/" + providerNameRegex + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "unclaimed-organization-provider-token",
			},
			Fields: unclaimedOrgFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathUnclaimedOrgDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: noContentResponse("Deleted, or there was no such token.").
						or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathUnclaimedOrgHelpSynopsis,
			HelpDescription: pathUnclaimedOrgHelpDescription,
		},
		{
			Pattern: "unclaimed-orgs/" + pathSegment("org") + "/" + providerNameRegex + "/claim$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "claim",
				OperationSuffix: "unclaimed-organization-provider-token",
			},
			Fields: unclaimedOrgClaimFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathUnclaimedOrgClaim,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("The token, now the organization's: its metadata, never a secret value.", providerTokenFields.with(orgProviderTokenOwnerFields)).
						or(http.StatusForbidden, forbiddenDescription).
						or(http.StatusNotFound, "No unclaimed token of this organization name and provider."),
				},
			},
			HelpSynopsis:    pathUnclaimedOrgHelpSynopsis,
			HelpDescription: pathUnclaimedOrgHelpDescription,
		},
		{
			Pattern: "unclaimed/" + pathSegment("name") + "/" + providerNameRegex + "/claim$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "claim",
				OperationSuffix: "unclaimed-provider-token",
			},
			Fields: claimFields,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathUnclaimedClaim,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("The token, now the entity's: its metadata, never a secret value.", providerTokenFields.with(userProviderTokenOwnerFields)).
						or(http.StatusForbidden, forbiddenDescription).
						or(http.StatusNotFound, "No unclaimed token of this name and provider."),
				},
			},
			HelpSynopsis:    pathUnclaimedHelpSynopsis,
			HelpDescription: pathUnclaimedHelpDescription,
		},
	}
}

// authorizeOperator admits requests without an entity (ACL decides) and
// platform admins.
func (b *backend) authorizeOperator(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	caller, denied, err := b.callerIdentity(ctx, req)
	if caller == nil || denied != nil || err != nil {
		return denied, err
	}
	if !caller.admin {
		return forbidden(fmt.Sprintf("entity %q is not a platform admin", caller.name)), nil
	}
	return nil, nil
}

func (b *backend) pathUnclaimedDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if msg := checkNames(userName(name)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if denied, err := b.authorizeOperator(ctx, req); denied != nil || err != nil {
		return denied, err
	}
	if err := b.deleteProviderToken(ctx, req.Storage, unclaimedProviderTokenPrefix+name+"/", d.Get("provider").(string)); err != nil {
		return nil, err
	}
	return nil, nil
}

// pathUnclaimedClaim moves the token to the entity an operator names: the
// write to the entity first, so that a failure in between leaves a copy
// aside rather than none.
func (b *backend) pathUnclaimedClaim(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, provider, entityID := d.Get("name").(string), d.Get("provider").(string), d.Get("entity_id").(string)
	if msg := checkNames(userName(name)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if !validEntityID(entityID) {
		return logical.ErrorResponse("entity_id must be an identity entity's id"), nil
	}
	if denied, err := b.authorizeOperator(ctx, req); denied != nil || err != nil {
		return denied, err
	}
	id, err := b.lookupIdentity(ctx, req.Storage, entityID)
	if err != nil {
		return nil, err
	}
	if id == nil {
		return logical.ErrorResponse("no identity entity has that entity_id"), nil
	}

	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()

	aside := unclaimedProviderTokenPrefix + name + "/"
	token, err := getProviderToken(ctx, req.Storage, aside, provider)
	if err != nil {
		return nil, err
	}
	if token == nil {
		return notFound(fmt.Sprintf("no unclaimed %q token of %q", provider, name)), nil
	}
	owner := userProviderTokenOwner(entityID, id.name)
	existing, err := getProviderToken(ctx, req.Storage, owner.storagePrefix(), provider)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return logical.ErrorResponse(fmt.Sprintf("entity %q already has a %q token: delete one of the two first", id.name, provider)), nil
	}
	if err := b.registerOwner(ctx, req.Storage, id); err != nil {
		return nil, err
	}
	if err := b.putProviderToken(ctx, req.Storage, owner.storagePrefix(), token); err != nil {
		return nil, err
	}
	if err := b.deleteProviderToken(ctx, req.Storage, aside, provider); err != nil {
		return nil, err
	}
	event := owner.providerTokenEvent(eventProviderTokenWritten, token)
	event.Details["reason"] = "claimed"
	b.notify(ctx, req.Storage, event)
	return &logical.Response{Data: b.namedLastUse(ctx, req.Storage, token.toResponseData(owner))}, nil
}

// The fields of unclaimed-orgs/<org>/<provider>[/claim].
var (
	unclaimedOrgFields = map[string]*framework.FieldSchema{
		"org": {
			Type:        framework.TypeString,
			Description: "The organization name the token was stored under before organization ids.",
			Required:    true,
		},
		"provider": {
			Type:        framework.TypeString,
			Description: "Name of the provider.",
			Required:    true,
		},
	}
	unclaimedOrgClaimFields = map[string]*framework.FieldSchema{
		"org":      unclaimedOrgFields["org"],
		"provider": unclaimedOrgFields["provider"],
		"org_id": {
			Type:        framework.TypeString,
			Description: "Id of the organization the token belongs to (registered at orgs/<org>); it must not have a token for this provider already.",
			Required:    true,
		},
	}
)

func (b *backend) pathUnclaimedOrgDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	org := d.Get("org").(string)
	if msg := checkNames(namedValue{"org", org, CheckName}); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if denied, err := b.authorizeOperator(ctx, req); denied != nil || err != nil {
		return denied, err
	}
	// Counted out as the user names' are (the counts' unclaimed kind).
	if err := b.deleteProviderToken(ctx, req.Storage, unclaimedOrgProviderTokenPrefix+org+"/", d.Get("provider").(string)); err != nil {
		return nil, err
	}
	return nil, nil
}

// pathUnclaimedOrgClaim moves the token to the organization id an operator
// names: the write first, then the delete, under the organization's lock.
func (b *backend) pathUnclaimedOrgClaim(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	org, provider, orgID := d.Get("org").(string), d.Get("provider").(string), d.Get("org_id").(string)
	if msg := checkNames(namedValue{"org", org, CheckName}, namedValue{"org_id", orgID, CheckOrgID}); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if denied, err := b.authorizeOperator(ctx, req); denied != nil || err != nil {
		return denied, err
	}
	name, err := b.cachedOrgName(ctx, req.Storage, orgID)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return logical.ErrorResponse("no organization is registered with that org_id (see orgs/<org>)"), nil
	}

	lock := b.lockFor(orgLockKey(orgID))
	lock.Lock()
	defer lock.Unlock()

	aside := unclaimedOrgProviderTokenPrefix + org + "/"
	token, err := getProviderToken(ctx, req.Storage, aside, provider)
	if err != nil {
		return nil, err
	}
	if token == nil {
		return notFound(fmt.Sprintf("no unclaimed %q token of organization name %q", provider, org)), nil
	}
	owner := &providerTokenOwner{org: &orgTarget{name: name, id: orgID}}
	existing, err := getProviderToken(ctx, req.Storage, owner.storagePrefix(), provider)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return logical.ErrorResponse(fmt.Sprintf("organization %q already has a %q token: delete one of the two first", name, provider)), nil
	}
	if err := b.putProviderToken(ctx, req.Storage, owner.storagePrefix(), token); err != nil {
		return nil, err
	}
	if err := b.deleteProviderToken(ctx, req.Storage, aside, provider); err != nil {
		return nil, err
	}
	event := owner.providerTokenEvent(eventProviderTokenWritten, token)
	event.Details["reason"] = "claimed"
	b.notify(ctx, req.Storage, event)
	return &logical.Response{Data: b.namedLastUse(ctx, req.Storage, token.toResponseData(owner))}, nil
}

const pathUnclaimedOrgHelpSynopsis = `Give an organization provider token kept from before organization ids to an organization, or delete it.`

const pathUnclaimedOrgHelpDescription = `
Before organization ids, organizations' provider tokens were kept under
their names. The upgrade keeps each aside under the name, and the first
organization the engine learns under that name (planqk-bootstrap org
re-applied, or a member's first request) claims it - unless it has a token
for that provider already; then the old one stays here. The inventory
lists these as unclaimed-orgs/<org>/<provider>. For operators and platform
admins:

  vault write planqk/unclaimed-orgs/acme/ionq/claim org_id=<the organization's id>
  vault delete planqk/unclaimed-orgs/acme/ionq

Claiming refuses an organization that already has a token for the provider.
`

const pathUnclaimedHelpSynopsis = `Give a provider token the upgrade from v0.1.0 set aside to its entity, or delete it.`

const pathUnclaimedHelpDescription = `
v0.1.0 kept users' provider tokens under their names. The upgrade gives
each to the entity the evidence names; one it cannot attribute (an
operator wrote it for a name no token record ties to an entity, its writer
no longer exists, or several entities held the name) is kept aside, never
handed to whoever holds the name now. The inventory lists these as
unclaimed/<name>/<provider>. For operators and platform admins:

  vault write planqk/unclaimed/dave/ionq/claim entity_id=<the entity it belongs to>
  vault delete planqk/unclaimed/dave/ionq

Claiming refuses an entity that already has a token for the provider.
`
