//go:build portal

package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The demo organization acme in a real browser: mia (member), max
// (maintainer), olivia (owner). The screenshots in the README come from here.

func TestBrowserPersonalAccessTokens(t *testing.T) {
	tp := startPortal(t, nil)
	mia := newPerson(t, tp)

	mia.open("/signin")
	mia.screenshot("sign-in")
	mia.checkPage()
	mia.signIn("mia")
	mia.checkPage()

	// Create a token: name, description, 90 days.
	mia.do("filling the form",
		chromedp.SendKeys(chromedp.ID("token-name"), "laptop"),
		chromedp.SendKeys(chromedp.ID("token-description"), "PlanQK CLI on my laptop"),
		chromedp.Click(chromedp.ID("expiry-2")),
	)
	resp := mia.click(`form[action="/tokens"] button[type=submit]`)
	if resp.Status != http.StatusOK || !strings.HasSuffix(mia.location(), "/tokens/secret") {
		t.Fatalf("after creating: status %d at %s", resp.Status, mia.location())
	}
	mia.expectText("Your new personal access token", "You will not see it again")
	secret := within(mia, "reading the secret", chromedp.Value(chromedp.ID("secret")))
	if !strings.HasPrefix(secret, "plqk_") {
		t.Fatalf("no PAT shown: %q", secret)
	}
	remember(secret, "mia's PAT laptop")
	mia.screenshot("token-created")
	mia.checkPage()

	// Copy it with the button, as a person would, and check the clipboard.
	mia.do("clicking Copy", chromedp.Click(chromedp.CSS(`button[data-copy-target="secret"]`), chromedp.NodeVisible))
	within(mia, "waiting for the copy", chromedp.Poll[bool](`document.getElementById("copy-status").textContent === "Copied to the clipboard."`))
	copied := within(mia, "reading the clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if copied != secret {
		t.Fatalf("the clipboard holds %q, want the token", copied)
	}
	if got := verify(t, copied); got["active"] != true || got["user"] != "mia" || got["name"] != "laptop" {
		t.Fatalf("the copied token does not verify: %v", got)
	}

	// Once only: reloading shows no secret.
	if resp := mia.load("reloading the secret page", chromedp.Reload()); resp.Status != http.StatusGone {
		t.Errorf("reloading the secret page: status %d", resp.Status)
	}
	if body := mia.text("body"); strings.Contains(body, secret) || !strings.Contains(body, "shown only once") {
		t.Fatalf("the secret page shows it again: %s", body)
	}

	// A second token, for a week: marked as expiring soon.
	mia.open("/tokens")
	mia.do("filling the form", chromedp.SendKeys(chromedp.ID("token-name"), "ci-runner"), chromedp.Click(chromedp.ID("expiry-0")),
		chromedp.Click(chromedp.ID("scope-1"))) // api only

	mia.click(`form[action="/tokens"] button[type=submit]`)
	ciRunner := within(mia, "reading the secret", chromedp.Value(chromedp.ID("secret")))
	remember(ciRunner, "mia's PAT ci-runner")
	if got := verify(t, ciRunner); fmt.Sprint(got["scopes"]) != "[api]" {
		t.Errorf("ci-runner's scopes: %v", got["scopes"])
	}
	mia.click(`a[href="/tokens"].button`)
	mia.expectText("laptop", "PlanQK CLI on my laptop", "ci-runner", "expires soon")
	mia.screenshot("personal-access-tokens")
	mia.checkPage()

	// Rotate: confirm, new secret, old one dead.
	mia.click(`a[aria-label="Rotate laptop"]`)
	mia.expectText("Rotate the token laptop?", "The current secret stops working at once")
	mia.checkPage()
	mia.click(`form[action="/tokens/laptop/rotate"] button[type=submit]`)
	mia.expectText("Your rotated personal access token", "The previous secret of this token no longer works.")
	rotated := within(mia, "reading the new secret", chromedp.Value(chromedp.ID("secret")))
	remember(rotated, "mia's rotated PAT laptop")
	if rotated == secret || verify(t, secret)["active"] != false || verify(t, rotated)["active"] != true {
		t.Fatal("after rotating, the old secret must be dead and the new one alive")
	}

	// Revoke: confirm, gone.
	mia.open("/tokens")
	mia.click(`a[aria-label="Revoke laptop"]`)
	mia.expectText("Revoke the token laptop?", "This cannot be undone.")
	mia.screenshot("revoke-confirmation")
	mia.checkPage()
	mia.click(`form[action="/tokens/laptop/revoke"] button[type=submit]`)
	mia.expectText("The token laptop is revoked: it no longer works.")
	if verify(t, rotated)["active"] != false {
		t.Fatal("the revoked token still verifies")
	}
	if strings.Contains(mia.text("table"), "laptop") {
		t.Error("the revoked token is still listed")
	}
}

