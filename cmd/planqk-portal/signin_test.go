//go:build portal

package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestUserpassSignIn(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)

	if p := v.get("/tokens"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin" {
		t.Fatalf("signed-out /tokens: status %d to %q, want 303 to /signin", p.status, p.header.Get("Location"))
	}
	v.get("/signin")
	wrong := v.submit("/signin", url.Values{"username": {"hana"}, "password": {"not-her-password"}})
	if wrong.status != http.StatusUnauthorized || !strings.Contains(wrong.text(), "The user name or password is not right.") {
		t.Fatalf("wrong password: status %d: %s", wrong.status, wrong.text())
	}
	if v.sessionCookie() != "" {
		t.Fatal("a wrong password got a session cookie")
	}
	if got := wrong.inputValue("username"); got != "hana" {
		t.Errorf("the form forgot the user name: %q", got)
	}
	if strings.Contains(wrong.body, "not-her-password") {
		t.Error("the page repeats the password")
	}

	signedIn := v.post("/signin", url.Values{"csrf": {v.csrf()}, "username": {"hana"}, "password": {suite.passwords["hana"]}})
	if signedIn.status != http.StatusSeeOther || signedIn.header.Get("Location") != "/tokens" {
		t.Fatalf("sign-in: status %d to %q: %s", signedIn.status, signedIn.header.Get("Location"), signedIn.text())
	}
	page := v.follow(signedIn)
	if !strings.Contains(page.text(), "Signed in as hana") {
		t.Fatalf("tokens page after sign-in: %s", page.text())
	}
	// The session holds a Vault token of hana's entity; the browser has
	// only the random session id.
	sess := tp.sessions.get(v.sessionCookie())
	if sess == nil || sess.user != "hana" || sess.entityID == "" {
		t.Fatalf("session: %+v", sess)
	}
	remember(sess.vaultToken, "hana's Vault token")
	if strings.Contains(page.body, sess.vaultToken) || strings.Contains(signedIn.header.Get("Set-Cookie"), sess.vaultToken) {
		t.Fatal("the Vault token reached the browser")
	}
	// Signing in again from the sign-in page goes straight to the tokens.
	if p := v.get("/signin"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/tokens" {
		t.Errorf("signed-in /signin: status %d to %q", p.status, p.header.Get("Location"))
	}
}

func TestSignInRateLimit(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.SignInPerMinute, c.SignInBurst = 1, 3 })
	v := newVisitor(t, tp)
	v.get("/signin")
	for i := 0; i < 3; i++ {
		// Each to a user name of its own: only the address's budget refuses.
		p := v.submit("/signin", url.Values{"username": {"nobody-" + randomHex(4)}, "password": {"guess-" + randomHex(4)}})
		if p.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, want 401: %s", i+1, p.status, p.text())
		}
	}
	// The fourth attempt is refused before Vault is asked, even with the
	// right password.
	p := v.submit("/signin", url.Values{"username": {"hana"}, "password": {suite.passwords["hana"]}})
	if p.status != http.StatusTooManyRequests || !strings.Contains(p.text(), "Too many sign-in attempts") {
		t.Fatalf("fourth attempt: status %d: %s", p.status, p.text())
	}
	if v.sessionCookie() != "" {
		t.Fatal("a rate-limited attempt signed in")
	}
}

func TestSignOutRevokesTheVaultToken(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	oldCookie := v.sessionCookie()
	token := tp.sessions.get(oldCookie).vaultToken
	remember(token, "hana's Vault token")

	out := v.submit("/signout", nil)
	if out.status != http.StatusSeeOther || out.header.Get("Location") != "/signin?signed_out=1" {
		t.Fatalf("sign-out: status %d to %q", out.status, out.header.Get("Location"))
	}
	if p := v.follow(out); !strings.Contains(p.text(), "You are signed out. Your Vault token was revoked.") {
		t.Errorf("after sign-out: %s", p.text())
	}
	if _, err := vaultClient(token).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the Vault token still works after sign-out (lookup-self: %v)", err)
	}
	// The old cookie, sent again, opens nothing.
	replay := newVisitor(t, tp)
	req, _ := http.NewRequest(http.MethodGet, tp.url+"/tokens", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: oldCookie})
	if p := replay.do(req); p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin" {
		t.Fatalf("old session cookie: status %d to %q", p.status, p.header.Get("Location"))
	}
}

