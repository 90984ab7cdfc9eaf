package backend

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Offboarding. When a user's entity is deleted or disabled, its tokens
// stop verifying at once (verify asks the identity store). The sweep
// (tidy_interval, or tidy on request) records when it first found the
// entity inactive; once offboarding_grace has passed since then, it
// revokes every named and leased PAT of the user, deletes the user's
// provider tokens and what the engine remembers of the entity, and
// notifies user-offboarded. A disabled entity that is enabled again
// within the grace keeps everything and its tokens verify again.

// offboardIfInactive handles an owner whose entity is gone or disabled
// (id nil or disabled); it returns true when it offboarded the entity.
// The caller holds the entity's lock.
func (b *backend) offboardIfInactive(ctx context.Context, s logical.Storage, cfg *configEntry, entityID string, owner *ownerEntry, now time.Time, result *tidyResult) (bool, error) {
	if owner == nil {
		// An entity the engine lists but never registered (data from before
		// owner entries): remember it from now on.
		owner = &ownerEntry{EntityID: entityID, FirstSeen: now, NameSeen: now}
	}
	if owner.InactiveSince.IsZero() {
		owner.InactiveSince = now
		if err := putOwner(ctx, s, owner); err != nil {
			return false, err
		}
	}
	if now.Sub(owner.InactiveSince) < cfg.OffboardingGrace {
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
	if err := b.forgetOwner(ctx, s, owner); err != nil {
		return false, err
	}
	b.notify(ctx, s, &lifecycleEvent{
		Type: eventUserOffboarded, EntityID: entityID, User: owner.Name, Path: "users/" + owner.Name,
		Details: map[string]string{
			"inactive_since":          formatTime(owner.InactiveSince),
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
	owner.InactiveSince = time.Time{}
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
