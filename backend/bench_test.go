package backend

import (
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

func BenchmarkCreateNamedToken(b *testing.B) {
	env := newTestEnv(b)
	const users = 64
	ids := make([]string, users)
	for u := range ids {
		ids[u] = env.addUser(fmt.Sprintf("user%d", u))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u := i % users
		resp, err := env.do(logical.UpdateOperation, fmt.Sprintf("users/user%d/tokens/t%d", u, i), ids[u], nil)
		if err != nil || resp.IsError() || !strings.HasPrefix(fmt.Sprint(resp.Data["token"]), "plqk_") {
			b.Fatal(err, resp)
		}
		i++
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
