//go:build portal

package main

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// passwordInputs returns the page's password inputs.
func passwordInputs(p *page) []*html.Node {
	return p.elements(func(n *html.Node) bool { return n.Data == "input" && attr(n, "type") == "password" })
}

func TestOwnProviderTokens(t *testing.T) {
	tp := startPortal(t, nil)
	v := newVisitor(t, tp)
	v.signIn("hana")

	page := v.get("/provider-tokens")
	if page.status != http.StatusOK {
		t.Fatalf("status %d: %s", page.status, page.text())
	}
	// One card per catalogue provider, with a form each.
	for _, provider := range []string{"ibm-quantum", "ibm-cloud", "aws-braket", "azure-quantum", "dwave", "ionq"} {
		if !slices.Contains(page.forms(), "/provider-tokens/"+provider) {
			t.Errorf("no form for %s: %v", provider, page.forms())
		}
	}
	// Secret fields are password inputs; instance, region and the like are text.
	for _, n := range passwordInputs(page) {
		if hasAttr(n, "value") {
			t.Errorf("a password input is pre-filled: %s", attr(n, "name"))
		}
	}
	for _, secretField := range []string{"f-ibm-quantum-token", "f-aws-braket-secret_access_key", "f-azure-quantum-client_secret"} {
		if !slices.ContainsFunc(passwordInputs(page), func(n *html.Node) bool { return attr(n, "id") == secretField }) {
			t.Errorf("%s is not a password input", secretField)
		}
	}

	ibmToken := "ibmq-" + randomHex(12) + "wxyz"
	remember(ibmToken, "hana's IBM Quantum token")
	saved := v.submit("/provider-tokens/ibm-quantum", url.Values{"field_token": {ibmToken}, "field_instance": {"ibm-q/open/main"}})
	if saved.status != http.StatusSeeOther || saved.header.Get("Location") != "/provider-tokens#provider-ibm-quantum" {
		t.Fatalf("save: status %d to %q: %s", saved.status, saved.header.Get("Location"), saved.text())
	}
	after := v.follow(saved)
	text := after.text()
	for _, want := range []string{"Saved the ibm-quantum token (version 1).", "****wxyz", "ibm-q/open/main", "Replace the ibm-quantum token", "by you"} {
		if !strings.Contains(text, want) {
			t.Errorf("after saving, the page lacks %q: %s", want, text)
		}
	}
	if strings.Contains(after.body, ibmToken) {
		t.Fatal("the page shows the stored secret")
	}
	if after.inputValue("field_instance") != "ibm-q/open/main" {
		t.Error("the replace form is not pre-filled with the stored setting")
	}
	for _, n := range passwordInputs(after) {
		if hasAttr(n, "value") {
			t.Errorf("after saving, a password input is pre-filled: %s", attr(n, "name"))
		}
	}
	// An expiry date: stored and shown; one in the past: the engine's words.
	expiring := v.follow(v.submit("/provider-tokens/dwave", url.Values{"field_token": {"dwave-" + randomHex(10)}, "expires_at": {"2031-03-31"}}))
	if card := expiring.text(); !strings.Contains(card, "Expires 31 Mar 2031, 00:00 UTC") {
		t.Errorf("the dwave card shows no expiry: %s", card)
	}
	past := v.submit("/provider-tokens/ionq", url.Values{"field_api_key": {"ionq-" + randomHex(10)}, "expires_at": {"2020-01-01"}})
	if past.status != http.StatusBadRequest || !strings.Contains(past.text(), "Vault did not save the ionq token: expires_at must be in the future.") {
		t.Errorf("an expiry in the past: status %d: %s", past.status, past.text())
	}

	// A missing required field: the engine's words, nothing stored.
	refused := v.submit("/provider-tokens/aws-braket", url.Values{"field_access_key_id": {"AKIA" + randomHex(8)}, "field_region": {"eu-west-2"}})
	if refused.status != http.StatusBadRequest || !strings.Contains(refused.text(), `Vault did not save the aws-braket token: missing required field "secret_access_key" for provider "aws-braket".`) {
		t.Fatalf("missing field: status %d: %s", refused.status, refused.text())
	}
	if refused.inputValue("field_region") != "eu-west-2" {
		t.Error("the refused form lost its region")
	}
	if secret, _ := suite.root.Logical().Read("planqk/users/hana/provider-tokens/aws-braket"); secret != nil {
		t.Fatal("a refused form stored a token")
	}

	// Delete, with a confirmation page.
	if p := v.get("/provider-tokens/ibm-quantum/delete"); !strings.Contains(p.text(), "Delete your ibm-quantum token?") {
		t.Fatalf("delete confirmation: %s", p.text())
	}
	deleted := v.follow(v.submit("/provider-tokens/ibm-quantum/delete", nil))
	if !strings.Contains(deleted.text(), "Deleted the ibm-quantum token.") || strings.Contains(deleted.text(), "****wxyz") {
		t.Fatalf("after deleting: %s", deleted.text())
	}
	if secret, _ := suite.root.Logical().Read("planqk/users/hana/provider-tokens/ibm-quantum"); secret != nil {
		t.Fatal("the deleted token is still stored")
	}
}

