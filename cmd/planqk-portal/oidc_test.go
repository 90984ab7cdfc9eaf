//go:build portal

package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// setUpOIDC makes Vault its own identity provider: identity/oidc/provider
// "planqk" issues ID tokens to userpass users (an assignment of their
// entities), and the auth/oidc method trusts it, with the portal's callback
// as redirect URI. An alias on the oidc mount maps each user's claim to
// their existing entity, so OIDC and userpass sign in the same person.
func setUpOIDC(t *testing.T, redirectURI string, users ...string) {
	t.Helper()
	root := suite.root
	write := func(path string, data map[string]interface{}) *api.Secret {
		t.Helper()
		secret, err := root.Logical().Write(path, data)
		if err != nil {
			t.Fatalf("writing %s: %v", path, err)
		}
		return secret
	}
	var entityIDs []string
	for _, user := range users {
		id, err := suite.boot.EntityID(context.Background(), user)
		if err != nil || id == "" {
			t.Fatalf("entity of %s: %q %v", user, id, err)
		}
		entityIDs = append(entityIDs, id)
	}
	write("identity/oidc/key/portal-test", map[string]interface{}{"allowed_client_ids": "*", "algorithm": "RS256"})
	write("identity/oidc/assignment/planqk-users", map[string]interface{}{"entity_ids": entityIDs})
	write("identity/oidc/scope/username", map[string]interface{}{"template": `{"username": {{identity.entity.name}}}`})
	write("identity/oidc/client/planqk-portal", map[string]interface{}{
		"key": "portal-test", "redirect_uris": []string{redirectURI}, "assignments": []string{"planqk-users"},
		"id_token_ttl": "5m", "access_token_ttl": "5m",
	})
	client, err := root.Logical().Read("identity/oidc/client/planqk-portal")
	if err != nil {
		t.Fatal(err)
	}
	clientID, clientSecret := stringOf(client.Data, "client_id"), stringOf(client.Data, "client_secret")
	remember(clientSecret, "the OIDC client secret")
	write("identity/oidc/provider/planqk", map[string]interface{}{"allowed_client_ids": []string{clientID}, "scopes_supported": []string{"username"}})
	provider, err := root.Logical().Read("identity/oidc/provider/planqk")
	if err != nil {
		t.Fatal(err)
	}

	auths, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := auths["oidc/"]; !ok {
		if err := root.Sys().EnableAuthWithOptions("oidc", &api.EnableAuthOptions{Type: "oidc"}); err != nil {
			t.Fatal(err)
		}
		if auths, err = root.Sys().ListAuth(); err != nil {
			t.Fatal(err)
		}
	}
	write("auth/oidc/config", map[string]interface{}{
		"oidc_discovery_url": stringOf(provider.Data, "issuer"),
		"oidc_client_id":     clientID,
		"oidc_client_secret": clientSecret,
		"default_role":       "portal",
	})
	write("auth/oidc/role/portal", map[string]interface{}{
		"role_type":             "oidc",
		"user_claim":            "username",
		"oidc_scopes":           []string{"username"},
		"allowed_redirect_uris": []string{redirectURI},
		"bound_audiences":       []string{clientID},
		"token_policies":        []string{"planqk-user"},
		"token_ttl":             "1h",
	})
	for i, user := range users {
		_, err := root.Logical().Write("identity/entity-alias", map[string]interface{}{
			"name": user, "canonical_id": entityIDs[i], "mount_accessor": auths["oidc/"].Accessor,
		})
		if err != nil && !strings.Contains(err.Error(), "already") {
			t.Fatal(err)
		}
	}
}

// authorizeAtIdP does what the identity provider's login page does: the
// user signs in to the provider (here Vault's userpass) and the provider
// answers the authorization request with a code for the redirect URI.
func authorizeAtIdP(t *testing.T, authURL, user string) (code, state string) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(u.Path, "/identity/oidc/provider/planqk/authorize") {
		t.Fatalf("the auth URL is not the provider's authorization endpoint: %s", u.Path)
	}
	token, err := suite.vault.Login(context.Background(), "userpass", user, suite.passwords[user])
	if err != nil {
		t.Fatal(err)
	}
	remember(token, user+"'s Vault token at the identity provider")
	req, err := http.NewRequest(http.MethodGet, suite.vault.Addr+"/v1/identity/oidc/provider/planqk/authorize?"+u.RawQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer struct{ Code, State string }
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || answer.Code == "" {
		t.Fatalf("authorize: status %d, %+v, %v", resp.StatusCode, answer, err)
	}
	remember(answer.Code, "an OIDC authorization code")
	return answer.Code, answer.State
}

