package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Storage upgrade from v0.1.0, which kept users' data under their entity
// *names* (token-index/<name>, provider-tokens/users/<name>/<provider>):
// names can be changed and reused, so the data moves under entity ids.
// Token records (tokens/<hmac>) stay where they are - they already name
// their entity - so PATs verify throughout.
//
// The upgrade runs on the node that may write, from InitializeFunc or on
// the first request, under migrationMu; every other request waits for it.
// Each step writes the new entry before it deletes the old one and never
// overwrites a new entry, so an interrupted upgrade is simply run again.
// The marker written last makes every later start a single read.
const (
	migrationPath = "migrations/storage-v2"
	// orgMigrationPath marks the second upgrade: organizations' provider
	// tokens from under their names (provider-tokens/orgs/<name>/) kept
	// aside until the engine learns each name's id (organizations.go).
	orgMigrationPath = "migrations/org-ids"

	legacyTokenIndexPrefix        = "token-index/"
	legacyUserProviderTokenPrefix = providerTokenPrefix + "users/"
	// unclaimedProviderTokenPrefix keeps v0.1.0 provider tokens of a user
	// name that no entity can be proven to own: handing them to whoever
	// holds the name now is exactly the flaw the upgrade removes.
	unclaimedProviderTokenPrefix = providerTokenPrefix + "unclaimed/"
)

// migrationEntry records the upgrade; it holds names, never secrets.
type migrationEntry struct {
	CompletedAt time.Time `json:"completed_at"`
	// The counts are of what the run that completed the upgrade found
	// still under names: after an interrupted run, only what was left.
	LeaseMarkers         int `json:"lease_markers"`
	NamedTokens          int `json:"named_tokens"`
	DanglingIndexEntries int `json:"dangling_index_entries"`
	ProviderTokens       int `json:"provider_tokens"`
	// Unclaimed lists "<user name>/<provider>" of the provider tokens kept
	// under unclaimedProviderTokenPrefix.
	Unclaimed []string `json:"unclaimed,omitempty"`
}

// legacyTokenRecord is a token record as v0.1.0 wrote it: with the owner's
// name at issue time, which the upgrade uses as evidence of who held which
// name and nothing else.
type legacyTokenRecord struct {
	tokenRecord
	User string `json:"user"`
}

// readsOnlyTokenRecords tells the paths that need no upgraded layout.
func readsOnlyTokenRecords(path string) bool {
	return path == "verify" || path == "introspect"
}

// ensureMigrated returns once the storage layout is the current one,
// upgrading it if this node may write. A node that may not write returns
// logical.ErrReadOnly, so that Vault forwards the request to one that may.
func (b *backend) ensureMigrated(ctx context.Context, s logical.Storage) error {
	if b.migrated.Load() {
		return nil
	}
	b.migrationMu.Lock()
	defer b.migrationMu.Unlock()
	if b.migrated.Load() {
		return nil
	}
	entry, err := s.Get(ctx, migrationPath)
	if err != nil {
		return fmt.Errorf("reading storage upgrade marker: %w", err)
	}
	if entry == nil {
		if !b.WriteSafeReplicationState() {
			return logical.ErrReadOnly
		}
		result, err := b.migrateStorage(ctx, s)
		// verify runs during the upgrade and caches records, some of which
		// the upgrade renames (same-named tokens of one entity): drop them,
		// also after a partial run.
		b.records.purge()
		if err != nil {
			b.Logger().Error("upgrading the storage layout failed; it is retried on the next request", "error", err)
			return fmt.Errorf("upgrading storage: %w", err)
		}
		if err := putMigration(ctx, s, result); err != nil {
			return err
		}
		if err := b.markFreshMountIndexed(ctx, s); err != nil {
			return err
		}
		if result.NamedTokens+result.LeaseMarkers+result.ProviderTokens+len(result.Unclaimed) > 0 {
			b.Logger().Info("upgraded the storage layout: users' data is now kept by entity id",
				"named_tokens", result.NamedTokens, "lease_markers", result.LeaseMarkers,
				"provider_tokens", result.ProviderTokens, "dangling_index_entries", result.DanglingIndexEntries)
		}
		if len(result.Unclaimed) > 0 {
			b.Logger().Warn("provider tokens of v0.1.0 whose owner entity cannot be proven are kept aside; see the README (Upgrading from v0.1.0)",
				"unclaimed", strings.Join(result.Unclaimed, ","))
		}
	}
	if err := b.ensureOrgsMigrated(ctx, s); err != nil {
		return err
	}
	b.migrated.Store(true)
	return nil
}