func TestOrganizationProviderTokensByRole(t *testing.T) {
	tp := startPortal(t, nil)
	const form = "/orgs/globex/provider-tokens/aws-braket"
	secretKey := "braket-" + randomHex(12) + "ab12"
	remember(secretKey, "globex's AWS secret key")

	// The maintainer adds a token.
	gus := newVisitor(t, tp)
	gus.signIn("gus")
	page := gus.get("/orgs/globex")
	if page.status != http.StatusOK || !slices.Contains(page.forms(), form) || !strings.Contains(page.text(), "Your role in globex: maintainer") {
		t.Fatalf("maintainer's page: status %d, forms %v: %s", page.status, page.forms(), page.text())
	}
	saved := gus.submit(form, url.Values{"field_access_key_id": {"AKIAGLOBEX12345678"}, "field_secret_access_key": {secretKey}, "field_region": {"us-east-1"}})
	if p := gus.follow(saved); !strings.Contains(p.text(), "Saved the aws-braket token (version 1).") || !strings.Contains(p.text(), "****ab12") {
		t.Fatalf("after saving: %s", p.text())
	}

	// The member sees its metadata and no way to change it.
	gwen := newVisitor(t, tp)
	gwen.signIn("gwen")
	page = gwen.get("/orgs/globex")
	text := page.text()
	for _, want := range []string{"aws-braket", "****ab12", "****5678", "us-east-1", "Only owners and maintainers can add, replace or delete them."} {
		if !strings.Contains(text, want) {
			t.Errorf("the member's page lacks %q: %s", want, text)
		}
	}
	if forms := page.forms(); !slices.Equal(forms, []string{"/signout"}) {
		t.Errorf("the member is offered forms: %v", forms)
	}
	if strings.Contains(text, "Delete") || strings.Contains(text, "Replace") || len(passwordInputs(page)) > 0 {
		t.Errorf("the member is offered changes: %s", text)
	}
	if strings.Contains(page.body, secretKey) {
		t.Fatal("the member's page shows the secret")
	}

	// Forcing the form: Vault refuses, and the page says why in words.
	forced := gwen.submit(form, url.Values{"field_access_key_id": {"AKIAMIA"}, "field_secret_access_key": {"forced-" + randomHex(8)}})
	if forced.status != http.StatusForbidden || !strings.Contains(forced.text(), "You need to be owner or maintainer of globex to change its provider access tokens.") {
		t.Fatalf("forced write: status %d: %s", forced.status, forced.text())
	}
	for _, raw := range []string{`{"errors"`, "permission denied", "goroutine", "403 Forbidden"} {
		if strings.Contains(forced.body, raw) {
			t.Errorf("the refusal shows %q", raw)
		}
	}
	forcedDelete := gwen.submit(form+"/delete", nil)
	if forcedDelete.status != http.StatusForbidden || !strings.Contains(forcedDelete.text(), "You need to be owner or maintainer of globex") {
		t.Fatalf("forced delete: status %d: %s", forcedDelete.status, forcedDelete.text())
	}
	stored, err := suite.root.Logical().Read("planqk/orgs/globex/provider-tokens/aws-braket")
	if err != nil || stored == nil || intOf(stored.Data, "version") != 1 || settingOf(stored.Data, "region") != "us-east-1" {
		t.Fatalf("the forced requests changed the token: %v %v", stored, err)
	}

	// Someone outside the organization: the engine's refusal, in words.
	paul := newVisitor(t, tp)
	paul.signIn("paul")
	outside := paul.get("/orgs/globex")
	if outside.status != http.StatusForbidden || !strings.Contains(outside.text(), "You need to be a member of globex to see its provider access tokens.") {
		t.Fatalf("outsider: status %d: %s", outside.status, outside.text())
	}

	// The owner deletes it.
	gina := newVisitor(t, tp)
	gina.signIn("gina")
	if p := gina.get("/orgs/globex/provider-tokens/aws-braket/delete"); !strings.Contains(p.text(), "Delete globex's aws-braket token?") {
		t.Fatalf("owner's confirmation: %s", p.text())
	}
	if p := gina.follow(gina.submit(form+"/delete", nil)); !strings.Contains(p.text(), "Deleted the aws-braket token.") {
		t.Fatalf("owner's delete: %s", p.text())
	}
	if secret, _ := suite.root.Logical().Read("planqk/orgs/globex/provider-tokens/aws-braket"); secret != nil {
		t.Fatal("the owner's delete left the token")
	}
}

