//go:build e2e

// Package e2e proves the engine inside a real Vault server: the role
// matrix under the bootstrap policies, the PAT lifecycle through the vault
// CLI, provider tokens, Vault Agent injecting tokens into a runtime, the
// audit log free of secrets, and complete help and OpenAPI output.
//
// It needs VAULT_BIN, PLANQK_PLUGIN_BIN and PLANQK_PLUGIN_VERSION; `make
// test` builds both binaries and sets them.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

const (
	mount     = "planqk"
	authMount = "userpass"
)

// The cast: organization acme with one user in each role, a user who is
// an owner elsewhere (globex), a user in no organization, a user whose
// membership the lifecycle test changes, a platform admin (bootstrap's
// `member add '*' ada admin`), and otto, an operator who logs in as a user:
// his login carries planqk-admin as well (see operatorWithEntity).
var cast = []struct{ user, org, role string }{
	{"olivia", "acme", "owner"},
	{"max", "acme", "maintainer"},
	{"mia", "acme", "member"},
	{"nina", "globex", "owner"},
	{"paul", "", ""},
	{"lea", "acme", "member"},
	{"ada", "*", "admin"},
	{"otto", "", ""},
}

// operatorWithEntity is the user of the cast whose userpass login also
// grants planqk-admin: the policy allows the whole mount, but his requests
// carry an entity, so the engine's own checks apply to him.
const operatorWithEntity = "otto"

// suite is the server and the people the tests share.
type suite struct {
	srv      *vaultharness.Server
	boot     *bootstrap.Bootstrapper
	tokens   map[string]string // user -> Vault token from a userpass login
	verifier string            // a token with only planqk-verifier
	operator string            // a token with planqk-admin (and default), no entity
	auditor  string            // a token with only planqk-auditor
	scanner  string            // a token with only planqk-scanner
	broker   string            // a token with only planqk-broker

	mu      sync.Mutex
	secrets map[string]string // plaintext secret -> what it is; must never reach a log
	logs    []string          // log files the leak check must find, non-empty
}

var s *suite

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	ctx := context.Background()
	env := map[string]string{}
	for _, name := range []string{"VAULT_BIN", "PLANQK_PLUGIN_BIN", "PLANQK_PLUGIN_VERSION"} {
		if env[name] = os.Getenv(name); env[name] == "" {
			return 1, fmt.Errorf("%s is not set: run the suite with `make test`", name)
		}
	}
	dir, err := os.MkdirTemp("", "planqk-e2e-")
	if err != nil {
		return 1, err
	}
	_, sha, err := vaultharness.InstallPlugin(env["PLANQK_PLUGIN_BIN"], dir)
	if err != nil {
		return 1, err
	}
	// At trace level Vault and the plugin log the most: the leak check
	// reads the worst case.
	srv, err := vaultharness.StartDevWithOptions(ctx, env["VAULT_BIN"], dir, vaultharness.DevOptions{LogLevel: "trace"})
	if err != nil {
		return 1, err
	}
	defer srv.Stop()

	s = &suite{srv: srv, tokens: map[string]string{}, secrets: map[string]string{}}
	s.expectLog(filepath.Join(dir, "audit.log"))
	s.expectLog(srv.LogPath)
	if err := s.setUp(ctx, sha, env["PLANQK_PLUGIN_VERSION"]); err != nil {
		return 1, fmt.Errorf("setting up (logs in %s): %w", dir, err)
	}

	code := m.Run()
	stored, err := s.storedPlaintextPATs(ctx)
	if err != nil {
		return 1, err
	}
	srv.Stop()
	if leaks := append(stored, s.leakedSecrets()...); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "leak check failed (logs under %s):\n  %s\n", dir, strings.Join(leaks, "\n  "))
		code = 1
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "e2e: server, audit and agent logs kept in", dir)
	}
	return code, nil
}

func (st *suite) setUp(ctx context.Context, sha, version string) error {
	root := st.srv.Root()
	// The audit device is on before the engine is even mounted, so every
	// request of the suite is in the audit log the leak check reads.
	if err := root.Sys().EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": filepath.Join(st.srv.Dir, "audit.log")},
	}); err != nil {
		return err
	}
	// Vault rolls back a write-ahead log entry (an IBM job key made before
	// a crash) once it is this old, on its minute-by-minute rollback: 2s
	// instead of 5m lets the suite see it.
	if err := st.srv.RegisterPlugin(ctx, sha, version, walRollbackMinAgeEnv+"=2s"); err != nil {
		return err
	}
	if err := st.srv.Mount(ctx, mount, version); err != nil {
		return err
	}
	// No periodic sweep: it would race the tests' own tidy and their
	// before/after storage snapshots. A test that needs it turns it on.
	if _, err := root.Logical().WriteWithContext(ctx, mount+"/config", map[string]interface{}{"tidy_interval": 0}); err != nil {
		return err
	}

	st.boot = &bootstrap.Bootstrapper{Client: root, Mount: mount, AuthMount: authMount}
	if err := st.boot.Init(ctx); err != nil {
		return err
	}
	for _, org := range []string{"acme", "globex"} {
		if err := st.boot.Org(ctx, org); err != nil {
			return err
		}
	}
	for _, c := range cast {
		password := "pw-" + c.user + "-e2e-4f9a"
		st.remember(password, "password of "+c.user)
		if _, err := st.boot.User(ctx, c.user, password); err != nil {
			return err
		}
		if c.org != "" {
			if err := st.boot.SetMember(ctx, c.org, c.user, c.role); err != nil {
				return err
			}
		}
		if c.user == operatorWithEntity {
			if _, err := root.Logical().WriteWithContext(ctx, "auth/"+authMount+"/users/"+c.user, map[string]interface{}{
				"token_policies": "planqk-user,planqk-admin",
			}); err != nil {
				return err
			}
		}
		token, err := st.srv.Login(ctx, authMount, c.user, password)
		if err != nil {
			return fmt.Errorf("login of %s: %w", c.user, err)
		}
		st.tokens[c.user] = token
	}

	verifier, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-verifier"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		return err
	}
	st.verifier = verifier.Auth.ClientToken
	operator, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-admin"}, TTL: "1h",
	})
	if err != nil {
		return err
	}
	auditor, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-auditor"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		return err
	}
	st.auditor = auditor.Auth.ClientToken
	scanner, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-scanner"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		return err
	}
	st.scanner = scanner.Auth.ClientToken
	broker, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-broker"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		return err
	}
	st.broker = broker.Auth.ClientToken
	st.operator = operator.Auth.ClientToken

	_, err = root.Logical().WriteWithContext(ctx, mount+"/roles/runtime", map[string]interface{}{"ttl": "10m", "max_ttl": "1h"})
	return err
}

