//go:build portal

// The portal's tests against a real Vault dev server with the engine and
// the bootstrap's policies and users: handler tests in process, the OIDC
// sign-in through Vault's own OIDC provider, and browser tests in headless
// Chromium. They need VAULT_BIN, PLANQK_PLUGIN_BIN, PLANQK_PLUGIN_VERSION
// and CHROMIUM_BIN (`make test-portal` sets them) and fail without them.

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// The cast. acme is the demo organization the browser tests (and the
// screenshots) use; globex is the handler tests' own, so that the two
// never see each other's tokens.
var cast = []struct{ user, org, role string }{
	{"olivia", "acme", "owner"},
	{"max", "acme", "maintainer"},
	{"mia", "acme", "member"},
	{"paul", "", ""},
	{"gina", "globex", "owner"},
	{"gus", "globex", "maintainer"},
	{"gwen", "globex", "member"},
	{"hana", "", ""},
	{"tina", "", ""},
	{"lena", "", ""}, // her tokens leak (pats_test.go)
}

// suite is what the tests share.
var suite struct {
	vault     *vaultharness.Server
	root      *api.Client
	boot      *bootstrap.Bootstrapper
	verifier  string // a token with only planqk-verifier
	passwords map[string]string
	chromium  string
	// screenshots is where the browser tests save their screenshots.
	screenshots string

	logs logBuffer // every test portal's log

	mu      sync.Mutex
	secrets map[string]string // secret -> what it is; none may reach a log
}

func TestMain(m *testing.M) {
	code, err := runSuite(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "portal tests:", err)
		code = 1
	}
	os.Exit(code)
}

func runSuite(m *testing.M) (int, error) {
	need := map[string]string{}
	for _, name := range []string{"VAULT_BIN", "PLANQK_PLUGIN_BIN", "PLANQK_PLUGIN_VERSION", "CHROMIUM_BIN"} {
		if need[name] = os.Getenv(name); need[name] == "" {
			return 1, fmt.Errorf("%s is not set: run the portal tests with `make test-portal`", name)
		}
	}
	suite.chromium = need["CHROMIUM_BIN"]
	suite.screenshots = os.Getenv("PORTAL_SCREENSHOTS")
	suite.secrets = map[string]string{}
	suite.passwords = map[string]string{}

	dir, err := os.MkdirTemp("", "planqk-portal-test-")
	if err != nil {
		return 1, err
	}
	if suite.screenshots == "" {
		if suite.screenshots, err = os.MkdirTemp("", "planqk-portal-screenshots-"); err != nil {
			return 1, err
		}
	}
	if err := os.MkdirAll(suite.screenshots, 0o755); err != nil {
		return 1, err
	}
	ctx := context.Background()
	suite.vault, err = startDevVault(ctx, need["VAULT_BIN"], need["PLANQK_PLUGIN_BIN"], need["PLANQK_PLUGIN_VERSION"], dir)
	if err != nil {
		return 1, err
	}
	defer suite.vault.Stop()
	if err := setUpCast(ctx); err != nil {
		return 1, fmt.Errorf("setting up (Vault log: %s): %w", suite.vault.LogPath, err)
	}

	code := m.Run()
	stopSharedBrowser()
	if leaks := leakedSecrets(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "secrets found in the portal's log:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	suite.vault.Stop()
	if shots, _ := os.ReadDir(suite.screenshots); len(shots) > 0 {
		fmt.Fprintln(os.Stderr, "portal tests: screenshots in", suite.screenshots)
	} else if os.Getenv("PORTAL_SCREENSHOTS") == "" {
		os.Remove(suite.screenshots)
	}
	if code != 0 || os.Getenv("PORTAL_KEEP_LOGS") != "" {
		_ = os.WriteFile(dir+"/portal.log", []byte(suite.logs.String()), 0o600)
		fmt.Fprintln(os.Stderr, "portal tests: the portal's and Vault's logs are in", dir)
	} else {
		os.RemoveAll(dir)
	}
	return code, nil
}

func setUpCast(ctx context.Context) error {
	suite.root = vaultClient("root")
	suite.boot = &bootstrap.Bootstrapper{Client: suite.root, Mount: "planqk", AuthMount: "userpass"}
	if err := suite.boot.Init(ctx); err != nil {
		return err
	}
	for _, org := range []string{"acme", "globex"} {
		if err := suite.boot.Org(ctx, org); err != nil {
			return err
		}
	}
	for _, c := range cast {
		password := "pw-" + c.user + "-" + randomHex(8)
		suite.passwords[c.user] = password
		remember(password, "password of "+c.user)
		if _, err := suite.boot.User(ctx, c.user, password); err != nil {
			return err
		}
		if c.org != "" {
			if err := suite.boot.SetMember(ctx, c.org, c.user, c.role); err != nil {
				return err
			}
		}
	}
	verifier, err := suite.root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-verifier"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		return err
	}
	suite.verifier = verifier.Auth.ClientToken
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// remember registers a secret that must never appear in the portal's log.
func remember(secret, what string) {
	suite.mu.Lock()
	defer suite.mu.Unlock()
	suite.secrets[secret] = what
}

func leakedSecrets() []string {
	logs := suite.logs.String()
	if !strings.Contains(logs, "signed in") {
		return []string{"the portal's log holds no sign-in: the leak check would prove nothing"}
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	var leaks []string
	for secret, what := range suite.secrets {
		if strings.Contains(logs, secret) {
			leaks = append(leaks, what)
		}
	}
	return leaks
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// testPortal is a portal serving on a loopback port, logging at trace
// level into the suite's log buffer.
type testPortal struct {
	*portal
	url string
}

func startPortal(t *testing.T, adjust func(*config)) *testPortal {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-listen", listener.Addr().String(), "-vault-addr", suite.vault.Addr,
		"-signin-rate", "600", "-signin-burst", "100"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(cfg)
		if err := cfg.validate(); err != nil {
			t.Fatal(err)
		}
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "planqk-portal", Level: hclog.Trace, Output: &suite.logs})
	p, err := newPortal(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewUnstartedServer(p.handler())
	server.Listener.Close()
	server.Listener = listener
	server.Start()
	t.Cleanup(server.Close)
	return &testPortal{portal: p, url: cfg.PublicURL}
}