func TestBrowserOwnProviderToken(t *testing.T) {
	tp := startPortal(t, nil)
	mia := newPerson(t, tp)
	mia.signIn("mia")
	mia.click(`nav.sidebar a[href="/provider-tokens"]`)
	mia.checkPage()

	ibmToken := "ibmq-" + randomHex(16) + "k3y9"
	remember(ibmToken, "mia's IBM Quantum token")
	mia.do("filling the IBM Quantum card",
		chromedp.Click(chromedp.CSS("#provider-ibm-quantum summary")),
		chromedp.SendKeys(chromedp.ID("f-ibm-quantum-token"), ibmToken),
		chromedp.SendKeys(chromedp.ID("f-ibm-quantum-instance"), "ibm-q/open/main"),
	)
	mia.click(`#provider-ibm-quantum form button[type=submit]`)
	mia.expectText("Saved the ibm-quantum token (version 1).")
	card := mia.text("#provider-ibm-quantum")
	for _, want := range []string{"stored", "****k3y9", "ibm-q/open/main", "Version 1", "by you"} {
		if !strings.Contains(card, want) {
			t.Errorf("the card lacks %q: %s", want, card)
		}
	}
	html := within(mia, "reading the page", chromedp.OuterHTML(chromedp.CSS("html")))
	if strings.Contains(html, ibmToken) {
		t.Fatal("the page holds the stored secret")
	}
	if filled := mia.eval("reading password fields", `[...document.querySelectorAll("input[type=password]")].filter((i) => i.value !== "").map((i) => i.id).join(",")`); filled != "" {
		t.Errorf("password fields are filled: %s", filled)
	}
	mia.screenshot("provider-access-tokens")
	mia.checkPage()
}

func TestBrowserOrganizationProviderTokens(t *testing.T) {
	tp := startPortal(t, nil)
	secretKey := "wJalr" + randomHex(16) + "Qx7z"
	remember(secretKey, "acme's AWS secret key")

	// The maintainer adds the organization's AWS Braket token.
	max := newPerson(t, tp)
	max.signIn("max")
	max.click(`nav.sidebar a[href="/orgs"]`)
	max.expectText("acme", "maintainer", "Manage acme's provider tokens")
	max.screenshot("organizations")
	max.checkPage()
	max.click(`a[href="/orgs/acme"]`)
	max.do("filling the AWS Braket card",
		chromedp.Click(chromedp.CSS("#provider-aws-braket summary")),
		chromedp.SendKeys(chromedp.ID("f-aws-braket-access_key_id"), "AKIAACMEEXAMPLE0042"),
		chromedp.SendKeys(chromedp.ID("f-aws-braket-secret_access_key"), secretKey),
		chromedp.SendKeys(chromedp.ID("f-aws-braket-region"), "us-east-1"),
	)
	max.click(`#provider-aws-braket form button[type=submit]`)
	max.expectText("Saved the aws-braket token (version 1).")
	if card := max.text("#provider-aws-braket"); !strings.Contains(card, "****Qx7z") || !strings.Contains(card, "****0042") || !strings.Contains(card, "us-east-1") {
		t.Errorf("the maintainer's card: %s", card)
	}
	max.screenshot("organization-maintainer")
	max.checkPage()

	// The member sees it, without anything to change it with.
	mia := newPerson(t, tp)
	mia.signIn("mia")
	mia.open("/orgs/acme")
	mia.expectText("Your role in acme: member", "aws-braket", "****Qx7z", "us-east-1", "Only owners and maintainers can add, replace or delete them.")
	if forms := mia.eval("listing forms", `[...document.forms].map((f) => f.getAttribute("action")).join(",")`); forms != "/signout" {
		t.Errorf("the member is offered forms: %s", forms)
	}
	if n := within(mia, "counting inputs", chromedp.Evaluate[int](`document.querySelectorAll("main input, main a.button, main summary").length`)); n != 0 {
		t.Errorf("the member is offered %d edit controls", n)
	}
	mia.screenshot("organization-member")
	mia.checkPage()

	// The member forces the form (as with the browser's developer tools):
	// Vault refuses, and the page says why.
	resp := mia.load("submitting a forced form", chromedp.Evaluate[chromedp.Void](`(() => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = "/orgs/acme/provider-tokens/aws-braket";
  const fields = {
    csrf: document.querySelector("input[name=csrf]").value,
    field_access_key_id: "AKIAMIAFORCED000000",
    field_secret_access_key: "forced-secret-key-0000",
  };
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
})()`))
	if resp.Status != http.StatusForbidden {
		t.Errorf("forced form: status %d", resp.Status)
	}
	mia.expectText("You need to be owner or maintainer of acme to change its provider access tokens.")
	if body := mia.text("body"); strings.Contains(body, "permission denied") || strings.Contains(body, "{") {
		t.Errorf("the refusal is not in words: %s", body)
	}
	mia.screenshot("organization-member-refused")
	stored, err := suite.root.Logical().Read("planqk/orgs/acme/provider-tokens/aws-braket")
	if err != nil || stored == nil || intOf(stored.Data, "version") != 1 {
		t.Fatalf("the forced form changed the token: %v %v", stored, err)
	}
}

