package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Offboarding. When a user's entity is deleted or disabled, its tokens
// stop verifying at once (verify asks the identity store). Disabling is not
// deleting: the sweep (tidy_interval, or tidy on request) records when it
// first found the entity inactive, and how (deleted or disabled); once the
// grace for that state has passed - offboarding_grace after deletion
// (default 0), disabled_grace after disablement (default 30 days; 0 never
// removes a disabled entity's data) - it revokes every named and leased PAT
// of the user, deletes the user's provider tokens and what the engine
// remembers of the entity, and notifies user-offboarded. A disabled entity
// that is enabled again within its grace keeps everything and its tokens
// verify again. An entity deleted after being disabled counts
// offboarding_grace from when the sweep first found it deleted.

// Why the sweep found an owner's entity inactive.
const (
	inactiveDisabled = "disabled"
	inactiveDeleted  = "deleted"
)

// offboardingGrace is how long the data of an owner whose entity is
// inactive for reason is kept; ok is false when it is kept for good.
func (c *configEntry) offboardingGrace(reason string) (grace time.Duration, ok bool) {
	if reason == inactiveDisabled {
		return c.DisabledGrace, c.DisabledGrace > 0
	}
	return c.OffboardingGrace, true
}

// offboardIfInactive handles an owner whose entity is gone (disabled false)
// or disabled; it returns true when it offboarded the entity. The caller
// holds the entity's lock.
func (b *backend) offboardIfInactive(ctx context.Context, s logical.Storage, cfg *configEntry, entityID string, owner *ownerEntry, disabled bool, now time.Time, result *tidyResult) (bool, error) {
	if owner == nil {
		// An entity the engine lists but never registered (data from before
		// owner entries): remember it from now on.
		owner = &ownerEntry{EntityID: entityID, FirstSeen: now, NameSeen: now}
	}
	reason := inactiveDeleted
	if disabled {
		reason = inactiveDisabled
	}
	// Marked when first found inactive, and again when a disabled entity
	// is deleted (its deletion grace starts then). A mark from before
	// reasons were kept is taken as the state found now.
	if owner.InactiveSince.IsZero() || (owner.InactiveReason != reason && owner.InactiveReason != "") {
		owner.InactiveSince = now
		owner.InactiveReason = reason
		if err := putOwner(ctx, s, owner); err != nil {
			return false, err
		}
	}
	grace, removes := cfg.offboardingGrace(reason)
	if !removes || now.Sub(owner.InactiveSince) < grace {
		return false, nil
	}
	named, leased, err := b.revokeAllTokensLocked(ctx, s, entityID, owner.Name, "offboarded")
	if err != nil {
		return false, err
	}
	providerTokens, err := b.deleteUserProviderTokens(ctx, s, entityID, owner.Name)
	if err != nil {
		return false, err
	}
	if err := b.deleteUserSettings(ctx, s, entityID); err != nil {
		return false, err
	}
	if err := b.forgetOwner(ctx, s, owner); err != nil {
		return false, err
	}
	b.notify(ctx, s, &lifecycleEvent{
		Type: eventUserOffboarded, EntityID: entityID, User: owner.Name, Path: "users/" + owner.Name,
		Details: map[string]string{
			"inactive_since":          formatTime(owner.InactiveSince),
			"inactive_reason":         reason,
			"named_tokens_revoked":    fmt.Sprint(named),
			"leased_tokens_revoked":   fmt.Sprint(leased),
			"provider_tokens_deleted": fmt.Sprint(providerTokens),
		},
	})
	result.EntitiesOffboarded++
	b.Logger().Info("offboarded a deleted or disabled user", "entity_id", entityID,
		"named_tokens", named, "leased_tokens", leased, "provider_tokens", providerTokens)
	return true, nil
}

// reactivate clears the inactive mark of an owner whose entity is back
// within the grace; the caller holds the entity's lock.
func reactivate(ctx context.Context, s logical.Storage, owner *ownerEntry) error {
	if owner == nil || owner.InactiveSince.IsZero() {
		return nil
	}
	owner.InactiveSince, owner.InactiveReason = time.Time{}, ""
	return putOwner(ctx, s, owner)
}

// deleteUserProviderTokens deletes every provider token of the entity; the
// caller holds the entity's lock.
func (b *backend) deleteUserProviderTokens(ctx context.Context, s logical.Storage, entityID, user string) (int, error) {
	owner := userProviderTokenOwner(entityID, user)
	providers, err := s.List(ctx, owner.storagePrefix())
	if err != nil {
		return 0, fmt.Errorf("listing provider tokens: %w", err)
	}
	for i, provider := range providers {
		entry, err := getProviderToken(ctx, s, owner.storagePrefix(), provider)
		if err != nil {
			return i, err
		}
		if err := b.deleteProviderToken(ctx, s, owner.storagePrefix(), provider); err != nil {
			return i, err
		}
		if entry != nil {
			event := owner.providerTokenEvent(eventProviderTokenDeleted, entry)
			event.Details["reason"] = "offboarded"
			b.notify(ctx, s, event)
		}
	}
	return len(providers), nil
}

// forgetOwner deletes the owner entry and the name's pointer if it still
// points at the entity; the caller holds the entity's lock.
func (b *backend) forgetOwner(ctx context.Context, s logical.Storage, owner *ownerEntry) error {
	if CheckUserName(owner.Name) == nil {
		pointed, err := getOwnerName(ctx, s, owner.Name)
		if err != nil {
			return err
		}
		if pointed == owner.EntityID {
			if err := s.Delete(ctx, ownerNamePath(owner.Name)); err != nil {
				return fmt.Errorf("deleting owner name: %w", err)
			}
		}
	}
	if err := s.Delete(ctx, ownerPath(owner.EntityID)); err != nil {
		return fmt.Errorf("deleting owner entry: %w", err)
	}
	b.ownerNames.remove(owner.EntityID)
	b.unknownNames.purge()
	return nil
}