// orgMigrationEntry records the organization upgrade; it holds no secret.
type orgMigrationEntry struct {
	CompletedAt time.Time `json:"completed_at"`
	// KeptAside counts the organization provider tokens the run that
	// completed the upgrade moved from under names.
	KeptAside int `json:"kept_aside"`
}

// ensureOrgsMigrated moves organizations' provider tokens from under their
// names to unclaimed-orgs/<name>/, once. The upgrade cannot give them to an
// id: a plugin cannot look groups up, and which organization held a name
// when a token was written is nowhere recorded. Each is claimed by the id
// the name resolves to when the engine first learns it (a member's
// request, or the bootstrap re-applying the organization), and stays aside
// if that organization already has a token for the provider. The caller
// holds migrationMu.
func (b *backend) ensureOrgsMigrated(ctx context.Context, s logical.Storage) error {
	entry, err := s.Get(ctx, orgMigrationPath)
	if err != nil {
		return fmt.Errorf("reading organization upgrade marker: %w", err)
	}
	if entry != nil {
		return nil
	}
	if !b.WriteSafeReplicationState() {
		return logical.ErrReadOnly
	}
	result := &orgMigrationEntry{}
	err = b.migrateOrgProviderTokens(ctx, s, result)
	// Nothing read before the upgrade may stand for what it moved.
	b.providerTokens.purge()
	if err != nil {
		b.Logger().Error("upgrading organizations' storage failed; it is retried on the next request", "error", err)
		return fmt.Errorf("upgrading organizations' storage: %w", err)
	}
	result.CompletedAt = time.Now().UTC().Truncate(time.Second)
	marker, err := logical.StorageEntryJSON(orgMigrationPath, result)
	if err != nil {
		return fmt.Errorf("encoding organization upgrade marker: %w", err)
	}
	if err := s.Put(ctx, marker); err != nil {
		return fmt.Errorf("storing organization upgrade marker: %w", err)
	}
	if result.KeptAside > 0 {
		b.Logger().Info("organizations' provider tokens are kept aside by name until the engine learns each organization's id",
			"kept_aside", result.KeptAside)
	}
	return nil
}

// migrateOrgProviderTokens moves every provider-tokens/orgs/<name>/<p> to
// unclaimed-orgs/<name>/<p>: the copy first, then the delete, so that an
// interrupted run is simply run again (a copy already there is the earlier
// run's: the legacy entry is never written after the upgrade starts).
func (b *backend) migrateOrgProviderTokens(ctx context.Context, s logical.Storage, result *orgMigrationEntry) error {
	names, err := s.List(ctx, legacyOrgProviderTokenPrefix)
	if err != nil {
		return fmt.Errorf("listing organizations' provider tokens: %w", err)
	}
	for _, name := range names {
		prefix := legacyOrgProviderTokenPrefix + name
		providers, err := s.List(ctx, prefix)
		if err != nil {
			return fmt.Errorf("listing organizations' provider tokens: %w", err)
		}
		for _, provider := range providers {
			if err := ctx.Err(); err != nil {
				return err
			}
			entry, err := s.Get(ctx, prefix+provider)
			if err != nil {
				return fmt.Errorf("reading an organization's provider token: %w", err)
			}
			if entry == nil {
				continue
			}
			aside := unclaimedOrgProviderTokenPrefix + name + provider
			existing, err := s.Get(ctx, aside)
			if err != nil {
				return fmt.Errorf("reading an organization's provider token: %w", err)
			}
			if existing == nil {
				if err := s.Put(ctx, &logical.StorageEntry{Key: aside, Value: entry.Value, SealWrap: true}); err != nil {
					return fmt.Errorf("storing an organization's provider token: %w", err)
				}
			}
			if err := s.Delete(ctx, prefix+provider); err != nil {
				return fmt.Errorf("deleting an organization's provider token: %w", err)
			}
			result.KeptAside++
		}
	}
	return nil
}