func TestBrowserSessionSecurity(t *testing.T) {
	tp := startPortal(t, nil)
	olivia := newPerson(t, tp)
	olivia.signIn("olivia")

	// What the browser got: headers and cookie flags.
	resp := olivia.open("/tokens")
	for name, want := range map[string]string{
		"Content-Security-Policy": contentSecurityPolicy,
		"Cache-Control":           "no-store",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := headerOf(resp, name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	session := olivia.cookie(sessionCookie)
	if session == nil {
		t.Fatal("the browser holds no session cookie (a Secure cookie over http on 127.0.0.1)")
	}
	if !session.Secure || !session.HTTPOnly || session.SameSite != "Strict" || session.Path != "/" {
		t.Errorf("session cookie: Secure=%v HttpOnly=%v SameSite=%q Path=%q", session.Secure, session.HTTPOnly, session.SameSite, session.Path)
	}
	if js := olivia.eval("reading document.cookie", `document.cookie`); js != "" {
		t.Errorf("scripts can read cookies: %q", js)
	}

	// A POST without the CSRF token, from the page itself, is refused.
	status := within(olivia, "posting without a token", chromedp.Evaluate[int](`fetch("/tokens", {method: "POST", body: new URLSearchParams({name: "no-csrf", expiry: "720h", scope: "api"})}).then((r) => r.status)`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: status %d", status)
	}
	if names, _ := listKeys(mustList(t, "planqk/users/olivia/tokens")); containsAny(names, "no-csrf") {
		t.Fatal("the POST without a CSRF token created a token")
	}

	// Sign out, by keyboard: the Vault token is revoked, and the old
	// cookie, put back into the browser, opens nothing.
	vaultToken := tp.sessions.get(session.Value).vaultToken
	remember(vaultToken, "olivia's Vault token")
	olivia.do("focusing Sign out", chromedp.Focus(chromedp.CSS(`form[action="/signout"] button`)))
	olivia.load("pressing Enter on Sign out", chromedp.KeyEvent("\r"))
	olivia.expectText("You are signed out. Your Vault token was revoked.")
	olivia.checkPage()
	if _, err := vaultClient(vaultToken).Auth().Token().LookupSelf(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("the Vault token works after sign-out: %v", err)
	}
	if _, err := chromedp.Call(olivia.ctx, network.SetCookie, network.SetCookieParams{
		Name: sessionCookie, Value: session.Value, URL: tp.url, Path: "/", Secure: ptrTo(true), HTTPOnly: ptrTo(true), SameSite: network.CookieSameSiteStrict,
	}); err != nil {
		t.Fatal(err)
	}
	if c := olivia.cookie(sessionCookie); c == nil || c.Value != session.Value {
		t.Fatal("could not put the old cookie back")
	}
	olivia.open("/tokens")
	if !strings.HasSuffix(olivia.location(), "/signin") {
		t.Fatalf("the old session cookie opened %s", olivia.location())
	}
}
