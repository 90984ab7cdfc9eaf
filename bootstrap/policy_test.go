package bootstrap

import (
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// policyPath is one path block of an ACL policy, as Vault reads it.
type policyPath struct {
	Capabilities      []string                 `hcl:"capabilities"`
	AllowedParameters map[string][]interface{} `hcl:"allowed_parameters"`
}

// parsePolicy parses an ACL policy with HCL, as Vault does, and returns its
// path blocks by path. It fails the test on anything but path blocks with
// capabilities and allowed_parameters, and on a path given twice (Vault
// would merge the two).
func parsePolicy(t *testing.T, policy string) map[string]policyPath {
	t.Helper()
	file, err := hcl.ParseString(policy)
	if err != nil {
		t.Fatalf("policy does not parse: %v\n%s", err, policy)
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		t.Fatalf("policy is not a list of blocks:\n%s", policy)
	}
	paths := map[string]policyPath{}
	for _, item := range list.Items {
		if len(item.Keys) != 2 || item.Keys[0].Token.Text != "path" {
			t.Fatalf("policy has a block other than a path:\n%s", policy)
		}
		path, ok := item.Keys[1].Token.Value().(string)
		if !ok {
			t.Fatalf("path key is not a string:\n%s", policy)
		}
		body, ok := item.Val.(*ast.ObjectType)
		if !ok {
			t.Fatalf("path %s is not a block:\n%s", path, policy)
		}
		for _, setting := range body.List.Items {
			if key := setting.Keys[0].Token.Text; key != "capabilities" && key != "allowed_parameters" {
				t.Errorf("path %s sets %s", path, key)
			}
		}
		var block policyPath
		if err := hcl.DecodeObject(&block, item.Val); err != nil {
			t.Fatalf("path %s: %v", path, err)
		}
		if _, twice := paths[path]; twice {
			t.Errorf("path %s is given twice", path)
		}
		paths[path] = block
	}
	return paths
}

func caps(c ...string) policyPath { return policyPath{Capabilities: c} }

// TestPolicy_grantsExactlyTheExpectedPaths renders every policy for mount
// quantum and organization acme, parses it as Vault does, and compares its
// paths and capabilities with the whole expected list.
func TestPolicy_grantsExactlyTheExpectedPaths(t *testing.T) {
	owners := policyPath{
		Capabilities:      []string{"read", "update"},
		AllowedParameters: map[string][]interface{}{"member_entity_ids": {}},
	}
	want := map[string]map[string]policyPath{
		"planqk-admin": {
			"quantum/*":           caps("create", "read", "update", "delete", "list"),
			"quantum/roles/*":     caps("create", "read", "update", "delete", "list"),
			"quantum/providers/*": caps("create", "read", "update", "delete", "list"),
			"quantum/resolve/*":   caps("create", "read", "update", "delete", "list"),
			"quantum/orgs/":       caps("create", "read", "update", "delete", "list"),
		},
		"planqk-user": {
			"quantum/users/{{identity.entity.name}}":                   caps("read"),
			"quantum/users/{{identity.entity.name}}/tokens/*":          caps("read", "update", "delete", "list"),
			"quantum/users/{{identity.entity.name}}/creds/*":           caps("read"),
			"quantum/users/{{identity.entity.name}}/runtime/*":         caps("read", "update"),
			"quantum/users/{{identity.entity.name}}/settings":          caps("read", "update"),
			"quantum/users/{{identity.entity.name}}/provider-tokens/*": caps("read", "update", "delete", "list"),
			"quantum/resolve/*":   caps("read"),
			"quantum/providers/*": caps("read", "list"),
			"quantum/roles/*":     caps("read", "list"),
			"quantum/orgs/":       caps("list"),
			"quantum/users/{{identity.entity.name}}/leaks/": caps("list"),
		},
		"planqk-verifier": {
			"quantum/verify":     caps("read", "update"),
			"quantum/introspect": caps("update"),
		},
		"planqk-scanner": {
			"quantum/leaks/revoke": caps("update"),
		},
		"planqk-broker": {
			"quantum/exchange":   caps("read", "update"),
			"quantum/exchange/*": caps("read", "update"),
		},
		"planqk-auditor": {
			"quantum/inventory":            caps("read", "list"),
			"quantum/inventory/*":          caps("read", "list"),
			"quantum/config":               caps("read"),
			"quantum/tidy/status":          caps("read"),
			"quantum/notifications/status": caps("read"),
			"quantum/providers/*":          caps("read", "list"),
			"quantum/roles/*":              caps("read", "list"),
		},
		"org-member": {
			"quantum/orgs/acme/provider-tokens/*": caps("read", "list"),
			"quantum/orgs/acme/settings":          caps("read"),
		},
		"org-maintainer": {
			"quantum/orgs/acme/provider-tokens/*": caps("create", "read", "update", "delete", "list"),
			"quantum/orgs/acme/settings":          caps("read"),
		},
		"org-owner": {
			"quantum/orgs/acme/provider-tokens/*":         caps("create", "read", "update", "delete", "list"),
			"quantum/orgs/acme/settings":                  caps("read", "update"),
			"identity/group/name/planqk-acme-maintainers": owners,
			"identity/group/name/planqk-acme-members":     owners,
		},
	}
	if files := slices.Sorted(maps.Keys(want)); !slices.Equal(files, slices.Sorted(slices.Values(slices.Concat(platformPolicies, orgPolicies)))) {
		t.Fatalf("the expected list covers %v, the bootstrap has %v %v", files, platformPolicies, orgPolicies)
	}
	embedded, err := policyFiles.ReadDir("policies")
	must(t, err)
	if len(embedded) != len(want) {
		t.Errorf("policies/ holds %d files, %d are expected", len(embedded), len(want))
	}

	b := &Bootstrapper{Mount: "quantum"}
	for file, paths := range want {
		org := ""
		if slices.Contains(orgPolicies, file) {
			org = "acme"
		}
		policy, err := b.Policy(file, org)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := parsePolicy(t, policy); !reflect.DeepEqual(got, paths) {
			t.Errorf("%s grants\n  %v\nwant\n  %v", file, got, paths)
		}
	}
}

// TestPolicy_auditorReachesNoSecret: whatever else is added to the auditor
// policy, it must not reach a path that returns a secret.
func TestPolicy_auditorReachesNoSecret(t *testing.T) {
	policy, err := (&Bootstrapper{Mount: "planqk"}).Policy("planqk-auditor", "")
	must(t, err)
	for path, block := range parsePolicy(t, policy) {
		if !strings.HasPrefix(path, "planqk/") || strings.HasPrefix(path, "planqk/*") || strings.HasPrefix(path, "planqk/+") {
			t.Errorf("the auditor reaches %s", path)
		}
		for _, secret := range []string{"resolve", "users", "orgs", "creds", "runtime", "provider-tokens", "verify"} {
			if strings.Contains(path, "/"+secret) {
				t.Errorf("the auditor reaches %s", path)
			}
		}
		for _, c := range block.Capabilities {
			if c != "read" && c != "list" {
				t.Errorf("the auditor may %s %s", c, path)
			}
		}
	}
}

// TestPolicy_onlyTheBrokerReachesTheExchange: a provider token on behalf of
// a PAT is for the platform's job service alone (and the admins', whose
// policy reaches every path); a user, whose own PAT would do, never.
func TestPolicy_onlyTheBrokerReachesTheExchange(t *testing.T) {
	b := &Bootstrapper{Mount: "planqk"}
	for _, file := range slices.Concat(platformPolicies, orgPolicies) {
		if file == "planqk-admin" || file == "planqk-broker" {
			continue
		}
		org := ""
		if slices.Contains(orgPolicies, file) {
			org = "acme"
		}
		policy, err := b.Policy(file, org)
		must(t, err)
		for path := range parsePolicy(t, policy) {
			if strings.HasPrefix(path, "planqk/exchange") || strings.HasPrefix(path, "planqk/*") || strings.HasPrefix(path, "planqk/+") || strings.HasPrefix(path, "planqk/e*") {
				t.Errorf("%s reaches the exchange through %s", file, path)
			}
		}
	}
}

// renderRaw is Policy without its checks: the template alone.
func renderRaw(t *testing.T, file, mount, org string) string {
	t.Helper()
	raw, err := policyFiles.ReadFile("policies/" + file + ".hcl")
	must(t, err)
	tmpl := template.Must(template.New(file).Delims("[[", "]]").Parse(string(raw)))
	var out bytes.Buffer
	must(t, tmpl.Execute(&out, map[string]string{"Mount": mount, "Org": org}))
	return out.String()
}

// TestPolicy_hostileNameWouldInjectIfRenderedRaw shows that the injection
// the other tests refuse is real: rendered without checks, it grants sudo
// on sys/*.
func TestPolicy_hostileNameWouldInjectIfRenderedRaw(t *testing.T) {
	// The first path block alone: each block injects the same paths.
	rendered := renderRaw(t, "org-maintainer", "planqk", injection)
	first := strings.Index(rendered, "\npath ")
	if second := strings.Index(rendered[first+1:], "\npath "); second >= 0 {
		rendered = rendered[:first+1+second]
	}
	injected := parsePolicy(t, rendered)
	if !slices.Contains(injected["sys/*"].Capabilities, "sudo") {
		t.Fatalf("the injection test value does not inject: %v", injected)
	}
	if _, err := (&Bootstrapper{Mount: "planqk"}).Policy("org-maintainer", injection); err == nil {
		t.Error("Policy rendered the injection")
	}
}

// TestPolicy_refusesHostileValues calls the renderer directly, as a future
// caller that forgot to check names would.
func TestPolicy_refusesHostileValues(t *testing.T) {
	good := &Bootstrapper{Mount: "planqk"}
	for _, value := range slices.Concat(hostileNames, []string{"*"}) {
		for _, file := range orgPolicies {
			if policy, err := good.Policy(file, value); err == nil {
				t.Errorf("Policy(%s, %q) rendered:\n%s", file, value, policy)
			}
		}
		bad := &Bootstrapper{Mount: value}
		for _, file := range platformPolicies {
			if policy, err := bad.Policy(file, ""); err == nil {
				t.Errorf("Policy(%s) for mount %q rendered:\n%s", file, value, policy)
			}
		}
		if policy, err := bad.Policy("org-member", "acme"); err == nil {
			t.Errorf("Policy(org-member, acme) for mount %q rendered:\n%s", value, policy)
		}
	}
}

func TestPolicy_refusesMisuse(t *testing.T) {
	b := &Bootstrapper{Mount: "planqk"}
	for _, c := range []struct{ file, org, err string }{
		{"planqk-user", "acme", "takes no organization"},
		{"org-owner", "", "needs an organization"},
		{"org-owner", "*", "platform admin role"},
		{"../policies/planqk-admin", "", "unknown policy"},
		{"planqk-root", "", "unknown policy"},
	} {
		if _, err := b.Policy(c.file, c.org); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("Policy(%q, %q) = %v, want an error about %q", c.file, c.org, err, c.err)
		}
	}
}
