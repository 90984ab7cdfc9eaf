package backend

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/logical"
)

// Counts without a scan. How many named PATs, leased PATs and provider
// tokens are stored is kept in countShards small entries, counts/<n>,
// updated in the request that changes what they count: a subject (an
// entity, an organization, a v0.1.0 name with unclaimed provider tokens)
// always lands in the same shard, and every change to a subject is made
// under its lock, so writers of different subjects contend only on a
// shard's mutex, never on a striped lock. The counters are exact as long
// as no write is interrupted between the entry it counts and the counter;
// the recount (inventory refresh=true, tidy repair=true, and the upgrade)
// counts everything again and corrects that drift, reporting it.
//
// A recount runs while writers go on: it lists the subjects, then counts
// each under its lock. A change to a subject it has already counted, or to
// one it did not list (new since), is also kept aside in memory, and at the
// end each shard is set to what was counted plus what was kept aside, under
// the shard's mutex. Only the node that may write changes counts, so the
// memory kept aside is that node's.
const (
	countsPrefix = "counts/"
	countShards  = 16
)

// Kinds of provider-token owner, as the inventory names them.
const (
	ownerKindUser         = "user"
	ownerKindOrganization = "organization"
	ownerKindUnclaimed    = "unclaimed"
)

// countShard is one shard's counts, or a change to them.
type countShard struct {
	Named  int `json:"named"`
	Leases int `json:"leases"`
	// ProviderTokens counts by owner kind, then by provider.
	ProviderTokens map[string]map[string]int `json:"provider_tokens,omitempty"`
}

func (c *countShard) empty() bool {
	if c == nil {
		return true
	}
	if c.Named != 0 || c.Leases != 0 {
		return false
	}
	for _, byProvider := range c.ProviderTokens {
		for _, n := range byProvider {
			if n != 0 {
				return false
			}
		}
	}
	return true
}

// add adds sign times d to c.
func (c *countShard) add(d *countShard, sign int) {
	if d == nil {
		return
	}
	c.Named += sign * d.Named
	c.Leases += sign * d.Leases
	for kind, byProvider := range d.ProviderTokens {
		for provider, n := range byProvider {
			c.addProviderTokens(kind, provider, sign*n)
		}
	}
}

func (c *countShard) addProviderTokens(kind, provider string, n int) {
	if n == 0 {
		return
	}
	if c.ProviderTokens == nil {
		c.ProviderTokens = make(map[string]map[string]int)
	}
	if c.ProviderTokens[kind] == nil {
		c.ProviderTokens[kind] = make(map[string]int)
	}
	c.ProviderTokens[kind][provider] += n
	if c.ProviderTokens[kind][provider] == 0 {
		delete(c.ProviderTokens[kind], provider)
		if len(c.ProviderTokens[kind]) == 0 {
			delete(c.ProviderTokens, kind)
		}
	}
}

func (c *countShard) clone() *countShard {
	out := &countShard{}
	out.add(c, 1)
	return out
}

// diff returns c - d.
func (c *countShard) diff(d *countShard) *countShard {
	out := c.clone()
	out.add(d, -1)
	return out
}

func countShardPath(i int) string { return fmt.Sprintf("%s%02d", countsPrefix, i) }

func countShardOf(subject string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(subject))
	return int(h.Sum32() % countShards)
}

// Subjects: what the due index and the counters key changes by, one per
// striped lock. Entity ids hold no '.', so the first '.' ends the kind.
func entitySubject(entityID string) string   { return "e." + entityID }
func orgSubject(orgID string) string         { return "o." + orgID }
func unclaimedSubject(name string) string    { return "u." + name }
func unclaimedOrgSubject(name string) string { return "v." + name }

// providerTokenSubject returns the subject and owner kind of a provider
// token stored under prefix (an owner's).
func providerTokenSubject(prefix string) (subject, kind string) {
	rest := strings.TrimPrefix(prefix, providerTokenPrefix)
	family, owner, _ := strings.Cut(strings.TrimSuffix(rest, "/"), "/")
	switch family {
	case "organizations":
		return orgSubject(owner), ownerKindOrganization
	case "unclaimed-orgs":
		return unclaimedOrgSubject(owner), ownerKindUnclaimed
	case "entities":
		return entitySubject(owner), ownerKindUser
	case "unclaimed":
		return unclaimedSubject(owner), ownerKindUnclaimed
	}
	return "", ""
}

// counters are the shards as this node last read or wrote them, and the
// recount in progress.
type counters struct {
	shards  [countShards]counterShard
	recount recountState
}

type counterShard struct {
	mu     sync.Mutex
	loaded bool
	value  *countShard
}

