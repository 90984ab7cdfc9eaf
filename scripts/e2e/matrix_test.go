//go:build e2e

package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// matrixCallers are the role matrix's callers: users logged in through
// userpass in every organization role, the verifier, and three kinds of
// operator - a token with planqk-admin and no entity, a user whose login
// carries planqk-admin (the engine's own checks apply to his entity), and a
// platform admin (in group planqk-admins, planqk_org=*, planqk_role=admin).
var matrixCallers = []struct{ label, who string }{
	{"owner", "olivia"},
	{"maintainer", "max"},
	{"member", "mia"},
	{"owner elsewhere", "nina"},
	{"plain user", "paul"},
	{"verifier", "verifier"},
	{"operator without an entity", "operator"},
	{"operator with an entity", operatorWithEntity},
	{"platform admin", "ada"},
	{"auditor", "auditor"},
	{"scanner", "scanner"},
	{"broker", "broker"},
}

// matrixAction is one row of the role matrix.
type matrixAction struct {
	name string
	// expect is each caller's status; a caller not named gets 403.
	expect map[string]int
	// do prepares the object the request acts on, sends the request as who
	// and returns the answer with the checks of its effect.
	do func(t *testing.T, who string) (response, effect)
}

// effect checks what a request did: allowed runs when the answer has the
// expected status and that status admits the request (2xx, or 404 for a
// list with nothing the caller may see); refused when it is a 400 or 403,
// to prove that nothing changed.
type effect struct {
	allowed func(t *testing.T, r response)
	refused func(t *testing.T)
}