func TestOrganizationsPage(t *testing.T) {
	tp := startPortal(t, nil)
	cases := []struct {
		user  string
		wants []string
	}{
		{"gina", []string{"globex", "owner", "Manage globex's provider tokens"}},
		{"gus", []string{"globex", "maintainer", "Manage globex's provider tokens"}},
		{"gwen", []string{"globex", "member", "View globex's provider tokens"}},
		{"paul", []string{"You do not belong to any organization."}},
	}
	for _, c := range cases {
		v := newVisitor(t, tp)
		v.signIn(c.user)
		p := v.get("/orgs")
		for _, want := range c.wants {
			if !strings.Contains(p.text(), want) {
				t.Errorf("%s's organizations page lacks %q: %s", c.user, want, p.text())
			}
		}
		if c.user != "paul" && strings.Contains(p.text(), "acme") {
			t.Errorf("%s sees acme: %s", c.user, p.text())
		}
	}
}

// The organization page says whose jobs use its tokens and lets owners
// change that; each token shows whose job last used it.
func TestOrganizationSettingsAndLastUse(t *testing.T) {
	tp := startPortal(t, nil)
	ctx := context.Background()
	key := "ionq-globex-" + randomHex(12)
	remember(key, "globex's IonQ key")
	if _, err := suite.root.Logical().Write("planqk/orgs/globex/provider-tokens/ionq", map[string]interface{}{"api_key": key}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = suite.root.Logical().Write("planqk/orgs/globex/settings", map[string]interface{}{"provider_tokens_for": "member"})
		_, _ = suite.root.Logical().Delete("planqk/orgs/globex/provider-tokens/ionq")
	})

	// Gwen's job uses the token; the engine writes uses in batches (a
	// tidy writes them now).
	token, err := suite.vault.Login(ctx, "userpass", "gwen", suite.passwords["gwen"])
	if err != nil {
		t.Fatal(err)
	}
	gwenClient := vaultClient(token)
	if secret, err := gwenClient.Logical().ReadWithData("planqk/resolve/ionq", map[string][]string{"org": {"globex"}}); err != nil || secret == nil || secret.Data["api_key"] != key {
		t.Fatalf("gwen resolves globex's IonQ key: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := suite.root.Logical().Write("planqk/tidy", nil); err != nil && !strings.Contains(err.Error(), "already") {
			t.Fatal(err)
		}
		stored, err := suite.root.Logical().Read("planqk/orgs/globex/provider-tokens/ionq")
		if err == nil && stored != nil && stored.Data["last_used_by_name"] == "gwen" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the use is not recorded: %v %v", stored, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The owner sees who used it, and the setting with its form.
	gina := newVisitor(t, tp)
	gina.signIn("gina")
	page := gina.get("/orgs/globex")
	for _, want := range []string{"Last used", "by gwen", "Whose jobs use globex's tokens", "Currently: every member."} {
		if !strings.Contains(page.text(), want) {
			t.Errorf("the owner's page lacks %q: %s", want, page.text())
		}
	}
	if !slices.Contains(page.forms(), "/orgs/globex/settings") {
		t.Fatalf("the owner is not offered the setting: %v", page.forms())
	}
	saved := gina.follow(gina.submit("/orgs/globex/settings", url.Values{"provider_tokens_for": {"maintainer"}}))
	if !strings.Contains(saved.text(), "Saved: globex's provider tokens are now used for the jobs of maintainers and owners.") ||
		!strings.Contains(saved.text(), "Currently: maintainers and owners.") {
		t.Fatalf("after saving: %s", saved.text())
	}
	if secret, _ := gwenClient.Logical().ReadWithData("planqk/resolve/ionq", map[string][]string{"org": {"globex"}}); secret != nil {
		t.Fatalf("gwen, a member, still gets globex's key: %v", secret.Data["source"])
	}

	// A member reads it and cannot change it; forcing it is refused.
	gwen := newVisitor(t, tp)
	gwen.signIn("gwen")
	page = gwen.get("/orgs/globex")
	if !strings.Contains(page.text(), "Jobs of maintainers and owners of globex run with these tokens") || !strings.Contains(page.text(), "Only owners can change this.") {
		t.Errorf("the member's page: %s", page.text())
	}
	if forms := page.forms(); !slices.Equal(forms, []string{"/signout"}) {
		t.Errorf("the member is offered forms: %v", forms)
	}
	forced := gwen.submit("/orgs/globex/settings", url.Values{"provider_tokens_for": {"member"}})
	if forced.status != http.StatusForbidden || !strings.Contains(forced.text(), "You need to be owner of globex to change its settings.") {
		t.Fatalf("forced write: status %d: %s", forced.status, forced.text())
	}
	stored, err := suite.root.Logical().Read("planqk/orgs/globex/settings")
	if err != nil || stored.Data["provider_tokens_for"] != "maintainer" {
		t.Fatalf("the forced write changed the setting: %v %v", stored, err)
	}
	if strings.Contains(page.body, key) || strings.Contains(forced.body, key) {
		t.Fatal("a page shows the key")
	}
}