// startOIDC follows the sign-in page's OIDC link and returns the identity
// provider's URL the portal redirects to.
func startOIDC(t *testing.T, v *visitor) string {
	t.Helper()
	signIn := v.get("/signin")
	if !strings.Contains(signIn.body, `href="/signin/oidc"`) {
		t.Fatalf("the sign-in page offers no OIDC: %s", signIn.text())
	}
	start := v.get("/signin/oidc")
	if start.status != http.StatusSeeOther {
		t.Fatalf("OIDC start: status %d: %s", start.status, start.text())
	}
	return start.header.Get("Location")
}

func TestOIDCSignInWithVaultAsIdentityProvider(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.AuthMethods = []string{methodUserpass, methodOIDC} })
	setUpOIDC(t, tp.cfg.oidcRedirectURI(), "gwen", "hana")

	// A code obtained for one browser's sign-in, delivered to another
	// browser that started its own, is refused: the client nonce binds
	// the flow to the browser that started it.
	victim := newVisitor(t, tp)
	startOIDC(t, victim)
	attacker := newVisitor(t, tp)
	code, state := authorizeAtIdP(t, startOIDC(t, attacker), "hana")
	planted := victim.get("/oidc/callback?" + url.Values{"code": {code}, "state": {state}}.Encode())
	if planted.status != http.StatusUnauthorized || victim.sessionCookie() != "" {
		t.Fatalf("a planted code signed in: status %d: %s", planted.status, planted.text())
	}
	// A callback without the flow's cookie is refused before Vault is asked.
	stray := newVisitor(t, tp)
	if p := stray.get("/oidc/callback?code=x&state=y"); p.status != http.StatusBadRequest || !strings.Contains(p.text(), "not started in this browser") {
		t.Fatalf("callback without a flow: status %d: %s", p.status, p.text())
	}

	// The real thing.
	v := newVisitor(t, tp)
	authURL := startOIDC(t, v)
	query, _ := url.Parse(authURL)
	if got := query.Query().Get("redirect_uri"); got != tp.url+"/oidc/callback" {
		t.Fatalf("redirect_uri %q, want the portal's callback", got)
	}
	code, state = authorizeAtIdP(t, authURL, "gwen")
	done := v.get("/oidc/callback?" + url.Values{"code": {code}, "state": {state}}.Encode())
	if done.status != http.StatusOK || !strings.Contains(done.body, `http-equiv="refresh" content="0; url=/tokens"`) {
		t.Fatalf("callback: status %d: %s", done.status, done.body)
	}
	sess := tp.sessions.get(v.sessionCookie())
	if sess == nil || sess.user != "gwen" || sess.method != methodOIDC {
		t.Fatalf("session after OIDC: %+v", sess)
	}
	remember(sess.vaultToken, "gwen's Vault token from OIDC")
	if until := time.Until(sess.expires); until > time.Hour || until < 59*time.Minute {
		t.Errorf("the session ends in %s, want the OIDC role's token_ttl of 1h", until)
	}
	if p := v.get("/orgs"); !strings.Contains(p.text(), "Signed in as gwen") || !strings.Contains(p.text(), "globex") || !strings.Contains(p.text(), "member") {
		t.Fatalf("organizations after OIDC sign-in: %s", p.text())
	}
	// The code is single-use.
	again := newVisitor(t, tp)
	startOIDC(t, again)
	if p := again.get("/oidc/callback?" + url.Values{"code": {code}, "state": {state}}.Encode()); p.status != http.StatusUnauthorized {
		t.Fatalf("a used code: status %d", p.status)
	}
	// Sign-out revokes the OIDC token like any other.
	v.submit("/signout", nil)
	if _, err := vaultClient(sess.vaultToken).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the OIDC token works after sign-out: %v", err)
	}
}

// Finding 11: an SSO sign-in ends the session this browser had before,
// with its Vault token, although the callback comes from the identity
// provider, cross-site, and the browser withholds the Strict session
// cookie from it.
func TestOIDCSignInEndsTheBrowsersPreviousSession(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.AuthMethods = []string{methodUserpass, methodOIDC} })
	setUpOIDC(t, tp.cfg.oidcRedirectURI(), "hana")

	v := newVisitor(t, tp)
	v.signIn("hana")
	previous := tp.sessions.get(v.sessionCookie())
	remember(previous.vaultToken, "hana's Vault token")

	start := v.get("/signin/oidc")
	if start.status != http.StatusSeeOther {
		t.Fatalf("OIDC start: status %d: %s", start.status, start.text())
	}
	finishOIDCCrossSite(t, tp, v, start, "hana", previous, "the browser's previous session")
}

