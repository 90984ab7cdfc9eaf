package main

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A new secret is shown once. Beyond the server forgetting it after the
// one GET (sessionStore.takeRevealed) and Cache-Control: no-store, the
// secret page must leave nothing that Back or Forward could bring back:
// Chrome keeps no-store pages in its back/forward cache and restores them
// without asking the portal unless an HttpOnly cookie of the site changed
// meanwhile. So the page's script removes the secret on pagehide and
// reloads a page restored anyway (static/copy.js), and the server changes
// shownCookie on every request during a minute after the secret was
// shown: the requests of the next page (its style sheet, script and icon
// are fetched after it replaced the secret page) make Chrome evict the
// cached secret page. The browser keeps the cookie for shownCookieKept, so
// that someone who stays on the secret page longer than the minute still
// sends it when they leave, and the request that deletes it is a change.
const (
	shownCookie         = "__Host-planqk-portal-shown"
	shownCookieLifetime = time.Minute
	shownCookieKept     = 24 * time.Hour
)

// markSecretShown sets shownCookie on the response that shows a secret.
func markSecretShown(w http.ResponseWriter, now time.Time) {
	setShownCookie(w, now.Add(shownCookieLifetime))
}

func setShownCookie(w http.ResponseWriter, until time.Time) {
	value := strconv.FormatInt(until.Unix(), 10) + "." + randomToken()
	http.SetCookie(w, cookie(shownCookie, value, http.SameSiteStrictMode, shownCookieKept))
}

// evictShownSecrets changes shownCookie on every request that carries it,
// until the minute after the secret was shown is over; then it deletes it.
func evictShownSecrets(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(shownCookie); err == nil && r.URL.Path != "/tokens/secret" {
			now := time.Now()
			unix, _, _ := strings.Cut(c.Value, ".")
			until, err := strconv.ParseInt(unix, 10, 64)
			if err == nil && now.Before(time.Unix(until, 0)) && time.Unix(until, 0).Sub(now) <= shownCookieLifetime {
				setShownCookie(w, time.Unix(until, 0))
			} else {
				http.SetCookie(w, cookie(shownCookie, "", http.SameSiteStrictMode, -1))
			}
		}
		next.ServeHTTP(w, r)
	})
}
