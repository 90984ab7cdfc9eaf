package backend

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Organization settings: what an organization's owners decide for it. So
// far one thing - which of its members may have its provider tokens used
// for them (resolve, the runtime read and the exchange alike); the others
// fall back to their own.
const (
	// providerTokensForNone admits nobody: every member uses their own.
	providerTokensForNone = "none"
	// defaultProviderTokensFor is every member, as the platform promises.
	defaultProviderTokensFor = "member"
)

// providerTokensForValues are the settings, weakest role first.
var providerTokensForValues = []interface{}{"member", "maintainer", "owner", providerTokensForNone}

// orgSettingsPath is where organization orgID's settings are stored: the
// one place their key is made, under the organization's own prefix.
func orgSettingsPath(orgID string) string { return orgStoragePrefix(orgID) + "settings" }

// orgSettingsEntry is an organization's settings; absent means defaults.
type orgSettingsEntry struct {
	// ProviderTokensFor is the weakest role whose members may have the
	// organization's provider tokens used for them, or "none".
	ProviderTokensFor string `json:"provider_tokens_for"`
	// StoredKeysAllowed lets jobs have the stored key of a derivable token
	// when they ask for it (credentials=stored); by default they get
	// derived credentials only (derived_only).
	StoredKeysAllowed bool      `json:"stored_keys_allowed,omitempty"`
	UpdatedAt         time.Time `json:"updated_at,omitempty"`
	UpdatedBy         string    `json:"updated_by,omitempty"`
}

func defaultOrgSettings() *orgSettingsEntry {
	return &orgSettingsEntry{ProviderTokensFor: defaultProviderTokensFor}
}

// admits reports whether a member with role may have the organization's
// provider tokens used for them. Platform admins count as stronger than
// owners; "none" admits nobody.
func (e *orgSettingsEntry) admits(role orgRole) bool {
	if e.ProviderTokensFor == providerTokensForNone || role < roleMember {
		return false
	}
	return role >= parseOrgRole(e.ProviderTokensFor)
}

func (e *orgSettingsEntry) toResponseData(org *orgTarget) map[string]interface{} {
	return map[string]interface{}{
		"org":                 org.name,
		"provider_tokens_for": e.ProviderTokensFor,
		"derived_only":        !e.StoredKeysAllowed,
		"updated_at":          formatOptionalTime(e.UpdatedAt),
		"updated_by":          e.UpdatedBy,
	}
}

var orgSettingsFields = fieldSet{
	"org":                 {Type: framework.TypeString, Description: "Name of the organization."},
	"provider_tokens_for": {Type: framework.TypeString, Description: `The weakest role whose members may have the organization's provider tokens used for them (by resolve, the runtime read and the exchange); "none": nobody, every member uses their own.`, AllowedValues: providerTokensForValues},
	"derived_only":        derivedOnlyResponseField,
	"updated_at":          {Type: framework.TypeString, Description: "When an owner last changed the settings (RFC 3339); empty while they are the defaults."},
	"updated_by":          {Type: framework.TypeString, Description: "Entity id of the owner who last changed them; empty for an operator or the defaults."},
}

func getOrgSettings(ctx context.Context, s logical.Storage, orgID string) (*orgSettingsEntry, error) {
	entry, err := s.Get(ctx, orgSettingsPath(orgID))
	if err != nil {
		return nil, fmt.Errorf("reading organization settings: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var settings orgSettingsEntry
	if err := entry.DecodeJSON(&settings); err != nil {
		return nil, fmt.Errorf("decoding organization settings: %w", err)
	}
	return &settings, nil
}

func putOrgSettings(ctx context.Context, s logical.Storage, orgID string, settings *orgSettingsEntry) error {
	entry, err := logical.StorageEntryJSON(orgSettingsPath(orgID), settings)
	if err != nil {
		return fmt.Errorf("encoding organization settings: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing organization settings: %w", err)
	}
	return nil
}

// cachedOrgSettings returns the organization's settings, the defaults when
// none are stored, from memory once read: every write updates the cache
// and Invalidate drops what another node changed.
func (b *backend) cachedOrgSettings(ctx context.Context, s logical.Storage, orgID string) (*orgSettingsEntry, error) {
	if settings, ok := b.orgSettings.get(orgID); ok {
		return settings, nil
	}
	generation := b.orgSettings.begin()
	settings, err := getOrgSettings(ctx, s, orgID)
	if err != nil {
		return nil, err
	}
	if settings == nil {
		settings = defaultOrgSettings()
	}
	b.orgSettings.fill(orgID, settings, generation)
	return settings, nil
}

func pathOrgSettings(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "orgs/" + pathSegment("org") + "/settings$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "organization-settings",
			},
			Fields: map[string]*framework.FieldSchema{
				"org": {Type: framework.TypeString, Description: "Name of the organization.", Required: true},
				"provider_tokens_for": {
					Type:          framework.TypeString,
					Description:   `The weakest role whose members may have the organization's provider tokens used for them: member (default, every member), maintainer, owner, or none (every member uses their own).`,
					AllowedValues: providerTokensForValues,
				},
				"derived_only": derivedOnlyField("the organization's provider tokens"),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathOrgSettingsRead,
					Responses: okResponse("The organization's settings; the defaults when no owner has set them.", orgSettingsFields).
						or(http.StatusForbidden, forbiddenDescription),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathOrgSettingsWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("The settings as stored.", orgSettingsFields).
						or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathOrgSettingsHelpSynopsis,
			HelpDescription: pathOrgSettingsHelpDescription,
		},
	}
}

