package backend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// trueCounts counts what storage holds, reading every entry.
func (e *testEnv) trueCounts() *countShard {
	e.t.Helper()
	ctx := context.Background()
	truth := &countShard{}
	for key := range e.storageSnapshot() {
		switch {
		case strings.HasPrefix(key, entityPrefix) && strings.HasSuffix(key, "/tokens"):
			index, err := getTokenIndex(ctx, e.storage, strings.TrimSuffix(strings.TrimPrefix(key, entityPrefix), "/tokens"))
			require.NoError(e.t, err)
			truth.Named += len(index.Tokens)
		case strings.HasPrefix(key, entityPrefix) && strings.Contains(key, "/leases/"):
			truth.Leases++
		case strings.HasPrefix(key, providerTokenPrefix):
			prefix := key[:strings.LastIndex(key, "/")+1]
			_, kind := providerTokenSubject(prefix)
			truth.addProviderTokens(kind, key[len(prefix):], 1)
		}
	}
	return truth
}

func (e *testEnv) requireCountsExact(what string) {
	e.t.Helper()
	stored, err := e.b.storedCounts(context.Background(), e.storage)
	require.NoError(e.t, err)
	require.Equal(e.t, e.trueCounts(), stored, what)
}

// The counts equal a recount after random operations of every writer, and
// the recount then finds no drift.
func TestCounts_equalARecountAfterRandomOperations(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	users := []string{"ann", "ben", "cid", "dot"}
	ids := make(map[string]string)
	for _, u := range users {
		ids[u] = env.addUser(u)
		env.setRole(ids[u], "acme", "owner")
	}
	var leases []*logical.Secret
	rng := rand.New(rand.NewPCG(19, 1))
	for i := 0; i < 400; i++ {
		u := users[rng.IntN(len(users))]
		id := ids[u]
		name := fmt.Sprintf("t%d", rng.IntN(6))
		provider := []string{"dwave", "ionq"}[rng.IntN(2)]
		var err error
		switch rng.IntN(9) {
		case 0, 1:
			// An existing name is refused (a 400), and changes nothing.
			_, err = env.do(logical.UpdateOperation, "users/"+u+"/tokens/"+name, id, nil)
		case 2:
			_, err = env.do(logical.UpdateOperation, "users/"+u+"/tokens/"+name+"/rotate", id, nil)
		case 3:
			_, err = env.do(logical.DeleteOperation, "users/"+u+"/tokens/"+name, id, nil)
		case 4:
			resp, rerr := env.do(logical.ReadOperation, "users/"+u+"/creds/runtime", id, nil)
			if rerr == nil && resp.Secret != nil {
				leases = append(leases, resp.Secret)
			}
			err = rerr
		case 5:
			if len(leases) > 0 {
				secret := leases[rng.IntN(len(leases))]
				_, err = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.RevokeOperation, Path: "users/x/creds/runtime", Storage: env.storage, Secret: secret})
			}
		case 6:
			_, err = env.do(logical.UpdateOperation, "users/"+u+"/provider-tokens/"+provider, id, map[string]interface{}{"token": "t", "api_key": "k"})
			if provider == "ionq" {
				_, err = env.do(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", id, map[string]interface{}{"api_key": "k"})
			}
		case 7:
			_, err = env.do(logical.DeleteOperation, "users/"+u+"/provider-tokens/"+provider, id, nil)
			if rng.IntN(3) == 0 {
				_, err = env.do(logical.DeleteOperation, "orgs/acme/provider-tokens/ionq", id, nil)
			}
		case 8:
			if rng.IntN(8) == 0 {
				_, err = env.do(logical.UpdateOperation, "users/"+u+"/revoke-all", id, nil)
			}
		}
		require.NoError(t, err, "operation %d", i)
	}
	env.requireCountsExact("after random operations")
	require.NoError(t, env.b.recountNow(env.storage, false))
	last, err := env.b.lastRecount(ctx, env.storage)
	require.NoError(t, err)
	require.True(t, last.Drift.empty(), "no drift: %+v", last.Drift)
	env.requireCountsExact("after the recount")
}