// expectLog registers a log file that the leak check must find and that
// must not be empty: a missing log would make the check prove nothing.
func (st *suite) expectLog(path string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.logs = append(st.logs, path)
}

// remember registers a plaintext secret that no log may contain.
func (st *suite) remember(secret, what string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.secrets[secret] = what
}

// storedPlaintextPATs reads the engine's whole storage through sys/raw
// after every test ran: no PAT the suite saw may be in it, only its HMAC.
// (Provider tokens are stored, seal-wrapped, because resolve returns them.)
func (st *suite) storedPlaintextPATs(ctx context.Context) ([]string, error) {
	snapshot, err := vaultharness.StorageSnapshot(ctx, st.srv.Root(), mount)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	var pats []string
	for secret := range st.secrets {
		if strings.HasPrefix(secret, "plqk_") {
			pats = append(pats, secret)
		}
	}
	if len(pats) == 0 {
		return []string{"no PAT was issued: the storage check would prove nothing"}, nil
	}
	set := vaultharness.NewSecretSet(pats)
	var found []string
	for key, value := range snapshot {
		for _, secret := range set.FoundIn([]byte(key + "\x00" + value)) {
			found = append(found, fmt.Sprintf("%s in storage at %s", st.secrets[secret], key))
		}
	}
	return found, nil
}

// leakedSecrets returns what of the remembered secrets any log in the
// server's directory contains (the audit log, the server log with the
// plugin's, every Agent's log), and every expected log that is missing or
// empty.
func (st *suite) leakedSecrets() []string {
	var problems []string
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, path := range st.logs {
		if info, err := os.Stat(path); err != nil || info.Size() == 0 {
			problems = append(problems, fmt.Sprintf("%s is missing or empty: the leak check would prove nothing", filepath.Base(path)))
		}
	}
	paths, err := filepath.Glob(filepath.Join(st.srv.Dir, "*.log"))
	if err != nil {
		return append(problems, err.Error())
	}
	secrets := make([]string, 0, len(st.secrets))
	for secret := range st.secrets {
		secrets = append(secrets, secret)
	}
	set := vaultharness.NewSecretSet(secrets)
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, secret := range set.FoundIn(data) {
			problems = append(problems, fmt.Sprintf("%s in %s", st.secrets[secret], filepath.Base(path)))
		}
	}
	return problems
}

// tokenOf returns the Vault token of a user, of "root", of "verifier", of
// "operator", of "auditor", of "scanner" or of "broker"; "" for anyone else.
func tokenOf(who string) string {
	switch who {
	case "root":
		return s.srv.RootToken
	case "verifier":
		return s.verifier
	case "operator":
		return s.operator
	case "auditor":
		return s.auditor
	case "scanner":
		return s.scanner
	case "broker":
		return s.broker
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens[who]
}

// as returns an API client with the token of who.
func as(t *testing.T, who string) *api.Client {
	t.Helper()
	client, err := s.srv.Client(tokenOf(who))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// cli runs the vault CLI as who with -format=json and decodes the output.
func cli(t *testing.T, who string, args ...string) (interface{}, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{args[0], "-format=json"}, args[1:]...)
	out, err := s.srv.CLI(ctx, tokenOf(who), full...)
	if err != nil {
		return nil, err
	}
	var decoded interface{}
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &decoded); err != nil {
		return nil, fmt.Errorf("decoding %q: %w", out, err)
	}
	return decoded, nil
}

// dataOf returns the "data" of a decoded CLI response.
func dataOf(t *testing.T, decoded interface{}) map[string]interface{} {
	t.Helper()
	response, _ := decoded.(map[string]interface{})
	data, ok := response["data"].(map[string]interface{})
	if !ok {
		t.Fatalf("no data in %v", decoded)
	}
	return data
}

// verify introspects a PAT as the PlanQK API does.
func verify(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	secret, err := as(t, "verifier").Logical().Write(mount+"/verify", map[string]interface{}{"token": token})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return secret.Data
}