// Owners set a derivation on the organization page - jobs then get
// credentials made for them, never the stored key - and decide whether
// jobs may ever have the stored key; a member sees both, changes neither;
// a user decides the same for their own tokens. No secret is on any page.
func TestDerivationsAndTheStoredKeyRule(t *testing.T) {
	tp := startPortal(t, nil)
	base := "AKIA" + strings.ToUpper(randomHex(8))
	baseSecret := "aws-base-" + randomHex(16) + "q9z1"
	remember(baseSecret, "globex's base AWS secret")
	t.Cleanup(func() {
		_, _ = suite.root.Logical().Write("planqk/orgs/globex/settings", map[string]interface{}{"derived_only": true})
		_, _ = suite.root.Logical().Delete("planqk/orgs/globex/provider-tokens/aws-braket")
	})

	gina := newVisitor(t, tp)
	gina.signIn("gina")
	page := gina.get("/orgs/globex")
	for _, want := range []string{"Derive credentials per job: aws_assume_role", "Derive credentials per job: ibm_service_id_key", "Stored keys or per-job credentials",
		"Jobs get only short-lived credentials made for them"} {
		if !strings.Contains(page.text(), want) {
			t.Errorf("the owner's page lacks %q", want)
		}
	}
	if !slices.ContainsFunc(passwordInputs(page), func(n *html.Node) bool { return attr(n, "id") == "d-aws-braket-aws_assume_role-base_secret_access_key" }) {
		t.Error("the base secret is not a password input")
	}
	saved := gina.submit("/orgs/globex/provider-tokens/aws-braket", url.Values{
		"derivation": {"aws_assume_role"}, "derive_role_arn": {"arn:aws:iam::123456789012:role/planqk-braket"},
		"derive_base_access_key_id": {base}, "derive_base_secret_access_key": {baseSecret}, "field_region": {"eu-west-2"},
	})
	if saved.status != http.StatusSeeOther {
		t.Fatalf("saving the derivation: status %d: %s", saved.status, saved.text())
	}
	after := gina.follow(saved)
	for _, want := range []string{"derived per job", "short-lived credentials made for each job (aws_assume_role)", "****q9z1", "arn:aws:iam::123456789012:role/planqk-braket", "eu-west-2"} {
		if !strings.Contains(after.text(), want) {
			t.Errorf("after saving, the page lacks %q: %s", want, after.text())
		}
	}
	if strings.Contains(after.body, baseSecret) {
		t.Fatal("the page shows the base secret")
	}
	stored, err := suite.root.Logical().Read("planqk/orgs/globex/provider-tokens/aws-braket")
	if err != nil || stored.Data["derivation"].(map[string]interface{})["method"] != "aws_assume_role" {
		t.Fatalf("the engine did not store the derivation: %v %v", stored, err)
	}
	if bad := gina.submit("/orgs/globex/provider-tokens/aws-braket", url.Values{"derivation": {"aws_magic"}}); bad.status != http.StatusBadRequest {
		t.Errorf("an unknown method: status %d", bad.status)
	}

	// The stored-key rule: owners only.
	allowed := gina.follow(gina.submit("/orgs/globex/settings", url.Values{"setting": {"stored_keys"}, "stored_keys_allowed": {"on"}}))
	if !strings.Contains(allowed.text(), "A job that asks may get the stored key") {
		t.Fatalf("after allowing stored keys: %s", allowed.text())
	}
	if settings, _ := suite.root.Logical().Read("planqk/orgs/globex/settings"); settings.Data["derived_only"] != false {
		t.Fatalf("derived_only is %v", settings.Data["derived_only"])
	}
	gwen := newVisitor(t, tp)
	gwen.signIn("gwen")
	if member := gwen.get("/orgs/globex"); strings.Contains(member.text(), "Derive credentials per job") || !slices.Equal(member.forms(), []string{"/signout"}) {
		t.Errorf("the member is offered forms: %v", member.forms())
	}
	forced := gwen.submit("/orgs/globex/settings", url.Values{"setting": {"stored_keys"}})
	if forced.status != http.StatusForbidden {
		t.Fatalf("a member changes the rule: status %d", forced.status)
	}
	if settings, _ := suite.root.Logical().Read("planqk/orgs/globex/settings"); settings.Data["derived_only"] != false {
		t.Fatal("the member's forced write changed the rule")
	}

	// A user's own rule.
	own := gwen.get("/provider-tokens")
	if !strings.Contains(own.text(), "Your jobs get only short-lived credentials") || !slices.Contains(own.forms(), "/provider-tokens/settings") {
		t.Fatalf("the user's page has no stored-key rule: %v", own.forms())
	}
	mine := gwen.follow(gwen.submit("/provider-tokens/settings", url.Values{"stored_keys_allowed": {"on"}}))
	if !strings.Contains(mine.text(), "Saved: your jobs may ask for the stored key") {
		t.Fatalf("after the user's change: %s", mine.text())
	}
	t.Cleanup(func() {
		_, _ = suite.root.Logical().Write("planqk/users/gwen/settings", map[string]interface{}{"derived_only": true})
	})
}
