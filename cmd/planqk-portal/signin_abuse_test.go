//go:build portal

package main

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// What sign-in withstands (issue 21): one person cannot deny others,
// forged requests cost nothing, a proxy in front does not make everyone
// share one budget, and the portal never locks an account in Vault.

// newLogin creates a userpass user of its own for a test that spends wrong
// passwords on it: Vault locks a user name after five.
func newLogin(t *testing.T) string {
	t.Helper()
	name := "login-" + randomHex(4)
	password := "pw-" + randomHex(8)
	remember(password, "password of "+name)
	if _, err := suite.boot.User(context.Background(), name, password); err != nil {
		t.Fatal(err)
	}
	suite.passwords[name] = password
	return name
}

// tokenRevoked reports whether Vault no longer knows token.
func tokenRevoked(token string) bool {
	_, err := vaultClient(token).Auth().Token().LookupSelf()
	return statusOf(err) == http.StatusForbidden
}

// Finding 7: one person signing in again and again (from as many
// addresses as they like) ends only their own oldest sessions, whose Vault
// tokens are revoked; a full store still lets the next person in.
func TestSessionsAreBoundedPerPerson(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.SessionsPerPerson, c.MaxSessions = 3, 5 })
	var tokens []string
	var cookies []string
	for i := 0; i < 6; i++ {
		v := newVisitor(t, tp)
		v.signIn("paul")
		sess := tp.sessions.get(v.sessionCookie())
		remember(sess.vaultToken, "paul's Vault token")
		tokens = append(tokens, sess.vaultToken)
		cookies = append(cookies, v.sessionCookie())
	}
	entity := tp.sessions.get(cookies[5]).entityID
	if all, pauls := tp.sessions.count(entity); all != 3 || pauls != 3 {
		t.Fatalf("after six sign-ins of paul: %d sessions, %d his; want 3 and 3", all, pauls)
	}
	for i, token := range tokens {
		if ended := tp.sessions.get(cookies[i]) == nil; ended != (i < 3) {
			t.Errorf("session %d ended: %v", i+1, ended)
		}
		if revoked := tokenRevoked(token); revoked != (i < 3) {
			t.Errorf("session %d's Vault token revoked: %v", i+1, revoked)
		}
	}

	// The store is full (paul 3, hana 1, tina 1); gus still gets in, and
	// paul, who holds the most, loses his oldest.
	for _, user := range []string{"hana", "tina", "gus"} {
		v := newVisitor(t, tp)
		v.signIn(user)
	}
	if all, pauls := tp.sessions.count(entity); all != 5 || pauls != 2 {
		t.Fatalf("a full store: %d sessions, %d of paul's; want 5 and 2", all, pauls)
	}
	if !tokenRevoked(tokens[3]) || tokenRevoked(tokens[4]) {
		t.Error("a full store did not end (and revoke) paul's oldest session, and only that")
	}
}

// Finding 12: sessions a full store drops because they are over have their
// Vault tokens revoked too.
func TestFullStoreRevokesTheSessionsItDrops(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.SessionsPerPerson, c.MaxSessions, c.SessionTTL = 2, 2, time.Minute })
	var tokens []string
	for _, user := range []string{"hana", "paul"} {
		v := newVisitor(t, tp)
		v.signIn(user)
		tokens = append(tokens, tp.sessions.get(v.sessionCookie()).vaultToken)
	}
	// Two minutes later both sessions are over; their tokens had an hour.
	tp.sessions.mu.Lock()
	tp.sessions.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	tp.sessions.mu.Unlock()
	newVisitor(t, tp).signIn("tina")
	for i, token := range tokens {
		if !tokenRevoked(token) {
			t.Errorf("the Vault token of dropped session %d still works", i+1)
		}
	}
}