// finishOIDCCrossSite completes the OIDC flow begun with start as the
// browser does - the identity provider's redirect is a cross-site
// navigation, which carries the Lax cookies but not the Strict session
// cookie - and requires a new OIDC session, with ended (the named one)
// gone and its Vault token revoked.
func finishOIDCCrossSite(t *testing.T, tp *testPortal, v *visitor, start *page, user string, ended *session, what string) {
	t.Helper()
	code, state := authorizeAtIdP(t, start.header.Get("Location"), user)
	u, _ := url.Parse(tp.url)
	v.client.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true}})
	done := v.get("/oidc/callback?" + url.Values{"code": {code}, "state": {state}}.Encode())
	if done.status != http.StatusOK {
		t.Fatalf("callback: status %d: %s", done.status, done.text())
	}
	current := tp.sessions.get(v.sessionCookie())
	if current == nil || current.method != methodOIDC || current.id == ended.id {
		t.Fatalf("session after OIDC: %+v", current)
	}
	remember(current.vaultToken, user+"'s Vault token from OIDC")
	if tp.sessions.get(ended.id) != nil {
		t.Fatalf("%s lives on after the SSO sign-in", what)
	}
	if !tokenRevoked(ended.vaultToken) {
		t.Fatalf("the Vault token of %s still works", what)
	}
	if tokenRevoked(current.vaultToken) {
		t.Fatal("the new session's Vault token was revoked")
	}
}

// Review finding: an SSO flow started before a password sign-in in another
// tab, completed after it, ended only the session the browser had when the
// flow started: the password session lived on, held by no browser, with
// a working Vault token.
func TestOIDCSignInEndsASessionBegunInAnotherTabMeanwhile(t *testing.T) {
	tp := startPortal(t, func(c *config) { c.AuthMethods = []string{methodUserpass, methodOIDC} })
	setUpOIDC(t, tp.cfg.oidcRedirectURI(), "hana")

	v := newVisitor(t, tp)
	start := v.get("/signin/oidc") // tab 1, signed out
	if start.status != http.StatusSeeOther {
		t.Fatalf("OIDC start: status %d: %s", start.status, start.text())
	}
	v.signIn("hana") // tab 2, with a password
	meanwhile := tp.sessions.get(v.sessionCookie())
	if meanwhile == nil {
		t.Fatal("no password session")
	}
	remember(meanwhile.vaultToken, "hana's Vault token")

	finishOIDCCrossSite(t, tp, v, start, "hana", meanwhile, "the password session begun in another tab")
}

// OIDC sign-ins are charged to the person after the callback, wherever
// they come from: a second completion from another address, past the
// person's budget, is refused and its Vault token revoked.
func TestOIDCSignInsAreChargedToThePerson(t *testing.T) {
	tp := startPortal(t, func(c *config) {
		c.AuthMethods = []string{methodUserpass, methodOIDC}
		c.SignInPerMinute, c.SignInBurst = 1, 1
	})
	setUpOIDC(t, tp.cfg.oidcRedirectURI(), "gwen")
	signIn := func(v *visitor) *page {
		t.Helper()
		start := v.get("/signin/oidc")
		if start.status != http.StatusSeeOther {
			t.Fatalf("OIDC start: status %d: %s", start.status, start.text())
		}
		code, state := authorizeAtIdP(t, start.header.Get("Location"), "gwen")
		return v.get("/oidc/callback?" + url.Values{"code": {code}, "state": {state}}.Encode())
	}
	first := newVisitor(t, tp)
	if p := signIn(first); p.status != http.StatusOK {
		t.Fatalf("first OIDC sign-in: status %d: %s", p.status, p.text())
	}
	remember(tp.sessions.get(first.sessionCookie()).vaultToken, "gwen's Vault token from OIDC")
	// Another address: its own budget for starting, the same person's for finishing.
	second := visitorVia(t, tp, "127.0.0.3", "")
	p := signIn(second)
	if p.status != http.StatusTooManyRequests || second.sessionCookie() != "" {
		t.Fatalf("second OIDC sign-in at once: status %d: %s", p.status, p.text())
	}
}
