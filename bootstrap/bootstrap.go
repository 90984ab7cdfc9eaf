// Package bootstrap maps PlanQK users, organizations and roles onto Vault:
// ACL policies from the HCL files in policies/, identity entities for
// users, and identity groups (metadata planqk_org, planqk_role) for each
// organization's owners, maintainers and members. Every step is idempotent.
//
// Every method checks the names it uses, mount paths included, against the
// engine's name rules before its first request to Vault: a step given a bad
// name sends nothing and changes nothing.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-uuid"
	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/backend"
)

// Roles in an organization, weakest first, and the platform admin role.
var orgRoles = []string{"member", "maintainer", "owner"}

const (
	adminRole  = "admin"
	adminOrg   = "*"
	adminGroup = "planqk-admins"
)

// Bootstrapper applies the PlanQK model to one Vault through its API.
type Bootstrapper struct {
	Client *api.Client
	// Mount is the engine's mount path: one path segment, such as "planqk".
	Mount string
	// AuthMount is the path of the userpass mount users log in with: one
	// path segment, such as "userpass".
	AuthMount string
}

func (b *Bootstrapper) logical() *api.Logical { return b.Client.Logical() }

// Init writes the platform policies, enables the userpass auth mount if it
// is missing, and creates the platform admins' group.
func (b *Bootstrapper) Init(ctx context.Context) error {
	if err := b.checkMounts(); err != nil {
		return err
	}
	for _, name := range platformPolicies {
		if err := b.putPolicy(ctx, name, name, ""); err != nil {
			return err
		}
	}
	auths, err := b.Client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return fmt.Errorf("listing auth mounts: %w", err)
	}
	if _, ok := auths[b.AuthMount+"/"]; !ok {
		err := b.Client.Sys().EnableAuthWithOptionsWithContext(ctx, b.AuthMount, &api.EnableAuthOptions{Type: "userpass"})
		if err != nil {
			return fmt.Errorf("enabling userpass at %s: %w", b.AuthMount, err)
		}
	}
	if err := b.putGroup(ctx, adminGroup, map[string]string{"planqk_org": adminOrg, "planqk_role": adminRole}, "planqk-admin"); err != nil {
		return err
	}
	return b.configureMount(ctx)
}

// passthroughHeaders are the headers the PlanQK SDKs send a PAT and the
// organization in (x-auth-token, x-organizationid), which verify and the
// exchange read so that the PAT is in no request body or audit entry.
var passthroughHeaders = []string{"X-Auth-Token", "X-OrganizationId"}

// configureMount binds the engine's roles to the groups this tool creates -
// so that whoever may write some other identity group cannot make a
// platform admin or an organization owner with its metadata - and lets the
// PlanQK SDKs' headers through to verify and the exchange.
func (b *Bootstrapper) configureMount(ctx context.Context) error {
	if _, err := b.logical().WriteWithContext(ctx, b.Mount+"/config", map[string]interface{}{
		"admin_groups":            adminGroup,
		"org_group_name_template": "planqk-{{org}}-{{role}}s",
	}); err != nil {
		return fmt.Errorf("binding the engine's roles to the bootstrap's groups: %w", err)
	}
	if err := b.Client.Sys().TuneMountWithContext(ctx, b.Mount, api.MountConfigInput{
		PassthroughRequestHeaders: passthroughHeaders,
	}); err != nil {
		return fmt.Errorf("passing the %s headers through to %s: %w", strings.Join(passthroughHeaders, " and "), b.Mount, err)
	}
	return nil
}

// Org writes organization org's policies and its owners', maintainers' and
// members' groups, and registers the organization's stable id with the
// engine.
//
// The id (group metadata planqk_org_id, a UUID) is made when the
// organization's groups are first created and kept whenever it is applied
// again: the engine keeps an organization's data under it, so an
// organization created anew under a deleted one's name starts empty. Org
// refuses, before writing anything, a name that Vault would take for an
// existing group of another spelling ("ACME" where "acme" exists: Vault
// compares group names without regard to case) and groups of one
// organization that carry different ids.
func (b *Bootstrapper) Org(ctx context.Context, org string) error {
	if err := checkMount(mountField, b.Mount); err != nil {
		return err
	}
	if err := checkOrg(org); err != nil {
		return err
	}
	orgID, err := b.orgID(ctx, org)
	if err != nil {
		return err
	}
	for _, role := range orgRoles {
		policy := orgPolicyName(org, role)
		if err := b.putPolicy(ctx, policy, "org-"+role, org); err != nil {
			return err
		}
		if err := b.putGroup(ctx, orgGroupName(org, role), map[string]string{
			"planqk_org": org, "planqk_role": role, "planqk_org_id": orgID,
		}, policy); err != nil {
			return err
		}
	}
	if _, err := b.logical().WriteWithContext(ctx, b.Mount+"/orgs/"+org, map[string]interface{}{"id": orgID}); err != nil {
		return fmt.Errorf("registering organization %s with the engine: %w", org, err)
	}
	return nil
}

