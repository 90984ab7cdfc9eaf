package backend

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Identity group metadata that makes a Vault group a PlanQK organization role.
const (
	groupMetadataOrg  = "planqk_org"
	groupMetadataRole = "planqk_role"
	// groupMetadataOrgID is the organization's stable id, the same on all
	// of one organization's groups: the engine keeps an organization's data
	// under it, so that a new organization given a deleted one's name
	// starts empty (see organizations.go).
	groupMetadataOrgID = "planqk_org_id"

	// adminOrg in a group's planqk_org, with planqk_role=admin, makes its
	// members platform admins in every organization.
	adminOrg = "*"
)

// orgRole is a role in an organization; a larger value is a stronger role.
type orgRole int

const (
	roleNone orgRole = iota
	roleMember
	roleMaintainer
	roleOwner
	roleAdmin
)

var orgRoleNames = map[orgRole]string{
	roleMember:     "member",
	roleMaintainer: "maintainer",
	roleOwner:      "owner",
	roleAdmin:      "admin",
}

func (r orgRole) String() string { return orgRoleNames[r] }

func parseOrgRole(s string) orgRole {
	for role, name := range orgRoleNames {
		if name == s {
			return role
		}
	}
	return roleNone
}

// identity is what Vault's identity store says about one entity.
type identity struct {
	entityID string
	name     string
	disabled bool
	admin    bool
	orgs     map[string]orgRole
	// orgIDs holds, by organization name, the planqk_org_id its trusted
	// groups carry: "" when they carry none, orgIDConflict when two of
	// them carry different ones.
	orgIDs    map[string]string
	fetchedAt time.Time
	// gone marks a cached answer "no such entity" (deleted): a deleted
	// owner's token may still be presented at every request.
	gone bool
}

// goneIdentityTTL bounds how long "no such entity" is reused: long enough
// that a deleted owner's token costs Vault at most one lookup a second,
// short enough that an entity not yet replicated to this node is found soon.
const goneIdentityTTL = time.Second

// orgIDConflict marks an organization whose groups carry different ids.
const orgIDConflict = "\x00conflict"

// noteOrgID records the id one of org's trusted groups carries. Groups of
// one organization that disagree (or some without an id) leave it
// conflicting: its data is then reachable by no id.
func (id *identity) noteOrgID(org, orgID string) {
	if CheckOrgID(orgID) != nil {
		orgID = ""
	}
	switch seen, ok := id.orgIDs[org]; {
	case !ok:
		id.orgIDs[org] = orgID
	case seen != orgID:
		id.orgIDs[org] = orgIDConflict
	}
}

// roleIn returns the entity's role in org; platform admins are admins everywhere.
func (id *identity) roleIn(org string) orgRole {
	if id.admin {
		return roleAdmin
	}
	return id.orgs[org]
}

// organizations lists the entity's organizations with their role names,
// sorted by name, as verify reports them.
func (id *identity) organizations() []map[string]interface{} {
	orgs := make([]map[string]interface{}, 0, len(id.orgs)+1)
	if id.admin {
		orgs = append(orgs, map[string]interface{}{"name": adminOrg, "role": roleAdmin.String()})
	}
	names := make([]string, 0, len(id.orgs))
	for name := range id.orgs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		orgs = append(orgs, map[string]interface{}{"name": name, "role": id.orgs[name].String()})
	}
	return orgs
}

// organizationsField describes organizations() in responses.
var organizationsField = &framework.FieldSchema{
	Type:        framework.TypeSlice,
	Description: `The owner's organizations, live from Vault's identity store: objects {"name": "<org>", "role": "owner|maintainer|member"}, sorted by name; a platform admin is listed first as {"name": "*", "role": "admin"}.`,
}

// orgRoles lists the entity's organizations as "<org>:<role>", sorted.
func (id *identity) orgRoles() []string {
	orgs := id.organizations()
	roles := make([]string, 0, len(orgs))
	for _, org := range orgs {
		roles = append(roles, fmt.Sprintf("%s:%s", org["name"], org["role"]))
	}
	return roles
}

