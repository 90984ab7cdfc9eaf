//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// auditorClient returns a client with a token holding only planqk-auditor.
func auditorClient(t *testing.T) *api.Client {
	t.Helper()
	secret, err := as(t, "root").Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"planqk-auditor"}, NoDefaultPolicy: true, TTL: "10m",
	})
	if err != nil {
		t.Fatal(err)
	}
	return clientWith(t, secret.Auth.ClientToken)
}

// The security team's questions against the real Vault: which tokens
// exist, whose, with what scopes, expiring when, last used when - through
// the planqk-auditor policy, which reaches no secret.
func TestInventoryAndLastUse(t *testing.T) {
	userName := "gov" + fmt.Sprint(loginSeq.Add(1))
	userToken, entityID := newLogin(t, userName)
	user := clientWith(t, userToken)
	var pats []string
	for _, name := range []string{"laptop", "ci", "notebook"} {
		created, err := user.Logical().Write(mount+"/users/"+userName+"/tokens/"+name, map[string]interface{}{"scopes": "api"})
		if err != nil {
			t.Fatal(err)
		}
		pats = append(pats, created.Data["token"].(string))
		s.remember(pats[len(pats)-1], userName+"'s PAT "+name)
	}
	lease, err := user.Logical().Read(mount + "/users/" + userName + "/creds/runtime")
	if err != nil {
		t.Fatal(err)
	}
	s.remember(lease.Data["token"].(string), userName+"'s leased PAT")

	// A use of one PAT, written when the next tidy runs.
	if got := verify(t, pats[0]); got["active"] != true {
		t.Fatalf("verify: %v", got)
	}
	usedAt := time.Now().UTC().Truncate(time.Hour).Format(time.RFC3339)
	runTidy(t, false)

	auditor := auditorClient(t)
	seen := map[string]map[string]interface{}{}
	after, pages := "", 0
	for {
		page, err := auditor.Logical().ReadWithData(mount+"/inventory/tokens", map[string][]string{"list": {"true"}, "user": {userName}, "limit": {"2"}, "after": {after}})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		keys, _ := page.Data["keys"].([]interface{})
		info, _ := page.Data["key_info"].(map[string]interface{})
		for _, key := range keys {
			seen[key.(string)] = info[key.(string)].(map[string]interface{})
		}
		after, _ = page.Data["next_after"].(string)
		if after == "" || pages > 10 {
			break
		}
	}
	if len(seen) != 4 || pages < 2 {
		t.Fatalf("the inventory shows %d tokens of %s in %d pages, want 4 in at least 2: %v", len(seen), userName, pages, seen)
	}
	laptop := seen[entityID+"/named/laptop"]
	if laptop["user"] != userName || laptop["entity_id"] != entityID || fmt.Sprint(laptop["scopes"]) != "[api]" || laptop["last_used_at"] != usedAt {
		t.Errorf("inventory entry of the used PAT: %v (want last_used_at %s)", laptop, usedAt)
	}
	if seen[entityID+"/named/ci"]["last_used_at"] != "" {
		t.Errorf("an unused PAT shows a last use: %v", seen[entityID+"/named/ci"])
	}
	for key, info := range seen {
		for _, pat := range pats {
			if strings.Contains(fmt.Sprint(info), pat) || strings.Contains(key, pat) {
				t.Fatalf("the inventory shows a secret at %s", key)
			}
		}
	}
	read, err := user.Logical().Read(mount + "/users/" + userName + "/tokens/laptop")
	if err != nil || read.Data["last_used_at"] != usedAt {
		t.Errorf("the owner's read of the used PAT: %v %v", read, err)
	}

	counts, err := auditor.Logical().ReadWithData(mount+"/inventory", map[string][]string{"refresh": {"true"}})
	if err != nil {
		t.Fatal(err)
	}
	tokens := counts.Data["tokens"].(map[string]interface{})
	if n, _ := tokens["active_named"].(interface{ String() string }); n == nil || n.String() == "0" {
		t.Errorf("inventory counts: %v", counts.Data)
	}

	// The auditor reaches nothing secret.
	for _, path := range []string{"/users/" + userName + "/tokens/laptop", "/resolve/dwave", "/users/" + userName + "/creds/runtime", "/orgs/acme/provider-tokens/ionq"} {
		if _, err := auditor.Logical().Read(mount + path); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("the auditor reads %s: %v", path, err)
		}
	}
}