// orgID returns the id org's existing groups carry, or a new one when they
// carry none (a new organization, or one created before ids).
func (b *Bootstrapper) orgID(ctx context.Context, org string) (string, error) {
	ids := map[string]bool{}
	for _, role := range orgRoles {
		name := orgGroupName(org, role)
		group, err := b.readGroup(ctx, name)
		if err != nil {
			return "", err
		}
		if group == nil {
			continue
		}
		if got, _ := group.Data["name"].(string); got != name {
			return "", fmt.Errorf("organization %s: Vault has a group named %q, which it takes for %q (it compares group names without regard to case); "+
				"an organization has one spelling, in lower case: apply that organization by its own name, or delete the group", org, got, name)
		}
		metadata, _ := group.Data["metadata"].(map[string]interface{})
		if got, _ := metadata["planqk_org"].(string); got != "" && got != org {
			return "", fmt.Errorf("group %s belongs to organization %q (metadata planqk_org), not %q", name, got, org)
		}
		if id, _ := metadata["planqk_org_id"].(string); id != "" {
			ids[id] = true
		}
	}
	switch len(ids) {
	case 0:
		id, err := uuid.GenerateUUID()
		if err != nil {
			return "", fmt.Errorf("making an organization id: %w", err)
		}
		return id, nil
	case 1:
		for id := range ids {
			if err := backend.CheckOrgID(id); err != nil {
				return "", fmt.Errorf("the groups of organization %s carry an invalid planqk_org_id: %w", org, err)
			}
			return id, nil
		}
	}
	return "", fmt.Errorf("the groups of organization %s carry different planqk_org_id metadata: an operator decides which organization they are and corrects them by hand", org)
}

// readGroup returns the group Vault finds for name, or nil.
func (b *Bootstrapper) readGroup(ctx context.Context, name string) (*api.Secret, error) {
	secret, err := b.logical().ReadWithContext(ctx, "identity/group/name/"+name)
	if err != nil {
		return nil, fmt.Errorf("reading group %s: %w", name, err)
	}
	return secret, nil
}

func orgPolicyName(org, role string) string { return "planqk-org-" + org + "-" + role }
func orgGroupName(org, role string) string  { return "planqk-" + org + "-" + role + "s" }

// groupFor returns the group that holds role in org, refusing an org that
// breaks the name rules.
func groupFor(org, role string) (string, error) {
	if role == adminRole {
		if org != adminOrg {
			return "", fmt.Errorf("the admin role is platform-wide: use the organization %q", adminOrg)
		}
		return adminGroup, nil
	}
	if !slices.Contains(orgRoles, role) {
		return "", fmt.Errorf("unknown role %q: use owner, maintainer, member or admin", role)
	}
	if err := checkOrg(org); err != nil {
		return "", err
	}
	return orgGroupName(org, role), nil
}

// putGroup creates or updates a group's policy and metadata, keeping its members.
func (b *Bootstrapper) putGroup(ctx context.Context, name string, metadata map[string]string, policy string) error {
	_, err := b.logical().WriteWithContext(ctx, "identity/group/name/"+name, map[string]interface{}{
		"type":     "internal",
		"policies": []string{policy},
		"metadata": metadata,
	})
	if err != nil {
		return fmt.Errorf("writing group %s: %w", name, err)
	}
	return nil
}

// ErrLoginExists refuses to replace an existing login's password without
// ResetPassword.
var ErrLoginExists = errors.New("the user already has a userpass login, whose password was left as it is: " +
	"give no password to keep it, or reset it explicitly (planqk-bootstrap user -reset-password)")

// ErrEntityExists refuses to give an existing entity a new login without
// AdoptEntity.
var ErrEntityExists = errors.New("an entity of that name exists but has no userpass login: it may be another person's " +
	"(a departed user whose login was deleted, a user of another auth method), and a login would hand it - with its " +
	"tokens and roles - to whoever holds the password; give it a login explicitly (planqk-bootstrap user -existing-entity)")

// User creates the user: an identity entity named name, an alias for it on
// the userpass mount, and a userpass login with the planqk-user policy. A
// password is needed to create the login; an existing login is never
// changed (ErrLoginExists when a password is given: see ResetPassword),
// and an existing entity without a login is never given one
// (ErrEntityExists: see AdoptEntity). A login name whose userpass alias
// is bound to an entity of another name is refused. name must pass
// CheckLoginName, and an existing entity must hold exactly that name.
// Nothing is written when a step is refused. It returns the entity's id.
func (b *Bootstrapper) User(ctx context.Context, name, password string) (string, error) {
	return b.user(ctx, name, password, userCreate)
}

