//go:build portal

package main

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// "Shown once" holds with the Back and Forward buttons. Chrome keeps pages
// served with Cache-Control: no-store in its back/forward cache and
// restores them without asking the portal (unless an HttpOnly cookie
// changed); Debian's Chromium here does not do that for no-store pages
// yet, so this person's browser drops no-store from every response, and
// its back/forward cache behaves as Chrome's does for the portal's pages.
// After Done and Back (and Forward and Back), neither the DOM nor the
// page's HTML may hold the secret.
func TestBrowserSecretIsNotRestoredByBackOrForward(t *testing.T) {
	tp := startPortal(t, nil)
	hana := newPerson(t, tp)
	var stripped atomic.Int32
	keepInBackForwardCache(t, hana, &stripped)
	hana.signIn("hana")

	name := "bfcache-" + randomHex(4)
	hana.do("filling the form", chromedp.SendKeys(chromedp.ID("token-name"), name))
	if resp := hana.click(`form[action="/tokens"] button[type=submit]`); resp.Status != http.StatusOK {
		t.Fatalf("creating: status %d at %s", resp.Status, hana.location())
	}
	secret := within(hana, "reading the secret", chromedp.Value(chromedp.ID("secret")))
	if !strings.HasPrefix(secret, "plqk_") {
		t.Fatalf("no PAT shown: %q", secret)
	}
	remember(secret, "hana's PAT "+name)
	if hana.cookie(shownCookie) == nil {
		t.Error("the secret page set no cookie that would evict it from Chrome's back/forward cache")
	}

	// holdsSecret reads the whole document, the fields' values too; while
	// a restored page is loaded again there may briefly be no document,
	// and it reads again.
	holdsSecret := func() bool {
		t.Helper()
		for i := 0; i < 100; i++ {
			ctx, cancel := context.WithTimeout(hana.ctx, 2*time.Second)
			html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.outerHTML + "\n" + [...document.querySelectorAll("input")].map((i) => i.value).join("\n")`))
			cancel()
			if err == nil {
				return strings.Contains(html, secret)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("the page could not be read")
		return false
	}
	// waitFor evaluates js until it is true; a navigation under way may
	// fail an evaluation, which is tried again.
	waitFor := func(what, js string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			ctx, cancel := context.WithTimeout(hana.ctx, 2*time.Second)
			ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
			cancel()
			if err == nil && ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: %s never held (at %s)", what, js, hana.location())
	}
	atSecretPage := `location.pathname === "/tokens/secret" && document.readyState === "complete"`

	hana.click(`a[href="/tokens"].button`) // Done
	hana.expectText(name)
	if stripped.Load() == 0 {
		t.Fatal("no response had its no-store dropped: the test would prove nothing")
	}

	hana.do("going back", chromedp.Evaluate[chromedp.Void](`history.back()`))
	waitFor("going back", atSecretPage)
	if holdsSecret() {
		t.Fatalf("Back restored the secret at %s", hana.location())
	}
	// A page restored from the cache is loaded again, and the portal
	// says the secret was shown.
	waitFor("reloading", `document.readyState === "complete" && document.body.innerText.includes("shown only once")`)

	hana.do("going forward", chromedp.Evaluate[chromedp.Void](`history.forward()`))
	waitFor("going forward", `location.pathname === "/tokens" && document.readyState === "complete"`)
	hana.do("going back again", chromedp.Evaluate[chromedp.Void](`history.back()`))
	waitFor("going back again", atSecretPage)
	if holdsSecret() {
		t.Fatalf("Forward and Back restored the secret at %s", hana.location())
	}
}

// keepInBackForwardCache intercepts the person's responses and drops
// Cache-Control: no-store, counting how many it changed.
func keepInBackForwardCache(t *testing.T, p *person, stripped *atomic.Int32) {
	t.Helper()
	if _, err := chromedp.Call(p.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: p.portal.url + "/*", RequestStage: fetch.RequestStageResponse}}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Listen(p.ctx, func(ev any) {
		paused, ok := ev.(*fetch.EventRequestPaused)
		if !ok {
			return
		}
		go func() {
			var headers []*fetch.HeaderEntry
			changed := false
			for _, h := range paused.ResponseHeaders {
				if strings.EqualFold(h.Name, "Cache-Control") && strings.Contains(h.Value, "no-store") {
					changed = true
					continue
				}
				headers = append(headers, h)
			}
			params := fetch.ContinueResponseParams{RequestID: paused.RequestID}
			if changed {
				stripped.Add(1)
				params.ResponseCode = paused.ResponseStatusCode
				params.ResponsePhrase = paused.ResponseStatusText
				params.ResponseHeaders = headers
			}
			_, _ = chromedp.Call(p.ctx, fetch.ContinueResponse, params)
		}()
	}); err != nil {
		t.Fatal(err)
	}
}
