package backend

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// The engine's own cost per operation, in process with in-memory storage:
// what the plugin adds on top of Vault's request handling and gRPC hop.
// Run with: go test ./backend -run '^$' -bench . -benchmem
//
// The setup goes through the test helpers with the benchmark as their
// testing.TB, so a setup that fails stops the benchmark with b.Fatal
// instead of timing a broken state; every iteration checks its answer.

func BenchmarkVerify(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	data := map[string]interface{}{"token": token}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.do(logical.UpdateOperation, "verify", "", data)
		if err != nil || resp.Data["active"] != true {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkVerifyBadChecksum(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	garbled := token[:len(token)-1] + string(nextBase62(token[len(token)-1]))
	if garbled == token {
		b.Fatal("garbling left the token unchanged")
	}
	data := map[string]interface{}{"token": garbled}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.do(logical.UpdateOperation, "verify", "", data)
		if err != nil || resp.Data["active"] != false {
			b.Fatal(err, resp)
		}
	}
}

// BenchmarkCreateNamedToken creates a named PAT for one of 64 users, each
// holding createIndexSize tokens before every create: the created token is
// deleted again outside the timer, so that the index - which a create
// reads and writes whole - is the same size at every iteration, however
// many iterations run (growing it made 1,000 iterations cost 99 µs each
// and 20,000 cost 929 µs).
func BenchmarkCreateNamedToken(b *testing.B) {
	const users, createIndexSize = 64, 20
	env := newTestEnv(b)
	ids := make([]string, users)
	for u := range ids {
		ids[u] = env.addUser(fmt.Sprintf("user%d", u))
		for t := 0; t < createIndexSize; t++ {
			env.createToken(fmt.Sprintf("user%d", u), ids[u], fmt.Sprintf("held%02d", t), nil)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := i % users
		path := fmt.Sprintf("users/user%d/tokens/new", u)
		resp, err := env.do(logical.UpdateOperation, path, ids[u], nil)
		if err != nil || resp.IsError() || !strings.HasPrefix(fmt.Sprint(resp.Data["token"]), "plqk_") {
			b.Fatal(err, resp)
		}
		b.StopTimer()
		if resp, err := env.do(logical.DeleteOperation, path, ids[u], nil); err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
		b.StartTimer()
		i++
	}
	index, err := getTokenIndex(context.Background(), env.storage, ids[0])
	if err != nil || len(index.Tokens) != createIndexSize {
		b.Fatalf("the index holds %d tokens after the run, want %d (%v)", len(index.Tokens), createIndexSize, err)
	}
}

// BenchmarkVerifyLastUse measures what recording last use costs verify
// where it does record: 20,000 distinct tokens of 200 owners, each use the
// token's first in its granule (the record of uses seen is cleared, outside
// the timer, after each pass), against last_used_granularity=0. A hot token
// is noted once a granule, so there the cost cannot show.
func BenchmarkVerifyLastUse(b *testing.B) {
	const owners, perOwner = 200, 100
	env := newTestEnv(b)
	var bodies []map[string]interface{}
	for u := 0; u < owners; u++ {
		name := fmt.Sprintf("user%d", u)
		id := env.addUser(name)
		for t := 0; t < perOwner; t++ {
			token := env.createToken(name, id, fmt.Sprintf("t%03d", t), nil)["token"].(string)
			bodies = append(bodies, map[string]interface{}{"token": token})
		}
	}
	// Every record in the cache, as for a verifier's steady state.
	for _, body := range bodies {
		env.ok(logical.UpdateOperation, "verify", "", body)
	}
	for _, c := range []struct {
		name        string
		granularity string
	}{{"recording", "1m"}, {"off", "0"}} {
		b.Run(c.name, func(b *testing.B) {
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"last_used_granularity": c.granularity})
			env.b.lastUse = newLastUse()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i > 0 && i%len(bodies) == 0 {
					b.StopTimer()
					env.b.lastUse = newLastUse()
					b.StartTimer()
				}
				resp, err := env.do(logical.UpdateOperation, "verify", "", bodies[i%len(bodies)])
				if err != nil || resp.Data["active"] != true {
					b.Fatal(err, resp)
				}
				i++
			}
			if pending, _ := env.b.lastUse.take(); c.granularity != "0" && len(pending) == 0 {
				b.Fatal("nothing was recorded: the benchmark measures nothing")
			}
		})
	}
}

func BenchmarkIssueLease(b *testing.B) {
	env := newTestEnv(b)
	// Spread over users: one user holds at most maxLeasesPerUser leases.
	const users = 100
	ids := make([]string, users)
	for u := range ids {
		ids[u] = env.addUser(fmt.Sprintf("user%d", u))
	}
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := i % users
		if i/users >= maxLeasesPerUser {
			b.Fatalf("more iterations than %d users can hold leases", users)
		}
		resp, err := env.do(logical.ReadOperation, fmt.Sprintf("users/user%d/creds/runtime", u), ids[u], nil)
		if err != nil || resp.IsError() || resp.Secret == nil || !strings.HasPrefix(fmt.Sprint(resp.Data["token"]), "plqk_") {
			b.Fatal(err, resp)
		}
		i++
	}
}

func BenchmarkResolve(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "ionq-org-key"})
	data := map[string]interface{}{"org": "acme"}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.do(logical.ReadOperation, "resolve/ionq", alice, data)
		if err != nil || resp.IsError() || resp.Data["api_key"] != "ionq-org-key" {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkListThousandTokens(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	for i := 0; i < maxTokensPerUser; i++ {
		env.createToken("alice", alice, fmt.Sprintf("t%04d", i), nil)
	}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.do(logical.ListOperation, "users/alice/tokens/", alice, nil)
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
		if keys, _ := resp.Data["keys"].([]string); len(keys) != maxTokensPerUser {
			b.Fatalf("listed %d tokens, want %d", len(keys), maxTokensPerUser)
		}
	}
}

// BenchmarkResolveOwn is resolve without org: a user's own token.
func BenchmarkResolveOwn(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "ionq-own-key"})
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.do(logical.ReadOperation, "resolve/ionq", alice, nil)
		if err != nil || resp.IsError() || resp.Data["api_key"] != "ionq-own-key" {
			b.Fatal(err, resp)
		}
	}
}

// BenchmarkExchange is the platform's hot path: a PAT and an organization
// in headers, the organization's token back.
func BenchmarkExchange(b *testing.B) {
	env := newTestEnv(b)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "ionq-org-key"})
	pat := env.createToken("alice", alice, "jobs", nil)["token"].(string)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := env.exchange("exchange/ionq", pat, "acme", false)
		if err != nil || resp.IsError() || resp.Data["api_key"] != "ionq-org-key" {
			b.Fatal(err, resp)
		}
	}
}
