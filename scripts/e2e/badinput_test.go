//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// badRequest is one malformed request and how it must be answered.
type badRequest struct {
	name   string
	who    string
	method string
	path   string // under the mount; may carry a query string
	body   string // raw request body
	status int
	want   string // what the error message must name
}

// Secret-looking values in the bodies below. The test registers them with
// the suite's leak check, so that an error message, a log line or an audit
// entry that repeats one fails the suite.
const (
	probeSecret = "probe-secret-value-4c1d9e7a2b"
	probePAT    = "plqk_probeTokenValue8f3e0c6b1d2a9"
)

var badRequests = []badRequest{
	// Personal access tokens.
	{"ttl not a duration", "mia", "POST", "users/mia/tokens/bad", `{"ttl":"soon"}`, 400, "ttl"},
	{"negative ttl", "mia", "POST", "users/mia/tokens/bad", `{"ttl":"-5s"}`, 400, "ttl"},
	{"ttl over max_ttl", "mia", "POST", "users/mia/tokens/bad", `{"ttl":"9000h"}`, 400, "max_ttl"},
	{"ttl of the wrong JSON type", "mia", "POST", "users/mia/tokens/bad", `{"ttl":[1,2]}`, 400, "ttl"},
	{"description too long", "mia", "POST", "users/mia/tokens/bad", `{"description":"` + strings.Repeat("d", 257) + `"}`, 400, "description"},
	{"description of the wrong JSON type", "mia", "POST", "users/mia/tokens/bad", `{"description":{"a":1}}`, 400, "description"},
	{"name too long", "mia", "POST", "users/mia/tokens/" + strings.Repeat("n", 129), `{}`, 400, "name"},
	{"name with bad characters", "mia", "POST", "users/mia/tokens/bad$name", `{}`, 400, "name is not a valid name"},
	{"name percent-encoded non-ASCII", "mia", "POST", "users/mia/tokens/%C3%A9t%C3%A9", `{}`, 400, "name is not a valid name"},
	{"name with two dots, which storage refuses", "mia", "POST", "users/mia/tokens/a..b", `{}`, 400, "name is not a valid name"},
	{"user name with two dots", "root", "GET", "users/a..b/tokens/x", ``, 400, "user is not a valid name"},
	{"empty name", "mia", "POST", "users/mia/tokens/", `{}`, 400, "ending in '/'"},
	{"existing name", "mia", "POST", "users/mia/tokens/existing", `{}`, 400, "rotate"},
	{"rotate a missing token", "mia", "POST", "users/mia/tokens/missing/rotate", `{}`, 404, "no token named"},
	{"created by root", "root", "POST", "users/mia/tokens/bad", `{}`, 400, "user accounts"},
	{"created for another user", "mia", "POST", "users/max/tokens/bad", `{}`, 403, "permission denied"},
	{"malformed JSON", "mia", "POST", "users/mia/tokens/bad", `{"ttl" "1h"}`, 400, "JSON"},
	{"JSON array body", "mia", "POST", "users/mia/tokens/bad", `["ttl"]`, 400, "JSON"},
	// Leaks.
	{"leaks/revoke without leaks", "scanner", "POST", "leaks/revoke", `{}`, 400, "leaks"},
	{"leaks/revoke with one object, not a list", "scanner", "POST", "leaks/revoke", `{"leaks":{"token":"` + probePAT + `"}}`, 400, "list"},
	{"leaks/revoke with an item without a token", "scanner", "POST", "leaks/revoke", `{"leaks":[{"token":"` + probePAT + `"},{"url":"u"}]}`, 400, "leaks[1].token"},
	{"leaks/revoke with an unknown key", "scanner", "POST", "leaks/revoke", `{"leaks":[{"token":"` + probePAT + `","owner":"mia"}]}`, 400, "unknown key"},
	// Verify.
	{"verify without a body", "verifier", "POST", "verify", ``, 400, "token"},
	{"verify with an empty token", "verifier", "POST", "verify", `{"token":""}`, 400, "token"},
	{"verify with a token of the wrong JSON type", "verifier", "POST", "verify", `{"token":["` + probePAT + `"]}`, 400, "token"},
	{"verify with the token in the query", "verifier", "POST", "verify?token=plqk_abc", ``, 400, "token"},
	{"verify by GET", "root", "GET", "verify?token=plqk_abc", ``, 400, "never put a token in a URL"},
	{"verify with the token in the path", "root", "POST", "verify/plqk_abc", `{}`, 404, "unsupported path"},
	// Configuration and roles.
	{"prefix without underscore", "root", "POST", "config", `{"token_prefix":"plqk"}`, 400, "token_prefix"},
	{"prefix with capitals", "root", "POST", "config", `{"token_prefix":"PLQK_"}`, 400, "token_prefix"},
	{"zero default_ttl", "root", "POST", "config", `{"default_ttl":0}`, 400, "default_ttl"},
	{"negative max_ttl", "root", "POST", "config", `{"max_ttl":"-1h"}`, 400, "max_ttl"},
	{"identity cache too long", "root", "POST", "config", `{"identity_cache_ttl":"1h"}`, 400, "identity_cache_ttl"},
	{"role ttl over its max_ttl", "root", "POST", "roles/bad", `{"ttl":"2h","max_ttl":"1h"}`, 400, "ttl"},
	{"role ttl not a duration", "root", "POST", "roles/bad", `{"ttl":"later"}`, 400, "ttl"},
	{"role name with bad characters", "root", "POST", "roles/bad%20role", `{}`, 400, "role is not a valid name"},
	{"role name with two dots", "root", "POST", "roles/a..b", `{}`, 400, "role is not a valid name"},
	{"creds of an unknown role", "mia", "GET", "users/mia/creds/nonexistent", ``, 400, "nonexistent"},
	{"tidy repair not a bool", "root", "POST", "tidy", `{"repair":"perhaps"}`, 400, "repair"},
	// Provider catalogue.
	{"provider without required fields", "root", "POST", "providers/rigetti", `{"optional_fields":"region"}`, 400, "required_fields"},
	{"provider field name invalid", "root", "POST", "providers/rigetti", `{"required_fields":"API-Key"}`, 400, "API-Key"},
	{"provider field name reserved", "root", "POST", "providers/rigetti", `{"required_fields":"source"}`, 400, "reserved"},
	{"provider secret field unknown", "root", "POST", "providers/rigetti", `{"required_fields":"a","secret_fields":"b"}`, 400, "secret_fields"},
	{"provider with a huge field list", "root", "POST", "providers/rigetti", `{"required_fields":"` + hugeFieldList(5000) + `"}`, 400, "at most"},
	{"provider name with capitals", "root", "POST", "providers/Rigetti", `{"required_fields":"a"}`, 404, "unsupported path"},
	{"delete a built-in provider", "root", "DELETE", "providers/dwave", ``, 400, "built in"},
	// Provider tokens.
	{"token for an unknown provider", "mia", "POST", "users/mia/provider-tokens/rigetti", `{"api_key":"` + probeSecret + `"}`, 400, "unknown provider"},
	{"token with an unknown field", "mia", "POST", "users/mia/provider-tokens/dwave", `{"token":"` + probeSecret + `","solver":"` + probeSecret + `"}`, 400, "unknown field"},
	{"token without a required field", "mia", "POST", "users/mia/provider-tokens/aws-braket", `{"access_key_id":"` + probeSecret + `"}`, 400, "secret_access_key"},
	{"token with an empty body", "mia", "POST", "users/mia/provider-tokens/dwave", `{}`, 400, "missing required field"},
	{"token value a number", "mia", "POST", "users/mia/provider-tokens/dwave", `{"token":12345}`, 400, "must be a string"},
	{"token value a list", "mia", "POST", "users/mia/provider-tokens/dwave", `{"token":["` + probeSecret + `","b"]}`, 400, "must be a string"},
	{"token value null", "mia", "POST", "users/mia/provider-tokens/dwave", `{"token":null}`, 400, "must be a string"},
	{"token value not UTF-8", "mia", "POST", "users/mia/provider-tokens/dwave", "{\"token\":\"" + probeSecret + "\xff\xfecd\"}", 400, "not valid UTF-8"},
	{"token value oversized", "mia", "POST", "users/mia/provider-tokens/dwave", `{"token":"` + probeSecret + strings.Repeat("t", 16*1024+1-len(probeSecret)) + `"}`, 400, "at most"},
	{"token with a thousand fields", "mia", "POST", "users/mia/provider-tokens/dwave", hugeObject(1000), 400, "unknown field"},
	{"organization token by a member", "mia", "POST", "orgs/acme/provider-tokens/dwave", `{"token":"` + probeSecret + `"}`, 403, "permission denied"},
	{"organization token, bad org name", "root", "POST", "orgs/bad%2Forg/provider-tokens/dwave", `{"token":"t"}`, 404, "unsupported path"},
	{"organization token, org name with two dots", "root", "POST", "orgs/a..b/provider-tokens/dwave", `{"token":"t"}`, 400, "org is not a valid name"},
	{"resolve for an org name with two dots", "mia", "GET", "resolve/dwave?org=a..b", ``, 400, "org is not a valid name"},
	{"resolve without an entity", "root", "GET", "resolve/dwave", ``, 400, "identity entity"},
	{"resolve for a foreign organization", "paul", "GET", "resolve/dwave?org=acme", ``, 403, "not a member"},
	{"resolve an unknown provider name", "mia", "GET", "resolve/No_Such", ``, 404, "unsupported path"},
}

