package backend

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathCreds(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "users/" + pathSegment("user") + "/creds/" + pathSegment("role") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationVerb:   "generate",
				OperationSuffix: "leased-token",
			},
			Fields: map[string]*framework.FieldSchema{
				"user": userNameField(),
				"role": leaseRoleField(),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathCredsRead,
					// Leased PATs verify everywhere, so their records live in
					// replicated storage, written by the primary's active node.
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses:                   okResponse(leasedTokenDescription, leasedTokenFields).or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathCredsHelpSynopsis,
			HelpDescription: pathCredsHelpDescription,
		},
	}
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	lease, errResp, err := b.prepareLease(ctx, req, d.Get("user").(string), d.Get("role").(string))
	if errResp != nil || err != nil {
		return errResp, err
	}
	return b.issueLease(ctx, req, lease)
}

// leasedTokenFields describe a leased PAT as issueLease returns it.
var leasedTokenFields = tokenFields.with(fieldSet{
	"token": {Type: framework.TypeString, Description: "The personal access token itself, shown this once: the engine keeps only its HMAC (Vault keeps the lease's data until the lease ends).", DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
	"role":  {Type: framework.TypeString, Description: "The role the token was issued for."},
})

const leasedTokenDescription = "A new token as a Vault lease: lease_id, lease_duration and renewable are in Vault's envelope. The token stops verifying when the lease ends or is revoked."

// leaseRequest is a leased PAT that may be issued: the caller is the
// token's owner, the role exists and the lease's TTLs are known. Nothing
// is stored yet.
type leaseRequest struct {
	owner    *identity
	roleName string
	scopes   []string
	cfg      *configEntry
	ttl      time.Duration
	maxTTL   time.Duration
	warnings []string
	// path is the API path the lease was asked for, for the lifecycle event.
	path string
}

// prepareLease checks a request for a leased PAT of roleName for user:
// only the user's own entity may have one, of a role that exists. It
// returns a response naming the problem when there is one.
func (b *backend) prepareLease(ctx context.Context, req *logical.Request, user, roleName string) (*leaseRequest, *logical.Response, error) {
	if msg := checkNames(userName(user), resourceName("role", roleName)); msg != "" {
		return nil, logical.ErrorResponse(msg), nil
	}
	owner, errResp, err := b.requireTokenOwner(ctx, req, user)
	if errResp != nil || err != nil {
		return nil, errResp, err
	}
	role, err := b.getRole(ctx, req.Storage, roleName)
	if err != nil {
		return nil, nil, err
	}
	if role == nil {
		return nil, logical.ErrorResponse(fmt.Sprintf("role %q does not exist", roleName)), nil
	}
	cfg, err := b.getConfig(ctx, req.Storage)
	if err != nil {
		return nil, nil, err
	}
	ttl, maxTTL, warnings, err := leaseTTLs(b.mountLeaseTTLs(), role, cfg)
	if err != nil {
		return nil, nil, err
	}
	scopes := role.Scopes
	if scopes == nil {
		scopes = cfg.DefaultScopes
	}
	return &leaseRequest{
		owner:    owner,
		roleName: roleName,
		scopes:   cfg.allowedScopes(scopes),
		cfg:      cfg,
		ttl:      ttl,
		maxTTL:   maxTTL,
		warnings: warnings,
		path:     req.Path,
	}, nil, nil
}

// issueLease issues the PAT as a Vault lease: its record (what verify
// reads) and its lease marker (what lists it under its owner), under the
// owner's lock and within the per-user cap. The response carries the token
// and its metadata; a user at the cap gets an error response and nothing
// is stored.
func (b *backend) issueLease(ctx context.Context, req *logical.Request, l *leaseRequest) (*logical.Response, error) {
	owner := l.owner
	lock := b.lockFor(entityLockKey(owner.entityID))
	lock.Lock()
	defer lock.Unlock()

	leases, err := b.leaseCount(ctx, req.Storage, owner.entityID)
	if err != nil {
		return nil, err
	}
	if leases >= maxLeasesPerUser {
		return logical.ErrorResponse(fmt.Sprintf("user %q already holds %d leased tokens, the most a user may hold at once: revoke unused leases (vault lease revoke -prefix) or let them expire", owner.name, maxLeasesPerUser)), nil
	}
	if err := b.registerOwner(ctx, req.Storage, owner); err != nil {
		return nil, err
	}

	token, err := b.newToken(ctx, req.Storage, l.cfg)
	if err != nil {
		return nil, err
	}
	// The record's expiry is the lease's, as Vault will cap it: Vault
	// revokes the lease, and with it the record, at that instant, and verify
	// refuses the token from then on even if the revocation runs late.
	record := token.record(owner.entityID, l.roleName, l.roleName, l.scopes, l.ttl)
	if err := putTokenRecord(ctx, req.Storage, record); err != nil {
		return nil, err
	}
	if err := b.putLeaseMarker(ctx, req.Storage, record); err != nil {
		if cleanupErr := deleteTokenRecord(ctx, req.Storage, record.Hash); cleanupErr != nil {
			b.Logger().Error("could not remove the record of a leased token whose marker write failed", "entity_id", owner.entityID, "error", cleanupErr)
		}
		return nil, err
	}
	b.leaseCounts.set(owner.entityID, leases+1)
	event := patEvent(eventLeaseIssued, owner.entityID, owner.name, record)
	event.Path = l.path
	b.notify(ctx, req.Storage, event)

	resp := b.Secret(secretPATType).Response(
		map[string]interface{}{
			"token":      token.secret,
			"token_id":   record.TokenID,
			"name":       record.Name,
			"user":       owner.name,
			"entity_id":  owner.entityID,
			"role":       l.roleName,
			"scopes":     l.scopes,
			"created_at": formatTime(record.CreatedAt),
			"expires_at": formatTime(record.ExpiresAt),
		},
		leaseInternalData{Hash: record.Hash, EntityID: owner.entityID, Role: l.roleName}.toMap(),
	)
	resp.Secret.TTL = l.ttl
	resp.Secret.MaxTTL = l.maxTTL
	for _, warning := range l.warnings {
		resp.AddWarning(warning)
	}
	return resp, nil
}

// leaseTTLs returns the TTL and max TTL of a lease issued now for the role,
// as Vault will grant them: capped by the role's max_ttl, the engine's
// max_ttl and the mount's max_lease_ttl, so that the token's own expiry
// never outlives its lease.
func leaseTTLs(mount *mountLeaseTTLs, role *roleEntry, cfg *configEntry) (ttl, maxTTL time.Duration, warnings []string, err error) {
	maxTTL = leaseMaxTTL(mount, role, cfg)
	ttl, warnings, err = framework.CalculateTTL(mount, 0, role.TTL, 0, maxTTL, 0, time.Time{})
	if err != nil {
		return 0, 0, nil, fmt.Errorf("calculating the lease TTL: %w", err)
	}
	return ttl, maxTTL, warnings, nil
}

// leaseMaxTTL is the longest a lease of the role may live.
func leaseMaxTTL(mount *mountLeaseTTLs, role *roleEntry, cfg *configEntry) time.Duration {
	maxTTL := role.MaxTTL
	if cfg.MaxTTL > 0 && maxTTL > cfg.MaxTTL {
		maxTTL = cfg.MaxTTL
	}
	if mountMax := mount.MaxLeaseTTL(); mountMax > 0 && maxTTL > mountMax {
		maxTTL = mountMax
	}
	return maxTTL
}

// mountLeaseTTLs is the system view with the mount's default and max lease
// TTL asked at most once: framework.CalculateTTL asks for them again, and
// each ask is a gRPC round trip to Vault. It lives for one request, since
// tuning the mount changes them.
type mountLeaseTTLs struct {
	logical.SystemView
	defaultTTL, maxTTL *time.Duration
}

func (b *backend) mountLeaseTTLs() *mountLeaseTTLs {
	return &mountLeaseTTLs{SystemView: b.System()}
}

func (m *mountLeaseTTLs) DefaultLeaseTTL() time.Duration {
	if m.defaultTTL == nil {
		ttl := m.SystemView.DefaultLeaseTTL()
		m.defaultTTL = &ttl
	}
	return *m.defaultTTL
}

func (m *mountLeaseTTLs) MaxLeaseTTL() time.Duration {
	if m.maxTTL == nil {
		ttl := m.SystemView.MaxLeaseTTL()
		m.maxTTL = &ttl
	}
	return *m.maxTTL
}

// leaseCount returns how many leased PATs the entity holds; the caller
// holds the entity's lock.
func (b *backend) leaseCount(ctx context.Context, s logical.Storage, entityID string) (int, error) {
	if count, ok := b.leaseCounts.get(entityID); ok {
		return count, nil
	}
	generation := b.leaseCounts.begin()
	hashes, err := listLeaseHashes(ctx, s, entityID)
	if err != nil {
		return 0, err
	}
	b.leaseCounts.fill(entityID, len(hashes), generation)
	return len(hashes), nil
}

const pathCredsHelpSynopsis = `Issue a short-lived personal access token as a Vault lease.`

const pathCredsHelpDescription = `
Reading issues a PAT for the caller, shaped by the role, as a Vault lease:
Vault Agent and runtimes renew it like any other lease, and when the lease
expires or is revoked (vault lease revoke) the token stops verifying. Only
the user's own identity entity may read it. The lease is capped by the
role's max_ttl, the engine's max_ttl and the mount's max_lease_ttl, and so
is the token's own expiry. A user holds at most 1000 leased tokens at once.

  vault read planqk/users/alice/creds/runtime
`