func putMigration(ctx context.Context, s logical.Storage, result *migrationEntry) error {
	result.CompletedAt = time.Now().UTC().Truncate(time.Second)
	entry, err := logical.StorageEntryJSON(migrationPath, result)
	if err != nil {
		return fmt.Errorf("encoding storage upgrade marker: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		return fmt.Errorf("storing storage upgrade marker: %w", err)
	}
	return nil
}

func getMigration(ctx context.Context, s logical.Storage) (*migrationEntry, error) {
	entry, err := s.Get(ctx, migrationPath)
	if err != nil {
		return nil, fmt.Errorf("reading storage upgrade marker: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	var result migrationEntry
	if err := entry.DecodeJSON(&result); err != nil {
		return nil, fmt.Errorf("decoding storage upgrade marker: %w", err)
	}
	return &result, nil
}

// migrateStorage moves v0.1.0's name-keyed entries under entity ids.
func (b *backend) migrateStorage(ctx context.Context, s logical.Storage) (*migrationEntry, error) {
	result := &migrationEntry{}

	records, holders, err := b.migrateTokenRecords(ctx, s, result)
	if err != nil {
		return nil, err
	}
	names, err := s.List(ctx, legacyTokenIndexPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing v0.1.0 token indexes: %w", err)
	}
	for _, name := range names {
		if err := b.migrateTokenIndex(ctx, s, name, records, result); err != nil {
			return nil, err
		}
	}
	users, err := s.List(ctx, legacyUserProviderTokenPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing v0.1.0 provider tokens: %w", err)
	}
	for _, user := range users {
		if err := b.migrateUserProviderTokens(ctx, s, strings.TrimSuffix(user, "/"), holders[strings.TrimSuffix(user, "/")], result); err != nil {
			return nil, err
		}
	}
	// Nothing read before the upgrade may stand for what it moved.
	b.providerTokens.purge()

	// What is set aside is read back rather than counted, so that an
	// interrupted run's work is reported too.
	unclaimed, err := listUnclaimedProviderTokens(ctx, s)
	if err != nil {
		return nil, err
	}
	result.Unclaimed = unclaimed
	return result, nil
}

// listUnclaimedProviderTokens returns "<user name>/<provider>" of every
// provider token the upgrade set aside.
func listUnclaimedProviderTokens(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, unclaimedProviderTokenPrefix)
	if err != nil {
		return nil, fmt.Errorf("listing unclaimed provider tokens: %w", err)
	}
	var unclaimed []string
	for _, name := range names {
		providers, err := s.List(ctx, unclaimedProviderTokenPrefix+name)
		if err != nil {
			return nil, fmt.Errorf("listing unclaimed provider tokens: %w", err)
		}
		for _, provider := range providers {
			unclaimed = append(unclaimed, name+provider)
		}
	}
	sort.Strings(unclaimed)
	return unclaimed, nil
}

// migrateTokenRecords gives every leased PAT its marker, and returns the
// records by HMAC and, for each name tokens were issued under, the entities
// that issued them.
func (b *backend) migrateTokenRecords(ctx context.Context, s logical.Storage, result *migrationEntry) (map[string]*legacyTokenRecord, map[string]map[string]bool, error) {
	hashes, err := s.List(ctx, tokenRecordPrefix)
	if err != nil {
		return nil, nil, fmt.Errorf("listing token records: %w", err)
	}
	records := make(map[string]*legacyTokenRecord, len(hashes))
	holders := make(map[string]map[string]bool)
	for _, hash := range hashes {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		entry, err := s.Get(ctx, tokenRecordPath(hash))
		if err != nil {
			return nil, nil, fmt.Errorf("reading token record: %w", err)
		}
		if entry == nil {
			continue
		}
		var record legacyTokenRecord
		if err := entry.DecodeJSON(&record); err != nil {
			return nil, nil, fmt.Errorf("decoding token record: %w", err)
		}
		if record.Hash != hash || !validEntityID(record.EntityID) {
			continue
		}
		records[hash] = &record
		if record.User != "" {
			if holders[record.User] == nil {
				holders[record.User] = make(map[string]bool)
			}
			holders[record.User][record.EntityID] = true
		}
		if record.Role == "" {
			continue
		}
		marker, err := getLeaseMarker(ctx, s, record.EntityID, hash)
		if err != nil {
			return nil, nil, err
		}
		if marker == nil {
			if err := b.putLeaseMarker(ctx, s, &record.tokenRecord); err != nil {
				return nil, nil, err
			}
		}
		if err := b.adoptOwner(ctx, s, record.EntityID, record.User); err != nil {
			return nil, nil, err
		}
		result.LeaseMarkers++
	}
	return records, holders, nil
}

// migrateTokenIndex splits the v0.1.0 index of one name by the entity each
// token's record names - after a rename and a reuse of the name, one index
// held the tokens of two entities - and merges each part into that entity's
// index.
func (b *backend) migrateTokenIndex(ctx context.Context, s logical.Storage, name string, records map[string]*legacyTokenRecord, result *migrationEntry) error {
	entry, err := s.Get(ctx, legacyTokenIndexPrefix+name)
	if err != nil {
		return fmt.Errorf("reading v0.1.0 token index: %w", err)
	}
	if entry != nil {
		legacy := &tokenIndex{}
		if err := entry.DecodeJSON(legacy); err != nil {
			return fmt.Errorf("decoding v0.1.0 token index: %w", err)
		}
		byEntity := make(map[string]map[string]*tokenSummary)
		for tokenName, summary := range legacy.Tokens {
			if summary == nil {
				result.DanglingIndexEntries++
				continue
			}
			record := records[summary.Hash]
			if record == nil || record.Role != "" {
				// Without its record the token never verifies again.
				result.DanglingIndexEntries++
				continue
			}
			if byEntity[record.EntityID] == nil {
				byEntity[record.EntityID] = make(map[string]*tokenSummary)
			}
			byEntity[record.EntityID][tokenName] = summary
		}
		for entityID, tokens := range byEntity {
			moved, err := b.mergeIntoIndex(ctx, s, entityID, name, tokens)
			if err != nil {
				return err
			}
			result.NamedTokens += moved
		}
	}
	if err := s.Delete(ctx, legacyTokenIndexPrefix+name); err != nil {
		return fmt.Errorf("deleting v0.1.0 token index: %w", err)
	}
	return nil
}

func (b *backend) mergeIntoIndex(ctx context.Context, s logical.Storage, entityID, legacyName string, tokens map[string]*tokenSummary) (int, error) {
	lock := b.lockFor(entityLockKey(entityID))
	lock.Lock()
	defer lock.Unlock()
	index, err := getTokenIndex(ctx, s, entityID)
	if err != nil {
		return 0, err
	}
	listed := make(map[string]bool, len(index.Tokens))
	for _, summary := range index.Tokens {
		listed[summary.Hash] = true
	}
	names := make([]string, 0, len(tokens))
	for tokenName := range tokens {
		names = append(names, tokenName)
	}
	sort.Strings(names)
	added := 0
	for _, tokenName := range names {
		summary := tokens[tokenName]
		if listed[summary.Hash] {
			// Merged by an earlier, interrupted run.
			continue
		}
		if _, taken := index.Tokens[tokenName]; taken {
			// The entity issued this name under two of its names (v0.1.0
			// showed each name only its own index): both tokens are live,
			// so the later one gets a free name - its record first, so
			// that the index never lists a name its record does not hold.
			renamed := freeTokenName(index, tokenName)
			if err := renameTokenRecord(ctx, s, summary.Hash, renamed); err != nil {
				return 0, err
			}
			b.Logger().Warn("two named tokens of one entity had the same name under two of its v0.1.0 names; the later one was renamed",
				"entity_id", entityID, "name", tokenName, "renamed_to", renamed)
			tokenName = renamed
		}
		index.Tokens[tokenName] = summary
		listed[summary.Hash] = true
		added++
	}
	if added > 0 {
		if err := b.putTokenIndex(ctx, s, entityID, index); err != nil {
			return 0, err
		}
	}
	return added, b.adoptOwner(ctx, s, entityID, legacyName)
}

// freeTokenName returns name with the smallest suffix -2, -3, ... that the
// index does not hold, within the name rules' length.
func freeTokenName(index *tokenIndex, name string) string {
	for n := 2; ; n++ {
		suffix := fmt.Sprintf("-%d", n)
		base := name
		if len(base)+len(suffix) > MaxNameLength {
			base = base[:MaxNameLength-len(suffix)]
		}
		if _, taken := index.Tokens[base+suffix]; !taken {
			return base + suffix
		}
	}
}

// renameTokenRecord changes the name a token record holds.
func renameTokenRecord(ctx context.Context, s logical.Storage, hash, name string) error {
	record, err := getTokenRecord(ctx, s, hash)
	if err != nil || record == nil {
		return err
	}
	record.Name = name
	return putTokenRecord(ctx, s, record)
}

// migrateUserProviderTokens moves the provider tokens v0.1.0 kept under a
// user name to the entity the evidence names, or aside when none is proven.
func (b *backend) migrateUserProviderTokens(ctx context.Context, s logical.Storage, name string, holders map[string]bool, result *migrationEntry) error {
	prefix := legacyUserProviderTokenPrefix + name + "/"
	providers, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("listing v0.1.0 provider tokens: %w", err)
	}
	for _, provider := range providers {
		entry, err := s.Get(ctx, prefix+provider)
		if err != nil {
			return fmt.Errorf("reading v0.1.0 provider token: %w", err)
		}
		if entry != nil {
			var token providerTokenEntry
			if err := entry.DecodeJSON(&token); err != nil {
				return fmt.Errorf("decoding v0.1.0 provider token: %w", err)
			}
			owner, err := b.legacyProviderTokenOwner(ctx, s, name, &token, holders)
			if err != nil {
				return err
			}
			aside := unclaimedProviderTokenPrefix + name + "/" + provider
			destination := aside
			if owner != "" {
				destination = providerTokenPrefix + "entities/" + owner + "/" + provider
			}
			token.LegacyName = name
			value, err := json.Marshal(&token)
			if err != nil {
				return fmt.Errorf("encoding provider token: %w", err)
			}
			if err := placeLegacyProviderToken(ctx, s, destination, aside, value, &token); err != nil {
				return err
			}
			if owner != "" {
				if err := b.adoptOwner(ctx, s, owner, name); err != nil {
					return err
				}
				result.ProviderTokens++
			}
		}
		if err := s.Delete(ctx, prefix+provider); err != nil {
			return fmt.Errorf("deleting v0.1.0 provider token: %w", err)
		}
	}
	return nil
}

// placeLegacyProviderToken stores a v0.1.0 provider token at destination.
// An identical entry there is an earlier, interrupted run's. A different
// one is the same entity's token for the same provider under another of
// its v0.1.0 names: the newer of the two stays, the other is kept aside
// for an operator, and nothing is ever deleted.
func placeLegacyProviderToken(ctx context.Context, s logical.Storage, destination, aside string, value []byte, token *providerTokenEntry) error {
	existing, err := s.Get(ctx, destination)
	if err != nil {
		return fmt.Errorf("reading provider token: %w", err)
	}
	store := func(key string, value []byte) error {
		if err := s.Put(ctx, &logical.StorageEntry{Key: key, Value: value, SealWrap: true}); err != nil {
			return fmt.Errorf("storing provider token: %w", err)
		}
		return nil
	}
	if existing == nil {
		return store(destination, value)
	}
	if bytes.Equal(existing.Value, value) || destination == aside {
		return nil
	}
	var current providerTokenEntry
	if err := existing.DecodeJSON(&current); err != nil {
		return fmt.Errorf("decoding provider token: %w", err)
	}
	if !token.UpdatedAt.After(current.UpdatedAt) {
		return store(aside, value)
	}
	// The incoming token is newer: the stored one goes aside, under the
	// name it was found under, first, so that a crash in between loses
	// neither.
	currentAside := aside
	if current.LegacyName != "" {
		currentAside = unclaimedProviderTokenPrefix + current.LegacyName + "/" + current.Provider
	}
	if err := store(currentAside, existing.Value); err != nil {
		return err
	}
	return store(destination, value)
}

// legacyProviderTokenOwner names the entity a v0.1.0 provider token of user
// name belongs to, or "" when the evidence proves none. v0.1.0 let the user
// itself, a platform admin or an operator write there, and whether a writer
// was an admin when it wrote cannot be told at upgrade time (admins are
// demoted, users promoted), so only evidence that agrees gives a token an
// owner; the upgrade never guesses:
//   - a writer (updated_by) that issued PATs under that name was the user:
//     it owns the token;
//   - a writer while other entities issued the PATs under that name (the
//     PATs and the writer disagree: an admin writing for the user, or an
//     earlier holder of the name) - kept aside, for neither;
//   - a writer with no PATs under that name owns the token only if it holds
//     that name now; under another name it may be an ex-admin who wrote for
//     the user, so the token is kept aside;
//   - a token an operator wrote (no writer) belongs to the one entity that
//     issued PATs under that name, if there is exactly one and it holds
//     the name now: one that has been renamed may have left the name to
//     another entity, for whom the operator may have written it;
//   - otherwise - a writer that no longer exists, no evidence, or several
//     entities held the name - the token is kept aside, never given to
//     whoever holds the name now.
func (b *backend) legacyProviderTokenOwner(ctx context.Context, s logical.Storage, name string, token *providerTokenEntry, holders map[string]bool) (string, error) {
	writer := token.UpdatedBy
	if writer == "" {
		if len(holders) != 1 {
			return "", nil
		}
		for entityID := range holders {
			id, err := b.lookupIdentity(ctx, s, entityID)
			if err != nil || id == nil || id.name != name {
				return "", err
			}
			return entityID, nil
		}
	}
	switch {
	case !validEntityID(writer):
		return "", nil
	case holders[writer]:
		return writer, nil
	case len(holders) > 0:
		return "", nil
	}
	id, err := b.lookupIdentity(ctx, s, writer)
	if err != nil || id == nil || id.name != name {
		return "", err
	}
	return writer, nil
}

// adoptOwner registers an entity found in v0.1.0 data as an owner: under
// its live name if it still exists, else under the name it last used.
func (b *backend) adoptOwner(ctx context.Context, s logical.Storage, entityID, legacyName string) error {
	id, err := b.lookupIdentity(ctx, s, entityID)
	if err != nil {
		return err
	}
	if id != nil {
		return b.registerOwner(ctx, s, id)
	}
	owner, err := getOwner(ctx, s, entityID)
	if err != nil || owner != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	return putOwner(ctx, s, &ownerEntry{EntityID: entityID, Name: legacyName, FirstSeen: now, NameSeen: now})
}
