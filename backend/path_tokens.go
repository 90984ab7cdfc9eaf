package backend

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathTokens(b *backend) []*framework.Path {
	userField := userNameField()
	nameField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the personal access token, unique per user.",
		Required:    true,
	}
	scopesField := &framework.FieldSchema{
		Type:        framework.TypeCommaStringSlice,
		Description: "Scopes of the token, each one of the configured scopes; default: the configured default_scopes. Fixed for the token's life: rotate keeps them, and a different set needs a new token.",
	}
	ttlField := &framework.FieldSchema{
		Type:        framework.TypeDurationSecond,
		Description: "Lifetime of the token; defaults to the configured default_ttl and may not exceed max_ttl.",
	}

	return []*framework.Path{
		{
			Pattern: "users/" + pathSegment("user") + "/tokens/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "personal-access-tokens",
			},
			Fields: map[string]*framework.FieldSchema{"user": userField},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ListOperation: &framework.PathOperation{
					Callback: b.pathTokensList,
					Responses: okResponse("The user's tokens.", fieldSet{
						"keys":     {Type: framework.TypeStringSlice, Description: "Names of the user's tokens, sorted."},
						"key_info": {Type: framework.TypeMap, Description: "For each name: token_id, description, scopes, created_at, expires_at and last_used_at (empty if never used). Never a secret."},
					}).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, "The user has no tokens."),
				},
			},
			HelpSynopsis:    pathTokensListHelpSynopsis,
			HelpDescription: pathTokensListHelpDescription,
		},
		{
			Pattern: "users/" + pathSegment("user") + "/tokens/" + pathSegment("name") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "personal-access-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"user":   userField,
				"name":   nameField,
				"ttl":    ttlField,
				"scopes": scopesField,
				"description": {
					Type:        framework.TypeString,
					Description: fmt.Sprintf("What the token is for (at most %d bytes of UTF-8).", maxDescriptionBytes),
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathTokenCreate,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "create"},
					Responses:                   okResponse("The new token: its secret, shown this once, and its metadata.", issuedTokenFields).or(http.StatusForbidden, forbiddenDescription),
				},
				logical.ReadOperation: &framework.PathOperation{
					Callback:  b.pathTokenRead,
					Responses: okResponse("The token's metadata; never its secret.", namedTokenFields).or(http.StatusForbidden, forbiddenDescription).or(http.StatusNotFound, "The user has no token of this name."),
				},
				logical.DeleteOperation: &framework.PathOperation{
					Callback:                    b.pathTokenDelete,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "revoke"},
					Responses:                   noContentResponse("The token is revoked, or there was none of this name.").or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathTokenHelpSynopsis,
			HelpDescription: pathTokenHelpDescription,
		},
		{
			Pattern: "users/" + pathSegment("user") + "/tokens/" + pathSegment("name") + "/rotate$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "personal-access-token",
				OperationVerb:   "rotate",
			},
			Fields: map[string]*framework.FieldSchema{
				"user": userField,
				"name": nameField,
				"ttl": {
					Type:        framework.TypeDurationSecond,
					Description: "Lifetime of the new secret; defaults to the lifetime the token was created with, capped by max_ttl.",
				},
				"scopes": {
					Type:        framework.TypeCommaStringSlice,
					Description: "Not accepted: a token keeps its scopes for life. Create another token for other scopes.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathTokenRotate,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("The token's new secret, shown this once, and its metadata; the old secret no longer verifies.", issuedTokenFields).
						or(http.StatusForbidden, forbiddenDescription).
						or(http.StatusNotFound, `The user has no token of this name. Body: {"errors": ["<reason>"]}.`),
				},
			},
			HelpSynopsis:    pathTokenRotateHelpSynopsis,
			HelpDescription: pathTokenRotateHelpDescription,
		},
	}
}