func hugeFieldList(n int) string {
	fields := make([]string, n)
	for i := range fields {
		fields[i] = fmt.Sprintf("f%d", i)
	}
	return strings.Join(fields, ",")
}

func hugeObject(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"f%d":"v"`, i)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// TestBadInputIsRefusedAndChangesNothing sends every malformed request of
// the table to the real server: each is answered with its 4xx and a
// message naming the problem, and the engine's storage (read through
// sys/raw) is the same before and after.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	ctx := context.Background()
	if len(badRequests) < 40 {
		t.Fatalf("the table has %d cases; it must keep at least 40", len(badRequests))
	}
	s.remember(probeSecret, "a secret-looking value of the bad-input table")
	s.remember(probePAT, "a PAT-looking value of the bad-input table")
	// The "existing name" case needs mia's token "existing"; an earlier run
	// (-count) may have created it already.
	if r := call(t, "mia", "POST", mount+"/users/mia/tokens/existing", nil); r.status != 200 && !(r.status == 400 && strings.Contains(r.String(), "rotate")) {
		t.Fatalf("creating mia's token \"existing\": %s", r)
	}

	// Nothing may write meanwhile: the periodic sweep is off and parallel
	// tests wait, but Vault runs the engine's periodic function about once
	// a minute, which writes the last uses verify noted, and revokes the
	// leases earlier tests left when they expire. Those leases are revoked
	// now, recording is off for this test and a tidy writes what earlier
	// tests noted, so that nothing lands between two snapshots.
	root := as(t, "root")
	if err := root.Sys().RevokePrefixWithContext(ctx, mount+"/"); err != nil {
		t.Fatal(err)
	}
	config, err := root.Logical().Read(mount + "/config")
	if err != nil {
		t.Fatal(err)
	}
	granularity := config.Data["last_used_granularity"]
	if _, err := root.Logical().Write(mount+"/config", map[string]interface{}{"last_used_granularity": 0}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := root.Logical().Write(mount+"/config", map[string]interface{}{"last_used_granularity": granularity}); err != nil {
			t.Error(err)
		}
	})
	runTidy(t, false)

	// Each case's "after" is the next one's "before", and the storage is
	// read half as often.
	before, err := vaultharness.StorageSnapshot(ctx, root, mount)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range badRequests {
		t.Run(c.name, func(t *testing.T) {
			status, msg := send(t, c.who, c.method, c.path, c.body)
			if status != c.status || !strings.Contains(msg, c.want) {
				t.Errorf("%s %s: got %d %q, want %d naming %q", c.method, c.path, status, msg, c.status, c.want)
			}
			if strings.Contains(msg, probeSecret) || strings.Contains(msg, probePAT) {
				t.Errorf("%s %s: the error repeats a value of the request", c.method, c.path)
			}
			after, err := vaultharness.StorageSnapshot(ctx, as(t, "root"), mount)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, after) {
				t.Errorf("%s %s changed the engine's storage: %s", c.method, c.path, changedKeys(before, after))
			}
			before = after
		})
	}
}

// TestGarbledTokensAreInactive covers the malformed tokens, which verify
// answers - by contract - with 200 and active=false, touching nothing.
func TestGarbledTokensAreInactive(t *testing.T) {
	name := uniqueName("garble-source")
	token := createPAT(t, "mia", name, nil)["token"].(string)
	last := token[len(token)-1]
	other := byte('A')
	if last == 'A' {
		other = 'B'
	}
	for name, garbled := range map[string]string{
		"wrong prefix":   "ghp_" + token[len("plqk_"):],
		"wrong checksum": token[:len(token)-1] + string(other),
		"too short":      token[:len(token)-3],
		"too long":       token + "AAA",
		"not base62":     token[:10] + "-" + token[11:],
	} {
		if got := verify(t, garbled); !reflect.DeepEqual(got, map[string]interface{}{"active": false}) {
			t.Errorf("%s: %v", name, got)
		}
	}
	if _, err := as(t, "mia").Logical().Delete(mount + "/users/mia/tokens/" + name); err != nil {
		t.Fatal(err)
	}
}

// send makes a raw HTTP request - bodies here are often not even JSON -
// and returns its status and Vault's error messages.
func send(t *testing.T, who, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.Addr+"/v1/"+mount+"/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", tokenOf(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var decoded struct{ Errors []string }
	_ = json.NewDecoder(resp.Body).Decode(&decoded)
	if len(decoded.Errors) == 0 {
		return resp.StatusCode, http.StatusText(resp.StatusCode)
	}
	return resp.StatusCode, strings.Join(decoded.Errors, "; ")
}

// changedKeys names the keys added, removed or changed between two
// snapshots (never their values).
func changedKeys(before, after map[string]string) string {
	var changed []string
	for key, value := range after {
		if old, ok := before[key]; !ok {
			changed = append(changed, "+"+key)
		} else if old != value {
			changed = append(changed, "~"+key)
		}
	}
	for key := range before {
		if _, ok := after[key]; !ok {
			changed = append(changed, "-"+key)
		}
	}
	sort.Strings(changed)
	return strings.Join(changed, ", ")
}