// Offboarding against the real Vault: a deleted user's tokens stop at
// once, and the next tidy (offboarding_grace 0) removes the user's PATs,
// leases and provider tokens; revoke-all does it on demand for a live one.
func TestOffboardingAndRevokeAll(t *testing.T) {
	ctx := context.Background()
	root := as(t, "root")
	leaverName := "leaver" + fmt.Sprint(loginSeq.Add(1))
	leaverToken, leaverID := newLogin(t, leaverName)
	leaver := clientWith(t, leaverToken)
	created, err := leaver.Logical().Write(mount+"/users/"+leaverName+"/tokens/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	pat := created.Data["token"].(string)
	s.remember(pat, "the leaver's PAT")
	const dwave = "leaver-dwave-secret-2f8c1a"
	s.remember(dwave, "the leaver's D-Wave token")
	if _, err := leaver.Logical().Write(mount+"/users/"+leaverName+"/provider-tokens/dwave", map[string]interface{}{"token": dwave}); err != nil {
		t.Fatal(err)
	}

	if _, err := root.Logical().DeleteWithContext(ctx, "identity/entity/id/"+leaverID); err != nil {
		t.Fatal(err)
	}
	waitForIdentity(t, "the deletion", func() bool { return verify(t, pat)["active"] == false })
	status := runTidy(t, false)
	if n := fmt.Sprint(status["entities_offboarded"]); n == "0" {
		t.Fatalf("tidy offboarded nobody: %v", status)
	}
	snapshot := storageSnapshot(t)
	for key := range snapshot {
		if strings.Contains(key, leaverID) {
			t.Errorf("offboarding left %s", key)
		}
	}

	// revoke-all for a user who stays.
	stayName := "stayer" + fmt.Sprint(loginSeq.Add(1))
	stayToken, _ := newLogin(t, stayName)
	stayer := clientWith(t, stayToken)
	var tokens []string
	created, err = stayer.Logical().Write(mount+"/users/"+stayName+"/tokens/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	tokens = append(tokens, created.Data["token"].(string))
	for i := 0; i < 2; i++ {
		lease, err := stayer.Logical().Read(mount + "/users/" + stayName + "/creds/runtime")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, lease.Data["token"].(string))
	}
	for _, token := range tokens {
		s.remember(token, "a token revoke-all ends")
	}
	revoked, err := root.Logical().Write(mount+"/users/"+stayName+"/revoke-all", nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(revoked.Data["named_revoked"]) != "1" || fmt.Sprint(revoked.Data["leases_revoked"]) != "2" {
		t.Fatalf("revoke-all: %v", revoked.Data)
	}
	for _, token := range tokens {
		if verify(t, token)["active"] != false {
			t.Fatal("a token verifies after revoke-all")
		}
	}
}

// Disabling is not deleting, against the real Vault: a disabled entity's
// PAT stops at once, a tidy (default disabled_grace, 30 days) keeps its
// PAT and provider token, and re-enabling the entity brings both back.
func TestDisablingAnEntityKeepsItsTokens(t *testing.T) {
	ctx := context.Background()
	root := as(t, "root")
	name := "paused" + fmt.Sprint(loginSeq.Add(1))
	loginToken, entityID := newLogin(t, name)
	user := clientWith(t, loginToken)
	created, err := user.Logical().Write(mount+"/users/"+name+"/tokens/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	pat := created.Data["token"].(string)
	s.remember(pat, "the paused user's PAT")
	dwave := "paused-dwave-secret-" + fmt.Sprint(loginSeq.Add(1)) + "-9b3e"
	s.remember(dwave, "the paused user's D-Wave token")
	if _, err := user.Logical().Write(mount+"/users/"+name+"/provider-tokens/dwave", map[string]interface{}{"token": dwave}); err != nil {
		t.Fatal(err)
	}
	setDisabled := func(disabled bool) {
		t.Helper()
		if _, err := root.Logical().WriteWithContext(ctx, "identity/entity/id/"+entityID, map[string]interface{}{"disabled": disabled}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = root.Logical().Delete("identity/entity/id/" + entityID) })

	setDisabled(true)
	waitForIdentity(t, "the disablement", func() bool { return verify(t, pat)["active"] == false })
	runTidy(t, false)
	kept := 0
	for key := range storageSnapshot(t) {
		if strings.Contains(key, entityID) {
			kept++
		}
	}
	if kept == 0 {
		t.Fatal("a tidy removed a disabled entity's data")
	}
	if verify(t, pat)["active"] != false {
		t.Fatal("a disabled entity's PAT verifies")
	}

	setDisabled(false)
	waitForIdentity(t, "the re-enablement", func() bool { return verify(t, pat)["active"] == true })
	resolved, err := user.Logical().Read(mount + "/resolve/dwave")
	if err != nil {
		t.Fatal(err)
	}
	if resolved == nil || resolved.Data["token"] != dwave {
		t.Fatalf("the re-enabled user's provider token: %v", resolved)
	}
}

func storageSnapshot(t *testing.T) map[string]string {
	t.Helper()
	snapshot, err := vaultharness.StorageSnapshot(context.Background(), as(t, "root"), mount)
	if err != nil {
		t.Fatal(err)
	}
	return snapshot
}
