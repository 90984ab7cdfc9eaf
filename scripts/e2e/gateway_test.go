//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/gateway"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestGatewayAcceptsPATsThroughIntrospection proves that an off-the-shelf
// API gateway validates PlanQK PATs with the engine's RFC 7662 endpoint and
// no code of ours: Apache httpd with mod_auth_openidc as an OAuth 2.0
// resource server, in front of a backend that echoes what reaches it.
func TestGatewayAcceptsPATsThroughIntrospection(t *testing.T) {
	engine := startGatewayEngine(t)
	backend := startEchoBackend(t)
	gw := startGateway(t, engine, engine.introspectionURL(), engine.srv.CACert, backend)

	created := engine.createPAT(t, "gateway-cli", "1h")
	pat := created["token"].(string)
	expiresAt := timeOf(t, created["expires_at"]).Unix()
	wantClaims := map[string]string{
		"username":   "alice",
		"sub":        engine.aliceEntity,
		"scope":      "api quantum_tokens",
		"jti":        created["token_id"].(string),
		"client_id":  "gateway-cli",
		"token_type": "bearer",
		"kind":       "named",
		"exp":        fmt.Sprint(expiresAt),
		"org_roles":  "acme:owner",
	}

	t.Run("an active PAT as Authorization: Bearer reaches the backend with its claims", func(t *testing.T) {
		got := gw.mustReach(t, "/jobs?limit=1", http.Header{"Authorization": {"Bearer " + pat}})
		if got.Path != "/jobs?limit=1" {
			t.Errorf("the backend got %q, want /jobs?limit=1", got.Path)
		}
		got.assertClaims(t, wantClaims)
		got.assertWithout(t, pat)
	})

	t.Run("an active PAT in x-auth-token, as the PlanQK SDKs send it, is accepted too", func(t *testing.T) {
		got := gw.mustReach(t, "/jobs", http.Header{"x-auth-token": {pat}})
		got.assertClaims(t, wantClaims)
		got.assertWithout(t, pat)
	})

	t.Run("claim headers a client sends are replaced by the introspected ones", func(t *testing.T) {
		got := gw.mustReach(t, "/jobs", http.Header{
			"Authorization":       {"Bearer " + pat},
			"OIDC_CLAIM_username": {"mallory"},
			"X-Remote-User":       {"mallory"},
		})
		got.assertClaims(t, wantClaims)
	})

	t.Run("no token, a garbled or an unknown PAT gets 401", func(t *testing.T) {
		garbled := garble(pat)
		for name, header := range map[string]http.Header{
			"no token":               {},
			"garbled bearer":         {"Authorization": {"Bearer " + garbled}},
			"garbled x-auth-token":   {"x-auth-token": {garbled}},
			"not a PAT at all":       {"Authorization": {"Bearer hello"}},
			"the verifier's token":   {"Authorization": {"Bearer " + engine.verifier}},
			"a Vault token of alice": {"x-auth-token": {engine.aliceToken}},
		} {
			gw.mustBeRefused(t, name, header)
		}
	})

	t.Run("a revoked PAT is refused at once", func(t *testing.T) {
		doomed := engine.createPAT(t, "gateway-doomed", "1h")["token"].(string)
		gw.mustReach(t, "/jobs", http.Header{"Authorization": {"Bearer " + doomed}})
		if _, err := engine.alice(t).Logical().Delete(mount + "/users/alice/tokens/gateway-doomed"); err != nil {
			t.Fatal(err)
		}
		gw.mustBeRefused(t, "revoked bearer", http.Header{"Authorization": {"Bearer " + doomed}})
		gw.mustBeRefused(t, "revoked x-auth-token", http.Header{"x-auth-token": {doomed}})
	})

	t.Run("an expired PAT is refused", func(t *testing.T) {
		short := engine.createPAT(t, "gateway-short", "2s")
		token := short["token"].(string)
		expiry := timeOf(t, short["expires_at"])
		gw.mustReach(t, "/jobs", http.Header{"x-auth-token": {token}})
		time.Sleep(time.Until(expiry))
		deadline := time.Now().Add(5 * time.Second)
		for gw.status(t, "/jobs", http.Header{"x-auth-token": {token}}) != http.StatusUnauthorized {
			if time.Now().After(deadline) {
				t.Fatal("the PAT is still accepted 5s after its expiry")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("the endpoint's certificate is validated", func(t *testing.T) {
		// The same gateway trusting only the system's public CAs must not
		// accept Vault's dev certificate, so a valid PAT gets 401.
		untrusting := startGateway(t, engine, engine.introspectionURL(), "/etc/ssl/certs/ca-certificates.crt", backend)
		untrusting.mustBeRefused(t, "valid PAT, untrusted endpoint", http.Header{"Authorization": {"Bearer " + pat}})
		log, err := os.ReadFile(untrusting.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(log), "certificate") {
			t.Errorf("no certificate error in the gateway's log:\n%s", log)
		}
	})

	if reached := backend.count(); reached != gw.reached {
		t.Errorf("the backend got %d requests; the gateway let %d through and refused %d", reached, gw.reached, gw.refused)
	}
}

// gatewayEngine is a second Vault dev server, serving https, with the
// engine mounted: mod_auth_openidc introspects over https only, and the
// suite's shared server speaks plain http.
type gatewayEngine struct {
	srv         *vaultharness.Server
	verifier    string // a Vault token with only planqk-verifier
	aliceToken  string // alice's Vault token; she is an owner of acme
	aliceEntity string
	secrets     []string // what no log may contain
}

func startGatewayEngine(t *testing.T) *gatewayEngine {
	t.Helper()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "planqk-e2e-gateway-vault-")
	if err != nil {
		t.Fatal(err)
	}
	_, sha, err := vaultharness.InstallPlugin(os.Getenv("PLANQK_PLUGIN_BIN"), dir)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := vaultharness.StartDevTLS(ctx, os.Getenv("VAULT_BIN"), dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &gatewayEngine{srv: srv}
	t.Cleanup(func() {
		srv.Stop()
		e.checkLogs(t, dir, "server.log", "audit.log")
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("the gateway's Vault logs are kept in %s", dir)
		}
	})

	root := srv.Root()
	if err := root.Sys().EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{
		Type:    "file",
		Options: map[string]string{"file_path": filepath.Join(dir, "audit.log")},
	}); err != nil {
		t.Fatal(err)
	}
	version := os.Getenv("PLANQK_PLUGIN_VERSION")
	if err := srv.RegisterPlugin(ctx, sha, version); err != nil {
		t.Fatal(err)
	}
	if err := srv.Mount(ctx, mount, version); err != nil {
		t.Fatal(err)
	}
	boot := &bootstrap.Bootstrapper{Client: root, Mount: mount, AuthMount: authMount}
	if err := boot.Init(ctx); err != nil {
		t.Fatal(err)
	}
	if err := boot.Org(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	password := "pw-alice-gateway-7c1e"
	if e.aliceEntity, err = boot.User(ctx, "alice", password); err != nil {
		t.Fatal(err)
	}
	if err := boot.SetMember(ctx, "acme", "alice", "owner"); err != nil {
		t.Fatal(err)
	}
	if e.aliceToken, err = srv.Login(ctx, authMount, "alice", password); err != nil {
		t.Fatal(err)
	}
	verifier, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-verifier"}, NoDefaultPolicy: true, TTL: "1h",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier = verifier.Auth.ClientToken
	e.secrets = append(e.secrets, password, e.aliceToken, e.verifier)
	return e
}

func (e *gatewayEngine) introspectionURL() string {
	return e.srv.Addr + "/v1/" + mount + "/introspect"
}

func (e *gatewayEngine) alice(t *testing.T) *api.Client {
	t.Helper()
	client, err := e.srv.Client(e.aliceToken)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// createPAT has alice create a PAT and returns the engine's response.
func (e *gatewayEngine) createPAT(t *testing.T, name, ttl string) map[string]interface{} {
	t.Helper()
	created, err := e.alice(t).Logical().Write(mount+"/users/alice/tokens/"+name, map[string]interface{}{"ttl": ttl})
	if err != nil {
		t.Fatal(err)
	}
	e.secrets = append(e.secrets, created.Data["token"].(string))
	return created.Data
}

// checkLogs fails the test when a log in dir holds a PAT, a password or a
// Vault token; the logs must exist, or the check would prove nothing.
func (e *gatewayEngine) checkLogs(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if len(data) == 0 {
			t.Errorf("%s is empty: the leak check would prove nothing", name)
		}
		for i, secret := range e.secrets {
			if strings.Contains(string(data), secret) {
				t.Errorf("secret #%d (a PAT, password or Vault token) is in %s", i, filepath.Join(dir, name))
			}
		}
	}
}

// testGateway is a running Apache in front of the echo backend, counting
// what it let through.
type testGateway struct {
	*gateway.Gateway
	mu               sync.Mutex
	reached, refused int
}

func startGateway(t *testing.T, engine *gatewayEngine, introspectionURL, caBundle string, backend *echoBackend) *testGateway {
	t.Helper()
	dir, err := os.MkdirTemp("", "planqk-e2e-gateway-apache-")
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.Start(context.Background(), gateway.Config{
		Dir:              dir,
		IntrospectionURL: introspectionURL,
		CABundle:         caBundle,
		VerifierToken:    engine.verifier,
		Backend:          backend.URL,
	})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("starting Apache (scripts/ensure-apache.sh installs it): %v", err)
	}
	t.Cleanup(func() {
		gw.Stop()
		engine.checkLogs(t, dir, filepath.Base(gw.LogPath), filepath.Base(gw.AccessLogPath))
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("Apache's configuration and logs are kept in %s", dir)
		}
	})
	return &testGateway{Gateway: gw}
}

// status sends GET ProtectedPrefix+path through the gateway.
func (g *testGateway) status(t *testing.T, path string, header http.Header) int {
	t.Helper()
	status, _ := g.send(t, path, header)
	return status
}

func (g *testGateway) send(t *testing.T, path string, header http.Header) (int, *echoed) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.URL+strings.TrimSuffix(gateway.ProtectedPrefix, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, values := range header {
		// Set as given: Go would canonicalize OIDC_CLAIM_username.
		req.Header[name] = values
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	g.mu.Lock()
	defer g.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		g.refused++
		return resp.StatusCode, nil
	}
	g.reached++
	var got echoed
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("decoding the backend's echo: %v", err)
	}
	return resp.StatusCode, &got
}