func (b *backend) pathOrgSettingsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	org, denied, err := b.authorizeOrg(ctx, req, d.Get("org").(string), roleMember)
	if denied != nil || err != nil {
		return denied, err
	}
	settings := defaultOrgSettings()
	if org.id != "" {
		if settings, err = b.cachedOrgSettings(ctx, req.Storage, org.id); err != nil {
			return nil, err
		}
	}
	return &logical.Response{Data: settings.toResponseData(org)}, nil
}

func (b *backend) pathOrgSettingsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	value, setFor := d.GetOk("provider_tokens_for")
	derivedOnly, setDerived := d.GetOk("derived_only")
	if !setFor && !setDerived {
		return logical.ErrorResponse("nothing to change: set provider_tokens_for (member, maintainer, owner or none) or derived_only (true or false)"), nil
	}
	forRole := ""
	if setFor {
		forRole = value.(string)
		if forRole != providerTokensForNone && parseOrgRole(forRole) == roleNone || forRole == roleAdmin.String() {
			return logical.ErrorResponse(fmt.Sprintf("provider_tokens_for must be member, maintainer, owner or none, not %q", truncateForMessage(forRole))), nil
		}
	}
	org, denied, err := b.authorizeOrg(ctx, req, d.Get("org").(string), roleOwner)
	if denied != nil || err != nil {
		return denied, err
	}
	if org.id == "" {
		return logical.ErrorResponse(fmt.Sprintf("the engine has not learned organization %q yet: register its id (planqk-bootstrap org %s) first", org.name, org.name)), nil
	}

	lock := b.lockFor(orgLockKey(org.id))
	lock.Lock()
	defer lock.Unlock()
	settings, err := getOrgSettings(ctx, req.Storage, org.id)
	if err != nil {
		return nil, err
	}
	if settings == nil {
		settings = defaultOrgSettings()
	}
	updated := *settings
	if setFor {
		updated.ProviderTokensFor = forRole
	}
	if setDerived {
		updated.StoredKeysAllowed = !derivedOnly.(bool)
	}
	updated.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	updated.UpdatedBy = req.EntityID
	if err := putOrgSettings(ctx, req.Storage, org.id, &updated); err != nil {
		return nil, err
	}
	b.orgSettings.set(org.id, &updated)
	if settings.ProviderTokensFor != updated.ProviderTokensFor {
		b.Logger().Info("an organization changed who may have its provider tokens used for them",
			"org", org.name, "org_id", org.id, "provider_tokens_for", updated.ProviderTokensFor, "by", req.EntityID)
	}
	if settings.StoredKeysAllowed != updated.StoredKeysAllowed {
		b.Logger().Info("an organization changed whether jobs may receive the stored keys of its derivable provider tokens",
			"org", org.name, "org_id", org.id, "derived_only", !updated.StoredKeysAllowed, "by", req.EntityID)
	}
	return &logical.Response{Data: updated.toResponseData(org)}, nil
}

const pathOrgSettingsHelpSynopsis = `An organization's settings, which its owners decide.`

const pathOrgSettingsHelpDescription = `
provider_tokens_for: which members may have the organization's provider
tokens used for them - by resolve with org, the runtime read with org and
the exchange with org alike. member (the default): every member;
maintainer: maintainers, owners and platform admins; owner: owners and
platform admins; none: nobody. A member the setting leaves out gets their
own token for the provider, as without org.

Members read the settings; only owners (and operators, whose ACL allows)
change them: the engine checks the role, and the org-owner policy grants
update here. Stored under the organization's id; resolve, runtime and the
exchange read it from memory once loaded.

  vault read  planqk/orgs/acme/settings
derived_only: for the organization's provider tokens that store a
derivation (see providers/<provider> derivations, e.g. aws_assume_role),
whether a job may ever receive the stored key. true (the default): jobs get
only credentials derived for them, and credentials=stored gets 403; false:
a job that asks credentials=stored gets the stored key.

  vault write planqk/orgs/acme/settings provider_tokens_for=maintainer
  vault write planqk/orgs/acme/settings derived_only=false
`
