package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// oidcFlowLifetime is how long a started OIDC sign-in may take.
const oidcFlowLifetime = 10 * time.Minute

// signInView is the sign-in page's content.
type signInView struct {
	Userpass bool
	OIDC     bool
	Username string
}

func (p *portal) signInPage(w http.ResponseWriter, r *http.Request) {
	if p.sessionOf(r) != nil {
		http.Redirect(w, r, "/tokens", http.StatusSeeOther)
		return
	}
	data := pageData{Title: "Sign in"}
	switch {
	case r.URL.Query().Get("signed_out") == "unrevoked":
		data.Notice = "You are signed out of the portal, but Vault could not be reached to revoke your token: it ends when it expires."
	case r.URL.Query().Has("signed_out"):
		data.Notice = "You are signed out. Your Vault token was revoked."
	case r.URL.Query().Has("ended"):
		data.Notice = "Your session has ended. Sign in again."
	}
	p.renderSignIn(w, r, http.StatusOK, data, "")
}

func (p *portal) renderSignIn(w http.ResponseWriter, r *http.Request, status int, data pageData, username string) {
	data.Title = "Sign in"
	data.CSRF = p.newSignInForm(w, r)
	data.Content = signInView{
		Userpass: p.cfg.offers(methodUserpass),
		OIDC:     p.cfg.offers(methodOIDC),
		Username: username,
	}
	p.render(w, r, nil, status, "signin", data)
}

// signInUserpass signs in with Vault's userpass method.
func (p *portal) signInUserpass(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.offers(methodUserpass) {
		p.renderProblem(w, r, nil, &problem{Status: http.StatusNotFound, Message: "Sign-in with user name and password is not offered here."})
		return
	}
	username := strings.TrimSpace(r.PostFormValue("username"))
	password := r.PostFormValue("password")
	// A request that is not this portal's form costs nobody anything: it
	// is refused before any budget is charged or Vault is asked.
	if !p.signInFormValid(r) {
		p.renderSignIn(w, r, http.StatusForbidden, pageData{Problem: problemForgedForm}, username)
		return
	}
	if username == "" || password == "" {
		p.renderSignIn(w, r, http.StatusBadRequest, pageData{Problem: &problem{Status: http.StatusBadRequest, Message: "Enter your user name and password."}}, username)
		return
	}
	if !validSegment(username) {
		// Vault would not know it either; nothing is asked.
		p.renderSignIn(w, r, http.StatusUnauthorized, pageData{Problem: problemWrongPassword}, username)
		return
	}
	if !p.limiter.allow(p.clients.key(r)) {
		p.renderSignIn(w, r, http.StatusTooManyRequests, pageData{Problem: problemTooManySignIns}, username)
		return
	}
	attempt, why, wait := p.failures.begin(username, p.clients.key(r), p.knownBrowser(r, username))
	if attempt == nil {
		p.renderSignIn(w, r, http.StatusTooManyRequests, pageData{Problem: tooManyWrongPasswords(why, wait)}, username)
		return
	}

	secret, err := p.anonymous().Logical().WriteWithContext(r.Context(),
		"auth/"+p.cfg.UserpassMount+"/login/"+username, map[string]interface{}{"password": password})
	if err != nil || secret == nil || secret.Auth == nil {
		status := statusOf(err)
		p.failures.end(attempt, status == 400 || status == 401, false)
		prob := problemWrongPassword
		switch {
		case status == 403:
			// Vault answers a wrong password with "invalid username or
			// password", and both a locked-out user and a disabled entity
			// with the same bare "permission denied" (checked on Vault
			// 1.21): the portal cannot tell which, so it names both.
			prob = &problem{Status: http.StatusForbidden, Message: fmt.Sprintf("Vault refuses this account for now: it is locked after too many wrong passwords, "+
				"for up to %s, or an operator has disabled it. Try again later, or ask your operator.", minutes(p.cfg.LockoutDuration))}
		case status != 400 && status != 401:
			prob = explain(err, signInAction)
			p.log.Warn("userpass sign-in failed", "error", vaultErrorForLog(err))
		}
		p.renderSignIn(w, r, prob.Status, pageData{Problem: prob}, username)
		return
	}
	p.failures.end(attempt, false, true)
	p.rememberBrowser(w, username)
	previous := ""
	if c, err := r.Cookie(sessionCookie); err == nil {
		previous = c.Value
	}
	p.startSession(w, r, secret.Auth, methodUserpass, previous)
}

