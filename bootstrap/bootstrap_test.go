package bootstrap

import (
	"strings"
	"testing"
)

func TestPolicy_rendersEveryFileForTheMountAndOrganization(t *testing.T) {
	b := &Bootstrapper{Mount: "quantum"}
	for _, file := range []string{"planqk-admin", "planqk-user", "planqk-verifier", "org-owner", "org-maintainer", "org-member"} {
		policy, err := b.Policy(file, "acme")
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if strings.Contains(policy, "[[") || !strings.Contains(policy, `path "quantum/`) {
			t.Errorf("%s is not rendered for mount quantum:\n%s", file, policy)
		}
		if strings.HasPrefix(file, "org-") && !strings.Contains(policy, "quantum/orgs/acme/provider-tokens/*") {
			t.Errorf("%s does not name the organization's tokens:\n%s", file, policy)
		}
	}
	user, _ := b.Policy("planqk-user", "")
	if !strings.Contains(user, "{{identity.entity.name}}") {
		t.Error("planqk-user must be templated on the entity name")
	}
	owner, _ := b.Policy("org-owner", "acme")
	if strings.Count(owner, `"member_entity_ids" = []`) != 2 || strings.Contains(owner, "planqk-acme-owners") {
		t.Errorf("owners may only change members of the maintainers and members groups:\n%s", owner)
	}
}

func TestGroupFor(t *testing.T) {
	cases := []struct{ org, role, want, err string }{
		{"acme", "owner", "planqk-acme-owners", ""},
		{"acme", "maintainer", "planqk-acme-maintainers", ""},
		{"acme", "member", "planqk-acme-members", ""},
		{"*", "admin", "planqk-admins", ""},
		{"acme", "admin", "", "platform-wide"},
		{"acme", "guest", "", "unknown role"},
	}
	for _, c := range cases {
		got, err := groupFor(c.org, c.role)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("groupFor(%q, %q) = %q, %v", c.org, c.role, got, err)
		}
	}
}