// lookupIdentity returns the entity's name, state and organization roles, or
// nil when the entity does not exist. Answers are reused for the configured
// identity_cache_ttl: each lookup costs two round-trips to Vault, which would
// otherwise dominate verify and resolve.
func (b *backend) lookupIdentity(ctx context.Context, s logical.Storage, entityID string) (*identity, error) {
	// Before the configuration is read: a configuration change (which
	// purges identities judged under the old group bindings) between the
	// two must make this fill fail.
	generation := b.identities.begin()
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	if cfg.IdentityCacheTTL > 0 {
		if id, ok := b.identities.get(entityID); ok {
			switch age := time.Since(id.fetchedAt); {
			case id.gone && age < min(cfg.IdentityCacheTTL, goneIdentityTTL):
				return nil, nil
			case !id.gone && age < cfg.IdentityCacheTTL:
				return id, nil
			}
		}
	}

	entity, err := b.System().EntityInfo(entityID)
	if err != nil {
		return nil, fmt.Errorf("looking up entity: %w", err)
	}
	if entity == nil {
		// Cached like any answer (a fill, never a remove, which would
		// also drop every other entity's fill in flight).
		if cfg.IdentityCacheTTL > 0 {
			b.identities.fill(entityID, &identity{entityID: entityID, gone: true, fetchedAt: time.Now()}, generation)
		}
		return nil, nil
	}
	groups, err := b.System().GroupsForEntity(entityID)
	if err != nil {
		return nil, fmt.Errorf("looking up groups of entity: %w", err)
	}

	id := &identity{
		entityID:  entityID,
		name:      entity.Name,
		disabled:  entity.Disabled,
		orgs:      make(map[string]orgRole),
		orgIDs:    make(map[string]string),
		fetchedAt: time.Now(),
	}
	for _, group := range groups {
		// Organization names are compared as Vault compares group names:
		// without regard to case ("ACME" is "acme").
		org, role := strings.ToLower(group.Metadata[groupMetadataOrg]), parseOrgRole(group.Metadata[groupMetadataRole])
		switch {
		case role == roleAdmin && org == adminOrg:
			id.admin = id.admin || cfg.grantsAdmin(group)
		case role == roleNone || role == roleAdmin || CheckOrgName(org) != nil:
			// Not a PlanQK organization role; ignore the group.
		case !cfg.grantsOrgRole(group, org, role):
			// A group the configuration does not trust with org roles.
		default:
			id.orgs[org] = max(id.orgs[org], role)
			id.noteOrgID(org, group.Metadata[groupMetadataOrgID])
		}
	}

	if cfg.IdentityCacheTTL > 0 {
		b.identities.fill(entityID, id, generation)
	}
	return id, nil
}

// callerIdentity returns the identity of the request's entity; nil when
// the request carries none (root or service tokens); or a 403 response when
// the entity is unknown or disabled.
func (b *backend) callerIdentity(ctx context.Context, req *logical.Request) (*identity, *logical.Response, error) {
	if req.EntityID == "" {
		return nil, nil, nil
	}
	id, err := b.lookupIdentity(ctx, req.Storage, req.EntityID)
	if err != nil {
		return nil, nil, err
	}
	if id == nil || id.disabled {
		return nil, forbidden("the request's identity entity does not exist or is disabled"), nil
	}
	return id, nil, nil
}

// requireTokenOwner admits only the entity whose live name is user:
// personal access tokens belong to user accounts, never to organizations
// or to tokens without an entity (root, service tokens), and are issued to
// their owner only. Otherwise it returns a response naming the reason.
func (b *backend) requireTokenOwner(ctx context.Context, req *logical.Request, user string) (*identity, *logical.Response, error) {
	if req.EntityID == "" {
		return nil, logical.ErrorResponse("personal access tokens can only be created for user accounts: the request's token has no identity entity"), nil
	}
	id, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	if id.name != user {
		return nil, logical.ErrorResponse(fmt.Sprintf("user %q does not match the caller's entity %q: personal access tokens are created by their owner only", user, id.name)), nil
	}
	return id, nil, nil
}

// userTarget is the user a users/<user>/ request addresses.
type userTarget struct {
	name string
	// owner is the entity whose live name is name; nil when no entity of
	// that name owns anything in the engine.
	owner *identity
	// self is set when the caller is that entity.
	self bool
}

func (t *userTarget) entityID() string {
	if t.owner == nil {
		return ""
	}
	return t.owner.entityID
}

// authorizeUser is the engine's own check under the ACL policies for a
// user's paths, and finds the entity they address. A request carrying an
// entity must come from that user (its live name is user) or a platform
// admin, else it gets a 403 response. Requests without an entity are
// governed by ACL alone.
func (b *backend) authorizeUser(ctx context.Context, req *logical.Request, user string) (*userTarget, *logical.Response, error) {
	if msg := checkNames(userName(user)); msg != "" {
		return nil, logical.ErrorResponse(msg), nil
	}
	caller, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	if caller != nil && caller.name == user {
		return &userTarget{name: user, owner: caller, self: true}, nil, nil
	}
	if caller != nil && !caller.admin {
		return nil, forbidden(fmt.Sprintf("entity %q may not access the paths of user %q", caller.name, user)), nil
	}
	owner, err := b.entityOfUser(ctx, req.Storage, user)
	if err != nil {
		return nil, nil, err
	}
	return &userTarget{name: user, owner: owner}, nil, nil
}

// authorizeOrg is the engine's own check under the ACL policies for an
// organization's paths, and finds the organization they address: a
// request carrying an entity needs at least role need in org, else it
// gets a 403 response. Requests without an entity are governed by ACL
// alone.
func (b *backend) authorizeOrg(ctx context.Context, req *logical.Request, org string, need orgRole) (*orgTarget, *logical.Response, error) {
	if msg := checkNames(orgName(org)); msg != "" {
		return nil, logical.ErrorResponse(msg), nil
	}
	id, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return nil, denied, err
	}
	if id != nil && id.roleIn(org) < need {
		return nil, forbidden(fmt.Sprintf("entity %q needs the role %s or stronger in organization %q", id.name, need, org)), nil
	}
	return b.orgOf(ctx, req.Storage, id, org)
}
