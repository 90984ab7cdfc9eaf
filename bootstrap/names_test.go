package bootstrap

import (
	"slices"
	"strings"
	"testing"
)

func TestNameChecks(t *testing.T) {
	checks := map[string]func(string) error{
		"user":       checkUser,
		"login":      CheckLoginName,
		"org":        checkOrg,
		"member org": checkMemberOrg,
		"mount":      func(v string) error { return checkMount(mountField, v) },
		"auth mount": func(v string) error { return checkMount(authMountField, v) },
	}
	valid := map[string][]string{
		"user":       {"alice", "alice@example.com", "Mia.S-1_x", strings.Repeat("u", 128)},
		"login":      {"alice", "mia.s-1_x", strings.Repeat("u", 128)},
		"org":        {"acme", "acme-corp.eu", strings.Repeat("o", 128)},
		"member org": {"acme", "*"},
		"mount":      {"planqk", "planqk-prod", "pq.v2"},
		"auth mount": {"userpass", "userpass-planqk"},
	}
	invalid := map[string][]string{
		"user":       {"*"},
		"login":      {"alice@example.com", "*", "Mia", "Mia.S-1_x", "ALICE"},
		"org":        {"*", "acme@example.com", "ACME", "Acme", "acmE"},
		"member org": nil,
		"mount":      {"*", "planqk/", "secret/planqk"},
		"auth mount": {"*", "auth/userpass"},
	}
	for name, check := range checks {
		for _, v := range valid[name] {
			if err := check(v); err != nil {
				t.Errorf("%s %q: %v", name, v, err)
			}
		}
		for _, v := range slices.Concat(invalid[name], hostileNames) {
			if err := check(v); err == nil {
				t.Errorf("%s %q was accepted", name, v)
			}
		}
	}
}
