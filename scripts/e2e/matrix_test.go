//go:build e2e

package e2e

import (
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/vaultharness"
)

// TestRoleMatrix asserts every cell of the role matrix under the bootstrap
// policies and the engine's own checks, as real users logged in through
// userpass: 200 where allowed, 403 where denied.
func TestRoleMatrix(t *testing.T) {
	const orgToken = mount + "/orgs/acme/provider-tokens/ionq"
	ionqKey := "ionq-acme-matrix-key-7d2c"
	s.remember(ionqKey, "acme's IonQ key")

	type action struct {
		name string
		do   func(t *testing.T, who string) error
	}
	actions := []action{
		{"write org token", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().Write(orgToken, map[string]interface{}{"api_key": ionqKey})
			return err
		}},
		{"read org token metadata", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().Read(orgToken)
			return err
		}},
		{"list org tokens", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().List(mount + "/orgs/acme/provider-tokens/")
			return err
		}},
		{"resolve with org", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().ReadWithData(mount+"/resolve/ionq", map[string][]string{"org": {"acme"}})
			return err
		}},
		{"delete org token", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().Delete(orgToken)
			return err
		}},
		{"list another user's PATs", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().List(mount + "/users/lea/tokens/")
			return err
		}},
		{"create a PAT for another user", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().Write(mount+"/users/lea/tokens/stolen", nil)
			return err
		}},
		{"read another user's provider tokens", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().List(mount + "/users/lea/provider-tokens/")
			return err
		}},
		{"verify a PAT", func(t *testing.T, who string) error {
			_, err := as(t, who).Logical().Write(mount+"/verify", map[string]interface{}{"token": "plqk_x"})
			return err
		}},
	}

	// Lea's own PAT and provider token give the "another user" rows a target.
	if _, err := as(t, "lea").Logical().Write(mount+"/users/lea/tokens/target", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := as(t, "lea").Logical().Write(mount+"/users/lea/provider-tokens/dwave", map[string]interface{}{"token": "lea-dwave-token-91ab"}); err != nil {
		t.Fatal(err)
	}
	s.remember("lea-dwave-token-91ab", "lea's D-Wave token")

	allowed := map[string]map[string]bool{
		"olivia (owner)":         {"write org token": true, "read org token metadata": true, "list org tokens": true, "resolve with org": true, "delete org token": true},
		"max (maintainer)":       {"write org token": true, "read org token metadata": true, "list org tokens": true, "resolve with org": true, "delete org token": true},
		"mia (member)":           {"read org token metadata": true, "list org tokens": true, "resolve with org": true},
		"nina (owner elsewhere)": {},
		"paul (plain user)":      {},
		"verifier":               {"verify a PAT": true},
	}
	callers := map[string]string{
		"olivia (owner)": "olivia", "max (maintainer)": "max", "mia (member)": "mia",
		"nina (owner elsewhere)": "nina", "paul (plain user)": "paul", "verifier": "verifier",
	}

	for label, who := range callers {
		t.Run(label, func(t *testing.T) {
			for _, a := range actions {
				// Each cell starts from a stored organization token.
				if _, err := as(t, "root").Logical().Write(orgToken, map[string]interface{}{"api_key": ionqKey}); err != nil {
					t.Fatal(err)
				}
				status := vaultharness.StatusOf(a.do(t, who))
				want := 403
				if allowed[label][a.name] {
					want = 200
				}
				if status != want {
					t.Errorf("%s: %s: got status %d, want %d", label, a.name, status, want)
				}
			}
		})
	}
}
