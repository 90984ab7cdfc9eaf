//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/helper/locksutil"
)

// loginSeq makes the logins these tests create unique per run and -count.
var loginSeq atomic.Int64

// newLogin creates a userpass login bound to a new identity entity named
// entityName, logs in and returns the Vault token and the entity id. The
// login's name is unique, so that two entities can hold one name in turn.
func newLogin(t *testing.T, entityName string) (token, entityID string) {
	t.Helper()
	entityID = newEntity(t, entityName)
	return loginAs(t, entityID), entityID
}

// newEntity creates an identity entity named entityName and returns its id.
func newEntity(t *testing.T, entityName string) string {
	t.Helper()
	entity, err := as(t, "root").Logical().Write("identity/entity", map[string]interface{}{"name": entityName})
	if err != nil {
		t.Fatal(err)
	}
	if entity == nil {
		// The name exists already: writing it again returns nothing.
		t.Fatalf("an entity named %s exists already", entityName)
	}
	return entity.Data["id"].(string)
}

// loginAs creates a userpass login with an alias to the entity, logs in
// and returns the Vault token.
func loginAs(t *testing.T, entityID string) string {
	t.Helper()
	ctx := context.Background()
	root := as(t, "root")
	login := fmt.Sprintf("login-%d-%d", time.Now().UnixNano()%1e9, loginSeq.Add(1))
	password := "pw-" + login + "-5e1f"
	s.remember(password, "password of "+login)
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+authMount+"/users/"+login, map[string]interface{}{
		"password": password, "token_policies": "planqk-user",
	}); err != nil {
		t.Fatal(err)
	}
	auths, err := root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "identity/entity-alias", map[string]interface{}{
		"name": login, "canonical_id": entityID, "mount_accessor": auths[authMount+"/"].Accessor,
	}); err != nil {
		t.Fatal(err)
	}
	token, err := s.srv.Login(ctx, authMount, login, password)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func clientWith(t *testing.T, token string) *api.Client {
	t.Helper()
	client, err := s.srv.Client(token)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func renameEntity(t *testing.T, entityID, name string) {
	t.Helper()
	if _, err := as(t, "root").Logical().Write("identity/entity/id/"+entityID, map[string]interface{}{"name": name}); err != nil {
		t.Fatal(err)
	}
}

// statusWith makes a raw request with a Vault token and returns its HTTP
// status: the API client answers a 404 on a read with no error and no data,
// which a test must tell from an empty 204.
func statusWith(t *testing.T, token, method, path string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.Addr+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitForIdentity waits until the engine's identity cache (reused for
// identity_cache_ttl, 5s by default) reflects a change: check returns true
// within identityWait.
func waitForIdentity(t *testing.T, what string, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(identityWait)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen after %s", what, identityWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The security review's reproduction, in the real Vault: E1 stores a
// provider token, a PAT and a lease as "ren"; an admin renames E1 and gives
// the name to a new entity E2. E2 gets nothing of E1's; E1 keeps
// everything under its new name; the PATs verify with the live name and
// the entity id. Deleting E1 ends its tokens, and a newcomer taking E1's
// last name gets nothing either.
func TestOwnershipFollowsTheEntityNotTheName(t *testing.T) {
	suffix := fmt.Sprint(loginSeq.Add(1))
	name, renamed := "ren"+suffix, "ren"+suffix+"-old"
	const ibmSecret = "ren-ibm-quantum-secret-7d0c41"
	s.remember(ibmSecret, "ren's IBM Quantum token")

	e1Token, e1 := newLogin(t, name)
	e1Client := clientWith(t, e1Token)
	if _, err := e1Client.Logical().Write(mount+"/users/"+name+"/provider-tokens/ibm-quantum", map[string]interface{}{"token": ibmSecret}); err != nil {
		t.Fatal(err)
	}
	created, err := e1Client.Logical().Write(mount+"/users/"+name+"/tokens/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	pat := created.Data["token"].(string)
	s.remember(pat, "E1's PAT")
	leased, err := e1Client.Logical().Read(mount + "/users/" + name + "/creds/runtime")
	if err != nil {
		t.Fatal(err)
	}
	leasePAT := leased.Data["token"].(string)
	s.remember(leasePAT, "E1's leased PAT")

	renameEntity(t, e1, renamed)
	e2Token, e2 := newLogin(t, name)
	e2Client := clientWith(t, e2Token)

	// E2, now holding the name, gets and changes nothing of E1's.
	for _, c := range []struct{ method, path string }{
		{"GET", "resolve/ibm-quantum"},
		{"GET", "users/" + name + "/tokens/laptop"},
		{"GET", "users/" + name + "/provider-tokens/ibm-quantum"},
		{"LIST", "users/" + name + "/tokens/"},
		{"LIST", "users/" + name + "/provider-tokens/"},
		{"POST", "users/" + name + "/tokens/laptop/rotate"},
	} {
		if got := statusWith(t, e2Token, c.method, mount+"/"+c.path); got != 404 {
			t.Fatalf("E2 (now %q): %s %s answered %d, want 404", name, c.method, c.path, got)
		}
	}
	for _, path := range []string{"/users/" + name + "/tokens/laptop", "/users/" + name + "/provider-tokens/ibm-quantum"} {
		if _, err := e2Client.Logical().Delete(mount + path); err != nil {
			t.Fatal(err)
		}
	}

	// E1 finds everything under its new name; its PATs verify as E1.
	waitForIdentity(t, "the rename", func() bool { return verify(t, pat)["user"] == renamed })
	for _, token := range []string{pat, leasePAT} {
		got := verify(t, token)
		if got["active"] != true || got["user"] != renamed || got["entity_id"] != e1 {
			t.Fatalf("E1's token after the rename: %v", got)
		}
	}
	mine, err := e1Client.Logical().Read(mount + "/resolve/ibm-quantum")
	if err != nil || mine.Data["token"] != ibmSecret {
		t.Fatalf("E1 resolving its own token after the rename: %v", err)
	}
	listed, err := e1Client.Logical().List(mount + "/users/" + renamed + "/tokens/")
	if err != nil || listed == nil || !containsString(listed.Data["keys"], "laptop") {
		t.Fatalf("E1 listing under its new name: %v %v", listed, err)
	}
	// Operators address users by their live name too.
	listed, err = as(t, "root").Logical().List(mount + "/users/" + renamed + "/tokens/")
	if err != nil || listed == nil || !containsString(listed.Data["keys"], "laptop") {
		t.Fatalf("root listing under the new name: %v %v", listed, err)
	}
	listed, err = as(t, "root").Logical().List(mount + "/users/" + name + "/tokens/")
	if err != nil || listed != nil {
		t.Fatalf("root listing under the old name finds %v %v", listed, err)
	}
	profile, err := as(t, "root").Logical().Read(mount + "/users/" + renamed)
	if err != nil || profile.Data["entity_id"] != e1 {
		t.Fatalf("profile under the new name: %v %v", profile, err)
	}

	// E2's own PAT is E2's.
	own, err := e2Client.Logical().Write(mount+"/users/"+name+"/tokens/laptop", nil)
	if err != nil {
		t.Fatal(err)
	}
	s.remember(own.Data["token"].(string), "E2's PAT")
	if got := verify(t, own.Data["token"].(string)); got["entity_id"] != e2 {
		t.Fatalf("E2's PAT verifies as %v", got["entity_id"])
	}

	// Deleting E1 ends its tokens; a newcomer under E1's last name gets nothing.
	if _, err := as(t, "root").Logical().Delete("identity/entity/id/" + e1); err != nil {
		t.Fatal(err)
	}
	waitForIdentity(t, "the deletion", func() bool { return verify(t, pat)["active"] == false })
	if verify(t, leasePAT)["active"] != false {
		t.Fatal("the deleted entity's leased PAT still verifies")
	}
	e3Token, _ := newLogin(t, renamed)
	for _, c := range []struct{ method, path string }{
		{"GET", "resolve/ibm-quantum"},
		{"LIST", "users/" + renamed + "/tokens/"},
		{"LIST", "users/" + renamed + "/provider-tokens/"},
	} {
		if got := statusWith(t, e3Token, c.method, mount+"/"+c.path); got != 404 {
			t.Fatalf("a newcomer under the deleted entity's name: %s %s answered %d, want 404", c.method, c.path, got)
		}
	}
}

// The cold-start deadlock the review found: v0.1.0 took the user's striped
// lock and, inside it, the HMAC key's, and users whose lock shared the
// key's stripe hung the node on its first create after a start. The engine
// locks entity/<id> now: create entities until one's lock key shares the
// stripe of the key's (salt/hmac; about 256 tries), reload the plugin (cold
// caches) and make that entity's create the first request. The unit walk
// over every stripe is TestLocks_noStripeDeadlocksAColdStart.
func TestColdStartWithAUserOnTheHMACKeysStripe(t *testing.T) {
	stripe := locksutil.LockIndexForKey("salt/hmac")
	base := uniqueName("cold")
	name, entityID := "", ""
	for i := 0; entityID == ""; i++ {
		if i == 5000 {
			t.Fatal("no entity on the HMAC key's stripe after 5000 tries")
		}
		candidate := fmt.Sprintf("%s-%d", base, i)
		id := newEntity(t, candidate)
		if locksutil.LockIndexForKey("entity/"+id) == stripe {
			name, entityID = candidate, id
			break
		}
		if _, err := as(t, "root").Logical().Delete("identity/entity/id/" + id); err != nil {
			t.Fatal(err)
		}
	}
	token := loginAs(t, entityID)
	reloadPlugin(t)

	client := clientWith(t, token)
	client.SetClientTimeout(30 * time.Second)
	done := make(chan error, 1)
	go func() {
		secret, err := client.Logical().Write(mount+"/users/"+name+"/tokens/first", nil)
		if err == nil {
			s.remember(secret.Data["token"].(string), "cold-start PAT")
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the first create after a reload: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("the first create after a reload hangs")
	}
}

// reloadPlugin restarts the engine's plugin process for the suite's mount
// and waits until it serves again.
func reloadPlugin(t *testing.T) {
	t.Helper()
	if _, err := as(t, "root").Logical().Write("sys/plugins/reload/backend", map[string]interface{}{"mounts": []string{mount}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := as(t, "root").Logical().Read(mount + "/config"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the engine does not serve 30s after a reload")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The review's injection, against the real Vault: an organization name
// carrying HCL writes nothing at all - no policy, no group.
func TestBootstrapRefusesInjectedNames(t *testing.T) {
	ctx := context.Background()
	root := as(t, "root")
	policiesBefore, err := root.Sys().ListPoliciesWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	groupsBefore, err := root.Logical().List("identity/group/name")
	if err != nil {
		t.Fatal(err)
	}
	for _, org := range []string{"acme\"\n}\npath \"sys/*\" {\n  capabilities = [\"sudo\", \"create\", \"read\", \"update\", \"delete\", \"list\"]\n}\n#", "acme+", "a..b", "*"} {
		if err := s.boot.Org(ctx, org); err == nil {
			t.Errorf("bootstrap accepted the organization name %q", org)
		}
		if err := s.boot.SetMember(ctx, org, "mia", "member"); err == nil {
			t.Errorf("bootstrap accepted a member of %q", org)
		}
	}
	policiesAfter, err := root.Sys().ListPoliciesWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	groupsAfter, err := root.Logical().List("identity/group/name")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(policiesBefore) != fmt.Sprint(policiesAfter) || fmt.Sprint(groupsBefore.Data) != fmt.Sprint(groupsAfter.Data) {
		t.Fatalf("refused names changed Vault: policies %v -> %v", policiesBefore, policiesAfter)
	}
}

// Vault caps a lease at the mount's max_lease_ttl; the PAT's own expiry,
// the fail-safe when revocation runs late, must be capped the same way.
func TestLeasedPATsAreCappedByTheMountsMaxLeaseTTL(t *testing.T) {
	root := as(t, "root")
	tune := func(maxTTL string) {
		if err := root.Sys().TuneMount(mount, api.MountConfigInput{MaxLeaseTTL: maxTTL}); err != nil {
			t.Fatal(err)
		}
	}
	tune("2m")
	t.Cleanup(func() { tune("system") })
	if _, err := root.Logical().Write(mount+"/roles/long", map[string]interface{}{"ttl": "1h", "max_ttl": "2h"}); err != nil {
		t.Fatal(err)
	}

	leased, err := as(t, "mia").Logical().Read(mount + "/users/mia/creds/long")
	if err != nil {
		t.Fatal(err)
	}
	token := leased.Data["token"].(string)
	s.remember(token, "mia's capped leased PAT")
	if leased.LeaseDuration > 120 {
		t.Fatalf("lease of %ds under a 2m max_lease_ttl", leased.LeaseDuration)
	}
	created, _ := time.Parse(time.RFC3339, leased.Data["created_at"].(string))
	expires, _ := time.Parse(time.RFC3339, leased.Data["expires_at"].(string))
	if expires.Sub(created) > 2*time.Minute {
		t.Fatalf("the PAT expires %s after issue under a 2m max_lease_ttl", expires.Sub(created))
	}
	if got := verify(t, token)["expires_at"]; got != leased.Data["expires_at"] {
		t.Fatalf("verify reports expiry %v, the lease %v", got, leased.Data["expires_at"])
	}
	// Renewing cannot push the PAT past the cap either.
	renewed, err := root.Sys().Renew(leased.LeaseID, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.LeaseDuration > 120 {
		t.Fatalf("renewal to %ds under a 2m max_lease_ttl", renewed.LeaseDuration)
	}
	after, _ := time.Parse(time.RFC3339, verify(t, token)["expires_at"].(string))
	if after.Sub(created) > 2*time.Minute+time.Second {
		t.Fatalf("after renewal the PAT expires %s after issue", after.Sub(created))
	}
	if _, err := root.Logical().Delete(mount + "/roles/long"); err != nil {
		t.Fatal(err)
	}
}

// The verifier checks a PAT sent in X-Auth-Token by GET, as a gateway
// forwards the PlanQK SDKs' header unchanged; the bootstrap tuned the mount
// to pass the header through. The token reaches no log (the suite's leak
// check reads the audit and server logs).
func TestVerifyByHeaderAndIntrospect(t *testing.T) {
	created, err := as(t, "mia").Logical().Write(mount+"/users/mia/tokens/header-"+fmt.Sprint(loginSeq.Add(1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	token := created.Data["token"].(string)
	s.remember(token, "mia's PAT sent in a header")

	req, err := http.NewRequest("GET", s.srv.Addr+"/v1/"+mount+"/verify", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", s.verifier)
	req.Header.Set("X-Auth-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data map[string]interface{} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || body.Data["active"] != true || body.Data["user"] != "mia" {
		t.Fatalf("GET verify with X-Auth-Token: %d %v", resp.StatusCode, redacted(body.Data))
	}

	form := strings.NewReader("token=" + token + "&token_type_hint=access_token")
	req, err = http.NewRequest("POST", s.srv.Addr+"/v1/"+mount+"/introspect", form)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.verifier)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var introspection map[string]interface{}
	if err := json.NewDecoder(resp.Body).Decode(&introspection); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || introspection["active"] != true || introspection["username"] != "mia" || introspection["scope"] != "api quantum_tokens" {
		t.Fatalf("introspect: %d %v", resp.StatusCode, introspection)
	}
	if _, enveloped := introspection["data"]; enveloped {
		t.Fatalf("introspect answered in Vault's envelope: %v", introspection)
	}
}
