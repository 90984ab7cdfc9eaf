package backend

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Organizations. Everything an organization owns is stored under its
// stable id, the planqk_org_id metadata the bootstrap gives all of one
// organization's groups when it first creates them - as users' data is
// stored under entity ids - so that a new organization given a deleted
// one's name starts empty.
//
// Paths and ACL policies still carry organization names. A member's
// request finds the id in the member's own (trusted) groups, live. Callers
// without an entity (operators) and platform admins go through the name
// pointer organization-names/<name>, which the bootstrap sets when it
// creates or re-applies an organization (orgs/<org> with its id), and
// which a member's first request fills when it is missing. An organization
// the engine has never learned has no stored data for such callers, and
// their writes are refused.
//
// Each id is pinned to the name it was first learned under
// (organizations/<id>/org): a group that carries another organization's
// id under its own name gets its members no access to that id's data.
const (
	orgPrefix     = "organizations/"
	orgNamePrefix = "organization-names/"
	// orgProviderTokensPrefix holds organizations' provider tokens by id.
	orgProviderTokensPrefix = providerTokenPrefix + "organizations/"
	// legacyOrgProviderTokenPrefix is where releases before organization
	// ids kept organizations' provider tokens, by name.
	legacyOrgProviderTokenPrefix = providerTokenPrefix + "orgs/"
	// unclaimedOrgProviderTokenPrefix keeps those tokens, by name, from
	// the upgrade until the engine first learns that name's id.
	unclaimedOrgProviderTokenPrefix = providerTokenPrefix + "unclaimed-orgs/"
)

// orgStoragePrefix is the storage prefix of everything organization orgID
// owns outside provider tokens (which are seal-wrapped under
// orgProviderTokenPrefix): the one place an organization's storage key is
// made.
func orgStoragePrefix(orgID string) string { return orgPrefix + orgID + "/" }

// orgEntryPath is the organization's own record.
func orgEntryPath(orgID string) string { return orgStoragePrefix(orgID) + "org" }

// orgProviderTokenPrefix is the storage prefix of the organization's
// provider tokens.
func orgProviderTokenPrefix(orgID string) string { return orgProviderTokensPrefix + orgID + "/" }

// orgNamePath is the pointer from an organization name to its id.
func orgNamePath(name string) string { return orgNamePrefix + name }

// orgLockKey names the striped lock that serialises every
// read-modify-write of one organization's entries.
func orgLockKey(orgID string) string { return "org/" + orgID }

// CheckOrgID returns nil if id may be an organization's stable id: one
// storage path segment by the engine's name rules (the bootstrap makes
// UUIDs).
func CheckOrgID(id string) error { return CheckName(id) }

// orgTarget is the organization an orgs/<org>/ request (or a resolve with
// org) addresses.
type orgTarget struct {
	name string
	// id is "" when the engine has never learned the organization (only
	// for callers without an entity and platform admins).
	id string
}

// orgEntry is what the engine remembers of an organization.
type orgEntry struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"` // the name the id was first learned under
	FirstSeen time.Time `json:"first_seen"`
}

func (e *orgEntry) toResponseData() map[string]interface{} {
	return map[string]interface{}{"name": e.Name, "id": e.ID, "first_seen": formatTime(e.FirstSeen)}
}

type orgNamePointer struct {
	ID string `json:"id"`
}

