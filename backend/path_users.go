package backend

import (
	"context"
	"net/http"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathUsers(b *backend) []*framework.Path {
	userField := userNameField()
	return []*framework.Path{
		{
			Pattern: "users/" + pathSegment("user") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "user",
			},
			Fields: map[string]*framework.FieldSchema{"user": userField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathUserRead,
					Responses: okResponse("Who the user is to the engine, live from Vault's identity store.", fieldSet{
						"user":          {Type: framework.TypeString, Description: "The entity's current name."},
						"entity_id":     {Type: framework.TypeString, Description: "Id of the user's identity entity."},
						"admin":         {Type: framework.TypeBool, Description: "Whether the user is a platform admin."},
						"disabled":      {Type: framework.TypeBool, Description: "Whether the entity is disabled: its tokens do not verify."},
						"organizations": organizationsField,
					}).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, "No entity of this name owns anything in the engine."),
				},
			},
			HelpSynopsis:    pathUserHelpSynopsis,
			HelpDescription: pathUserHelpDescription,
		},
		{
			Pattern: "users/" + pathSegment("user") + "/revoke-all$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "revoke-all",
				OperationSuffix: "user-tokens",
			},
			Fields: map[string]*framework.FieldSchema{"user": userField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathUserRevokeAll,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("What was revoked; run again, it revokes nothing more.", fieldSet{
						"user":           {Type: framework.TypeString, Description: "The user, as named in the path."},
						"entity_id":      {Type: framework.TypeString, Description: "Id of the user's identity entity; empty when no entity of this name owns anything in the engine."},
						"named_revoked":  {Type: framework.TypeInt, Description: "How many named tokens were revoked."},
						"leases_revoked": {Type: framework.TypeInt, Description: "How many leased tokens were revoked (their Vault leases stay listed until they end)."},
					}).or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathUserRevokeAllHelpSynopsis,
			HelpDescription: pathUserRevokeAllHelpDescription,
		},
	}
}

// pathUserRead returns who the user is to the engine: the entity, and its
// organizations with the roles they give, live from Vault's identity store.
func (b *backend) pathUserRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil || target.owner == nil {
		return denied, err
	}
	owner := target.owner
	return &logical.Response{Data: map[string]interface{}{
		"user":          owner.name,
		"entity_id":     owner.entityID,
		"admin":         owner.admin,
		"disabled":      owner.disabled,
		"organizations": owner.organizations(),
	}}, nil
}

// pathUserRevokeAll revokes every named and every leased PAT of the user,
// under the entity's lock so that nothing the user creates meanwhile is
// missed or half-revoked. Running it again revokes nothing more.
func (b *backend) pathUserRevokeAll(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil {
		return denied, err
	}
	named, leased := 0, 0
	if target.owner != nil {
		if named, leased, err = b.revokeAllTokens(ctx, req.Storage, target.entityID(), target.name, "revoke-all"); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: map[string]interface{}{
		"user":           target.name,
		"entity_id":      target.entityID(),
		"named_revoked":  named,
		"leases_revoked": leased,
	}}, nil
}

// revokeAllTokens deletes every token of the entity under its lock.
func (b *backend) revokeAllTokens(ctx context.Context, s logical.Storage, entityID, user, reason string) (named, leased int, err error) {
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	return b.revokeAllTokensLocked(ctx, s, entityID, user, reason)
}

// revokeAllTokensLocked deletes every token of the entity: each record
// first, so that it stops verifying at once; user and reason go into the
// events. The caller holds the entity's lock.
func (b *backend) revokeAllTokensLocked(ctx context.Context, s logical.Storage, entityID, user, reason string) (named, leased int, err error) {
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return 0, 0, err
	}
	for name := range index.Tokens {
		revoked, err := b.revokeNamedToken(ctx, s, entityID, index, name)
		if err != nil {
			return named, leased, err
		}
		event := patEvent(eventPATRevoked, entityID, user, summaryRecord(name, revoked))
		event.Details["reason"] = reason
		b.notify(ctx, s, event)
		named++
	}
	hashes, err := listLeaseHashes(ctx, s, entityID)
	if err != nil {
		return named, leased, err
	}
	for _, hash := range hashes {
		record, err := getTokenRecord(ctx, s, hash)
		if err != nil {
			return named, leased, err
		}
		if err := b.revokeLease(ctx, s, entityID, hash); err != nil {
			return named, leased, err
		}
		if record != nil {
			event := patEvent(eventLeaseRevoked, entityID, user, record)
			event.Details["reason"] = reason
			b.notify(ctx, s, event)
		}
		leased++
	}
	// The IBM job keys made for the entity's jobs end with its tokens.
	if _, err := b.deleteDerivedKeysOfEntity(ctx, s, entityID); err != nil {
		return named, leased, err
	}
	return named, leased, nil
}

const pathUserHelpSynopsis = `Show who a user is to the engine: entity and organizations.`

const pathUserHelpDescription = `
Returns the user's entity_id, whether the user is a platform admin or
disabled, and organizations: each organization the user belongs to with
the strongest role held there, live from Vault's identity store (reused for
at most identity_cache_ttl). A user reads their own; operators and
platform admins read anyone's who owns something in the engine.

  vault read planqk/users/alice
`

const pathUserRevokeAllHelpSynopsis = `Revoke every personal access token of a user, named and leased.`

const pathUserRevokeAllHelpDescription = `
For offboarding: every named PAT and every leased PAT of the user stops
verifying at once, in one call; running it again revokes nothing more. The
Vault leases of the revoked leased tokens stay listed until they end (their
revocation then finds nothing to do); "vault lease revoke -prefix
planqk/users/<user>/creds" removes them at once. Provider tokens are kept:
delete them at users/<user>/provider-tokens/<provider>.

  vault write -f planqk/users/alice/revoke-all
`
