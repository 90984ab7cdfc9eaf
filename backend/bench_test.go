package backend

import (
	"fmt"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// The engine's own cost per operation, in process with in-memory storage:
// what the plugin adds on top of Vault's request handling and gRPC hop.
// Run with: go test ./backend -run '^$' -bench . -benchmem

func BenchmarkVerify(b *testing.B) {
	env := newTestEnv(&testing.T{})
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	data := map[string]interface{}{"token": token}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.do(logical.UpdateOperation, "verify", "", data)
		if err != nil || resp.Data["active"] != true {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkVerifyBadChecksum(b *testing.B) {
	env := newTestEnv(&testing.T{})
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	data := map[string]interface{}{"token": token[:len(token)-1] + string(nextBase62(token[len(token)-1]))}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.do(logical.UpdateOperation, "verify", "", data)
		if err != nil || resp.Data["active"] != false {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkCreateNamedToken(b *testing.B) {
	env := newTestEnv(&testing.T{})
	const users = 64
	ids := make([]string, users)
	for u := range ids {
		ids[u] = env.addUser(fmt.Sprintf("user%d", u))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		u := i % users
		resp, err := env.do(logical.UpdateOperation, fmt.Sprintf("users/user%d/tokens/t%d", u, i), ids[u], nil)
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkIssueLease(b *testing.B) {
	env := newTestEnv(&testing.T{})
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.do(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	env := newTestEnv(&testing.T{})
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "", map[string]interface{}{"api_key": "k"})
	data := map[string]interface{}{"org": "acme"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := env.do(logical.ReadOperation, "resolve/ionq", alice, data)
		if err != nil || resp.IsError() {
			b.Fatal(err, resp)
		}
	}
}

func BenchmarkListThousandTokens(b *testing.B) {
	env := newTestEnv(&testing.T{})
	alice := env.addUser("alice")
	for i := 0; i < maxTokensPerUser; i++ {
		env.createToken("alice", alice, fmt.Sprintf("t%04d", i), nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := env.do(logical.ListOperation, "users/alice/tokens/", alice, nil); err != nil {
			b.Fatal(err)
		}
	}
}