func getOrgEntry(ctx context.Context, s logical.Storage, orgID string) (*orgEntry, error) {
	entry, err := s.Get(ctx, orgEntryPath(orgID))
	if err != nil {
		return nil, fmt.Errorf("reading organization entry: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var org orgEntry
	if err := entry.DecodeJSON(&org); err != nil {
		return nil, fmt.Errorf("decoding organization entry: %w", err)
	}
	return &org, nil
}

func putOrgEntry(ctx context.Context, s logical.Storage, org *orgEntry) error {
	entry, err := logical.StorageEntryJSON(orgEntryPath(org.ID), org)
	if err != nil {
		return fmt.Errorf("encoding organization entry: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing organization entry: %w", err)
	}
	return nil
}

func getOrgName(ctx context.Context, s logical.Storage, name string) (string, error) {
	entry, err := s.Get(ctx, orgNamePath(name))
	if err != nil {
		return "", fmt.Errorf("reading organization name: %w", err)
	}
	if entry == nil {
		return "", nil
	}
	var pointer orgNamePointer
	if err := entry.DecodeJSON(&pointer); err != nil {
		return "", fmt.Errorf("decoding organization name: %w", err)
	}
	return pointer.ID, nil
}

func putOrgName(ctx context.Context, s logical.Storage, name, orgID string) error {
	entry, err := logical.StorageEntryJSON(orgNamePath(name), &orgNamePointer{ID: orgID})
	if err != nil {
		return fmt.Errorf("encoding organization name: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing organization name: %w", err)
	}
	return nil
}

// cachedOrgName returns the name id was first learned under, "" if the
// engine has never learned it; from memory once read.
func (b *backend) cachedOrgName(ctx context.Context, s logical.Storage, orgID string) (string, error) {
	if name, ok := b.orgNames.get(orgID); ok {
		return name, nil
	}
	generation := b.orgNames.begin()
	org, err := getOrgEntry(ctx, s, orgID)
	if err != nil || org == nil {
		return "", err
	}
	b.orgNames.fill(orgID, org.Name, generation)
	return org.Name, nil
}

// cachedOrgPointer returns the id the name points at, "" if none.
func (b *backend) cachedOrgPointer(ctx context.Context, s logical.Storage, name string) (string, error) {
	if orgID, ok := b.orgPointers.get(name); ok {
		return orgID, nil
	}
	generation := b.orgPointers.begin()
	orgID, err := getOrgName(ctx, s, name)
	if err != nil {
		return "", err
	}
	b.orgPointers.fill(name, orgID, generation)
	return orgID, nil
}

// orgOf returns the organization name addresses for the caller, who has
// already been found to hold a role there or to be a platform admin or an
// operator (caller nil), or a response saying why it cannot be addressed.
func (b *backend) orgOf(ctx context.Context, s logical.Storage, caller *identity, name string) (*orgTarget, *logical.Response, error) {
	if caller != nil && caller.orgs[name] > roleNone {
		switch orgID := caller.orgIDs[name]; orgID {
		case "", orgIDConflict:
			return nil, forbidden(fmt.Sprintf(
				"the groups that give entity %q its role in organization %q carry no single planqk_org_id, under which the organization's data is kept: an operator re-applies the organization (planqk-bootstrap org %s)",
				caller.name, name, name)), nil
		default:
			return b.learnOrg(ctx, s, name, orgID)
		}
	}
	// Operators and platform admins outside the organization: the pointer.
	orgID, err := b.cachedOrgPointer(ctx, s, name)
	if err != nil {
		return nil, nil, err
	}
	return &orgTarget{name: name, id: orgID}, nil, nil
}

// learnOrg checks the id a member's groups give name against the name the
// id was first learned under and, on a node that may write, records what
// is missing the first time this node sees the pair: the id's entry, the
// name's pointer if it has none yet, and the unclaimed provider tokens the
// upgrade kept under that name. Warm, it reads nothing.
func (b *backend) learnOrg(ctx context.Context, s logical.Storage, name, orgID string) (*orgTarget, *logical.Response, error) {
	target := &orgTarget{name: name, id: orgID}
	if seen, ok := b.orgNames.get(orgID); ok && seen == name {
		if pointed, ok := b.orgPointers.get(name); ok && pointed != "" {
			return target, nil, nil
		}
	}
	if !b.WriteSafeReplicationState() {
		// Recorded on the node that may write; here the pin is checked.
		pinned, err := b.cachedOrgName(ctx, s, orgID)
		if err != nil {
			return nil, nil, err
		}
		if pinned != "" && pinned != name {
			return nil, b.foreignOrgID(name, orgID, pinned), nil
		}
		return target, nil, nil
	}
	msg, err := b.registerOrg(ctx, s, name, orgID, false)
	switch {
	case err != nil:
		return nil, nil, err
	case msg != "":
		pinned, err := b.cachedOrgName(ctx, s, orgID)
		if err != nil {
			return nil, nil, err
		}
		return nil, b.foreignOrgID(name, orgID, pinned), nil
	}
	return target, nil, nil
}

// foreignOrgID refuses a group that carries the id of another organization.
func (b *backend) foreignOrgID(name, orgID, pinned string) *logical.Response {
	b.Logger().Warn("a trusted group carries the id of another organization; its members get no access to that organization's data",
		"org", name, "org_id", orgID, "id_belongs_to", pinned)
	return forbidden(fmt.Sprintf("organization %q carries the id of organization %q in its groups' metadata: an operator corrects the groups", name, pinned))
}

// registerOrg records that orgID is organization name: it pins the id to
// the name (refusing, with a message, an id already pinned to another
// name), points the name at the id (moving an existing pointer only when
// repoint is set: an operator's registration, never a member's request),
// and claims the provider tokens the upgrade kept aside under the name the
// first time the name gets a pointer. It takes the organization's lock.
func (b *backend) registerOrg(ctx context.Context, s logical.Storage, name, orgID string, repoint bool) (string, error) {
	lock := b.lockFor(orgLockKey(orgID))
	lock.Lock()
	defer lock.Unlock()

	org, err := getOrgEntry(ctx, s, orgID)
	if err != nil {
		return "", err
	}
	if org != nil && org.Name != name {
		return fmt.Sprintf("organization id %q belongs to organization %q", orgID, org.Name), nil
	}
	pointed, err := getOrgName(ctx, s, name)
	if err != nil {
		return "", err
	}
	// The entry first: a pointer then always points at a pinned id.
	if org == nil {
		org = &orgEntry{ID: orgID, Name: name, FirstSeen: time.Now().UTC().Truncate(time.Second)}
		if err := putOrgEntry(ctx, s, org); err != nil {
			return "", err
		}
	}
	if pointed == "" || repoint {
		if pointed != "" && pointed != orgID {
			b.Logger().Info("an organization name now points at another id: the organization was created anew",
				"org", name, "org_id", orgID, "previous_org_id", pointed)
		}
		// Claimed before the pointer is written, so that a retry after a
		// failure in between claims again.
		if pointed == "" {
			if err := b.claimUnclaimedOrgTokens(ctx, s, name, orgID); err != nil {
				return "", err
			}
		}
		if pointed != orgID {
			if err := putOrgName(ctx, s, name, orgID); err != nil {
				return "", err
			}
		}
		pointed = orgID
	}
	b.orgPointers.set(name, pointed)
	b.orgNames.set(orgID, name)
	return "", nil
}

// claimUnclaimedOrgTokens moves the provider tokens the upgrade kept aside
// under name to organization orgID, unless it already has one for that
// provider (then the old one stays aside for an operator). The caller
// holds the organization's lock.
func (b *backend) claimUnclaimedOrgTokens(ctx context.Context, s logical.Storage, name, orgID string) error {
	prefix := unclaimedOrgProviderTokenPrefix + name + "/"
	providers, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing unclaimed organization provider tokens: %w", err)
	}
	for _, provider := range providers {
		legacy, err := s.Get(ctx, prefix+provider)
		if err != nil {
			return fmt.Errorf("reading an unclaimed organization provider token: %w", err)
		}
		if legacy == nil {
			continue
		}
		destination := orgProviderTokenPrefix(orgID) + provider
		existing, err := s.Get(ctx, destination)
		if err != nil {
			return fmt.Errorf("reading an organization provider token: %w", err)
		}
		if existing == nil || bytes.Equal(existing.Value, legacy.Value) {
			// Its reminders are the organization's now: the due entry
			// goes in before the token, as every writer does it.
			if err := b.markClaimedTokenDue(ctx, s, orgID, legacy); err != nil {
				return err
			}
		}
		switch {
		case existing == nil:
			if err := s.Put(ctx, &logical.StorageEntry{Key: destination, Value: legacy.Value, SealWrap: true}); err != nil {
				return fmt.Errorf("storing a claimed organization provider token: %w", err)
			}
			b.providerTokens.remove(destination)
			claimed := &countShard{}
			claimed.addProviderTokens(ownerKindOrganization, provider, 1)
			if err := b.applyCount(ctx, s, orgSubject(orgID), claimed); err != nil {
				return err
			}
		case !bytes.Equal(existing.Value, legacy.Value):
			// The organization has its own token for the provider: the
			// old one stays aside for an operator.
			continue
		}
		// The copy is in place (now, or by an interrupted earlier claim).
		if err := s.Delete(ctx, prefix+provider); err != nil {
			return fmt.Errorf("deleting a claimed organization provider token: %w", err)
		}
		aside := &countShard{}
		aside.addProviderTokens(ownerKindUnclaimed, provider, -1)
		if err := b.applyCount(ctx, s, unclaimedOrgSubject(name), aside); err != nil {
			return err
		}
		b.Logger().Info("an organization claimed a provider token kept from before organization ids",
			"org", name, "org_id", orgID, "provider", provider)
	}
	return nil
}

// markClaimedTokenDue writes the due entry of a claimed token's next
// expiry reminder under its organization, if it has one.
func (b *backend) markClaimedTokenDue(ctx context.Context, s logical.Storage, orgID string, claimed *logical.StorageEntry) error {
	var token providerTokenEntry
	if err := claimed.DecodeJSON(&token); err != nil {
		return fmt.Errorf("decoding an unclaimed organization provider token: %w", err)
	}
	if token.ExpiresAt.IsZero() {
		return nil
	}
	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return err
	}
	if due := providerTokenDue(&token, cfg.ExpiryNotices); !due.IsZero() {
		if _, err := b.markDue(ctx, s, orgSubject(orgID), due); err != nil {
			return err
		}
	}
	return nil
}

