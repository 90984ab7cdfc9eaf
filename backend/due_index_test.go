package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// sweepAt runs the sweep as if it were now, and returns what it did.
func (e *testEnv) sweepAt(now time.Time) *tidyResult {
	e.t.Helper()
	result := &tidyResult{}
	require.NoError(e.t, e.b.sweep(context.Background(), e.storage, now, result))
	return result
}

// dueEntries returns the hours of the due entries by subject.
func (e *testEnv) dueEntries() map[string][]int64 {
	e.t.Helper()
	entries := make(map[string][]int64)
	for key := range e.storageSnapshot() {
		rest, ok := strings.CutPrefix(key, duePrefix)
		if !ok {
			continue
		}
		hour, subject, _ := strings.Cut(rest, "/")
		h, err := strconv.ParseInt(hour, 10, 64)
		require.NoError(e.t, err)
		entries[subject] = append(entries[subject], h)
	}
	return entries
}

// requireDueIndexComplete fails unless every due time in storage - each
// named token's expiry and reminder thresholds not yet notified, each
// lease's expiry, each provider token's reminders, each inactive owner -
// has a due entry the sweep has yet to read, in its hour or before. It
// reads every entry itself rather than trusting the engine's nextDue.
func (e *testEnv) requireDueIndexComplete(what string) {
	e.t.Helper()
	ctx, now := context.Background(), time.Now()
	state, err := getSweepState(ctx, e.storage)
	require.NoError(e.t, err)
	done := int64(0)
	if state != nil {
		done = state.DoneHour
	}
	entries := e.dueEntries()
	cfg, err := e.b.getConfig(ctx, e.storage)
	require.NoError(e.t, err)
	covered := func(subject string, at time.Time, item string) {
		e.t.Helper()
		limit := max(dueHour(at), dueHour(now))
		for _, h := range entries[subject] {
			if h > done && h <= limit {
				return
			}
		}
		e.t.Fatalf("%s: %s of %s (due %s) has no due entry in hours %d..%d; entries %v", what, item, subject, at.Format(time.RFC3339), done+1, limit, entries[subject])
	}
	reminders := func(subject string, expiresAt time.Time, sent []string, item string) {
		e.t.Helper()
		for _, threshold := range cfg.ExpiryNotices {
			if !containsString(sent, threshold.String()) {
				covered(subject, expiresAt.Add(-threshold), item+" reminder "+threshold.String())
			}
		}
	}
	entities, err := listOwnerEntities(ctx, e.storage)
	require.NoError(e.t, err)
	for _, id := range entities {
		subject := entitySubject(id)
		index, err := getTokenIndex(ctx, e.storage, id)
		require.NoError(e.t, err)
		for name, summary := range index.Tokens {
			covered(subject, summary.ExpiresAt, "named token "+name)
			reminders(subject, summary.ExpiresAt, summary.NoticesSent, "named token "+name)
		}
		markers, err := entityLeaseMarkers(ctx, e.storage, id)
		require.NoError(e.t, err)
		for _, marker := range markers {
			covered(subject, marker.ExpiresAt, "lease "+marker.TokenID)
		}
		owner, err := getOwner(ctx, e.storage, id)
		require.NoError(e.t, err)
		if owner != nil && !owner.InactiveSince.IsZero() {
			covered(subject, now, "inactive owner")
		}
	}
	for prefix, subjectOf := range map[string]func(string) string{
		providerTokenPrefix + "entities/": entitySubject,
		orgProviderTokensPrefix:           orgSubject,
	} {
		owners, err := e.storage.List(ctx, prefix)
		require.NoError(e.t, err)
		for _, owner := range owners {
			providers, err := e.storage.List(ctx, prefix+owner)
			require.NoError(e.t, err)
			for _, provider := range providers {
				token, err := getProviderToken(ctx, e.storage, prefix+owner, provider)
				require.NoError(e.t, err)
				if token != nil && now.Before(token.ExpiresAt) {
					reminders(subjectOf(strings.TrimSuffix(owner, "/")), token.ExpiresAt, token.NoticesSent, "provider token "+provider)
				}
			}
		}
	}
}