func (b *backend) pathTokensList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil {
		return denied, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	index, err := getTokenIndex(ctx, req.Storage, target.entityID())
	if err != nil {
		return nil, err
	}

	names := make([]string, 0, len(index.Tokens))
	keyInfo := make(map[string]interface{}, len(index.Tokens))
	for name, summary := range index.Tokens {
		names = append(names, name)
		keyInfo[name] = map[string]interface{}{
			"token_id":     summary.TokenID,
			"description":  summary.Description,
			"scopes":       cfg.effectiveScopes(summary.Scopes, summary.Scoped),
			"created_at":   formatTime(summary.CreatedAt),
			"expires_at":   formatTime(summary.ExpiresAt),
			"last_used_at": formatOptionalTime(summary.LastUsedAt),
		}
	}
	sort.Strings(names)
	return logical.ListResponseWithInfo(names, keyInfo), nil
}

func (b *backend) pathTokenCreate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	user, name := d.Get("user").(string), d.Get("name").(string)
	description := d.Get("description").(string)
	for _, msg := range []string{checkNames(userName(user), resourceName("name", name)), checkDescription(description)} {
		if msg != "" {
			return logical.ErrorResponse(msg), nil
		}
	}

	owner, errResp, err := b.requireTokenOwner(ctx, req, user)
	if errResp != nil || err != nil {
		return errResp, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	ttl, err := cfg.tokenTTL(time.Duration(d.Get("ttl").(int)) * time.Second)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	scopes, msg := cfg.requestedScopes(normalizedList(d.Get("scopes").([]string)))
	if msg != "" {
		return logical.ErrorResponse(msg), nil
	}

	lock := b.lockFor(entityLockKey(owner.entityID))
	lock.Lock()
	defer lock.Unlock()

	index, err := getTokenIndex(ctx, req.Storage, owner.entityID)
	if err != nil {
		return nil, err
	}
	if _, exists := index.Tokens[name]; exists {
		return logical.ErrorResponse(fmt.Sprintf("user %q already has a token named %q: rotate it at users/%s/tokens/%s/rotate or delete it first", user, name, user, name)), nil
	}
	if len(index.Tokens) >= maxTokensPerUser {
		return logical.ErrorResponse(fmt.Sprintf("user %q already has %d tokens, the most a user may have: delete unused ones first", user, maxTokensPerUser)), nil
	}
	if err := b.registerOwner(ctx, req.Storage, owner); err != nil {
		return nil, err
	}

	token, err := b.newToken(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	record := token.record(owner.entityID, name, "", scopes, ttl)
	summary := record.summary(description)
	if err := b.storeNamedToken(ctx, req.Storage, index, record, summary); err != nil {
		return nil, err
	}

	b.notify(ctx, req.Storage, patEvent(eventPATCreated, owner.entityID, owner.name, record))

	data := summary.toResponseData(owner.name, owner.entityID, name, scopes)
	data["token"] = token.secret
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil {
		return denied, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	index, err := getTokenIndex(ctx, req.Storage, target.entityID())
	if err != nil {
		return nil, err
	}
	summary, ok := index.Tokens[name]
	if !ok {
		return nil, nil
	}
	return &logical.Response{Data: summary.toResponseData(target.name, target.entityID(), name, cfg.effectiveScopes(summary.Scopes, summary.Scoped))}, nil
}

func (b *backend) pathTokenDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	target, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil || target.owner == nil {
		return denied, err
	}
	entityID := target.entityID()

	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()

	index, err := getTokenIndex(ctx, req.Storage, entityID)
	if err != nil {
		return nil, err
	}
	revoked, err := b.revokeNamedToken(ctx, req.Storage, entityID, index, name)
	if err != nil || revoked == nil {
		return nil, err
	}
	event := patEvent(eventPATRevoked, entityID, target.name, summaryRecord(name, revoked))
	event.Details["reason"] = "deleted"
	b.notify(ctx, req.Storage, event)
	return nil, nil
}

func (b *backend) pathTokenRotate(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	user, name := d.Get("user").(string), d.Get("name").(string)
	if msg := checkNames(userName(user), resourceName("name", name)); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if _, ok := d.GetOk("scopes"); ok {
		return logical.ErrorResponse("scopes cannot be changed: a token keeps its scopes for life; create another token with the scopes you need"), nil
	}
	owner, errResp, err := b.requireTokenOwner(ctx, req, user)
	if errResp != nil || err != nil {
		return errResp, err
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}

	lock := b.lockFor(entityLockKey(owner.entityID))
	lock.Lock()
	defer lock.Unlock()

	index, err := getTokenIndex(ctx, req.Storage, owner.entityID)
	if err != nil {
		return nil, err
	}
	old, ok := index.Tokens[name]
	if !ok {
		return notFound(fmt.Sprintf("user %q has no token named %q", user, name)), nil
	}

	requested := time.Duration(d.Get("ttl").(int)) * time.Second
	if requested == 0 {
		requested = old.ExpiresAt.Sub(old.CreatedAt)
		if cfg.MaxTTL > 0 && requested > cfg.MaxTTL {
			requested = cfg.MaxTTL
		}
	}
	ttl, err := cfg.tokenTTL(requested)
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := b.registerOwner(ctx, req.Storage, owner); err != nil {
		return nil, err
	}

	token, err := b.newToken(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	// The token keeps the scopes it was issued with (the defaults of the
	// day for a token from before scopes existed, fixed now).
	scopes := cfg.effectiveScopes(old.Scopes, old.Scoped)
	record := token.record(owner.entityID, name, "", scopes, ttl)
	summary := record.summary(old.Description)

	// The old secret is revoked before anything else, so that no failure
	// or crash below can leave it verifying.
	if err := deleteTokenRecord(ctx, req.Storage, old.Hash); err != nil {
		return nil, err
	}
	b.records.remove(old.Hash)
	if err := b.storeNamedToken(ctx, req.Storage, index, record, summary); err != nil {
		return nil, err
	}

	event := patEvent(eventPATRotated, owner.entityID, owner.name, record)
	event.Details["replaced_token_id"] = old.TokenID
	b.notify(ctx, req.Storage, event)

	data := summary.toResponseData(owner.name, owner.entityID, name, scopes)
	data["token"] = token.secret
	return &logical.Response{Data: data}, nil
}

const pathTokensListHelpSynopsis = `List a user's personal access tokens.`

const pathTokensListHelpDescription = `
Lists the names of the user's personal access tokens, with key_info giving
each token's token_id, description, scopes, created_at and expires_at.
Never shows a secret.
`

const pathTokenHelpSynopsis = `Create, read or revoke a personal access token (PAT).`

const pathTokenHelpDescription = `
PATs let a user call the PlanQK API (CLI, Quantum SDK, custom apps) in every
organization the user belongs to, for as long as they belong to it.

Write (create) issues a new PAT for the caller. Only the user's own identity
entity may create it - never root or a token without an entity, since
organizations cannot have PATs. Fields: ttl (default: default_ttl, at most
max_ttl), description and scopes (default: default_scopes). The response
holds the secret in "token" - shown this once, stored only as an HMAC - and
token_id, name, user, entity_id, scopes, created_at and expires_at. Writing
a name that exists is refused: rotate it instead. A token's scopes never
change: rotate keeps them; for other scopes create another token.

Tokens belong to the user's identity entity, not to its name: after the
entity is renamed they are found under the new name.

Read returns the token's metadata, never the secret.

Delete revokes the token: it stops verifying at once.

  vault write planqk/users/alice/tokens/laptop ttl=720h description="CLI"
  vault read planqk/users/alice/tokens/laptop
  vault delete planqk/users/alice/tokens/laptop
`

const pathTokenRotateHelpSynopsis = `Replace a personal access token's secret, keeping its name.`

const pathTokenRotateHelpDescription = `
Issues a new secret (and token_id) under the same name and with the same
scopes; the old secret stops verifying at once. Only the token's owner may
rotate it. The new secret lives as long as the old one was created for, or
ttl when given (at most max_ttl).

  vault write -f planqk/users/alice/tokens/laptop/rotate
`