func pathOrganizations(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "orgs/" + pathSegment("org") + "$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "organization",
			},
			Fields: map[string]*framework.FieldSchema{
				"org": {
					Type:        framework.TypeString,
					Description: "Name of the organization (the planqk_org metadata of its identity groups), lower case.",
					Required:    true,
				},
				"id": {
					Type:        framework.TypeString,
					Description: "The organization's stable id: the planqk_org_id metadata of its identity groups.",
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathOrganizationRead,
					Responses: okResponse("The id the organization's name points at.", orgFields).
						or(http.StatusForbidden, forbiddenDescription).
						or(http.StatusNotFound, "The engine has not learned this organization."),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathOrganizationWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "register"},
					Responses: okResponse("The organization as registered.", orgFields).
						or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathOrganizationHelpSynopsis,
			HelpDescription: pathOrganizationHelpDescription,
		},
	}
}

var orgFields = fieldSet{
	"name":       {Type: framework.TypeString, Description: "Name of the organization."},
	"id":         {Type: framework.TypeString, Description: "Its stable id, under which the engine keeps its data."},
	"first_seen": {Type: framework.TypeTime, Description: "When the engine first learned the id (RFC 3339)."},
}

// authorizeOrgAdmin admits callers without an entity (ACL alone governs
// them) and platform admins.
func (b *backend) authorizeOrgAdmin(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	caller, denied, err := b.callerIdentity(ctx, req)
	if denied != nil || err != nil {
		return denied, err
	}
	if caller != nil && !caller.admin {
		return forbidden(fmt.Sprintf("entity %q may not register organizations: only operators and platform admins may", caller.name)), nil
	}
	return nil, nil
}