// TestRoleMatrix asserts every cell of the role matrix under the bootstrap
// policies and the engine's own checks: the exact status, and for an
// allowed request the data it must answer and its effect (a 200 with the
// wrong data, or a 404, fails), for a refused one that nothing changed.
func TestRoleMatrix(t *testing.T) {
	orgValue := "ionq-acme-matrix-key-" + uniqueName("v")
	globexValue := "ionq-globex-matrix-key-" + uniqueName("v")
	leaDWave := "lea-dwave-matrix-token-" + uniqueName("v")
	for _, v := range []string{orgValue, globexValue, leaDWave} {
		s.remember(v, "a provider token of the role matrix")
	}
	orgToken := mount + "/orgs/acme/provider-tokens/ionq"
	setOrgToken := func(t *testing.T) {
		t.Helper()
		if r := call(t, "root", "POST", orgToken, map[string]interface{}{"api_key": orgValue}); r.status != 200 {
			t.Fatalf("root stores acme's IonQ key: %s", r)
		}
	}
	orgTokenHint := func(t *testing.T) (int, string) {
		t.Helper()
		r := call(t, "root", "GET", orgToken, nil)
		hints, _ := r.data["secret_hints"].(map[string]interface{})
		hint, _ := hints["api_key"].(string)
		return r.status, hint
	}
	t.Cleanup(func() {
		call(t, "root", "DELETE", orgToken, nil)
		call(t, "root", "DELETE", mount+"/orgs/globex/provider-tokens/ionq", nil)
	})

	// Lea - in no row a caller - owns the objects of the "another user" rows.
	targetName := uniqueName("matrix-target")
	target := createPAT(t, "lea", targetName, nil)
	if r := call(t, "lea", "POST", mount+"/users/lea/provider-tokens/dwave", map[string]interface{}{"token": leaDWave}); r.status != 200 {
		t.Fatalf("lea stores her D-Wave token: %s", r)
	}
	role := uniqueName("matrix-role")
	if r := call(t, "root", "POST", mount+"/roles/"+role, map[string]interface{}{"ttl": "5m", "max_ttl": "1h"}); r.status != 204 {
		t.Fatalf("root writes role %s: %s", role, r)
	}
	t.Cleanup(func() { call(t, "root", "DELETE", mount+"/roles/"+role, nil) })
	config := call(t, "root", "GET", mount+"/config", nil)
	if config.status != 200 {
		t.Fatalf("root reads the configuration: %s", config)
	}
	defaultTTL := config.data["default_ttl"]
	t.Cleanup(func() { call(t, "root", "POST", mount+"/config", map[string]interface{}{"default_ttl": defaultTTL}) })

	inAcme := map[string]bool{"olivia": true, "max": true, "mia": true}
	ownersAndMaintainers := map[string]int{"olivia": 200, "max": 200}
	// The three kinds of operator: 200, or 204 for a write that answers
	// no data.
	operators := map[string]int{"operator": 200, operatorWithEntity: 200, "ada": 200}
	operatorsNoContent := map[string]int{"operator": 204, operatorWithEntity: 204, "ada": 204}
	everyUser := func(status int) map[string]int {
		out := map[string]int{"operator": status}
		for _, c := range cast {
			out[c.user] = status
		}
		return out
	}
	// and the auditor, who reads configuration and catalogue metadata.
	withAuditor := func(expect map[string]int) map[string]int {
		out := map[string]int{"auditor": 200}
		for who, status := range expect {
			out[who] = status
		}
		return out
	}
	leaseCount := func(t *testing.T) int {
		r := call(t, "root", "LIST", "sys/leases/lookup/"+mount+"/users/lea/creds/runtime/", nil)
		keys, _ := r.data["keys"].([]interface{})
		return len(keys)
	}

	actions := []matrixAction{
		{
			name:   "write an organization's provider token",
			expect: merge(ownersAndMaintainers, map[string]int{"operator": 200, "ada": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				value := "ionq-matrix-write-" + uniqueName(who)
				s.remember(value, "a provider token written in the role matrix")
				r := call(t, who, "POST", orgToken, map[string]interface{}{"api_key": value})
				return r, effect{
					allowed: func(t *testing.T, r response) {
						if r.data["org"] != "acme" || r.data["provider"] != "ionq" || strings.Contains(asJSON(t, r.data), value) {
							t.Errorf("the write answered %v", r.data)
						}
						if status, hint := orgTokenHint(t); status != 200 || hint != "****"+last4(value) {
							t.Errorf("after the write the stored token's hint is %d %q", status, hint)
						}
					},
					refused: func(t *testing.T) {
						if status, hint := orgTokenHint(t); status != 200 || hint != "****"+last4(orgValue) {
							t.Errorf("a refused write changed the stored token: %d %q", status, hint)
						}
					},
				}
			},
		},
		{
			name:   "read an organization's provider-token metadata",
			expect: merge(ownersAndMaintainers, map[string]int{"mia": 200, "operator": 200, "ada": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				return call(t, who, "GET", orgToken, nil), effect{allowed: func(t *testing.T, r response) {
					hints, _ := r.data["secret_hints"].(map[string]interface{})
					if r.data["org"] != "acme" || hints["api_key"] != "****"+last4(orgValue) || r.data["api_key"] != nil || strings.Contains(asJSON(t, r.data), orgValue) {
						t.Errorf("metadata: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "list an organization's provider tokens",
			expect: merge(ownersAndMaintainers, map[string]int{"mia": 200, "operator": 200, "ada": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				return call(t, who, "LIST", mount+"/orgs/acme/provider-tokens/", nil), effect{allowed: func(t *testing.T, r response) {
					if !slices.Contains(keysOf(r), "ionq") {
						t.Errorf("list: %v", r.data)
					}
				}}
			},
		},
		{
			// An operator without an entity is allowed by ACL, but resolve
			// is for users: 400.
			name:   "resolve an organization's provider token",
			expect: merge(ownersAndMaintainers, map[string]int{"mia": 200, "ada": 200, "operator": 400}),
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				return call(t, who, "GET", mount+"/resolve/ionq?org=acme", nil), effect{allowed: func(t *testing.T, r response) {
					if r.data["api_key"] != orgValue || r.data["source"] != "organization" || r.data["org"] != "acme" {
						t.Errorf("resolve answered source %v, org %v and the right key: %v", r.data["source"], r.data["org"], r.data["api_key"] == orgValue)
					}
				}}
			},
		},
		{
			name:   "read an organization's settings",
			expect: merge(ownersAndMaintainers, map[string]int{"mia": 200, "operator": 200, "ada": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/orgs/acme/settings", nil), effect{allowed: func(t *testing.T, r response) {
					if r.data["org"] != "acme" || r.data["provider_tokens_for"] != "member" {
						t.Errorf("settings: %v", r.data)
					}
				}}
			},
		},
		{
			// Set to maintainers and back at once: no other row sees it.
			name:   "change an organization's settings",
			expect: map[string]int{"olivia": 200, "operator": 200, "ada": 200},
			do: func(t *testing.T, who string) (response, effect) {
				setting := func() interface{} {
					return call(t, "root", "GET", mount+"/orgs/acme/settings", nil).data["provider_tokens_for"]
				}
				t.Cleanup(func() {
					call(t, "root", "POST", mount+"/orgs/acme/settings", map[string]interface{}{"provider_tokens_for": "member"})
				})
				return call(t, who, "POST", mount+"/orgs/acme/settings", map[string]interface{}{"provider_tokens_for": "maintainer"}), effect{
					allowed: func(t *testing.T, r response) {
						if r.data["provider_tokens_for"] != "maintainer" || setting() != "maintainer" {
							t.Errorf("settings after the write: %v", r.data)
						}
						call(t, "root", "POST", mount+"/orgs/acme/settings", map[string]interface{}{"provider_tokens_for": "member"})
					},
					refused: func(t *testing.T) {
						if got := setting(); got != "member" {
							t.Errorf("a refused write changed the setting to %v", got)
						}
					},
				}
			},
		},
		{
			name:   "delete an organization's provider token",
			expect: map[string]int{"olivia": 204, "max": 204, "operator": 204, "ada": 204},
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				return call(t, who, "DELETE", orgToken, nil), effect{
					allowed: func(t *testing.T, r response) {
						if status, _ := orgTokenHint(t); status != 404 {
							t.Errorf("after the delete the token reads %d", status)
						}
					},
					refused: func(t *testing.T) {
						if status, _ := orgTokenHint(t); status != 200 {
							t.Errorf("a refused delete removed the token: %d", status)
						}
					},
				}
			},
		},
		{
			// The engine lists only the caller's organizations: with none
			// to show, the list is empty, which Vault answers with 404.
			name: "list the organizations with provider tokens",
			expect: map[string]int{"olivia": 200, "max": 200, "mia": 200, "nina": 200, "lea": 200, "ada": 200, "operator": 200,
				"paul": 404, operatorWithEntity: 404},
			do: func(t *testing.T, who string) (response, effect) {
				setOrgToken(t)
				if r := call(t, "root", "POST", mount+"/orgs/globex/provider-tokens/ionq", map[string]interface{}{"api_key": globexValue}); r.status != 200 {
					t.Fatalf("root stores globex's IonQ key: %s", r)
				}
				return call(t, who, "LIST", mount+"/orgs/", nil), effect{allowed: func(t *testing.T, r response) {
					keys := keysOf(r)
					everything := who == "operator" || who == "ada"
					if slices.Contains(keys, "acme") != (inAcme[who] || everything) || slices.Contains(keys, "globex") != (who == "nina" || everything) {
						t.Errorf("%s sees organizations %v", who, keys)
					}
				}}
			},
		},
		{
			name:   "list another user's PATs",
			expect: map[string]int{"operator": 200, "ada": 200},
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "LIST", mount+"/users/lea/tokens/", nil), effect{allowed: func(t *testing.T, r response) {
					info, _ := r.data["key_info"].(map[string]interface{})
					entry, _ := info[targetName].(map[string]interface{})
					if !slices.Contains(keysOf(r), targetName) || entry["token_id"] != target["token_id"] {
						t.Errorf("list lacks %s: %v", targetName, r.data)
					}
				}}
			},
		},
		{
			name:   "read another user's PAT",
			expect: map[string]int{"operator": 200, "ada": 200},
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/users/lea/tokens/"+targetName, nil), effect{allowed: func(t *testing.T, r response) {
					if r.data["token_id"] != target["token_id"] || r.data["user"] != "lea" || r.data["token"] != nil {
						t.Errorf("read: %v", redacted(r.data))
					}
				}}
			},
		},
		{
			name:   "revoke another user's PAT",
			expect: map[string]int{"operator": 204, "ada": 204},
			do: func(t *testing.T, who string) (response, effect) {
				victim := createPAT(t, "lea", uniqueName("matrix-victim"), nil)
				secret := victim["token"].(string)
				return call(t, who, "DELETE", mount+"/users/lea/tokens/"+victim["name"].(string), nil), effect{
					allowed: func(t *testing.T, r response) {
						if verify(t, secret)["active"] != false {
							t.Error("the revoked PAT still verifies")
						}
					},
					refused: func(t *testing.T) {
						if verify(t, secret)["active"] != true {
							t.Error("a refused revoke revoked the PAT")
						}
					},
				}
			},
		},
		{
			// Only the owner's own entity creates PATs: the engine answers
			// 400 to whoever the ACL lets through.
			name:   "create a PAT for another user",
			expect: map[string]int{"operator": 400, operatorWithEntity: 400, "ada": 400},
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-stolen")
				return call(t, who, "POST", mount+"/users/lea/tokens/"+name, nil), effect{refused: func(t *testing.T) {
					if r := call(t, "lea", "GET", mount+"/users/lea/tokens/"+name, nil); r.status != 404 {
						t.Errorf("a refused create left %s: %s", name, r)
					}
				}}
			},
		},
		{
			name:   "lease a PAT for another user",
			expect: map[string]int{"operator": 400, operatorWithEntity: 400, "ada": 400},
			do: func(t *testing.T, who string) (response, effect) {
				before := leaseCount(t)
				return call(t, who, "GET", mount+"/users/lea/creds/runtime", nil), effect{refused: func(t *testing.T) {
					if after := leaseCount(t); after != before {
						t.Errorf("a refused creds read left a lease: %d -> %d", before, after)
					}
				}}
			},
		},
		{
			name:   "read another user's provider token metadata",
			expect: map[string]int{"operator": 200, "ada": 200},
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/users/lea/provider-tokens/dwave", nil), effect{allowed: func(t *testing.T, r response) {
					hints, _ := r.data["secret_hints"].(map[string]interface{})
					if r.data["user"] != "lea" || hints["token"] != "****"+last4(leaDWave) || r.data["token"] != nil {
						t.Errorf("metadata: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "verify a PAT",
			expect: merge(operators, map[string]int{"verifier": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "POST", mount+"/verify", map[string]interface{}{"token": target["token"]}), effect{allowed: func(t *testing.T, r response) {
					if r.data["active"] != true || r.data["user"] != "lea" || r.data["token_id"] != target["token_id"] {
						t.Errorf("verify: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "exchange a user's PAT for a provider token",
			expect: merge(operators, map[string]int{"broker": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "POST", mount+"/exchange/dwave", map[string]interface{}{"token": target["token"]}), effect{allowed: func(t *testing.T, r response) {
					behalf, _ := r.data["on_behalf_of"].(map[string]interface{})
					if r.data["token"] != leaDWave || r.data["source"] != "user" || behalf["user"] != "lea" || behalf["token_id"] != target["token_id"] {
						t.Errorf("exchange: %v", redacted(r.data))
					}
				}}
			},
		},
		{
			name:   "exchange a user's PAT for a job's environment",
			expect: merge(operators, map[string]int{"broker": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "POST", mount+"/exchange", map[string]interface{}{"token": target["token"], "org": "acme"}), effect{allowed: func(t *testing.T, r response) {
					env, _ := r.data["env"].(map[string]interface{})
					if env["DWAVE_API_TOKEN"] != leaDWave || env["PLANQK_ORGANIZATION_ID"] != "acme" {
						t.Errorf("exchange: %v", redacted(r.data))
					}
				}}
			},
		},
		{
			name:   "revoke a leaked PAT by value",
			expect: merge(operators, map[string]int{"scanner": 200}),
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-leaked")
				leaked := createPAT(t, "lea", name, nil)["token"].(string)
				t.Cleanup(func() { call(t, "root", "DELETE", mount+"/users/lea/tokens/"+name, nil) })
				r := call(t, who, "POST", mount+"/leaks/revoke", map[string]interface{}{"leaks": []interface{}{
					map[string]interface{}{"token": leaked, "url": "https://example.com/matrix", "source": "content"},
				}})
				return r, effect{
					allowed: func(t *testing.T, r response) {
						if fmt.Sprint(r.data["labels"]) != "[true_positive]" || verify(t, leaked)["active"] != false || len(r.data) != 2 {
							t.Errorf("leaks/revoke answered %v; the token must be revoked", r.data)
						}
					},
					refused: func(t *testing.T) {
						if verify(t, leaked)["active"] != true {
							t.Errorf("a refused leaks/revoke revoked the token")
						}
					},
				}
			},
		},
		{
			name:   "read the configuration",
			expect: withAuditor(operators),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/config", nil), effect{allowed: func(t *testing.T, r response) {
					if r.data["token_prefix"] != "plqk_" || fmt.Sprint(r.data["tidy_interval"]) != "0" {
						t.Errorf("config: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "write the configuration",
			expect: operators,
			do: func(t *testing.T, who string) (response, effect) {
				call(t, "root", "POST", mount+"/config", map[string]interface{}{"default_ttl": defaultTTL})
				r := call(t, who, "POST", mount+"/config", map[string]interface{}{"default_ttl": "721h"})
				stored := func() string { return fmt.Sprint(call(t, "root", "GET", mount+"/config", nil).data["default_ttl"]) }
				return r, effect{
					allowed: func(t *testing.T, r response) {
						if got := stored(); got != "2595600" {
							t.Errorf("after the write default_ttl is %s", got)
						}
						call(t, "root", "POST", mount+"/config", map[string]interface{}{"default_ttl": defaultTTL})
					},
					refused: func(t *testing.T) {
						if got := stored(); got != fmt.Sprint(defaultTTL) {
							t.Errorf("a refused write changed default_ttl to %s", got)
						}
					},
				}
			},
		},
		{
			name:   "read a role",
			expect: withAuditor(everyUser(200)),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/roles/"+role, nil), effect{allowed: func(t *testing.T, r response) {
					if fmt.Sprint(r.data["ttl"]) != "300" || fmt.Sprint(r.data["max_ttl"]) != "3600" {
						t.Errorf("role: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "list the roles",
			expect: withAuditor(everyUser(200)),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "LIST", mount+"/roles/", nil), effect{allowed: func(t *testing.T, r response) {
					if !slices.Contains(keysOf(r), role) {
						t.Errorf("roles: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "write a role",
			expect: operatorsNoContent,
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-role-write")
				t.Cleanup(func() { call(t, "root", "DELETE", mount+"/roles/"+name, nil) })
				r := call(t, who, "POST", mount+"/roles/"+name, map[string]interface{}{"ttl": "2m"})
				return r, effect{
					allowed: func(t *testing.T, r response) {
						if read := call(t, "root", "GET", mount+"/roles/"+name, nil); read.status != 200 || fmt.Sprint(read.data["ttl"]) != "120" {
							t.Errorf("the written role reads %s %v", read, read.data)
						}
					},
					refused: func(t *testing.T) {
						if read := call(t, "root", "GET", mount+"/roles/"+name, nil); read.status != 404 {
							t.Errorf("a refused write created the role: %s", read)
						}
					},
				}
			},
		},
		{
			name:   "delete a role",
			expect: operatorsNoContent,
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-role-delete")
				t.Cleanup(func() { call(t, "root", "DELETE", mount+"/roles/"+name, nil) })
				if r := call(t, "root", "POST", mount+"/roles/"+name, map[string]interface{}{"ttl": "2m"}); r.status != 204 {
					t.Fatalf("root writes role %s: %s", name, r)
				}
				return call(t, who, "DELETE", mount+"/roles/"+name, nil), deletes(mount + "/roles/" + name)
			},
		},
		{
			name:   "read a provider",
			expect: withAuditor(everyUser(200)),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "GET", mount+"/providers/ibm-quantum", nil), effect{allowed: func(t *testing.T, r response) {
					if r.data["built_in"] != true || !strings.Contains(asJSON(t, r.data["fields"]), `"token"`) {
						t.Errorf("provider: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "list the providers",
			expect: withAuditor(everyUser(200)),
			do: func(t *testing.T, who string) (response, effect) {
				return call(t, who, "LIST", mount+"/providers/", nil), effect{allowed: func(t *testing.T, r response) {
					if !slices.Contains(keysOf(r), "ibm-quantum") || !slices.Contains(keysOf(r), "aws-braket") {
						t.Errorf("providers: %v", r.data)
					}
				}}
			},
		},
		{
			name:   "write a provider",
			expect: operators,
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-provider")
				t.Cleanup(func() { call(t, "root", "DELETE", mount+"/providers/"+name, nil) })
				r := call(t, who, "POST", mount+"/providers/"+name, map[string]interface{}{
					"description": "written by " + who, "required_fields": "api_key", "secret_fields": "api_key",
				})
				return r, effect{
					allowed: func(t *testing.T, r response) {
						if read := call(t, "root", "GET", mount+"/providers/"+name, nil); read.status != 200 || read.data["description"] != "written by "+who {
							t.Errorf("the written provider reads %s %v", read, read.data)
						}
					},
					refused: func(t *testing.T) {
						if read := call(t, "root", "GET", mount+"/providers/"+name, nil); read.status != 404 {
							t.Errorf("a refused write created the provider: %s", read)
						}
					},
				}
			},
		},
		{
			name:   "delete a provider",
			expect: operatorsNoContent,
			do: func(t *testing.T, who string) (response, effect) {
				name := uniqueName("matrix-provider-delete")
				t.Cleanup(func() { call(t, "root", "DELETE", mount+"/providers/"+name, nil) })
				if r := call(t, "root", "POST", mount+"/providers/"+name, map[string]interface{}{"required_fields": "api_key"}); r.status != 200 {
					t.Fatalf("root writes provider %s: %s", name, r)
				}
				return call(t, who, "DELETE", mount+"/providers/"+name, nil), deletes(mount + "/providers/" + name)
			},
		},
		{
			name:   "tidy",
			expect: operators,
			do: func(t *testing.T, who string) (response, effect) {
				r := tidyAs(t, who)
				if r.status == 202 {
					r.status = 200 // an asynchronous tidy that started
				}
				// The status is the check here: what a tidy removes is
				// tested in expiry_test.go, its answer is being reshaped.
				return r, effect{allowed: func(t *testing.T, r response) {}}
			},
		},
	}

	for _, c := range matrixCallers {
		t.Run(c.label, func(t *testing.T) {
			for _, a := range actions {
				want, ok := a.expect[c.who]
				if !ok {
					want = 403
				}
				r, check := a.do(t, c.who)
				switch {
				case r.status != want:
					t.Errorf("%s: got %s, want %d", a.name, r, want)
				case want == 400 || want == 403:
					if check.refused != nil {
						check.refused(t)
					}
				case check.allowed != nil:
					check.allowed(t, r)
				default:
					t.Fatalf("%s: no check of an allowed answer", a.name)
				}
			}
		})
	}
}

// deletes checks after a delete of path that the object is gone when the
// delete was allowed, and still there when it was refused.
func deletes(path string) effect {
	return effect{
		allowed: func(t *testing.T, r response) {
			if read := call(t, "root", "GET", path, nil); read.status != 404 {
				t.Errorf("%s still reads %s after the delete", path, read)
			}
		},
		refused: func(t *testing.T) {
			if read := call(t, "root", "GET", path, nil); read.status != 200 {
				t.Errorf("a refused delete removed %s: %s", path, read)
			}
		},
	}
}

// tidyAs runs a tidy as who. When one is already running (409) it tries
// again until the other has finished.
func tidyAs(t *testing.T, who string) response {
	t.Helper()
	var r response
	eventually(t, time.Minute, "a tidy that is not refused as already running", func() (bool, string) {
		r = call(t, who, "POST", mount+"/tidy", map[string]interface{}{})
		return r.status != 409, r.String()
	})
	return r
}

func keysOf(r response) []string {
	raw, _ := r.data["keys"].([]interface{})
	keys := make([]string, 0, len(raw))
	for _, k := range raw {
		if key, ok := k.(string); ok {
			keys = append(keys, key)
		}
	}
	return keys
}

func merge(maps ...map[string]int) map[string]int {
	out := map[string]int{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func last4(secret string) string { return secret[len(secret)-4:] }