func TestSessionEndsWhenTheVaultTokenExpires(t *testing.T) {
	// tina's logins live 3 seconds.
	if _, err := suite.root.Logical().Write("auth/userpass/users/tina", map[string]interface{}{"token_ttl": "3s", "token_max_ttl": "3s"}); err != nil {
		t.Fatal(err)
	}
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("tina")
	sess := tp.sessions.get(v.sessionCookie())
	if until := time.Until(sess.expires); until > 4*time.Second || until <= 0 {
		t.Fatalf("the session ends in %s, want the token's 3s", until)
	}
	time.Sleep(time.Until(sess.expires) + 200*time.Millisecond)
	if p := v.get("/tokens"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin" {
		t.Fatalf("after the token expired: status %d to %q", p.status, p.header.Get("Location"))
	}
}

func TestSessionEndsWhenTheVaultTokenIsRevokedElsewhere(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	token := tp.sessions.get(v.sessionCookie()).vaultToken
	if err := suite.root.Auth().Token().RevokeTree(token); err != nil {
		t.Fatal(err)
	}
	// Vault answers 403; the portal tells an expired token from a refusal
	// and sends the person to sign in again.
	p := v.get("/tokens")
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin?ended=1" {
		t.Fatalf("revoked token: status %d to %q: %s", p.status, p.header.Get("Location"), p.text())
	}
	if next := v.follow(p); !strings.Contains(next.text(), "Your session has ended. Sign in again.") {
		t.Errorf("sign-in page: %s", next.text())
	}
	if tp.sessions.get(v.sessionCookie()) != nil {
		t.Error("the session outlived its token")
	}
}

func TestSessionLimitRevokesTheToken(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.SessionTTL = time.Minute })
	v := newVisitor(t, tp)
	v.signIn("hana")
	token := tp.sessions.get(v.sessionCookie()).vaultToken

	// Two minutes later the session is over, its token still had weeks.
	tp.sessions.mu.Lock()
	tp.sessions.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	tp.sessions.mu.Unlock()
	tp.revokeSessions(context.Background(), tp.sessions.prune())
	if _, err := vaultClient(token).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the token of an ended session still works (lookup-self: %v)", err)
	}
	if p := v.get("/tokens"); p.status != http.StatusSeeOther {
		t.Fatalf("ended session: status %d", p.status)
	}
}

func TestSigningInAgainEndsTheEarlierSession(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	first := tp.sessions.get(v.sessionCookie())

	// A sign-in form this browser still had open (its cookie and token).
	value := randomHex(32)
	u, _ := url.Parse(tp.url)
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: signInCookie, Value: value, Path: "/", Secure: true}})
	again := v.post("/signin", url.Values{"csrf": {tp.mac("signin-form", value)}, "username": {"hana"}, "password": {suite.passwords["hana"]}})
	if again.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: status %d: %s", again.status, again.text())
	}
	if v.sessionCookie() == first.id || tp.sessions.get(first.id) != nil {
		t.Fatal("the earlier session lives on")
	}
	if _, err := vaultClient(first.vaultToken).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the earlier session's Vault token still works: %v", err)
	}
}

func TestStoppingThePortalRevokesItsSessions(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"-listen", listener.Addr().String(), "-vault-addr", suite.vault.Addr}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPortal(cfg, hclog.New(&hclog.LoggerOptions{Output: &suite.logs}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.serve(ctx, listener) }()

	v := newVisitor(t, &testPortal{portal: p, url: cfg.PublicURL})
	v.signIn("hana")
	token := p.sessions.get(v.sessionCookie()).vaultToken
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := vaultClient(token).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("a session's Vault token outlived the portal: %v", err)
	}
}