// Findings 8 and 9: requests that are not the portal's own form, and
// OIDC starts another site makes a browser send, cost nothing: the owner
// signs in from the same address right after.
func TestForgedSignInsCostNothing(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.SignInPerMinute, c.SignInBurst = 1, 3
		c.AuthMethods = []string{methodUserpass, methodOIDC}
	})
	attacker := newVisitor(t, tp)
	for i := 0; i < 20; i++ {
		p := attacker.post("/signin", url.Values{"username": {"olivia"}, "password": {"guess"}})
		if p.status != http.StatusForbidden {
			t.Fatalf("forged sign-in %d: status %d, want 403", i+1, p.status)
		}
	}
	for i := 0; i < 10; i++ {
		req, _ := http.NewRequest(http.MethodGet, tp.url+"/signin/oidc", nil)
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		if p := attacker.do(req); p.status != http.StatusSeeOther || p.header.Get("Location") != "/signin" {
			t.Fatalf("cross-site OIDC start %d: status %d to %q", i+1, p.status, p.header.Get("Location"))
		}
	}
	// OIDC starts have a budget of their own, apart from passwords.
	for i := 0; i < 5; i++ {
		attacker.get("/signin/oidc")
	}
	owner := newVisitor(t, tp)
	owner.signIn("olivia")
}

// visitorVia is a visitor whose requests come from the loopback address
// local, with X-Forwarded-For: forwarded, as a reverse proxy sends them.
func visitorVia(t *testing.T, tp *testPortal, local, forwarded string) *visitor {
	v := newVisitor(t, tp)
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	v.client.Transport = &forwardingTransport{base: &http.Transport{DialContext: dialer.DialContext}, forwarded: forwarded}
	t.Cleanup(v.client.CloseIdleConnections)
	return v
}

type forwardingTransport struct {
	base      http.RoundTripper
	forwarded string
}

func (f *forwardingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if f.forwarded != "" {
		r.Header.Set("X-Forwarded-For", f.forwarded)
	}
	return f.base.RoundTrip(r)
}

// Finding 8: behind a trusted proxy (127.0.0.2 here) each client has its
// own budget; what a client writes into X-Forwarded-For itself, or sends
// without the proxy, buys it nothing.
func TestSignInLimitBehindAProxy(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.SignInPerMinute, c.SignInBurst = 1, 3
		c.TrustedProxies = append(c.TrustedProxies, mustPrefix(t, "127.0.0.2/32"))
	})
	// Each guess goes to a user name of its own, so that only the
	// address's budget, never the user name's, refuses.
	guess := func(v *visitor) int {
		t.Helper()
		v.get("/signin")
		p := v.submit("/signin", url.Values{"username": {"nobody-" + randomHex(4)}, "password": {"guess-" + randomHex(4)}})
		if p.status == http.StatusTooManyRequests && !strings.Contains(p.text(), "Too many sign-in attempts") {
			t.Fatalf("refused for another reason: %s", p.text())
		}
		return p.status
	}
	attacker := visitorVia(t, tp, "127.0.0.2", "198.51.100.7")
	for i := 0; i < 3; i++ {
		if status := guess(attacker); status != http.StatusUnauthorized {
			t.Fatalf("guess %d: status %d", i+1, status)
		}
	}
	if status := guess(attacker); status != http.StatusTooManyRequests {
		t.Fatalf("the fourth guess through the proxy: status %d, want 429", status)
	}
	// Made-up addresses in front of the proxy's entry change nothing.
	spoofing := visitorVia(t, tp, "127.0.0.2", "203.0.113."+randomDigit()+", 198.51.100.7")
	if status := guess(spoofing); status != http.StatusTooManyRequests {
		t.Fatalf("a spoofed X-Forwarded-For entry bought a new budget: status %d", status)
	}
	// Another person behind the same proxy is not affected.
	owner := visitorVia(t, tp, "127.0.0.2", "1.2.3.4, 203.0.113.5")
	owner.signIn("olivia")

	// Without the proxy, the header is not believed.
	direct := visitorVia(t, tp, "127.0.0.1", "")
	for i := 0; i < 3; i++ {
		direct.client.Transport.(*forwardingTransport).forwarded = "192.0.2." + randomDigit()
		guess(direct)
	}
	direct.client.Transport.(*forwardingTransport).forwarded = "192.0.2.200"
	if status := guess(direct); status != http.StatusTooManyRequests {
		t.Fatalf("an X-Forwarded-For from a client that is no trusted proxy bought a new budget: status %d", status)
	}
}

