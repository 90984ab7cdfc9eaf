package backend

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// User settings: what a user decides for their own provider tokens, as an
// organization's owners do for the organization's (orgs/<org>/settings).
// So far one thing: whether jobs may ever receive the stored key of one of
// their tokens that can derive short-lived credentials.
const userSettingsPrefix = "user-settings/"

// userSettingsPath is where the settings of the entity are stored: by
// entity id, as everything a user owns.
func userSettingsPath(entityID string) string { return userSettingsPrefix + entityID }

// userSettingsEntry is a user's settings; absent means defaults.
type userSettingsEntry struct {
	// StoredKeysAllowed lets jobs have the stored key of a derivable token
	// when they ask for it (credentials=stored); by default they get
	// derived credentials only.
	StoredKeysAllowed bool      `json:"stored_keys_allowed,omitempty"`
	UpdatedAt         time.Time `json:"updated_at,omitempty"`
}

func (e *userSettingsEntry) toResponseData(user *userTarget) map[string]interface{} {
	return map[string]interface{}{
		"user":         user.name,
		"entity_id":    user.entityID(),
		"derived_only": !e.StoredKeysAllowed,
		"updated_at":   formatOptionalTime(e.UpdatedAt),
	}
}

var userSettingsFields = fieldSet{
	"user":         {Type: framework.TypeString, Description: "Name of the user."},
	"entity_id":    {Type: framework.TypeString, Description: "The user's entity id, which the settings are stored by."},
	"derived_only": derivedOnlyResponseField,
	"updated_at":   {Type: framework.TypeString, Description: "When the user last changed the settings (RFC 3339); empty while they are the defaults."},
}

func getUserSettings(ctx context.Context, s logical.Storage, entityID string) (*userSettingsEntry, error) {
	entry, err := s.Get(ctx, userSettingsPath(entityID))
	if err != nil {
		return nil, fmt.Errorf("reading user settings: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var settings userSettingsEntry
	if err := entry.DecodeJSON(&settings); err != nil {
		return nil, fmt.Errorf("decoding user settings: %w", err)
	}
	return &settings, nil
}

func putUserSettings(ctx context.Context, s logical.Storage, entityID string, settings *userSettingsEntry) error {
	entry, err := logical.StorageEntryJSON(userSettingsPath(entityID), settings)
	if err != nil {
		return fmt.Errorf("encoding user settings: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing user settings: %w", err)
	}
	return nil
}

// deleteUserSettings removes the entity's settings (offboarding); the
// caller holds the entity's lock.
func (b *backend) deleteUserSettings(ctx context.Context, s logical.Storage, entityID string) error {
	if err := s.Delete(ctx, userSettingsPath(entityID)); err != nil {
		return fmt.Errorf("deleting user settings: %w", err)
	}
	b.userSettings.remove(entityID)
	return nil
}

// cachedUserSettings returns the entity's settings, the defaults when none
// are stored, from memory once read: every write updates the cache and
// Invalidate drops what another node changed.
func (b *backend) cachedUserSettings(ctx context.Context, s logical.Storage, entityID string) (*userSettingsEntry, error) {
	if entityID == "" {
		return &userSettingsEntry{}, nil
	}
	if settings, ok := b.userSettings.get(entityID); ok {
		return settings, nil
	}
	generation := b.userSettings.begin()
	settings, err := getUserSettings(ctx, s, entityID)
	if err != nil {
		return nil, err
	}
	if settings == nil {
		settings = &userSettingsEntry{}
	}
	b.userSettings.fill(entityID, settings, generation)
	return settings, nil
}

// invalidateUserSettings drops what another node changed.
func (b *backend) invalidateUserSettings(key string) {
	b.userSettings.remove(strings.TrimPrefix(key, userSettingsPrefix))
}

func pathUserSettings(b *backend) []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "users/" + pathSegment("user") + "/settings$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixPlanqk,
				OperationSuffix: "user-settings",
			},
			Fields: map[string]*framework.FieldSchema{
				"user":         userNameField(),
				"derived_only": derivedOnlyField("the user's own provider tokens"),
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback: b.pathUserSettingsRead,
					Responses: okResponse("The user's settings; the defaults when they have set none.", userSettingsFields).
						or(http.StatusForbidden, forbiddenDescription),
				},
				logical.UpdateOperation: &framework.PathOperation{
					Callback:                    b.pathUserSettingsWrite,
					ForwardPerformanceStandby:   true,
					ForwardPerformanceSecondary: true,
					Responses: okResponse("The settings as stored.", userSettingsFields).
						or(http.StatusForbidden, forbiddenDescription),
				},
			},
			HelpSynopsis:    pathUserSettingsHelpSynopsis,
			HelpDescription: pathUserSettingsHelpDescription,
		},
	}
}

