//go:build e2e

package e2e

import (
	"fmt"
	"reflect"
	"testing"
)

// TestDisabledAndDeletedOwners disables a user's identity entity in Vault:
// their named and leased PATs stop verifying; enabled again, both verify
// again. Deleting the entity ends them for good.
func TestDisabledAndDeletedOwners(t *testing.T) {
	t.Parallel()
	user := newUser(t, "owner-state", "", "")
	named := createPAT(t, user, "laptop", nil)["token"].(string)
	role := newRole(t, "10m", "1h")
	leased := leasePAT(t, user, role)
	t.Cleanup(func() { _ = as(t, "root").Sys().Revoke(leased.leaseID) })
	entity := "identity/entity/name/" + user

	want := func(active bool) {
		t.Helper()
		eventually(t, identityWait, fmt.Sprintf("both PATs of %s verifying as active=%v", user, active), func() (bool, string) {
			var states []interface{}
			for _, token := range []string{named, leased.token} {
				got := verify(t, token)
				if !active && !reflect.DeepEqual(got, map[string]interface{}{"active": false}) {
					return false, fmt.Sprint(got)
				}
				if active && (got["active"] != true || got["user"] != user) {
					return false, fmt.Sprint(got)
				}
				states = append(states, got["active"])
			}
			return true, fmt.Sprint(states)
		})
	}
	want(true)

	for _, disabled := range []bool{true, false} {
		if r := call(t, "root", "POST", entity, map[string]interface{}{"disabled": disabled}); r.status != 204 && r.status != 200 {
			t.Fatalf("setting disabled=%v on %s: %s", disabled, entity, r)
		}
		want(!disabled)
	}

	if r := call(t, "root", "DELETE", entity, nil); r.status != 204 {
		t.Fatalf("deleting %s: %s", entity, r)
	}
	want(false)
}