func (g *testGateway) mustReach(t *testing.T, path string, header http.Header) *echoed {
	t.Helper()
	status, got := g.send(t, path, header)
	if status != http.StatusOK {
		t.Fatalf("status %d through the gateway, want 200 (log: %s)", status, g.LogPath)
	}
	return got
}

func (g *testGateway) mustBeRefused(t *testing.T, what string, header http.Header) {
	t.Helper()
	if status := g.status(t, "/jobs", header); status != http.StatusUnauthorized {
		t.Errorf("%s: status %d through the gateway, want 401", what, status)
	}
}

// echoBackend is the protected resource: it answers every request with
// the path and headers it received.
type echoBackend struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
}

type echoed struct {
	Path    string      `json:"path"`
	Headers http.Header `json:"headers"`
}

func startEchoBackend(t *testing.T) *echoBackend {
	t.Helper()
	b := &echoBackend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.requests++
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(echoed{Path: r.URL.RequestURI(), Headers: r.Header})
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *echoBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.requests
}

// assertClaims checks the claim headers mod_auth_openidc forwards
// (OIDC_CLAIM_<name>) and the user name it sets as X-Remote-User.
func (got *echoed) assertClaims(t *testing.T, want map[string]string) {
	t.Helper()
	for claim, value := range want {
		if h := got.Headers.Values("OIDC_CLAIM_" + claim); len(h) != 1 || h[0] != value {
			t.Errorf("claim %s reached the backend as %q, want %q", claim, h, value)
		}
	}
	if h := got.Headers.Values("X-Remote-User"); len(h) != 1 || h[0] != want["username"] {
		t.Errorf("X-Remote-User reached the backend as %q, want %q", h, want["username"])
	}
}

// assertWithout checks that no header reaching the backend holds secret:
// the gateway forwards the claims, not the PAT.
func (got *echoed) assertWithout(t *testing.T, secret string) {
	t.Helper()
	for name, values := range got.Headers {
		for _, value := range values {
			if strings.Contains(value, secret) {
				t.Errorf("the PAT reached the backend in %s", name)
			}
		}
	}
}

// garble changes one character of a token.
func garble(token string) string {
	last := token[len(token)-1]
	replacement := byte('a')
	if last == 'a' {
		replacement = 'b'
	}
	return token[:len(token)-1] + string(replacement)
}

// timeOf parses an RFC 3339 time from the engine.
func timeOf(t *testing.T, value interface{}) time.Time {
	t.Helper()
	s, _ := value.(string)
	parsed, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %v", value)
	}
	return parsed
}
