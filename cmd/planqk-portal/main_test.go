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
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"golang.org/x/net/html"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
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
}

// suite is what the tests share.
var suite struct {
	vault     *devVault
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
	defer suite.vault.stop()
	if err := setUpCast(ctx); err != nil {
		return 1, fmt.Errorf("setting up (Vault log: %s): %w", suite.vault.logPath, err)
	}

	code := m.Run()
	stopSharedBrowser()
	if leaks := leakedSecrets(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "secrets found in the portal's log:\n  %s\n", strings.Join(leaks, "\n  "))
		code = 1
	}
	suite.vault.stop()
	fmt.Fprintln(os.Stderr, "portal tests: screenshots in", suite.screenshots)
	if code != 0 || os.Getenv("PORTAL_KEEP_LOGS") != "" {
		_ = os.WriteFile(dir+"/portal.log", []byte(suite.logs.String()), 0o600)
		fmt.Fprintln(os.Stderr, "portal tests: the portal's and Vault's logs are in", dir)
	} else {
		os.RemoveAll(dir)
	}
	return code, nil
}

func setUpCast(ctx context.Context) error {
	suite.root = suite.vault.client("root")
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
	cfg, err := parseConfig([]string{"-listen", listener.Addr().String(), "-vault-addr", suite.vault.addr,
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

// visitor is a browser without JavaScript: a cookie jar and the last page.
type visitor struct {
	t      *testing.T
	portal *testPortal
	client *http.Client
	last   *page
}

// page is one response.
type page struct {
	status int
	header http.Header
	body   string
	doc    *html.Node
}

func newVisitor(t *testing.T, tp *testPortal) *visitor {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &visitor{t: t, portal: tp, client: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}
}

func (v *visitor) do(req *http.Request) *page {
	v.t.Helper()
	resp, err := v.client.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	if _, err := body.ReadFrom(resp.Body); err != nil {
		v.t.Fatal(err)
	}
	p := &page{status: resp.StatusCode, header: resp.Header, body: body.String()}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		if p.doc, err = html.Parse(strings.NewReader(p.body)); err != nil {
			v.t.Fatal(err)
		}
		v.last = p
	}
	return p
}

// get fetches path without following redirects.
func (v *visitor) get(path string) *page {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodGet, v.portal.url+path, nil)
	if err != nil {
		v.t.Fatal(err)
	}
	return v.do(req)
}

// post sends a form without following redirects.
func (v *visitor) post(path string, form url.Values) *page {
	v.t.Helper()
	req, err := http.NewRequest(http.MethodPost, v.portal.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return v.do(req)
}

// follow fetches the redirect target of p, and asserts p was a 303.
func (v *visitor) follow(p *page) *page {
	v.t.Helper()
	if p.status != http.StatusSeeOther {
		v.t.Fatalf("status %d, want 303; page says: %s", p.status, p.text())
	}
	return v.get(p.header.Get("Location"))
}

// csrf returns the CSRF token of the last HTML page.
func (v *visitor) csrf() string {
	v.t.Helper()
	if v.last == nil {
		v.t.Fatal("no page yet")
	}
	token := v.last.inputValue("csrf")
	if token == "" {
		v.t.Fatalf("no csrf field on the page: %s", v.last.text())
	}
	return token
}

// submit posts form with the last page's CSRF token.
func (v *visitor) submit(path string, form url.Values) *page {
	v.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", v.csrf())
	return v.post(path, form)
}

// signIn signs user in with their password and returns the first page.
func (v *visitor) signIn(user string) *page {
	v.t.Helper()
	v.get("/signin")
	p := v.follow(v.submit("/signin", url.Values{"username": {user}, "password": {suite.passwords[user]}}))
	if p.status != http.StatusOK || !strings.Contains(p.text(), "Signed in as "+user) {
		v.t.Fatalf("signing in %s: status %d: %s", user, p.status, p.text())
	}
	return p
}

// sessionCookie returns the visitor's session cookie value.
func (v *visitor) sessionCookie() string {
	u, _ := url.Parse(v.portal.url)
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			return c.Value
		}
	}
	return ""
}

// text returns the page's visible text, whitespace collapsed.
func (p *page) text() string {
	if p.doc == nil {
		return p.body
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.Data == "script" || n.Data == "style" || n.Data == "head") {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteString(" ")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(p.doc)
	return strings.Join(strings.Fields(b.String()), " ")
}

// elements returns the elements for which match is true.
func (p *page) elements(match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	if p.doc != nil {
		walk(p.doc)
	}
	return out
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// inputValue returns the value of the first input named name.
func (p *page) inputValue(name string) string {
	for _, n := range p.elements(func(n *html.Node) bool { return n.Data == "input" && attr(n, "name") == name }) {
		return attr(n, "value")
	}
	return ""
}

// forms returns the actions of the page's POST forms.
func (p *page) forms() []string {
	var actions []string
	for _, n := range p.elements(func(n *html.Node) bool { return n.Data == "form" && strings.EqualFold(attr(n, "method"), "post") }) {
		actions = append(actions, attr(n, "action"))
	}
	return actions
}

// verify introspects a PAT as the PlanQK API does.
func verify(t *testing.T, token string) map[string]interface{} {
	t.Helper()
	secret, err := suite.vault.client(suite.verifier).Logical().Write("planqk/verify", map[string]interface{}{"token": token})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return secret.Data
}
