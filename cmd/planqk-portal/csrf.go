package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"time"
)

// csrfField is the hidden form field that carries the CSRF token.
const csrfField = "csrf"

// signInFormLifetime is how long a sign-in form may be sent after it was shown.
const signInFormLifetime = 30 * time.Minute

// problemForgedForm answers a state-changing request without a valid token.
var problemForgedForm = &problem{
	Status:  http.StatusForbidden,
	Message: "This form was not sent from a page of this portal, or it has expired. Go back, reload the page and try again.",
}

// sessionFormValid reports whether a signed-in person's form carries the
// session's CSRF token (and was not sent by another site).
func (p *portal) sessionFormValid(r *http.Request, sess *session) bool {
	return sameOriginRequest(r) && equalTokens(r.PostFormValue(csrfField), sess.csrfToken)
}

// Before sign-in there is no session: the sign-in form's token is an HMAC,
// under the process's key, of a random value in the signin cookie
// (a double-submit token that a cross-site page can neither read nor set).

// newSignInForm sets the signin cookie (keeping one the browser has) and
// returns the token for a sign-in form.
func (p *portal) newSignInForm(w http.ResponseWriter, r *http.Request) string {
	value := ""
	if c, err := r.Cookie(signInCookie); err == nil && len(c.Value) >= 43 {
		value = c.Value
	} else {
		value = randomToken()
	}
	http.SetCookie(w, cookie(signInCookie, value, http.SameSiteStrictMode, signInFormLifetime))
	return p.mac("signin-form", value)
}

// signInFormValid reports whether a sign-in form carries the token for
// the browser's signin cookie.
func (p *portal) signInFormValid(r *http.Request) bool {
	c, err := r.Cookie(signInCookie)
	if err != nil || c.Value == "" || !sameOriginRequest(r) {
		return false
	}
	return equalTokens(r.PostFormValue(csrfField), p.mac("signin-form", c.Value))
}

// mac returns the base64url HMAC-SHA256 of purpose and value under the
// process's form key.
func (p *portal) mac(purpose, value string) string {
	h := hmac.New(sha256.New, p.formKey)
	h.Write([]byte(purpose))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func equalTokens(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOriginRequest refuses requests that browsers mark as coming from
// another site (Fetch Metadata); older browsers send no such header.
func sameOriginRequest(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}
