//go:build portal

package main

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"golang.org/x/net/html"
)

// createPAT creates a token through the form and returns the secret page.
func createPAT(t *testing.T, v *visitor, name, description, expiry string, scopes ...string) *page {
	t.Helper()
	v.get("/tokens")
	created := v.submit("/tokens", url.Values{"name": {name}, "description": {description}, "expiry": {expiry}, "scope": scopes})
	if created.status != http.StatusSeeOther || created.header.Get("Location") != "/tokens/secret" {
		t.Fatalf("creating %s: status %d to %q: %s", name, created.status, created.header.Get("Location"), created.text())
	}
	return v.follow(created)
}

// secretOn returns the secret shown on a secret page, and remembers it.
func secretOn(t *testing.T, p *page) string {
	t.Helper()
	var secret string
	for _, n := range p.elements(func(n *html.Node) bool { return n.Data == "input" && attr(n, "id") == "secret" }) {
		secret = attr(n, "value")
		if !hasAttr(n, "readonly") {
			t.Error("the secret's field is not read-only")
		}
	}
	if !strings.HasPrefix(secret, "plqk_") {
		t.Fatalf("no PAT on the page: %s", p.text())
	}
	remember(secret, "a PAT")
	return secret
}

func TestPersonalAccessTokenLifecycle(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")

	form := v.get("/tokens")
	for _, id := range []string{"scope-0", "scope-1"} {
		if !slices.ContainsFunc(form.elements(func(n *html.Node) bool { return attr(n, "id") == id }), func(n *html.Node) bool { return hasAttr(n, "checked") }) {
			t.Errorf("the scope checkbox %s is not offered checked", id)
		}
	}
	shown := createPAT(t, v, "laptop", "my laptop", "2160h", "api")
	if shown.status != http.StatusOK || !strings.Contains(shown.text(), "You will not see it again") {
		t.Fatalf("secret page: status %d: %s", shown.status, shown.text())
	}
	secret := secretOn(t, shown)
	if got := verify(t, secret); got["active"] != true || got["user"] != "hana" || got["name"] != "laptop" || fmt.Sprint(got["scopes"]) != "[api]" {
		t.Fatalf("verify of the new token: %v", got)
	}
	// Shown once: the second visit has no secret.
	again := v.get("/tokens/secret")
	if again.status != http.StatusGone || strings.Contains(again.body, secret) || !strings.Contains(again.text(), "shown only once") {
		t.Fatalf("second visit: status %d: %s", again.status, again.text())
	}

	list := v.get("/tokens")
	text := list.text()
	// The engine reports last use (written in batches about a minute
	// apart, so a fresh token shows "never").
	for _, want := range []string{"laptop", "my laptop", "Scopes", "api", "in 89 days", "Last used", "never", "Rotate", "Revoke"} {
		if !strings.Contains(text, want) {
			t.Errorf("the list lacks %q: %s", want, text)
		}
	}
	if strings.Contains(list.body, secret) {
		t.Fatal("the list shows the secret")
	}

	// A second token expiring within a week is marked.
	secretOn(t, createPAT(t, v, "ci", "", "168h", "api", "quantum_tokens"))
	if text := v.get("/tokens").text(); !strings.Contains(text, "expires soon") {
		t.Errorf("a 7-day token is not marked as expiring soon: %s", text)
	}

	// A name that exists: the engine's 400, in words, with the form kept.
	v.get("/tokens")
	dup := v.submit("/tokens", url.Values{"name": {"laptop"}, "description": {"again"}, "expiry": {"720h"}, "scope": {"api"}})
	if dup.status != http.StatusBadRequest || !strings.Contains(dup.text(), `Vault did not create the token: user "hana" already has a token named "laptop"`) {
		t.Fatalf("duplicate name: status %d: %s", dup.status, dup.text())
	}
	if dup.inputValue("description") != "again" {
		t.Error("the refused form lost what was typed")
	}

	// Rotate: a confirmation page, then a new secret; the old one is dead.
	confirm := v.get("/tokens/laptop/rotate")
	if confirm.status != http.StatusOK || !strings.Contains(confirm.text(), "The current secret stops working at once") {
		t.Fatalf("rotate confirmation: status %d: %s", confirm.status, confirm.text())
	}
	rotated := v.follow(v.submit("/tokens/laptop/rotate", nil))
	newSecret := secretOn(t, rotated)
	if newSecret == secret || !strings.Contains(rotated.text(), "The previous secret of this token no longer works") {
		t.Fatalf("rotation: %s", rotated.text())
	}
	if verify(t, secret)["active"] != false || verify(t, newSecret)["active"] != true {
		t.Fatal("after rotation the old secret must be inactive and the new one active")
	}

	// Revoke: a confirmation page, then gone.
	if p := v.get("/tokens/laptop/revoke"); !strings.Contains(p.text(), "It stops working at once") {
		t.Fatalf("revoke confirmation: %s", p.text())
	}
	revoked := v.submit("/tokens/laptop/revoke", nil)
	after := v.follow(revoked)
	if !strings.Contains(after.text(), "The token laptop is revoked") {
		t.Errorf("no notice after revoking: %s", after.text())
	}
	if verify(t, newSecret)["active"] != false {
		t.Fatal("the revoked token still verifies")
	}
	if strings.Contains(after.text(), "my laptop") {
		t.Error("the revoked token is still listed")
	}
	// No redirect carried a secret.
	for _, p := range []*page{revoked} {
		if loc := p.header.Get("Location"); strings.Contains(loc, "plqk_") {
			t.Errorf("a secret in a URL: %s", loc)
		}
	}
}