func randomDigit() string { return string("0123456789"[randomHex(1)[0]%10]) }

// wrongPassword sends a wrong password for user from v (a fresh sign-in
// form each time) and returns the page.
func wrongPassword(t *testing.T, v *visitor, user string) *page {
	t.Helper()
	v.get("/signin")
	return v.submit("/signin", url.Values{"username": {user}, "password": {"guess-" + randomHex(4)}})
}

// signInAs signs user in from v and reports the page the sign-in answered.
func signInAs(t *testing.T, v *visitor, user string) *page {
	t.Helper()
	v.get("/signin")
	return v.submit("/signin", url.Values{"username": {user}, "password": {suite.passwords[user]}})
}

// Finding 9: the portal lets fewer wrong passwords through than Vault's
// lockout_threshold (5), from however many clients, so guessing through
// the portal never locks the account in Vault; the person is told why
// the portal waits.
func TestThePortalNeverLocksAnAccount(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.TrustedProxies = append(c.TrustedProxies, mustPrefix(t, "127.0.0.2/32"))
	})
	user := newLogin(t)
	// The browser the person signed in with before.
	known := newVisitor(t, tp)
	known.signIn(user)
	known.submit("/signout", nil)

	// Strangers from three networks: two wrong passwords from the first,
	// one from the second; then strangers are refused.
	first := visitorVia(t, tp, "127.0.0.2", "198.51.100.1")
	second := visitorVia(t, tp, "127.0.0.2", "198.51.100.2")
	third := visitorVia(t, tp, "127.0.0.2", "198.51.100.3")
	for i, step := range []struct {
		v    *visitor
		want int
		says string
	}{
		{first, http.StatusUnauthorized, "not right"},
		{first, http.StatusUnauthorized, "not right"},
		{first, http.StatusTooManyRequests, "Too many wrong passwords for this user name from your network"},
		{second, http.StatusUnauthorized, "not right"},
		{third, http.StatusTooManyRequests, "only in a browser that has signed in with it before"},
		// The known browser may spend the last one Vault allows…
		{known, http.StatusUnauthorized, "not right"},
		// …and then nobody gets another.
		{known, http.StatusTooManyRequests, "the portal takes no more for it for 15 minutes"},
	} {
		p := wrongPassword(t, step.v, user)
		if p.status != step.want || !strings.Contains(p.text(), step.says) {
			t.Fatalf("wrong password %d: status %d, want %d saying %q: %s", i+1, p.status, step.want, step.says, p.text())
		}
	}
	token, err := suite.vault.Login(context.Background(), "userpass", user, suite.passwords[user])
	if err != nil {
		t.Fatalf("Vault locked the account after guesses through the portal: %v", err)
	}
	remember(token, user+"'s Vault token")
}

// The review of issue 21: a stranger guessing one user name must not keep
// the person from signing in. From one network they spend at most two of
// the four wrong passwords the portal lets through; the person signs in
// from anywhere else, also in a browser never used before.
func TestAStrangerCannotLockOutAUserName(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.TrustedProxies = append(c.TrustedProxies, mustPrefix(t, "127.0.0.2/32"))
	})
	user := newLogin(t)
	stranger := visitorVia(t, tp, "127.0.0.2", "203.0.113.9")
	for i := 0; i < 6; i++ {
		wrongPassword(t, stranger, user)
	}
	owner := visitorVia(t, tp, "127.0.0.2", "198.51.100.20")
	if p := signInAs(t, owner, user); p.status != http.StatusSeeOther {
		t.Fatalf("the person's sign-in after a stranger's guesses: status %d: %s", p.status, p.text())
	}
	// The sign-in made Vault forget the wrong passwords; so did the portal.
	if p := wrongPassword(t, stranger, user); p.status != http.StatusUnauthorized {
		t.Fatalf("after the person signed in: status %d, want 401: %s", p.status, p.text())
	}
}

