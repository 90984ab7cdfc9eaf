package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Owners. Everything a user owns is stored under the user's identity
// entity id, which Vault never changes or reuses; entity names can be
// changed and reused, so a name is only ever a way to find an entity, and
// every such finding is checked against the entity's live name.
//
// Paths still carry user names, because ACL templates
// ({{identity.entity.name}}) can only grant by name. A request from the
// named user itself needs no lookup: its own entity id is in the request.
// Operators and platform admins who address another user by name go
// through the owner-name pointers below, checked live.
const (
	entityPrefix    = "entities/"
	ownerNamePrefix = "owner-names/"
)

func entityKeyPrefix(entityID string) string   { return entityPrefix + entityID + "/" }
func ownerPath(entityID string) string         { return entityKeyPrefix(entityID) + "owner" }
func tokenIndexPath(entityID string) string    { return entityKeyPrefix(entityID) + "tokens" }
func leaseMarkerPrefix(entityID string) string { return entityKeyPrefix(entityID) + "leases/" }
func leaseMarkerPath(entityID, hash string) string {
	return leaseMarkerPrefix(entityID) + hash
}

// ownerNamePath is the pointer from a user name to the entity that last
// held it. Only names that pass CheckUserName get here, so they hold no
// '/' or '..' that storage would misread or refuse.
func ownerNamePath(name string) string { return ownerNamePrefix + name }

// entityLockKey names the striped lock that serialises every
// read-modify-write of one entity's entries: its owner entry, token index,
// lease markers, provider tokens and the records of its tokens.
func entityLockKey(entityID string) string { return "entity/" + entityID }

// ownerEntry is what the engine remembers of an entity that owns tokens.
type ownerEntry struct {
	EntityID  string    `json:"entity_id"`
	Name      string    `json:"name"` // the entity's name when the engine last saw it
	FirstSeen time.Time `json:"first_seen"`
	NameSeen  time.Time `json:"name_seen"`
	// InactiveSince is when a sweep first found the entity deleted or
	// disabled; zero while it is active. Offboarding counts its grace
	// from here.
	InactiveSince time.Time `json:"inactive_since,omitempty"`
	// InactiveReason is how it was found: inactiveDisabled or
	// inactiveDeleted ("" for marks from before it was kept).
	InactiveReason string `json:"inactive_reason,omitempty"`
}

type ownerNamePointer struct {
	EntityID string `json:"entity_id"`
}