// ResetPassword replaces the password of the user's existing userpass
// login, and makes sure of its entity and alias as User does.
func (b *Bootstrapper) ResetPassword(ctx context.Context, name, password string) (string, error) {
	return b.user(ctx, name, password, userReset)
}

// AdoptEntity is User for an existing entity named name that has no
// userpass login yet: it gives that entity one.
func (b *Bootstrapper) AdoptEntity(ctx context.Context, name, password string) (string, error) {
	return b.user(ctx, name, password, userAdopt)
}

// What user may do with existing objects.
type userMode int

const (
	userCreate userMode = iota // a new login, for a new entity
	userReset                  // a new password for an existing login
	userAdopt                  // a new login for an existing entity
)

func (b *Bootstrapper) user(ctx context.Context, name, password string, mode userMode) (string, error) {
	reset := mode == userReset
	if err := checkMount(authMountField, b.AuthMount); err != nil {
		return "", err
	}
	if err := CheckLoginName(name); err != nil {
		return "", err
	}
	// Before anything is written: an entity Vault finds under another
	// spelling is another user's.
	entityID, err := b.EntityID(ctx, name)
	if err != nil {
		return "", err
	}
	userPath := "auth/" + b.AuthMount + "/users/" + name
	existing, err := b.logical().ReadWithContext(ctx, userPath)
	if err != nil {
		return "", fmt.Errorf("reading userpass user %s: %w", name, err)
	}
	// A login logs in as the entity its alias is bound to, whatever the
	// entity's name: an alias of another entity would hand that entity to
	// whoever holds the password.
	aliasOwner, err := b.aliasOwner(ctx, name)
	if err != nil {
		return "", err
	}
	switch {
	case aliasOwner != "" && aliasOwner != entityID:
		return "", fmt.Errorf("the userpass login name %s is bound to entity %s, not to an entity named %s: "+
			"an operator decides whose it is and deletes or moves that alias (identity/entity-alias) first", name, aliasOwner, name)
	case existing == nil && entityID != "" && mode != userAdopt:
		return "", fmt.Errorf("user %s: %w", name, ErrEntityExists)
	case mode == userAdopt && entityID == "":
		return "", fmt.Errorf("no entity named %s to give a login: create the user without -existing-entity", name)
	}
	switch {
	case reset && existing == nil:
		return "", fmt.Errorf("user %s has no userpass login to reset: create it without -reset-password", name)
	case reset && password == "":
		return "", fmt.Errorf("resetting the password of %s needs a password", name)
	case existing == nil && password == "":
		return "", fmt.Errorf("user %s has no userpass login yet: give a password", name)
	case existing != nil && password != "" && !reset:
		return "", fmt.Errorf("user %s: %w", name, ErrLoginExists)
	}
	if password != "" {
		_, err := b.logical().WriteWithContext(ctx, userPath, map[string]interface{}{
			"password":       password,
			"token_policies": "planqk-user",
		})
		if err != nil {
			return "", fmt.Errorf("writing userpass user %s: %w", name, err)
		}
	}

	entityID, err = b.ensureEntity(ctx, name)
	if err != nil {
		return "", err
	}
	return entityID, b.ensureAlias(ctx, name, entityID)
}

func (b *Bootstrapper) ensureEntity(ctx context.Context, name string) (string, error) {
	if id, err := b.EntityID(ctx, name); err != nil || id != "" {
		return id, err
	}
	if _, err := b.logical().WriteWithContext(ctx, "identity/entity/name/"+name, map[string]interface{}{}); err != nil {
		return "", fmt.Errorf("creating entity %s: %w", name, err)
	}
	id, err := b.EntityID(ctx, name)
	if err == nil && id == "" {
		err = fmt.Errorf("entity %s was not created", name)
	}
	return id, err
}

// EntityID returns the id of the entity named name, or "" if there is none.
// Vault finds entities by name without regard to case; an entity found
// under another spelling ("mia" for "Mia") is refused, not returned.
func (b *Bootstrapper) EntityID(ctx context.Context, name string) (string, error) {
	if err := checkUser(name); err != nil {
		return "", err
	}
	secret, err := b.logical().ReadWithContext(ctx, "identity/entity/name/"+name)
	if err != nil {
		return "", fmt.Errorf("reading entity %s: %w", name, err)
	}
	if secret == nil {
		return "", nil
	}
	if got, _ := secret.Data["name"].(string); got != name {
		return "", fmt.Errorf("the name %q finds the existing entity %q (Vault compares entity names without regard to case): use the entity's own name", name, got)
	}
	id, _ := secret.Data["id"].(string)
	return id, nil
}