// Strangers from many networks together can spend the user name's wrong
// passwords for browsers the person never used; the browser the person
// signed in with before still signs in.
func TestAKnownBrowserSignsInWhileStrangersGuess(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.TrustedProxies = append(c.TrustedProxies, mustPrefix(t, "127.0.0.2/32"))
	})
	user := newLogin(t)
	known := newVisitor(t, tp)
	known.signIn(user)
	known.submit("/signout", nil)
	for i := 0; i < 12; i++ {
		wrongPassword(t, visitorVia(t, tp, "127.0.0.2", "203.0.113."+strconv.Itoa(10+i)), user)
	}
	fresh := newVisitor(t, tp)
	if p := signInAs(t, fresh, user); p.status != http.StatusTooManyRequests {
		t.Fatalf("a new browser while strangers guess: status %d, want 429: %s", p.status, p.text())
	}
	p := signInAs(t, known, user)
	if p.status != http.StatusSeeOther {
		t.Fatalf("the known browser while strangers guess: status %d: %s", p.status, p.text())
	}
	known.follow(p)
	known.submit("/signout", nil)
	// A browser known for another user name is a stranger to this one.
	other := newLogin(t)
	for i := 0; i < 3; i++ {
		wrongPassword(t, visitorVia(t, tp, "127.0.0.2", "203.0.113."+strconv.Itoa(30+i)), other)
	}
	if p := wrongPassword(t, known, other); p.status != http.StatusTooManyRequests {
		t.Fatalf("a browser known for another name: status %d, want 429: %s", p.status, p.text())
	}
}

// The review of issue 21: a full table of user names with wrong passwords
// (100,000 in production, 3 here) must not refuse everyone's next sign-in.
func TestAFullFailureTableRefusesNobody(t *testing.T) {
	tp := startPortal(t, nil)
	tp.failures.mu.Lock()
	tp.failures.max = 3
	tp.failures.mu.Unlock()
	attacker := newVisitor(t, tp)
	for i := 0; i < 5; i++ {
		if p := wrongPassword(t, attacker, "nobody-"+randomHex(4)); p.status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d: %s", i+1, p.status, p.text())
		}
	}
	if p := signInAs(t, newVisitor(t, tp), "tina"); p.status != http.StatusSeeOther {
		t.Fatalf("sign-in with a full table: status %d: %s", p.status, p.text())
	}
}

// Finding 9: while Vault has locked an account (five wrong passwords
// elsewhere, say with the CLI), the portal says so instead of calling the
// right password wrong.
func TestVaultLockoutIsToldAsSuch(t *testing.T) {
	tp := startPortal(t, nil)
	user := newLogin(t)
	for i := 0; i < 5; i++ {
		if _, err := suite.vault.Login(context.Background(), "userpass", user, "guess-"+randomHex(4)); err == nil {
			t.Fatal("a wrong password signed in")
		}
	}
	v := newVisitor(t, tp)
	v.get("/signin")
	p := v.submit("/signin", url.Values{"username": {user}, "password": {suite.passwords[user]}})
	if p.status != http.StatusForbidden || !strings.Contains(p.text(), "locked after too many wrong passwords, for up to 15 minutes") {
		t.Fatalf("sign-in of a locked account: status %d: %s", p.status, p.text())
	}
	if strings.Contains(p.text(), "not right") {
		t.Fatal("the right password of a locked account was called wrong")
	}
}

