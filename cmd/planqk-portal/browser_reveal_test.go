//go:build portal

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// "Shown once" holds with the Back and Forward buttons: Chromium keeps
// pages in its back/forward cache despite Cache-Control: no-store, and
// restores them without asking the portal. After Done and Back, neither
// the DOM nor the page's HTML may hold the secret.
func TestBrowserSecretIsNotRestoredByBackOrForward(t *testing.T) {
	tp := startPortal(t, nil)
	hana := newPerson(t, tp)
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

	holdsSecret := func(what string) bool {
		t.Helper()
		html := hana.eval("reading the page", `document.documentElement.outerHTML + "\n" + [...document.querySelectorAll("input")].map((i) => i.value).join("\n")`)
		return strings.Contains(html, secret)
	}

	hana.click(`a[href="/tokens"].button`) // Done
	hana.expectText(name)

	hana.do("going back", chromedp.NavigateBack())
	hana.do("waiting for the page", chromedp.WaitReady("body"))
	if holdsSecret("after Back") {
		t.Fatalf("Back restored the secret at %s: %s", hana.location(), hana.text("body"))
	}
	hana.expectText("shown only once")

	// Forward and Back once more: still nothing.
	hana.do("going forward", chromedp.NavigateForward())
	hana.do("waiting for the page", chromedp.WaitReady("body"))
	hana.do("going back again", chromedp.NavigateBack())
	hana.do("waiting for the page", chromedp.WaitReady("body"))
	if holdsSecret("after Forward and Back") {
		t.Fatalf("Forward and Back restored the secret at %s", hana.location())
	}
}