func (b *backend) pathUserSettingsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	user, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil {
		return denied, err
	}
	settings, err := b.cachedUserSettings(ctx, req.Storage, user.entityID())
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: settings.toResponseData(user)}, nil
}

func (b *backend) pathUserSettingsWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	value, set := d.GetOk("derived_only")
	if !set {
		return logical.ErrorResponse("nothing to change: set derived_only (true or false)"), nil
	}
	user, denied, err := b.authorizeUser(ctx, req, d.Get("user").(string))
	if denied != nil || err != nil {
		return denied, err
	}
	if user.owner == nil {
		return logical.ErrorResponse(fmt.Sprintf("no entity named %q has used the engine yet, and a plugin cannot look entities up by name: the user sets their own settings (or does anything in the engine first)", user.name)), nil
	}
	entityID := user.entityID()
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	settings, err := getUserSettings(ctx, req.Storage, entityID)
	if err != nil {
		return nil, err
	}
	if settings == nil {
		settings = &userSettingsEntry{}
	}
	updated := *settings
	updated.StoredKeysAllowed = !value.(bool)
	updated.UpdatedAt = time.Now().UTC().Truncate(time.Second)
	// The sweep then knows the user, and removes the settings when it
	// offboards them.
	if err := b.registerOwner(ctx, req.Storage, user.owner); err != nil {
		return nil, err
	}
	if err := putUserSettings(ctx, req.Storage, entityID, &updated); err != nil {
		return nil, err
	}
	b.userSettings.set(entityID, &updated)
	if settings.StoredKeysAllowed != updated.StoredKeysAllowed {
		b.Logger().Info("a user changed whether jobs may receive the stored keys of their derivable provider tokens",
			"entity_id", entityID, "derived_only", !updated.StoredKeysAllowed)
	}
	return &logical.Response{Data: updated.toResponseData(user)}, nil
}

// derivedOnlyField is the setting of an owner's rule for derivable tokens.
func derivedOnlyField(whose string) *framework.FieldSchema {
	return &framework.FieldSchema{
		Type:        framework.TypeBool,
		Description: "For " + whose + " that can derive short-lived credentials (a derivation): true (the default) - jobs get only credentials derived for them, never the stored key; false - a job that asks credentials=stored gets the stored key.",
	}
}

var derivedOnlyResponseField = &framework.FieldSchema{
	Type:        framework.TypeBool,
	Description: "Whether jobs get only derived credentials from derivable provider tokens (true, the default), or may ask for the stored key (false).",
}

const pathUserSettingsHelpSynopsis = `A user's settings for their own provider tokens.`

const pathUserSettingsHelpDescription = `
derived_only: for the user's own provider tokens that store a derivation
(see providers/<provider> derivations, e.g. aws_assume_role), whether a job
may ever receive the stored key. true (the default): resolve, the runtime
read and the exchange answer only with credentials derived for the job,
and credentials=stored gets 403. false: a job that asks credentials=stored
gets the stored key; without it, jobs still get derived credentials.

The user (or a platform admin) reads and changes them; stored by entity id
and removed when the user is offboarded. Organizations decide the same for
their tokens in orgs/<org>/settings.

  vault read  planqk/users/mia/settings
  vault write planqk/users/mia/settings derived_only=false
`