// tooManyWrongPasswords tells why the portal sends no more passwords of a
// user name to Vault, and for how long.
func tooManyWrongPasswords(why refusal, wait time.Duration) *problem {
	message := fmt.Sprintf("Too many wrong passwords for this user name: the portal takes no more for it for %s, so that Vault does not lock the account.", minutes(wait))
	switch why {
	case refusedStrangers:
		message = fmt.Sprintf("Too many wrong passwords for this user name: for %s the portal takes its password only in a browser that has signed in with it before, "+
			"so that Vault does not lock the account.", minutes(wait))
	case refusedClient:
		message = fmt.Sprintf("Too many wrong passwords for this user name from your network: the portal takes no more from it for %s, "+
			"so that Vault does not lock the account.", minutes(wait))
	}
	return &problem{Status: http.StatusTooManyRequests, Message: message}
}

// A browser that signed in with a user name's password holds a cookie
// that says so (an HMAC of the lower-case name and a random value, under
// the process's key): its attempts may spend the wrong password that
// strangers cannot (passwordFailures), so that strangers guessing the name
// do not keep the person out. It names no one and opens nothing.
const (
	knownBrowserCookie   = "__Host-planqk-portal-known"
	knownBrowserLifetime = 90 * 24 * time.Hour
)

// rememberBrowser marks the browser as having signed in with user.
func (p *portal) rememberBrowser(w http.ResponseWriter, user string) {
	nonce := randomToken()
	value := nonce + "." + p.mac("known-browser", strings.ToLower(user)+"\x00"+nonce)
	http.SetCookie(w, cookie(knownBrowserCookie, value, http.SameSiteStrictMode, knownBrowserLifetime))
}

// knownBrowser reports whether the request's browser signed in with user.
func (p *portal) knownBrowser(r *http.Request, user string) bool {
	c, err := r.Cookie(knownBrowserCookie)
	if err != nil {
		return false
	}
	nonce, mac, ok := strings.Cut(c.Value, ".")
	return ok && nonce != "" && equalTokens(mac, p.mac("known-browser", strings.ToLower(user)+"\x00"+nonce))
}