// A write interrupted between the entry it counts and the counter leaves
// drift; the recount finds it, reports it and corrects it.
func TestCounts_aRecountCorrectsWhatAnInterruptedWriteLeft(t *testing.T) {
	ctx := context.Background()
	drifted := 0
	for failAt := int64(1); failAt <= 4; failAt++ {
		env := newTestEnv(t)
		alice := env.addUser("alice")
		env.createToken("alice", alice, "first", nil)
		failing := &failingStorage{Storage: env.storage, failAt: failAt}
		_, _ = env.b.HandleRequest(ctx, &logical.Request{Operation: logical.UpdateOperation, Path: "users/alice/tokens/second", Storage: failing, EntityID: alice})
		stored, err := env.b.storedCounts(ctx, env.storage)
		require.NoError(t, err)
		truth := env.trueCounts()

		resp := env.ok(logical.ReadOperation, "inventory", "", map[string]interface{}{"refresh": true})
		recount := resp.Data["recount"].(map[string]interface{})
		require.Equal(t, "finished", recount["state"])
		require.Equal(t, stored.Named-truth.Named, recount["drift"].(map[string]interface{})["named_tokens"], "write %d", failAt)
		if stored.Named != truth.Named {
			drifted++
		}
		require.Equal(t, truth.Named, resp.Data["stored"].(map[string]interface{})["named_tokens"], "write %d", failAt)
		env.requireCountsExact(fmt.Sprintf("interrupted at write %d, then recounted", failAt))
	}
	require.Equal(t, 1, drifted, "the counter's write is one of the four")
}

// The recount's bookkeeping, step by step: a change to a subject already
// counted or never listed is kept aside; one to a subject yet to be
// counted is in its count; a phantom count is reported as drift.
func TestCounts_aRecountKeepsWritersChangesAside(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	a, b, c := entitySubject("a"), entitySubject("b"), entitySubject("c")
	env.b.applyCount(ctx, env.storage, a, &countShard{Named: 1})
	env.b.applyCount(ctx, env.storage, b, &countShard{Named: 1})
	env.b.applyCount(ctx, env.storage, b, &countShard{Leases: 3}) // a phantom: an interrupted write's

	r := &env.b.counters.recount
	require.True(t, r.begin(map[string]bool{a: true, b: true}))
	r.count(a, &countShard{Named: 1})
	env.b.applyCount(ctx, env.storage, a, &countShard{Named: 1}) // after a was counted
	env.b.applyCount(ctx, env.storage, b, &countShard{Named: 1}) // before b is counted
	env.b.applyCount(ctx, env.storage, c, &countShard{Named: 1}) // c was not listed
	r.count(b, &countShard{Named: 2})
	drift, err := env.b.finishRecount(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, &countShard{Leases: 3}, drift)
	stored, err := env.b.storedCounts(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, &countShard{Named: 5}, stored)
	env.b.applyCount(ctx, env.storage, a, &countShard{Named: 1}) // after the recount
	stored, err = env.b.storedCounts(ctx, env.storage)
	require.NoError(t, err)
	require.Equal(t, &countShard{Named: 6}, stored)
}

// Writers go on during a recount; what they change while it runs is not
// lost or counted twice.
func TestCounts_aRecountRacesWriters(t *testing.T) {
	env := newTestEnv(t)
	var ids []string
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("user-%02d", i)
		ids = append(ids, env.addUser(name))
		env.createToken(name, ids[i], "base", nil)
	}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				user := (w*7 + i) % 25 // some owners the recount never listed
				name := fmt.Sprintf("user-%02d", user)
				id := fmt.Sprintf("entity-%s", name)
				if user >= 20 {
					env.sys.mu.Lock()
					env.sys.entities[id] = &logical.Entity{ID: id, Name: name}
					env.sys.mu.Unlock()
				}
				_, _ = env.do(logical.UpdateOperation, fmt.Sprintf("users/%s/tokens/w%d-%d", name, w, i), id, nil)
				if i%3 == 0 {
					_, _ = env.do(logical.DeleteOperation, fmt.Sprintf("users/%s/tokens/base", name), id, nil)
				}
			}
		}(w)
	}
	for i := 0; i < 3; i++ {
		require.NoError(t, env.b.recountNow(env.storage, false))
	}
	wg.Wait()
	env.requireCountsExact("after recounts raced writers")
}