// Every writer keeps the due index: after each, every due time in storage
// has its entry, and the counts equal what storage holds.
func TestDueIndex_everyWriterKeepsIt(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "1h"})
	check := func(what string) {
		t.Helper()
		env.requireDueIndexComplete(what)
		env.requireCountsExact(what)
	}
	check("empty")

	env.createToken("alice", alice, "laptop", nil)
	check("create")
	env.createToken("alice", alice, "short", map[string]interface{}{"ttl": "2h"})
	check("create, due earlier than the owner's earliest")
	env.createToken("bob", bob, "ci", map[string]interface{}{"ttl": "30m"})
	check("create, past every reminder threshold")
	env.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", alice, nil)
	check("rotate")
	env.ok(logical.DeleteOperation, "users/alice/tokens/short", alice, nil)
	check("delete")

	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	check("creds")
	renewed, err := env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RenewOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: lease.Secret})
	require.NoError(t, err)
	require.NotNil(t, renewed)
	check("renew")
	_, err = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Path: "users/alice/creds/runtime", Storage: env.storage, Secret: lease.Secret})
	require.NoError(t, err)
	check("revoke")
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	check("creds again")
	carol := env.addUser("carol")
	env.ok(logical.ReadOperation, "users/carol/creds/runtime", carol, nil)
	check("creds of an owner with nothing else due")

	soon := time.Now().Add(50 * time.Hour).UTC().Format(time.RFC3339)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave", "expires_at": soon})
	check("user provider token with expires_at")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq", "expires_at": soon})
	check("organization provider token with expires_at")
	env.ok(logical.DeleteOperation, "users/alice/provider-tokens/dwave", alice, nil)
	check("provider token delete")

	// A token the upgrade kept aside under a name, claimed when the
	// organization registers its id, is the organization's from then on.
	legacy, err := json.Marshal(&providerTokenEntry{Provider: "dwave", Values: map[string]string{"token": "globex-dwave"}, Version: 1, ExpiresAt: time.Now().Add(50 * time.Hour).UTC()})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, &logical.StorageEntry{Key: unclaimedOrgProviderTokenPrefix + "globex/dwave", Value: legacy}))
	aside := &countShard{}
	aside.addProviderTokens(ownerKindUnclaimed, "dwave", 1) // as the upgrade counted it
	require.NoError(t, env.b.applyCount(ctx, env.storage, unclaimedOrgSubject("globex"), aside))
	_, err = env.b.registerOrg(ctx, env.storage, "globex", testOrgID("globex"), true)
	require.NoError(t, err)
	check("an organization claims a provider token kept aside")

	got := env.tidy(nil)
	require.Equal(t, 3, got["notices_sent"], "acme's token and globex's claimed one crossed 168h, bob's 30-minute token 24h")
	check("tidy")

	env.ok(logical.UpdateOperation, "users/alice/revoke-all", alice, nil)
	check("revoke-all")
	env.createToken("alice", alice, "again", nil)
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	env.disableEntity(alice)
	env.tidy(nil)
	check("found disabled")
	env.deleteEntity(bob)
	env.tidy(nil)
	check("offboarded")

	// What came due is processed when its hour comes, and nothing else.
	env.enableEntity(alice)
	later := env.sweepAt(time.Now().Add(3 * time.Hour))
	require.Equal(t, 2, later.ExpiredRemoved, "alice's and carol's leases (1h)")
	check("sweep three hours on")
}

// A sweep with nothing due costs the same few storage round trips with 20
// owners or 400: it reads the sweep state and the current bucket, and the
// offboarding scan lists the owners once.
func TestDueIndex_aSweepWithNothingDueReadsO1Entries(t *testing.T) {
	cost := func(owners int) (roundTrips, *tidyResult) {
		env := newTestEnv(t)
		for i := 0; i < owners; i++ {
			name := fmt.Sprintf("user-%03d", i)
			env.createToken(name, env.addUser(name), "laptop", nil)
		}
		now := time.Now()
		env.sweepAt(now)
		env.storage.reset()
		result := env.sweepAt(now.Add(time.Minute))
		return env.storage.counted(), result
	}
	small, _ := cost(20)
	large, result := cost(400)
	require.Equal(t, small, large, "a sweep's storage cost does not grow with the owners")
	require.Less(t, large.Gets+large.Lists+large.Puts+large.Deletes, int64(100))
	require.LessOrEqual(t, large.Gets, int64(1))
	require.Equal(t, 0, result.EntitiesScanned)
	require.Equal(t, 400, result.OwnersChecked, "every owner is asked about within a batch")
}