func TestPersonalAccessTokenExpiryAboveTheEnginesMaximum(t *testing.T) {
	if _, err := suite.root.Logical().Write("planqk/config", map[string]interface{}{"max_ttl": "2160h"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := suite.root.Logical().Write("planqk/config", map[string]interface{}{"max_ttl": "8760h"}); err != nil {
			t.Error(err)
		}
	})
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	v.get("/tokens")
	p := v.submit("/tokens", url.Values{"name": {"yearly"}, "expiry": {"8760h"}, "scope": {"api"}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.text(), "Vault did not create the token: ttl 8760h0m0s exceeds the max_ttl of 2160h0m0s.") {
		t.Fatalf("status %d: %s", p.status, p.text())
	}
	if secret, _ := suite.root.Logical().Read("planqk/users/hana/tokens/yearly"); secret != nil {
		t.Fatal("a refused token exists")
	}
}

func TestPersonalAccessTokenFormRefusesBadInput(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")
	cases := []struct {
		form url.Values
		want string
	}{
		{url.Values{"name": {""}, "expiry": {"720h"}, "scope": {"api"}}, "Give the token a name."},
		{url.Values{"name": {"no-scope"}, "expiry": {"720h"}}, "Choose at least one scope."},
		{url.Values{"name": {"odd-scope"}, "expiry": {"720h"}, "scope": {"admin"}}, `Vault did not create the token: scope "admin" is not one of the allowed scopes (api, quantum_tokens).`},
		{url.Values{"name": {"../../orgs/globex/provider-tokens/ibm-quantum"}, "expiry": {"720h"}}, "A token name uses letters"},
		{url.Values{"name": {"a/b"}, "expiry": {"720h"}}, "A token name uses letters"},
		{url.Values{"name": {"odd-expiry"}, "expiry": {"87600h"}}, "Choose one of the offered expiry periods."},
		{url.Values{"name": {"no-expiry"}}, "Choose one of the offered expiry periods."},
	}
	for _, c := range cases {
		v.get("/tokens")
		p := v.submit("/tokens", c.form)
		if p.status != http.StatusBadRequest || !strings.Contains(p.text(), c.want) {
			t.Errorf("%v: status %d: %s", c.form, p.status, p.text())
		}
	}
	if names, _ := listKeys(mustList(t, "planqk/users/hana/tokens")); containsAny(names, "odd-expiry", "no-expiry", "no-scope", "odd-scope", "b") {
		t.Fatalf("a refused form created a token: %v", names)
	}
	// Unknown token names in paths are 404s, and never reach Vault.
	for _, path := range []string{"/tokens/..%2Fx/rotate", "/tokens/a%2Fb/revoke"} {
		if p := v.get(path); p.status != http.StatusNotFound {
			t.Errorf("GET %s: status %d", path, p.status)
		}
	}
}

func mustList(t *testing.T, path string) *api.Secret {
	t.Helper()
	secret, err := suite.root.Logical().List(path)
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

func containsAny(list []string, values ...string) bool {
	for _, l := range list {
		for _, v := range values {
			if l == v {
				return true
			}
		}
	}
	return false
}

// A token a secret scanner reported is revoked by the engine; the owner's
// page says so, with where it leaked.
func TestPersonalAccessTokenRevokedBecauseItLeaked(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("lena")
	name := fmt.Sprintf("notebook-%d", time.Now().UnixNano())
	secret := secretOn(t, createPAT(t, v, name, "", "720h", "api"))
	where := "https://github.com/lena/experiments/blob/abc123/run.ipynb"
	revoked, err := suite.root.Logical().Write("planqk/leaks/revoke", map[string]interface{}{"leaks": []interface{}{
		map[string]interface{}{"token": secret, "url": where, "source": "content"},
	}})
	if err != nil || fmt.Sprint(revoked.Data["labels"]) != "[true_positive]" {
		t.Fatalf("leaks/revoke: %v %v", err, revoked)
	}
	page := v.get("/tokens")
	text := page.text()
	if !strings.Contains(text, "Revoked because they leaked") || !strings.Contains(text, name) || !strings.Contains(text, "content") {
		t.Fatalf("the page does not show the leaked token: %s", text)
	}
	links := page.elements(func(n *html.Node) bool { return n.Data == "a" && attr(n, "href") == where })
	if len(links) != 1 || !strings.Contains(attr(links[0], "rel"), "noopener") {
		t.Fatalf("no link to where it leaked")
	}
	if strings.Contains(page.body, secret) {
		t.Fatal("the page shows the secret")
	}
	if verify(t, secret)["active"] != false {
		t.Fatal("the leaked token still verifies")
	}
}
