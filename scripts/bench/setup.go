package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/vaultharness"
)

const (
	mount       = "planqk"
	issuers     = 64   // users that PATs are issued for, round robin
	listedPATs  = 1000 // PATs of the user whose list is measured
	benchPolicy = `
path "planqk/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv/*"     { capabilities = ["create", "read", "update", "delete", "list"] }
path "noop/*"   { capabilities = ["read", "update"] }
`
)

// fixtures is the server and what the operations need.
type fixtures struct {
	server       *vaultharness.Server
	root         *api.Client
	boot         *bootstrap.Bootstrapper
	vaultVersion string

	serviceToken string   // no entity: the kind of token the PlanQK API verifies with
	issuers      []string // user names
	issuerTokens []string // their tokens, with entities
	resolver     string   // a member of acme, with an entity
	lister       string   // the token of the user with 1,000 PATs
	validPAT     string
	garbledPAT   string
}

func setUp(ctx context.Context, o options, env map[string]string, dir string) (*fixtures, error) {
	f := &fixtures{}
	_, sha, err := vaultharness.InstallPlugin(env["PLANQK_PLUGIN_BIN"], dir)
	if err != nil {
		return nil, err
	}
	noopSHA, err := copyFile(env["NOOP_PLUGIN_BIN"], filepath.Join(dir, "plugins", "noop"))
	if err != nil {
		return nil, err
	}
	if o.raft {
		f.server, err = startRaft(ctx, env["VAULT_BIN"], dir)
	} else {
		f.server, err = vaultharness.StartDev(ctx, env["VAULT_BIN"], dir)
	}
	if err != nil {
		return nil, err
	}
	f.root = f.server.Root()
	if health, err := f.root.Sys().HealthWithContext(ctx); err == nil {
		f.vaultVersion = health.Version
	}

	steps := []func() error{
		func() error { return f.server.RegisterPlugin(ctx, sha, env["PLANQK_PLUGIN_VERSION"]) },
		func() error { return f.server.Mount(ctx, mount, env["PLANQK_PLUGIN_VERSION"]) },
		func() error {
			return f.root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{Name: "noop", Type: api.PluginTypeSecrets, Command: "noop", SHA256: noopSHA})
		},
		func() error { return f.root.Sys().MountWithContext(ctx, "noop", &api.MountInput{Type: "noop"}) },
		func() error {
			return f.root.Sys().MountWithContext(ctx, "kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
		},
		func() error { return f.root.Sys().PutPolicyWithContext(ctx, "bench", benchPolicy) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}

	f.boot = &bootstrap.Bootstrapper{Client: f.root, Mount: mount, AuthMount: "userpass"}
	if err := f.boot.Init(ctx); err != nil {
		return nil, err
	}
	if err := f.boot.Org(ctx, "acme"); err != nil {
		return nil, err
	}
	// Every token carries the same policy, so that ACL evaluation costs the
	// same for the engine and for its references.
	service, err := f.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{Policies: []string{"bench"}, NoDefaultPolicy: true, TTL: "4h"})
	if err != nil {
		return nil, err
	}
	f.serviceToken = service.Auth.ClientToken

	for i := 0; i < issuers; i++ {
		f.issuers = append(f.issuers, fmt.Sprintf("bench-%03d", i))
	}
	tokens, err := f.users(ctx, append(append([]string{}, f.issuers...), "resolver", "lister"))
	if err != nil {
		return nil, err
	}
	f.issuerTokens, f.resolver, f.lister = tokens[:issuers], tokens[issuers], tokens[issuers+1]

	if err := f.boot.SetMember(ctx, "acme", "resolver", "member"); err != nil {
		return nil, err
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": "ionq-bench-org-key-0000"}); err != nil {
		return nil, err
	}
	if _, err := f.root.Logical().WriteWithContext(ctx, mount+"/roles/runtime", map[string]interface{}{"ttl": "30m", "max_ttl": "1h"}); err != nil {
		return nil, err
	}
	for i, token := range f.issuerTokens {
		if _, err := f.as(token).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/%s/provider-tokens/ionq", mount, f.issuers[i]),
			map[string]interface{}{"api_key": "ionq-bench-user-key-0000"}); err != nil {
			return nil, err
		}
	}
	created, err := f.as(f.issuerTokens[0]).Logical().WriteWithContext(ctx, mount+"/users/"+f.issuers[0]+"/tokens/verified", nil)
	if err != nil {
		return nil, err
	}
	f.validPAT = created.Data["token"].(string)
	last := f.validPAT[len(f.validPAT)-1]
	f.garbledPAT = f.validPAT[:len(f.validPAT)-1] + map[bool]string{true: "B", false: "A"}[last == 'A']

	progress("creating the %d PATs of the listed user", listedPATs)
	err = parallel(16, listedPATs, func(i int) error {
		_, err := f.as(f.lister).Logical().WriteWithContext(ctx, fmt.Sprintf("%s/users/lister/tokens/t%04d", mount, i), nil)
		return err
	})
	return f, err
}

// users creates users with the bench policy and returns their tokens.
func (f *fixtures) users(ctx context.Context, names []string) ([]string, error) {
	tokens := make([]string, len(names))
	err := parallel(8, len(names), func(i int) error {
		password := "bench-password-" + names[i]
		if _, err := f.boot.User(ctx, names[i], password); err != nil {
			return err
		}
		if _, err := f.root.Logical().WriteWithContext(ctx, "auth/userpass/users/"+names[i], map[string]interface{}{"token_policies": "bench"}); err != nil {
			return err
		}
		token, err := f.server.Login(ctx, "userpass", names[i], password)
		tokens[i] = token
		return err
	})
	return tokens, err
}

func (f *fixtures) as(token string) *api.Client {
	client, err := f.server.Client(token)
	if err != nil {
		panic(err)
	}
	return client
}

func startRaft(ctx context.Context, vaultBin, dir string) (*vaultharness.Server, error) {
	port, err := vaultharness.FreePort()
	if err != nil {
		return nil, err
	}
	clusterPort, err := vaultharness.FreePort()
	if err != nil {
		return nil, err
	}
	config := vaultharness.NodeConfig(dir, port, clusterPort, vaultharness.RaftStorage(dir, "bench", nil))
	server, err := vaultharness.StartConfigured(ctx, vaultBin, dir, port, config)
	if err != nil {
		return nil, err
	}
	if _, _, err := server.Initialize(ctx); err != nil {
		server.Stop()
		return nil, err
	}
	single := &vaultharness.Cluster{Nodes: []*vaultharness.Server{server}}
	if _, err := single.WaitLeader(ctx, time.Minute); err != nil {
		server.Stop()
		return nil, err
	}
	return server, nil
}

// parallel runs do(0..n-1) on workers goroutines and returns the first error.
func parallel(workers, n int, do func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}

func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}

// pluginMemory reads the engine's plugin process's peak and current
// resident memory from /proc.
func pluginMemory(server *vaultharness.Server) map[string]string {
	pids, err := server.PluginPIDs()
	if err != nil || len(pids) == 0 {
		return nil
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
	if err != nil {
		return nil
	}
	memory := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		for _, key := range []string{"VmHWM", "VmRSS"} {
			if strings.HasPrefix(line, key+":") {
				memory[key] = strings.TrimSpace(strings.TrimPrefix(line, key+":"))
			}
		}
	}
	return memory
}