// Vault answers a disabled entity's login with the same 403 as a lockout:
// the portal names both causes rather than telling the person of a
// lockout that did not happen (or of a wrong password).
func TestADisabledAccountIsNeitherALockoutNorAWrongPassword(t *testing.T) {
	tp := startPortal(t, nil)
	name, password := "login-"+randomHex(4), "pw-"+randomHex(8)
	remember(password, "password of "+name)
	entityID, err := suite.boot.User(context.Background(), name, password)
	if err != nil {
		t.Fatal(err)
	}
	suite.passwords[name] = password
	if _, err := suite.root.Logical().Write("identity/entity/id/"+entityID, map[string]interface{}{"disabled": true}); err != nil {
		t.Fatal(err)
	}
	v := newVisitor(t, tp)
	v.get("/signin")
	p := v.submit("/signin", url.Values{"username": {name}, "password": {password}})
	if p.status != http.StatusForbidden || !strings.Contains(p.text(), "or an operator has disabled it") {
		t.Fatalf("sign-in of a disabled account: status %d: %s", p.status, p.text())
	}
	if strings.Contains(p.text(), "not right") || strings.Contains(p.text(), "Vault has locked this account") {
		t.Fatalf("a disabled account was told a wrong password or a lockout: %s", p.text())
	}
}

func mustPrefix(t *testing.T, cidr string) netip.Prefix {
	t.Helper()
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil {
		t.Fatal(err)
	}
	return prefix
}

// Finding 10, the server's part: after a secret was shown, the next page's
// requests (the page and its style sheet, script and icon) each change an
// HttpOnly cookie, which makes Chrome evict the secret page from its
// back/forward cache; a minute later the cookie is gone.
func TestShownSecretCookieChangesOnTheNextRequests(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	created := v.submit("/tokens", url.Values{"name": {"cookie-" + randomHex(4)}, "expiry": {defaultExpiry}, "scope": {"api"}})
	shown := v.follow(created)
	if shown.status != http.StatusOK {
		t.Fatalf("secret page: status %d", shown.status)
	}
	secrets := shown.elements(func(n *html.Node) bool { return n.Data == "input" && attr(n, "id") == "secret" })
	if len(secrets) != 1 || !strings.HasPrefix(attr(secrets[0], "value"), "plqk_") {
		t.Fatalf("no secret on the page: %s", shown.text())
	}
	remember(attr(secrets[0], "value"), "hana's PAT")
	value := func(p *page) string {
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == shownCookie {
				if !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode {
					t.Errorf("cookie flags: %+v", c)
				}
				return c.Value
			}
		}
		return ""
	}
	last := value(shown)
	if last == "" {
		t.Fatal("the secret page set no cookie")
	}
	for _, path := range []string{"/tokens", "/static/portal.css", "/static/copy.js"} {
		next := value(v.get(path))
		if next == "" || next == last {
			t.Fatalf("%s did not change the cookie (%q after %q)", path, next, last)
		}
		last = next
	}

	// A person who reads the secret for longer than the minute still
	// changes a cookie when they leave: the browser keeps it for hours
	// (it expired with the minute, and whether Chrome takes an expiry for
	// a change is nothing to rely on), and the first request after the
	// minute deletes it.
	for _, c := range (&http.Response{Header: shown.header}).Cookies() {
		if c.Name == shownCookie && c.MaxAge < int((12*time.Hour).Seconds()) {
			t.Errorf("the browser keeps the cookie for %d s only", c.MaxAge)
		}
	}
	u, _ := url.Parse(tp.url)
	over := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10) + "." + randomHex(8)
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: shownCookie, Value: over, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}})
	deleted := false
	for _, c := range (&http.Response{Header: v.get("/tokens").header}).Cookies() {
		deleted = deleted || (c.Name == shownCookie && c.MaxAge < 0)
	}
	if !deleted {
		t.Error("a request after the minute did not delete the cookie")
	}
}
