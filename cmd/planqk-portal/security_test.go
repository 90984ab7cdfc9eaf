//go:build portal

package main

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// assertSecurityHeaders checks the headers every response must carry.
func assertSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
	}
	for name, value := range want {
		if got := h.Get(name); got != value {
			t.Errorf("%s: %s is %q, want %q", what, name, got, value)
		}
	}
}

// inlineCode finds what the Content-Security-Policy would block: inline
// scripts, style elements or attributes, event handler attributes.
var inlineCode = regexp.MustCompile(`<script>|<script [^>]*>[^<]|<style|\sstyle=|\son[a-z]+=`)

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	tp := startPortal(t, nil)
	anonymous := newVisitor(t, tp)
	for _, path := range []string{"/", "/signin", "/tokens", "/healthz", "/static/portal.css", "/static/copy.js", "/static/", "/no/such/page"} {
		assertSecurityHeaders(t, "anonymous GET "+path, anonymous.get(path).header)
	}
	v := newVisitor(t, tp)
	v.signIn("hana")
	for _, path := range []string{"/tokens", "/tokens/secret", "/tokens/x/rotate", "/tokens/x/revoke", "/provider-tokens",
		"/provider-tokens/ionq/delete", "/orgs", "/orgs/globex", "/no/such/page"} {
		p := v.get(path)
		assertSecurityHeaders(t, "GET "+path, p.header)
		if inlineCode.MatchString(p.body) {
			t.Errorf("GET %s has inline script or style: %q", path, inlineCode.FindString(p.body))
		}
	}
	assertSecurityHeaders(t, "POST without a CSRF token", v.post("/tokens", url.Values{"name": {"x"}}).header)
	assertSecurityHeaders(t, "POST /signout", v.submit("/signout", nil).header)
}

func TestCookieFlags(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	signInPage := v.get("/signin")
	login := v.post("/signin", url.Values{"csrf": {signInPage.inputValue("csrf")}, "username": {"hana"}, "password": {suite.passwords["hana"]}})
	cookies := map[string]*http.Cookie{}
	for _, p := range []*page{signInPage, login} {
		for _, line := range p.header.Values("Set-Cookie") {
			c, err := http.ParseSetCookie(line)
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxAge >= 0 { // not a deletion
				cookies[c.Name] = c
			}
		}
	}
	for _, name := range []string{signInCookie, sessionCookie} {
		c := cookies[name]
		if c == nil {
			t.Fatalf("no %s cookie set", name)
		}
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" || !strings.HasPrefix(c.Name, "__Host-") {
			t.Errorf("%s: Secure=%v HttpOnly=%v SameSite=%v Path=%q Domain=%q", name, c.Secure, c.HttpOnly, c.SameSite, c.Path, c.Domain)
		}
	}
	if len(cookies[sessionCookie].Value) < 43 {
		t.Errorf("the session id is short: %d characters", len(cookies[sessionCookie].Value))
	}
}

func TestStateChangingRequestsNeedTheCSRFToken(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	good := v.csrf()
	refused := func(what string, p *page) {
		t.Helper()
		if p.status != http.StatusForbidden || !strings.Contains(p.text(), "This form was not sent from a page of this portal") {
			t.Errorf("%s: status %d: %s", what, p.status, p.text())
		}
	}
	refused("no token", v.post("/tokens", url.Values{"name": {"csrf-none"}, "expiry": {"720h"}, "scope": {"api"}}))
	refused("a wrong token", v.post("/tokens", url.Values{"name": {"csrf-wrong"}, "expiry": {"720h"}, "scope": {"api"}, "csrf": {good[:len(good)-2] + "xx"}}))
	refused("another session's token", v.post("/tokens", url.Values{"name": {"csrf-other"}, "expiry": {"720h"}, "scope": {"api"}, "csrf": {tp.mac("signin-form", "x")}}))
	// The right token from another site (a browser says so in Fetch Metadata).
	req, _ := http.NewRequest(http.MethodPost, tp.url+"/tokens", strings.NewReader(url.Values{"name": {"csrf-cross"}, "expiry": {"720h"}, "scope": {"api"}, "csrf": {good}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	refused("a cross-site form", v.do(req))
	refused("revoke without a token", v.post("/tokens/anything/revoke", nil))
	refused("provider token without a token", v.post("/provider-tokens/ionq", url.Values{"field_api_key": {"x"}}))
	refused("sign-out without a token", v.post("/signout", nil))
	if tp.sessions.get(v.sessionCookie()) == nil {
		t.Fatal("a sign-out without a token ended the session")
	}
	if names, _ := listKeys(mustList(t, "planqk/users/hana/tokens")); containsAny(names, "csrf-none", "csrf-wrong", "csrf-other", "csrf-cross") {
		t.Fatalf("a refused form created a token: %v", names)
	}

	// The sign-in form needs its own token, bound to the browser's cookie.
	stranger := newVisitor(t, tp)
	refused("sign-in without the form", stranger.post("/signin", url.Values{"username": {"hana"}, "password": {suite.passwords["hana"]}}))
	other := newVisitor(t, tp)
	other.get("/signin")
	refused("sign-in with another browser's token", stranger.post("/signin", url.Values{"csrf": {other.csrf()}, "username": {"hana"}, "password": {suite.passwords["hana"]}}))
	if stranger.sessionCookie() != "" {
		t.Fatal("a forged sign-in got a session")
	}
}

func TestErrorsAreShownInWords(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("paul")
	pages := map[string]*page{
		"unknown page":       v.get("/no/such/page"),
		"unknown token name": v.get("/tokens/bad..name/revoke"),
		"foreign org":        v.get("/orgs/globex"),
		"forged form":        v.post("/tokens", nil),
		"foreign org write":  v.submit("/orgs/globex/provider-tokens/ionq", url.Values{"field_api_key": {"x"}}),
	}
	for what, p := range pages {
		if p.status < 400 {
			t.Errorf("%s: status %d", what, p.status)
		}
		if !strings.HasPrefix(p.header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: Content-Type %q", what, p.header.Get("Content-Type"))
		}
		for _, raw := range []string{`{"errors"`, "goroutine ", ".go:", "panic", "* permission denied", "URL: "} {
			if strings.Contains(p.body, raw) {
				t.Errorf("%s: the page shows %q: %s", what, raw, p.text())
			}
		}
		if len(p.elements(func(n *html.Node) bool { return attr(n, "class") == "problem" })) != 1 {
			t.Errorf("%s: no single problem box: %s", what, p.text())
		}
	}
}