func (b *backend) pathOrganizationRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("org").(string)
	org, denied, err := b.authorizeOrg(ctx, req, name, roleMember)
	if denied != nil || err != nil {
		return denied, err
	}
	if org.id == "" {
		return nil, nil
	}
	entry, err := getOrgEntry(ctx, req.Storage, org.id)
	if err != nil || entry == nil {
		return nil, err
	}
	return &logical.Response{Data: entry.toResponseData()}, nil
}

func (b *backend) pathOrganizationWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name, orgID := d.Get("org").(string), d.Get("id").(string)
	if msg := checkNames(orgName(name), namedValue{"id", orgID, CheckOrgID}); msg != "" {
		return logical.ErrorResponse(msg), nil
	}
	if denied, err := b.authorizeOrgAdmin(ctx, req); denied != nil || err != nil {
		return denied, err
	}
	msg, err := b.registerOrg(ctx, req.Storage, name, orgID, true)
	switch {
	case err != nil:
		return nil, err
	case msg != "":
		return logical.ErrorResponse(msg), nil
	}
	entry, err := getOrgEntry(ctx, req.Storage, orgID)
	if err != nil || entry == nil {
		return nil, err
	}
	return &logical.Response{Data: entry.toResponseData()}, nil
}

// orgNameOf returns the name organization orgID was learned under, or the
// id itself when the engine has no entry for it.
func (b *backend) orgNameOf(ctx context.Context, s logical.Storage, orgID string) (string, error) {
	name, err := b.cachedOrgName(ctx, s, orgID)
	if err != nil || name != "" {
		return name, err
	}
	return orgID, nil
}

// invalidateOrg forgets what another node changed.
func (b *backend) invalidateOrg(key string) {
	switch {
	case strings.HasPrefix(key, orgNamePrefix):
		b.orgPointers.remove(strings.TrimPrefix(key, orgNamePrefix))
	case strings.HasPrefix(key, orgPrefix) && strings.HasSuffix(key, "/org"):
		b.orgNames.remove(strings.TrimSuffix(strings.TrimPrefix(key, orgPrefix), "/org"))
	case strings.HasPrefix(key, orgPrefix) && strings.HasSuffix(key, "/settings"):
		b.orgSettings.remove(strings.TrimSuffix(strings.TrimPrefix(key, orgPrefix), "/settings"))
	}
}

const pathOrganizationHelpSynopsis = `Register an organization's stable id under its name, or read it.`

const pathOrganizationHelpDescription = `
The engine keeps an organization's data (its provider tokens) under the
stable id that its identity groups carry as planqk_org_id, never under its
name, so that a new organization given a deleted one's name starts empty.
Members' requests find the id in their own groups. Operators and platform
admins address an organization by name through the id registered here,
which planqk-bootstrap org writes whenever it creates or re-applies an
organization; a member's first request registers it too when the name has
none yet.

An id is bound to the name it was first registered under: registering it
under another name is refused. Registering a new id under a name moves the
name to it (the organization was created anew); the old id's data stays
under the old id.

  vault write planqk/orgs/acme id=6b1f0e0c-...   (operators, platform admins)
  vault read  planqk/orgs/acme
`