// minutes says a duration in whole minutes, rounded up.
func minutes(d time.Duration) string {
	n := int((d + time.Minute - 1) / time.Minute)
	if n <= 1 {
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", n)
}

var signInAction = action{"Vault did not sign you in", "Vault refused to sign you in."}

var (
	problemWrongPassword  = &problem{Status: http.StatusUnauthorized, Message: "The user name or password is not right."}
	problemTooManySignIns = &problem{Status: http.StatusTooManyRequests, Message: "Too many sign-in attempts. Wait a minute and try again."}
)

// startSession turns a Vault login into a portal session. The user is the
// token's identity entity's name: the <user> of the engine's paths. The
// session with the id previous (this browser's earlier one) ends.
func (p *portal) startSession(w http.ResponseWriter, r *http.Request, auth *api.SecretAuth, method string, previous ...string) {
	ctx := r.Context()
	sess := &session{vaultToken: auth.ClientToken, entityID: auth.EntityID, method: method}
	if auth.EntityID == "" {
		p.abandonToken(ctx, auth.ClientToken)
		p.renderSignIn(w, r, http.StatusForbidden, pageData{Problem: &problem{Status: http.StatusForbidden,
			Message: "This Vault account has no identity entity, and PlanQK tokens belong to entities. Ask your operator."}}, "")
		return
	}
	entity, err := p.as(sess).Logical().ReadWithContext(ctx, "identity/entity/id/"+auth.EntityID)
	if err != nil || entity == nil || stringOf(entity.Data, "name") == "" {
		p.abandonToken(ctx, auth.ClientToken)
		prob := &problem{Status: http.StatusForbidden, Message: "Vault did not tell this account's identity name (the default policy grants it). Ask your operator."}
		if err != nil && statusOf(err) != 403 {
			prob = explain(err, signInAction)
		}
		p.renderSignIn(w, r, prob.Status, pageData{Problem: prob}, "")
		return
	}
	// OIDC sign-ins are charged to the person, whatever address they come
	// from: the identity provider vouched for them, so only they can spend
	// it (password sign-ins are bounded per address and user name).
	if method == methodOIDC && !p.limiter.allow("entity:"+auth.EntityID) {
		p.abandonToken(ctx, auth.ClientToken)
		p.renderSignIn(w, r, http.StatusTooManyRequests, pageData{Problem: problemTooManySignIns}, "")
		return
	}
	sess.user = stringOf(entity.Data, "name")
	if !validSegment(sess.user) {
		p.abandonToken(ctx, auth.ClientToken)
		p.renderSignIn(w, r, http.StatusForbidden, pageData{Problem: &problem{Status: http.StatusForbidden,
			Message: "This account's identity name cannot be used in the engine's paths. Ask your operator."}}, "")
		return
	}

	var tokenExpiry time.Time
	if auth.LeaseDuration > 0 {
		tokenExpiry = time.Now().Add(time.Duration(auth.LeaseDuration) * time.Second)
	}
	// A session this browser still had ends now, with its Vault token.
	var ended []*session
	for _, id := range previous {
		if id == "" {
			continue
		}
		if old := p.sessions.remove(id); old != nil {
			ended = append(ended, old)
		}
	}
	created, evicted := p.sessions.create(*sess, tokenExpiry, p.cfg.SessionTTL)
	ended = append(ended, evicted...)
	// The ended sessions' tokens are revoked even if the browser goes away.
	p.revokeSessions(context.WithoutCancel(ctx), ended)
	p.log.Info("signed in", "user", created.user, "method", method, "sessions_ended", len(ended))
	http.SetCookie(w, cookie(signInCookie, "", http.SameSiteStrictMode, -1))
	http.SetCookie(w, cookie(sessionCookie, created.id, http.SameSiteStrictMode, time.Until(created.expires)))
	http.SetCookie(w, cookie(sessionEndCookie, created.id, http.SameSiteLaxMode, time.Until(created.expires)))
	if method == methodOIDC {
		// The browser arrives here from the identity provider: a
		// cross-site navigation, on which it withholds SameSite=Strict
		// cookies even across the redirect that would follow. A page of
		// our own that moves on is a same-site navigation, which sends it.
		p.render(w, r, nil, http.StatusOK, "oidc-done", pageData{Title: "Signed in"})
		return
	}
	http.Redirect(w, r, "/tokens", http.StatusSeeOther)
}

// abandonToken revokes a token the portal will not use.
func (p *portal) abandonToken(ctx context.Context, token string) {
	if err := p.revokeToken(ctx, token); err != nil {
		p.log.Warn("could not revoke an unused Vault token", "error", vaultErrorForLog(err))
	}
}

// signInOIDC starts Vault's OIDC auth flow: Vault gives the identity
// provider's URL for our redirect URI, bound to this browser by a client
// nonce derived from a random value in the oidc cookie.
func (p *portal) signInOIDC(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.offers(methodOIDC) {
		p.renderProblem(w, r, nil, &problem{Status: http.StatusNotFound, Message: "Sign-in with OIDC is not offered here."})
		return
	}
	// Another site can make a browser open this link: such a request
	// costs nothing and asks Vault nothing, it shows the sign-in page.
	if !sameOriginRequest(r) {
		http.Redirect(w, r, "/signin", http.StatusSeeOther)
		return
	}
	if !p.limiter.allow("oidc:" + p.clients.key(r)) {
		p.renderSignIn(w, r, http.StatusTooManyRequests, pageData{Problem: problemTooManySignIns}, "")
		return
	}
	flow := randomToken()
	body := map[string]interface{}{
		"redirect_uri": p.cfg.oidcRedirectURI(),
		"client_nonce": p.mac("oidc-client-nonce", flow),
	}
	if p.cfg.OIDCRole != "" {
		body["role"] = p.cfg.OIDCRole
	}
	secret, err := p.anonymous().Logical().WriteWithContext(r.Context(), "auth/"+p.cfg.OIDCMount+"/oidc/auth_url", body)
	authURL := ""
	if secret != nil {
		authURL = stringOf(secret.Data, "auth_url")
	}
	if err != nil || authURL == "" {
		if err != nil {
			p.log.Warn("starting OIDC sign-in failed", "error", vaultErrorForLog(err))
		} else {
			p.log.Warn("Vault gave no OIDC auth_url: is the redirect URI allowed by the role?", "redirect_uri", p.cfg.oidcRedirectURI())
		}
		p.renderSignIn(w, r, http.StatusBadGateway, pageData{Problem: &problem{Status: http.StatusBadGateway,
			Message: "Sign-in with OIDC is not working right now: Vault did not start it. Tell your operator."}}, "")
		return
	}
	if u, err := url.Parse(authURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		p.renderSignIn(w, r, http.StatusBadGateway, pageData{Problem: &problem{Status: http.StatusBadGateway,
			Message: "Sign-in with OIDC is misconfigured: Vault gave an identity provider URL that is not http(s). Tell your operator."}}, "")
		return
	}
	// Lax, so that the browser sends it back on the identity provider's
	// top-level redirect to our callback. It also carries the id of the
	// session this browser has now: the callback, a cross-site request,
	// does not get the Strict session cookie, yet must end that session.
	value := flow
	if old := p.sessionOf(r); old != nil {
		value += "." + old.id
	}
	http.SetCookie(w, cookie(oidcCookie, value, http.SameSiteLaxMode, oidcFlowLifetime))
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// oidcCallback is the redirect URI: Vault exchanges the code, checks the
// state and our client nonce, and returns a token.
func (p *portal) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if !p.cfg.offers(methodOIDC) {
		p.renderProblem(w, r, nil, &problem{Status: http.StatusNotFound, Message: "Sign-in with OIDC is not offered here."})
		return
	}
	http.SetCookie(w, cookie(oidcCookie, "", http.SameSiteLaxMode, -1))
	query := r.URL.Query()
	if query.Get("error") != "" {
		p.renderSignIn(w, r, http.StatusUnauthorized, pageData{Problem: &problem{Status: http.StatusUnauthorized,
			Message: "The identity provider did not sign you in. Try again."}}, "")
		return
	}
	flowCookie, err := r.Cookie(oidcCookie)
	if err != nil || flowCookie.Value == "" || query.Get("state") == "" || query.Get("code") == "" {
		p.renderSignIn(w, r, http.StatusBadRequest, pageData{Problem: &problem{Status: http.StatusBadRequest,
			Message: "This sign-in was not started in this browser, or took too long. Sign in again."}}, "")
		return
	}
	flow, previous, _ := strings.Cut(flowCookie.Value, ".")
	secret, err := p.anonymous().Logical().ReadWithDataWithContext(r.Context(), "auth/"+p.cfg.OIDCMount+"/oidc/callback", map[string][]string{
		"state":        {query.Get("state")},
		"code":         {query.Get("code")},
		"client_nonce": {p.mac("oidc-client-nonce", flow)},
	})
	if err != nil || secret == nil || secret.Auth == nil {
		if err == nil {
			err = errors.New("no token in Vault's answer")
		}
		p.log.Warn("OIDC sign-in failed", "error", vaultErrorForLog(err))
		p.renderSignIn(w, r, http.StatusUnauthorized, pageData{Problem: &problem{Status: http.StatusUnauthorized,
			Message: "Vault did not accept this sign-in. Sign in again."}}, "")
		return
	}
	// The session the browser had when the flow started, and the one it
	// has now (begun in another tab meanwhile, say): both end.
	current := ""
	if c, err := r.Cookie(sessionEndCookie); err == nil {
		current = c.Value
	}
	p.startSession(w, r, secret.Auth, methodOIDC, previous, current)
}

// signOut revokes the session's Vault token and forgets the session.
func (p *portal) signOut(w http.ResponseWriter, r *http.Request, sess *session) {
	p.sessions.remove(sess.id)
	http.SetCookie(w, cookie(sessionCookie, "", http.SameSiteStrictMode, -1))
	http.SetCookie(w, cookie(sessionEndCookie, "", http.SameSiteLaxMode, -1))
	if err := p.revokeToken(r.Context(), sess.vaultToken); err != nil {
		p.log.Warn("could not revoke the Vault token at sign-out", "user", sess.user, "error", vaultErrorForLog(err))
		http.Redirect(w, r, "/signin?signed_out=unrevoked", http.StatusSeeOther)
		return
	}
	p.log.Info("signed out", "user", sess.user)
	http.Redirect(w, r, "/signin?signed_out=1", http.StatusSeeOther)
}