func getOwner(ctx context.Context, s logical.Storage, entityID string) (*ownerEntry, error) {
	entry, err := s.Get(ctx, ownerPath(entityID))
	if err != nil {
		return nil, fmt.Errorf("reading owner entry: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var owner ownerEntry
	if err := entry.DecodeJSON(&owner); err != nil {
		return nil, fmt.Errorf("decoding owner entry: %w", err)
	}
	return &owner, nil
}

func putOwner(ctx context.Context, s logical.Storage, owner *ownerEntry) error {
	entry, err := logical.StorageEntryJSON(ownerPath(owner.EntityID), owner)
	if err != nil {
		return fmt.Errorf("encoding owner entry: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing owner entry: %w", err)
	}
	return nil
}

func putOwnerName(ctx context.Context, s logical.Storage, name, entityID string) error {
	entry, err := logical.StorageEntryJSON(ownerNamePath(name), &ownerNamePointer{EntityID: entityID})
	if err != nil {
		return fmt.Errorf("encoding owner name: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing owner name: %w", err)
	}
	return nil
}

func getOwnerName(ctx context.Context, s logical.Storage, name string) (string, error) {
	entry, err := s.Get(ctx, ownerNamePath(name))
	if err != nil {
		return "", fmt.Errorf("reading owner name: %w", err)
	}
	if entry == nil {
		return "", nil
	}
	var pointer ownerNamePointer
	if err := entry.DecodeJSON(&pointer); err != nil {
		return "", fmt.Errorf("decoding owner name: %w", err)
	}
	return pointer.EntityID, nil
}

// registerOwner records that the entity owns something in the engine, under
// its current name, and points the name at it. The caller holds the
// entity's lock. It costs nothing once this node has seen the entity under
// that name.
func (b *backend) registerOwner(ctx context.Context, s logical.Storage, id *identity) error {
	if name, ok := b.ownerNames.get(id.entityID); ok && name == id.name {
		return nil
	}
	generation := b.ownerNames.begin()
	owner, err := getOwner(ctx, s, id.entityID)
	if err != nil {
		return err
	}
	if owner != nil && owner.Name == id.name {
		b.ownerNames.fill(id.entityID, id.name, generation)
		return nil
	}
	now := time.Now().UTC().Truncate(time.Second)
	if owner == nil {
		owner = &ownerEntry{EntityID: id.entityID, FirstSeen: now}
	}
	owner.Name, owner.NameSeen = id.name, now
	// The pointer first: an owner entry under a name then always means the
	// pointer was written, so a retry after a failure in between redoes both.
	// Vault does not restrict entity names; a name that breaks the engine's
	// rules can address no path, so it gets no pointer (and its key could
	// be one storage refuses).
	if CheckUserName(id.name) == nil {
		if err := putOwnerName(ctx, s, id.name, id.entityID); err != nil {
			return err
		}
	}
	if err := putOwner(ctx, s, owner); err != nil {
		return err
	}
	b.ownerNames.set(id.entityID, id.name)
	// The name nobody held a moment ago is this entity's now. (Only this
	// name: other entities' renames happen in Vault and are noticed when
	// an unknown name's answer expires.)
	b.unknownNames.remove(id.name)
	return nil
}

// liveNameOf returns the entity's name now, or the name it was last seen
// under when it no longer exists or Vault cannot be asked.
func (b *backend) liveNameOf(ctx context.Context, s logical.Storage, entityID string) string {
	if id, err := b.lookupIdentity(ctx, s, entityID); err == nil && id != nil {
		return id.name
	}
	if owner, err := getOwner(ctx, s, entityID); err == nil && owner != nil {
		return owner.Name
	}
	return ""
}

// entityOfUser returns the entity whose live name is user among the
// entities that own something in the engine, or nil if there is none. The
// name's pointer is tried first; when it is missing or stale (the entity
// was renamed or deleted, or another took the name) every owner's live name
// is checked, which costs a lookup per owner. That happens only for
// operator and admin requests after a rename, or for a name no owner holds,
// whose answer is then reused for identity_cache_ttl (as identities are)
// and dropped as soon as an entity registers as an owner under that name.
func (b *backend) entityOfUser(ctx context.Context, s logical.Storage, user string) (*identity, error) {
	pointed, err := getOwnerName(ctx, s, user)
	if err != nil {
		return nil, err
	}
	if pointed != "" {
		id, err := b.lookupIdentity(ctx, s, pointed)
		if err != nil {
			return nil, err
		}
		if id != nil && id.name == user {
			return id, nil
		}
	}

	cfg, err := b.getConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	if since, ok := b.unknownNames.get(user); ok && time.Since(since) < cfg.IdentityCacheTTL {
		return nil, nil
	}
	generation := b.unknownNames.begin()
	owners, err := s.List(ctx, entityPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing owners: %w", err)
	}
	for _, key := range owners {
		entityID := strings.TrimSuffix(key, "/")
		if entityID == pointed || !validEntityID(entityID) {
			continue
		}
		id, err := b.lookupIdentity(ctx, s, entityID)
		if err != nil {
			return nil, err
		}
		if id == nil || id.name != user {
			continue
		}
		if b.WriteSafeReplicationState() {
			// Repair the pointer for next time; the answer stands without it.
			if err := putOwnerName(ctx, s, user, entityID); err != nil {
				b.Logger().Warn("could not update an owner name pointer", "entity_id", entityID, "error", err)
			}
		}
		return id, nil
	}
	if cfg.IdentityCacheTTL > 0 {
		b.unknownNames.fill(user, time.Now(), generation)
	}
	return nil, nil
}