// authAccessor returns the accessor of the userpass mount.
func (b *Bootstrapper) authAccessor(ctx context.Context) (string, error) {
	auths, err := b.Client.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return "", fmt.Errorf("listing auth mounts: %w", err)
	}
	mount, ok := auths[b.AuthMount+"/"]
	if !ok {
		return "", fmt.Errorf("auth mount %s is not enabled: run init first", b.AuthMount)
	}
	return mount.Accessor, nil
}

// aliasOwner returns the id of the entity that login name's alias on the
// userpass mount is bound to, or "" if there is none.
func (b *Bootstrapper) aliasOwner(ctx context.Context, name string) (string, error) {
	accessor, err := b.authAccessor(ctx)
	if err != nil {
		return "", err
	}
	lookup, err := b.logical().WriteWithContext(ctx, "identity/lookup/entity", map[string]interface{}{
		"alias_name":           name,
		"alias_mount_accessor": accessor,
	})
	if err != nil {
		return "", fmt.Errorf("looking up alias %s: %w", name, err)
	}
	if lookup == nil {
		return "", nil
	}
	owner, _ := lookup.Data["id"].(string)
	return owner, nil
}

func (b *Bootstrapper) ensureAlias(ctx context.Context, name, entityID string) error {
	owner, err := b.aliasOwner(ctx, name)
	if err != nil {
		return err
	}
	if owner != "" {
		if owner != entityID {
			return fmt.Errorf("the userpass login %s belongs to another entity (%s)", name, owner)
		}
		return nil
	}
	accessor, err := b.authAccessor(ctx)
	if err != nil {
		return err
	}
	_, err = b.logical().WriteWithContext(ctx, "identity/entity-alias", map[string]interface{}{
		"name":           name,
		"canonical_id":   entityID,
		"mount_accessor": accessor,
	})
	if err != nil {
		return fmt.Errorf("creating alias %s: %w", name, err)
	}
	return nil
}

// SetMember gives the user role in org, replacing any other role it had
// there. Role admin with org "*" makes the user a platform admin.
func (b *Bootstrapper) SetMember(ctx context.Context, org, user, role string) error {
	target, err := groupFor(org, role)
	if err != nil {
		return err
	}
	if err := checkUser(user); err != nil {
		return err
	}
	entityID, err := b.requireEntity(ctx, user)
	if err != nil {
		return err
	}
	if role != adminRole {
		for _, other := range orgRoles {
			if other != role {
				if err := b.updateMembers(ctx, orgGroupName(org, other), entityID, false); err != nil {
					return err
				}
			}
		}
	}
	return b.updateMembers(ctx, target, entityID, true)
}

// RemoveMember takes every role in org away from the user.
func (b *Bootstrapper) RemoveMember(ctx context.Context, org, user string) error {
	if err := checkMemberOrg(org); err != nil {
		return err
	}
	if err := checkUser(user); err != nil {
		return err
	}
	entityID, err := b.requireEntity(ctx, user)
	if err != nil {
		return err
	}
	groups := []string{adminGroup}
	if org != adminOrg {
		groups = groups[:0]
		for _, role := range orgRoles {
			groups = append(groups, orgGroupName(org, role))
		}
	}
	for _, group := range groups {
		if err := b.updateMembers(ctx, group, entityID, false); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bootstrapper) requireEntity(ctx context.Context, user string) (string, error) {
	id, err := b.EntityID(ctx, user)
	if err == nil && id == "" {
		err = fmt.Errorf("no entity named %s: create the user first", user)
	}
	return id, err
}

// updateMembers adds or removes the entity in the group's member list,
// writing only when the list changes.
func (b *Bootstrapper) updateMembers(ctx context.Context, group, entityID string, member bool) error {
	secret, err := b.logical().ReadWithContext(ctx, "identity/group/name/"+group)
	if err != nil {
		return fmt.Errorf("reading group %s: %w", group, err)
	}
	if secret == nil {
		return fmt.Errorf("no group %s: create the organization first", group)
	}
	if got, _ := secret.Data["name"].(string); member && got != group {
		// Vault found another spelling: adding would give a role through a
		// group this organization does not own by name. Removing stays
		// allowed: taking a role away is never the danger.
		return fmt.Errorf("group %s exists as %s (Vault finds group names without regard to case): rename or delete it first", group, got)
	}
	var members []string
	if raw, ok := secret.Data["member_entity_ids"].([]interface{}); ok {
		for _, m := range raw {
			if id, ok := m.(string); ok {
				members = append(members, id)
			}
		}
	}
	present := slices.Contains(members, entityID)
	switch {
	case member && !present:
		members = append(members, entityID)
	case !member && present:
		members = slices.DeleteFunc(members, func(id string) bool { return id == entityID })
	default:
		return nil
	}
	if _, err := b.logical().WriteWithContext(ctx, "identity/group/name/"+group, map[string]interface{}{
		"member_entity_ids": members,
	}); err != nil {
		return fmt.Errorf("updating members of group %s: %w", group, err)
	}
	return nil
}