// load returns the shard's value; the caller holds its mutex.
func (c *counterShard) load(ctx context.Context, s logical.Storage, i int) (*countShard, error) {
	if c.loaded {
		return c.value, nil
	}
	entry, err := s.Get(ctx, countShardPath(i))
	if err != nil {
		return nil, fmt.Errorf("reading counts: %w", err)
	}
	value := &countShard{}
	if entry != nil {
		if err := entry.DecodeJSON(value); err != nil {
			return nil, fmt.Errorf("decoding counts: %w", err)
		}
	}
	c.value, c.loaded = value, true
	return value, nil
}

// store writes the shard's new value; the caller holds its mutex.
func (c *counterShard) store(ctx context.Context, s logical.Storage, i int, value *countShard) error {
	entry, err := logical.StorageEntryJSON(countShardPath(i), value)
	if err != nil {
		return fmt.Errorf("encoding counts: %w", err)
	}
	if err := s.Put(ctx, entry); err != nil {
		c.loaded = false
		return fmt.Errorf("storing counts: %w", err)
	}
	c.value, c.loaded = value, true
	return nil
}

// forget drops the cached shard: another node changed it.
func (c *counterShard) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded = false
}

// applyCount adds d to the counts; the caller holds the subject's lock and
// has just stored the change d counts. If it fails the change is stored
// but not counted: the request fails as any interrupted write, and the
// next recount corrects the counts.
func (b *backend) applyCount(ctx context.Context, s logical.Storage, subject string, d *countShard) error {
	if d.empty() {
		return nil
	}
	i := countShardOf(subject)
	shard := &b.counters.shards[i]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	err := func() error {
		value, err := shard.load(ctx, s, i)
		if err != nil {
			return err
		}
		next := value.clone()
		next.add(d, 1)
		return shard.store(ctx, s, i, next)
	}()
	if err != nil {
		return err
	}
	b.counters.recount.note(subject, i, d)
	return nil
}

// storedCounts sums the shards: at most countShards reads, none once this
// node has read or written them.
func (b *backend) storedCounts(ctx context.Context, s logical.Storage) (*countShard, error) {
	total := &countShard{}
	for i := range b.counters.shards {
		shard := &b.counters.shards[i]
		shard.mu.Lock()
		value, err := shard.load(ctx, s, i)
		shard.mu.Unlock()
		if err != nil {
			return nil, err
		}
		total.add(value, 1)
	}
	return total, nil
}

// recountState is the recount in progress on this node.
type recountState struct {
	mu      sync.Mutex
	running bool
	// listed are the subjects the recount listed when it started; counted
	// those it has counted.
	listed  map[string]bool
	counted map[string]bool
	// truth is what it counted, by shard; aside the changes made since to
	// subjects counted or not listed; final the shards already set.
	truth [countShards]countShard
	aside [countShards]countShard
	final [countShards]bool
}

// begin starts a recount of the listed subjects; false if one runs.
func (r *recountState) begin(listed map[string]bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return false
	}
	r.running, r.listed, r.counted = true, listed, make(map[string]bool, len(listed))
	r.truth, r.aside, r.final = [countShards]countShard{}, [countShards]countShard{}, [countShards]bool{}
	return true
}

// count records what the recount found of subject; the caller holds the
// subject's lock.
func (r *recountState) count(subject string, found *countShard) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.counted[subject] {
		return
	}
	r.counted[subject] = true
	r.truth[countShardOf(subject)].add(found, 1)
}

// note keeps a change aside for the running recount when its count of the
// subject cannot include it; the caller holds shard i's mutex.
func (r *recountState) note(subject string, i int, d *countShard) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.final[i] {
		return
	}
	if r.counted[subject] || !r.listed[subject] {
		r.aside[i].add(d, 1)
	}
}

// abort ends a recount that failed; the counts stay as they were.
func (r *recountState) abort() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running, r.listed, r.counted = false, nil, nil
}

// finishRecount sets every shard to what the recount counted plus what
// changed since, and returns the drift it corrected: the counts as they
// were minus the truth.
func (b *backend) finishRecount(ctx context.Context, s logical.Storage) (*countShard, error) {
	r := &b.counters.recount
	drift := &countShard{}
	defer r.abort()
	for i := range b.counters.shards {
		shard := &b.counters.shards[i]
		err := func() error {
			shard.mu.Lock()
			defer shard.mu.Unlock()
			value, err := shard.load(ctx, s, i)
			if err != nil {
				return err
			}
			r.mu.Lock()
			truth := r.truth[i].clone()
			truth.add(&r.aside[i], 1)
			r.mu.Unlock()
			if d := value.diff(truth); !d.empty() {
				drift.add(d, 1)
				if err := shard.store(ctx, s, i, truth); err != nil {
					return err
				}
			}
			r.mu.Lock()
			r.final[i] = true
			r.mu.Unlock()
			return nil
		}()
		if err != nil {
			return nil, err
		}
	}
	return drift, nil
}
