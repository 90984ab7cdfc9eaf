//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestConcurrentWritesAgainstTheRealServer runs hundreds of parallel
// creates, rotates and revokes for the same users, and parallel writes of
// the same organization's provider token, then checks that no index entry
// was lost, no id was issued twice, no name has two live secrets, every
// revoked token is inactive, and no provider-token write was lost.
func TestConcurrentWritesAgainstTheRealServer(t *testing.T) {
	ctx := context.Background()
	users := []string{"olivia", "max", "mia"}
	const perUser, workers = 60, 24

	type issued struct {
		user, name, secret, tokenID string
	}
	var (
		mu       sync.Mutex
		all      []issued
		revoked  = map[string]bool{} // user/name
		failures []string
	)
	fail := func(format string, args ...interface{}) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	record := func(user string, data map[string]interface{}) {
		secret := data["token"].(string)
		s.remember(secret, "a concurrency-test PAT")
		mu.Lock()
		defer mu.Unlock()
		all = append(all, issued{user, data["name"].(string), secret, data["token_id"].(string)})
	}

	// Names of this run's own, so that an earlier run (-count) left none.
	prefix, shared := uniqueName("c"), uniqueName("shared")
	nameOf := func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
	type job struct {
		user string
		n    int
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	orgWrites := map[string]int{}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for j := range jobs {
				client := as(t, j.user)
				n := j.n
				base := mount + "/users/" + j.user + "/tokens/" + nameOf(n)
				created, err := client.Logical().Write(base, nil)
				if err != nil {
					fail("create %s: %v", base, err)
					continue
				}
				record(j.user, created.Data)
				// Everyone also races for one shared name per user.
				if created, err := client.Logical().Write(mount+"/users/"+j.user+"/tokens/"+shared, nil); err == nil {
					record(j.user, created.Data)
				} else if vaultharness.StatusOf(err) != 400 {
					fail("shared create: %v", err)
				}
				if n%3 == 0 {
					rotated, err := client.Logical().Write(base+"/rotate", nil)
					if err != nil {
						fail("rotate %s: %v", base, err)
					} else {
						record(j.user, rotated.Data)
					}
				}
				if n%4 == 0 {
					if _, err := client.Logical().Delete(base); err != nil {
						fail("revoke %s: %v", base, err)
					} else {
						mu.Lock()
						revoked[j.user+"/"+nameOf(n)] = true
						mu.Unlock()
					}
				}
				// Owners and maintainers rewrite acme's D-Wave token.
				if j.user != "mia" && n%2 == 0 {
					key := fmt.Sprintf("dwave-concurrency-%s-%d-9f", j.user, n)
					if _, err := client.Logical().Write(mount+"/orgs/acme/provider-tokens/dwave", map[string]interface{}{"token": key}); err != nil {
						fail("org token write: %v", err)
					} else {
						s.remember(key, "a concurrency-test D-Wave token")
						mu.Lock()
						orgWrites["acme"]++
						mu.Unlock()
					}
				}
			}
		}(w)
	}
	_, _ = as(t, "root").Logical().Delete(mount + "/orgs/acme/provider-tokens/dwave")
	// acme keeps no D-Wave token of this test's: others (the role
	// matrix's exchange rows) expect a member's own, in any order and on a
	// second pass (-count=2).
	t.Cleanup(func() {
		if _, err := as(t, "root").Logical().Delete(mount + "/orgs/acme/provider-tokens/dwave"); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	for i := 0; i < perUser; i++ {
		for _, user := range users {
			jobs <- job{user, i}
		}
	}
	close(jobs)
	wg.Wait()
	t.Logf("%d operations' worth of tokens (%d secrets) in %s", len(users)*perUser, len(all), time.Since(start).Round(time.Millisecond))
	if len(failures) > 0 {
		t.Fatalf("%d requests failed, first: %s", len(failures), failures[0])
	}

	ids := map[string]bool{}
	latest := map[string]issued{} // user/name -> the last secret issued for it
	perName := map[string]int{}
	for _, tok := range all {
		if ids[tok.tokenID] {
			t.Errorf("token id %s issued twice", tok.tokenID)
		}
		ids[tok.tokenID] = true
		latest[tok.user+"/"+tok.name] = tok
		if tok.name == shared {
			perName[tok.user]++
		}
	}
	for _, user := range users {
		if perName[user] != 1 {
			t.Errorf("%s has %d tokens created under the shared name", user, perName[user])
		}
		list, err := as(t, user).Logical().List(mount + "/users/" + user + "/tokens/")
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, k := range list.Data["keys"].([]interface{}) {
			listed[k.(string)] = true
		}
		for i := 0; i < perUser; i++ {
			name := nameOf(i)
			if listed[name] == revoked[user+"/"+name] {
				t.Errorf("%s/%s: listed=%v revoked=%v", user, name, listed[name], revoked[user+"/"+name])
			}
		}
	}
	for _, tok := range all {
		key := tok.user + "/" + tok.name
		wantActive := !revoked[key] && latest[key].secret == tok.secret
		if got := verify(t, tok.secret)["active"]; got != wantActive {
			t.Errorf("%s (token id %s): active=%v, want %v", key, tok.tokenID, got, wantActive)
		}
	}

	meta, err := as(t, "root").Logical().Read(mount + "/orgs/acme/provider-tokens/dwave")
	if err != nil {
		t.Fatal(err)
	}
	if version, _ := meta.Data["version"].(json.Number).Int64(); int(version) != orgWrites["acme"] {
		t.Errorf("the organization's token is at version %d after %d acknowledged writes", version, orgWrites["acme"])
	}

	// In storage: exactly one record per live named token of this run.
	snapshot, err := vaultharness.StorageSnapshot(ctx, as(t, "root"), mount)
	if err != nil {
		t.Fatal(err)
	}
	// Records name their owner by entity id.
	userOf := map[string]string{}
	for _, c := range cast {
		id, err := s.boot.EntityID(ctx, c.user)
		if err != nil {
			t.Fatal(err)
		}
		userOf[id] = c.user
	}
	stored, err := vaultharness.StoredTokens(snapshot)
	if err != nil {
		t.Fatal(err)
	}
	records := map[string]int{}
	for _, rec := range stored {
		if rec.Role == "" && strings.HasPrefix(rec.Name, prefix+"-") {
			records[userOf[rec.EntityID]+"/"+rec.Name]++
		}
	}
	for key := range latest {
		if strings.HasSuffix(key, "/"+shared) {
			continue
		}
		want := 1
		if revoked[key] {
			want = 0
		}
		if records[key] != want {
			t.Errorf("%s has %d records in storage, want %d", key, records[key], want)
		}
	}
}