// A sweep looks at what came due: 10 expired tokens among 200 owners cost
// 10 owners' reads, not 200.
func TestDueIndex_aSweepReadsWhatCameDue(t *testing.T) {
	env := newTestEnv(t)
	for i := 0; i < 200; i++ {
		name := fmt.Sprintf("user-%03d", i)
		data := map[string]interface{}(nil)
		if i%20 == 0 {
			data = map[string]interface{}{"ttl": "1h"}
		}
		env.createToken(name, env.addUser(name), "laptop", data)
	}
	now := time.Now()
	env.sweepAt(now)
	env.storage.reset()
	result := env.sweepAt(now.Add(2 * time.Hour))
	require.Equal(t, 10, result.ExpiredRemoved)
	require.Equal(t, 10, result.EntitiesScanned)
	require.Less(t, env.storage.counted().Gets, int64(10*6), "a handful of reads per due owner")
	env.requireDueIndexComplete("after the sweep")
	env.requireCountsExact("after the sweep")
}

// tidy repair=true rebuilds a lost due index: the sweep then removes what
// expired again.
func TestDueIndex_repairRebuildsIt(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "5h"})
	env.createToken("alice", alice, "short", map[string]interface{}{"ttl": "1h"})
	env.createToken("alice", alice, "long", nil)
	env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq", "expires_at": time.Now().Add(50 * time.Hour).UTC().Format(time.RFC3339)})
	for key := range env.storageSnapshot() {
		if strings.HasPrefix(key, duePrefix) {
			require.NoError(t, env.storage.Delete(ctx, key))
		}
	}
	require.Empty(t, env.dueEntries())

	env.tidy(map[string]interface{}{"repair": true})
	env.requireDueIndexComplete("after repair")
	require.Equal(t, 1, env.sweepAt(time.Now().Add(2*time.Hour)).ExpiredRemoved)
}

// An upgraded mount (no due index yet) sweeps every owner, and its first
// recount builds the index; from then on sweeps read only what came due.
func TestDueIndex_anUpgradedMountGetsItFromItsFirstRecount(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("user-%d", i)
		env.createToken(name, env.addUser(name), "laptop", map[string]interface{}{"ttl": "1h"})
	}
	// As a mount written before the index: no entries, no marker.
	for key := range env.storageSnapshot() {
		if strings.HasPrefix(key, duePrefix) || strings.HasPrefix(key, countsPrefix) || key == dueIndexPath {
			require.NoError(t, env.storage.Delete(ctx, key))
		}
	}
	env.b.dueBuilt.Store(false)
	env.b.dueMarks.purge()
	for i := range env.b.counters.shards {
		env.b.counters.shards[i].forget()
	}
	require.Equal(t, 5, env.sweepAt(time.Now()).EntitiesScanned, "every owner, as before the index")

	// The periodic function starts the recount; requests go on meanwhile.
	require.NoError(t, env.b.periodic(ctx, &logical.Request{Storage: env.storage}))
	require.Eventually(t, func() bool { return env.b.dueBuilt.Load() }, 5*time.Second, 5*time.Millisecond)
	env.requireDueIndexComplete("after the first recount")
	env.requireCountsExact("after the first recount")
	result := env.sweepAt(time.Now().Add(2 * time.Hour))
	require.Equal(t, 5, result.ExpiredRemoved)
}

// The offboarding scan asks Vault about a bounded batch of owners per
// sweep and resumes where the last sweep stopped: a deleted owner is
// found within owners/batch sweeps.
func TestDueIndex_theOffboardingScanIsBoundedAndResumes(t *testing.T) {
	defer func(batch int) { offboardingScanBatch = batch }(offboardingScanBatch)
	offboardingScanBatch = 3
	env := newTestEnv(t)
	var ids []string
	for i := 0; i < 7; i++ {
		name := fmt.Sprintf("user-%d", i)
		ids = append(ids, env.addUser(name))
		env.createToken(name, ids[i], "laptop", nil)
	}
	env.deleteEntity(ids[5]) // the sixth in the scan's order
	now := time.Now()
	first := env.sweepAt(now)
	require.Equal(t, 3, first.OwnersChecked)
	require.Equal(t, 0, first.EntitiesOffboarded)
	state, err := getSweepState(context.Background(), env.storage)
	require.NoError(t, err)
	require.Equal(t, ids[2], state.OffboardingAfter, "resumes after the last owner asked about")
	second := env.sweepAt(now)
	require.Equal(t, 3, second.OwnersChecked)
	require.Equal(t, 1, second.EntitiesOffboarded, "found in the second batch")
	third := env.sweepAt(now)
	require.Equal(t, 3, third.OwnersChecked, "wraps around to the first owners")
}
