//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"strings"
	"testing"
)

// Capability sets as Vault reports them, sorted.
const (
	deny       = "deny"
	full       = "create delete list read update"
	readList   = "list read"
	ownPaths   = "delete list read update"
	readUpdate = "read update"
)

// TestPolicyCapabilities asks Vault for each caller's exact capabilities
// on every path of the engine and on the identity groups, as the bootstrap
// policies grant them. The engine refuses much of what an over-broad
// policy would let through, which hides such a policy from the role
// matrix; here a capability too many or too few fails.
func TestPolicyCapabilities(t *testing.T) {
	orgPaths := func(org string) []string {
		return []string{mount + "/orgs/" + org + "/provider-tokens/ionq", mount + "/orgs/" + org + "/provider-tokens/"}
	}
	groups := []string{"planqk-acme-owners", "planqk-acme-maintainers", "planqk-acme-members", "planqk-globex-members", "planqk-admins"}
	platformAdmins := map[string]bool{"operator": true, operatorWithEntity: true, "ada": true}
	owners := map[string]string{"olivia": "acme", "nina": "globex"}
	roles := map[string]map[string]string{} // who -> org -> role
	for _, c := range cast {
		if c.org != "" && c.org != "*" {
			roles[c.user] = map[string]string{c.org: c.role}
		}
	}

	for _, c := range matrixCallers {
		t.Run(c.label, func(t *testing.T) {
			who := c.who
			isUser := who != "verifier" && who != "operator" && who != "auditor" && who != "scanner" && who != "broker" // logs in through userpass
			admin := platformAdmins[who]
			want := map[string]string{}
			set := func(caps string, paths ...string) {
				for _, p := range paths {
					want[p] = caps
				}
			}
			// Nothing by default: every path below not granted is denied.
			set(deny, mount+"/config", mount+"/tidy", mount+"/verify", mount+"/introspect",
				mount+"/inventory", mount+"/inventory/tokens", mount+"/inventory/provider-tokens", mount+"/tidy/status",
				mount+"/roles/runtime", mount+"/roles/", mount+"/providers/ibm-quantum", mount+"/providers/",
				mount+"/resolve/ionq", mount+"/exchange/ionq", mount+"/exchange", mount+"/orgs/", mount+"/leaks/revoke", mount+"/users/lea/leaks/",
				mount+"/orgs/acme", mount+"/unclaimed-orgs/acme/ionq", mount+"/unclaimed-orgs/acme/ionq/claim",
				mount+"/users/lea/tokens/laptop", mount+"/users/lea/tokens/", mount+"/users/lea/creds/runtime", mount+"/users/lea/provider-tokens/ionq",
				"sys/policy/planqk-user", "sys/policies/acl/planqk-admin", "identity/entity/name/lea", "auth/"+authMount+"/users/lea")
			set(deny, orgPaths("acme")...)
			set(deny, orgPaths("globex")...)
			set(deny, mount+"/orgs/acme/settings", mount+"/orgs/globex/settings")
			for _, g := range groups {
				set(deny, "identity/group/name/"+g)
			}
			if isUser {
				set(readList, mount+"/roles/runtime", mount+"/roles/", mount+"/providers/ibm-quantum", mount+"/providers/")
				set("read", mount+"/resolve/ionq")
				set("list", mount+"/orgs/")
				// Their own paths, templated on the entity's name.
				set(ownPaths, mount+"/users/"+who+"/tokens/laptop", mount+"/users/"+who+"/tokens/", mount+"/users/"+who+"/provider-tokens/ionq")
				set("read", mount+"/users/"+who+"/creds/runtime")
				set("list", mount+"/users/"+who+"/leaks/")
			}
			for org, role := range roles[who] {
				switch role {
				case "member":
					set(readList, orgPaths(org)...)
				case "maintainer", "owner":
					set(full, orgPaths(org)...)
				}
				// The settings: members read, owners also change them.
				set("read", mount+"/orgs/"+org+"/settings")
				if role == "owner" {
					set(readUpdate, mount+"/orgs/"+org+"/settings")
				}
			}
			if org, ok := owners[who]; ok {
				set(readUpdate, "identity/group/name/planqk-"+org+"-maintainers", "identity/group/name/planqk-"+org+"-members")
			}
			if admin {
				// The whole mount - except an admin's own paths, where
				// planqk-user's templated pattern is the more specific
				// one. A list path (trailing '/') is matched first without
				// its slash, where only the whole-mount pattern applies.
				for path := range want {
					own := strings.HasPrefix(path, mount+"/users/"+who+"/") && !strings.HasSuffix(path, "/")
					if strings.HasPrefix(path, mount+"/") && !own {
						want[path] = full
					}
				}
				if isUser {
					// planqk-user names the own leaks list exactly: the
					// most specific pattern, whatever the whole mount grants.
					set("list", mount+"/users/"+who+"/leaks/")
				}
			}
			if who == "verifier" {
				set(readUpdate, mount+"/verify")
				set("update", mount+"/introspect")
			}
			if who == "scanner" {
				set("update", mount+"/leaks/revoke")
			}
			if who == "broker" {
				// The exchange and nothing else; no user reaches it.
				set(readUpdate, mount+"/exchange/ionq", mount+"/exchange")
			}
			if who == "auditor" {
				// Inventory and metadata; nothing that returns a secret.
				set(readList, mount+"/inventory", mount+"/inventory/tokens", mount+"/inventory/provider-tokens",
					mount+"/roles/runtime", mount+"/roles/", mount+"/providers/ibm-quantum", mount+"/providers/")
				set("read", mount+"/config", mount+"/tidy/status")
			}

			paths := make([]string, 0, len(want))
			for p := range want {
				paths = append(paths, p)
			}
			got := capabilities(t, who, paths)
			sort.Strings(paths)
			for _, p := range paths {
				if got[p] != want[p] {
					t.Errorf("%s on %s: got [%s], want [%s]", who, p, got[p], want[p])
				}
			}
		})
	}
}

// capabilities returns who's capabilities on each path, sorted and joined
// by spaces, from sys/capabilities-self; for a token without the default
// policy (which grants that endpoint) root asks sys/capabilities.
func capabilities(t *testing.T, who string, paths []string) map[string]string {
	t.Helper()
	var r response
	if who == "verifier" || who == "auditor" || who == "scanner" || who == "broker" {
		r = call(t, "root", "POST", "sys/capabilities", map[string]interface{}{"token": tokenOf(who), "paths": paths})
	} else {
		r = call(t, who, "POST", "sys/capabilities-self", map[string]interface{}{"paths": paths})
	}
	if r.status != 200 {
		t.Fatalf("capabilities of %s: %s", who, r)
	}
	out := make(map[string]string, len(paths))
	for _, p := range paths {
		raw, ok := r.data[p].([]interface{})
		if !ok {
			t.Fatalf("capabilities of %s: no answer for %s in %v", who, p, r.data)
		}
		caps := make([]string, len(raw))
		for i, c := range raw {
			caps[i] = fmt.Sprint(c)
		}
		sort.Strings(caps)
		out[p] = strings.Join(caps, " ")
	}
	return out
}
