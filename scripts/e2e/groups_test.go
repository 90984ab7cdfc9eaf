//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/vault/api"
)

// TestOwnersManageMembership has an owner add a user to the organization's
// members, then move them to the maintainers, by updating the groups'
// member_entity_ids as bootstrap's org-owner policy allows; the engine
// sees each change. Everything else an owner might try on groups -
// policies, metadata, subgroups, type, the owners group, another
// organization's or the platform admins' groups, deleting or creating
// groups - is refused and changes nothing, as is any group update by a
// maintainer, a member or another organization's owner.
func TestOwnersManageMembership(t *testing.T) {
	ctx := context.Background()
	recruit := newUser(t, "recruit", "", "")
	t.Cleanup(func() { _ = s.boot.RemoveMember(ctx, "acme", recruit) })
	recruitID, err := s.boot.EntityID(ctx, recruit)
	if err != nil {
		t.Fatal(err)
	}
	pat := createPAT(t, recruit, "membership", nil)["token"].(string)
	waitForOrganizations(t, pat, nil)

	members, maintainers := "identity/group/name/planqk-acme-members", "identity/group/name/planqk-acme-maintainers"
	setMembership := func(group string, member bool) {
		t.Helper()
		ids := memberIDs(t, "olivia", group)
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == recruitID })
		if member {
			ids = append(ids, recruitID)
		}
		if r := call(t, "olivia", "POST", group, map[string]interface{}{"member_entity_ids": ids}); r.status != 204 && r.status != 200 {
			t.Fatalf("the owner updates %s: %s", group, r)
		}
	}
	setMembership(members, true)
	waitForOrganizations(t, pat, []interface{}{map[string]interface{}{"name": "acme", "role": "member"}})
	setMembership(maintainers, true)
	setMembership(members, false)
	waitForOrganizations(t, pat, []interface{}{map[string]interface{}{"name": "acme", "role": "maintainer"}})

	admins := groupState(t, "identity/group/name/planqk-admins")
	newGroup, sideGroup := "planqk-acme-"+uniqueName("new"), uniqueName("planqk-acme-side")
	refused := []struct {
		who, method, path string
		body              map[string]interface{}
	}{
		{"olivia", "POST", members, map[string]interface{}{"policies": []string{"planqk-admin"}}},
		{"olivia", "POST", members, map[string]interface{}{"member_entity_ids": memberIDs(t, "root", members), "policies": []string{"planqk-org-acme-owner"}}},
		{"olivia", "POST", members, map[string]interface{}{"metadata": map[string]string{"planqk_org": "*", "planqk_role": "admin"}}},
		{"olivia", "POST", members, map[string]interface{}{"member_group_ids": []string{admins["id"].(string)}}},
		{"olivia", "POST", members, map[string]interface{}{"type": "external"}},
		{"olivia", "POST", members, map[string]interface{}{"name": "planqk-acme-renamed"}},
		{"olivia", "POST", "identity/group/name/planqk-acme-owners", map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"olivia", "POST", "identity/group/name/planqk-globex-members", map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"olivia", "POST", "identity/group/name/planqk-admins", map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"olivia", "POST", "identity/group/id/" + groupState(t, members)["id"].(string), map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"olivia", "DELETE", members, nil},
		{"olivia", "POST", "identity/group/name/" + newGroup, map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"olivia", "POST", "identity/group", map[string]interface{}{"name": sideGroup, "policies": []string{"planqk-admin"}}},
		{"max", "POST", members, map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"mia", "POST", members, map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"nina", "POST", members, map[string]interface{}{"member_entity_ids": []string{recruitID}}},
		{"nina", "POST", maintainers, map[string]interface{}{"member_entity_ids": []string{recruitID}}},
	}
	watched := []string{members, maintainers, "identity/group/name/planqk-acme-owners", "identity/group/name/planqk-globex-members", "identity/group/name/planqk-admins"}
	for _, c := range refused {
		before := map[string]map[string]interface{}{}
		for _, g := range watched {
			before[g] = groupState(t, g)
		}
		if r := call(t, c.who, c.method, c.path, c.body); r.status != 403 {
			t.Errorf("%s %s %s %v: got %s, want 403", c.who, c.method, c.path, c.body, r)
		}
		for _, g := range watched {
			if after := groupState(t, g); !reflect.DeepEqual(before[g], after) {
				t.Errorf("%s %s %s %v changed %s:\n before %v\n after  %v", c.who, c.method, c.path, c.body, g, before[g], after)
			}
		}
	}
	for _, name := range []string{newGroup, sideGroup} {
		if r := call(t, "root", "GET", "identity/group/name/"+name, nil); r.status != 404 {
			t.Errorf("a refused request created group %s: %s", name, r)
		}
	}
}

// TestInheritedGroupsGiveTheirRole puts a user in a team that is a
// subgroup of a department that is a subgroup of acme's maintainers. Vault
// hands plugins the inherited groups too (GroupsForEntity returns direct
// and inherited groups, at any depth), and its ACL applies the inherited
// group's policy: the user is a maintainer of acme for the engine and for
// the policies. Removing the team from the chain ends it.
func TestInheritedGroupsGiveTheirRole(t *testing.T) {
	ctx := context.Background()
	user := newUser(t, "nested", "", "")
	userID, err := s.boot.EntityID(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	pat := createPAT(t, user, "nested", nil)["token"].(string)

	team := writeGroup(t, uniqueName("acme-team"), map[string]interface{}{"member_entity_ids": []string{userID}})
	dept := writeGroup(t, uniqueName("acme-dept"), map[string]interface{}{"member_group_ids": []string{team}})
	const maintainers = "identity/group/name/planqk-acme-maintainers"
	original := stringsOf(groupState(t, maintainers)["member_group_ids"])
	setSubgroups := func(ids []string) {
		if r := call(t, "root", "POST", maintainers, map[string]interface{}{"member_group_ids": ids}); r.status != 204 && r.status != 200 {
			t.Fatalf("setting the maintainers' subgroups: %s", r)
		}
	}
	t.Cleanup(func() { setSubgroups(original) })
	setSubgroups(append(slices.Clone(original), dept))

	acmeMaintainer := []interface{}{map[string]interface{}{"name": "acme", "role": "maintainer"}}
	waitForOrganizations(t, pat, acmeMaintainer)
	if got := capabilities(t, user, []string{mount + "/orgs/acme/provider-tokens/ionq"}); got[mount+"/orgs/acme/provider-tokens/ionq"] != full {
		t.Errorf("the inherited maintainers' policy does not apply: %v", got)
	}
	value := "ionq-acme-inherited-" + uniqueName("v")
	s.remember(value, "an IonQ key written by an inherited maintainer")
	t.Cleanup(func() { call(t, "root", "DELETE", mount+"/orgs/acme/provider-tokens/ionq", nil) })
	if r := call(t, user, "POST", mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": value}); r.status != 200 {
		t.Fatalf("an inherited maintainer writes acme's token: %s", r)
	}

	setSubgroups(original)
	waitForOrganizations(t, pat, nil)
	if r := call(t, user, "POST", mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": value}); r.status != 403 {
		t.Fatalf("a former inherited maintainer writes acme's token: %s", r)
	}
}

// TestExternalGroupsFromSSO logs a user in through Vault's JWT auth method
// with a groups claim, as an SSO provider would, and maps the claim's
// group to an external group that makes its members maintainers of acme.
// The group membership - and with it the engine's role and the policy -
// follows each login's claim. The tokens are signed by a key the test
// holds, so no identity provider has to run.
func TestExternalGroupsFromSSO(t *testing.T) {
	ctx := context.Background()
	root := as(t, "root")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	publicKey, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	const issuer, audience = "https://sso.planqk.test", "planqk-vault"
	sso := uniqueName("sso")
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, sso, &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().DisableAuthWithContext(ctx, sso) })
	if _, err := root.Logical().Write("auth/"+sso+"/config", map[string]interface{}{
		"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: publicKey}))},
		"bound_issuer":           issuer,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/"+sso+"/role/planqk", map[string]interface{}{
		"role_type": "jwt", "user_claim": "sub", "groups_claim": "groups", "bound_audiences": audience,
		"token_policies": "planqk-user", "token_ttl": "10m",
	}); err != nil {
		t.Fatal(err)
	}
	auths, err := root.Sys().ListAuthWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	accessor := auths[sso+"/"].Accessor

	// The user's entity gets an alias on the SSO mount, as it would when
	// an organization's directory is connected.
	user := newUser(t, "sso-user", "", "")
	userID, err := s.boot.EntityID(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("identity/entity-alias", map[string]interface{}{"name": user, "canonical_id": userID, "mount_accessor": accessor}); err != nil {
		t.Fatal(err)
	}
	// The directory's group is an external group inside the bootstrap's
	// maintainers group: the engine binds organization roles to the groups
	// the bootstrap names (org_group_name_template), so the role comes
	// from the internal group the external one belongs to.
	claimGroup := uniqueName("acme-engineering")
	group := writeGroup(t, uniqueName("sso-acme-engineering"), map[string]interface{}{"type": "external"})
	if _, err := root.Logical().Write("identity/group-alias", map[string]interface{}{"name": claimGroup, "mount_accessor": accessor, "canonical_id": group}); err != nil {
		t.Fatal(err)
	}
	const maintainers = "identity/group/name/planqk-acme-maintainers"
	original := stringsOf(groupState(t, maintainers)["member_group_ids"])
	setSubgroups := func(ids []string) {
		if r := call(t, "root", "POST", maintainers, map[string]interface{}{"member_group_ids": ids}); r.status != 204 && r.status != 200 {
			t.Fatalf("setting the maintainers' subgroups: %s", r)
		}
	}
	t.Cleanup(func() { setSubgroups(original) })
	setSubgroups(append(slices.Clone(original), group))

	// A group that merely carries the metadata, under another name, gives
	// no role: whoever may write some identity group cannot mint owners.
	rogueClaim := uniqueName("acme-rogue")
	rogue := writeGroup(t, uniqueName("not-planqk-acme-owners"), map[string]interface{}{
		"type":     "external",
		"metadata": map[string]string{"planqk_org": "acme", "planqk_role": "owner"},
	})
	if _, err := root.Logical().Write("identity/group-alias", map[string]interface{}{"name": rogueClaim, "mount_accessor": accessor, "canonical_id": rogue}); err != nil {
		t.Fatal(err)
	}

	login := func(groups ...string) string {
		t.Helper()
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		if groups == nil {
			groups = []string{} // a claim with no groups, not a missing claim
		}
		now := time.Now()
		signed, err := jwt.Signed(signer).Claims(jwt.Claims{
			Issuer: issuer, Subject: user, Audience: jwt.Audience{audience},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
		}).Claims(map[string]interface{}{"groups": groups}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		s.remember(signed, "an SSO token of "+user)
		secret, err := as(t, "").Logical().Write("auth/"+sso+"/login", map[string]interface{}{"role": "planqk", "jwt": signed})
		if err != nil {
			t.Fatalf("SSO login: %v", err)
		}
		if secret.Auth.EntityID != userID {
			t.Fatalf("the SSO login landed on entity %s, not %s's", secret.Auth.EntityID, user)
		}
		label := uniqueName(user + "@sso")
		s.mu.Lock()
		s.tokens[label] = secret.Auth.ClientToken
		s.mu.Unlock()
		return label
	}

	session := login(claimGroup, rogueClaim)
	pat := createPAT(t, user, "sso", nil)["token"].(string)
	waitForOrganizations(t, pat, []interface{}{map[string]interface{}{"name": "acme", "role": "maintainer"}})
	value := "ionq-acme-sso-" + uniqueName("v")
	s.remember(value, "an IonQ key written by an SSO maintainer")
	t.Cleanup(func() { call(t, "root", "DELETE", mount+"/orgs/acme/provider-tokens/ionq", nil) })
	if r := call(t, session, "POST", mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": value}); r.status != 200 {
		t.Fatalf("an SSO maintainer writes acme's token: %s", r)
	}

	// The next login's claim no longer names the group.
	later := login()
	waitForOrganizations(t, pat, nil)
	for _, who := range []string{session, later} {
		if r := call(t, who, "POST", mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": value}); r.status != 403 {
			t.Errorf("after leaving the SSO group a session writes acme's token: %s", r)
		}
	}
}

// waitForOrganizations waits until verify reports the PAT active with
// exactly the organizations want (none when nil).
func waitForOrganizations(t *testing.T, pat string, want []interface{}) {
	t.Helper()
	if want == nil {
		want = []interface{}{}
	}
	eventually(t, identityWait, fmt.Sprintf("verify showing organizations %v", want), func() (bool, string) {
		got := verify(t, pat)
		orgs, _ := got["organizations"].([]interface{})
		if orgs == nil {
			orgs = []interface{}{}
		}
		return got["active"] == true && reflect.DeepEqual(orgs, want), fmt.Sprint(got)
	})
}

// groupState reads a group as root: the fields an update could change.
func groupState(t *testing.T, path string) map[string]interface{} {
	t.Helper()
	r := call(t, "root", "GET", path, nil)
	if r.status != 200 {
		t.Fatalf("reading %s: %s", path, r)
	}
	state := map[string]interface{}{}
	for _, k := range []string{"id", "name", "type", "policies", "metadata", "member_entity_ids", "member_group_ids"} {
		state[k] = r.data[k]
	}
	return state
}

// memberIDs reads a group's member entity ids as who.
func memberIDs(t *testing.T, who, path string) []string {
	t.Helper()
	r := call(t, who, "GET", path, nil)
	if r.status != 200 {
		t.Fatalf("%s reads %s: %s", who, path, r)
	}
	return stringsOf(r.data["member_entity_ids"])
}

// writeGroup creates an identity group as root, removed again at the
// end of the test, and returns its id.
func writeGroup(t *testing.T, name string, fields map[string]interface{}) string {
	t.Helper()
	fields["name"] = name
	r := call(t, "root", "POST", "identity/group", fields)
	id, _ := r.data["id"].(string)
	if r.status != 200 || id == "" {
		t.Fatalf("creating group %s: %s", name, r)
	}
	t.Cleanup(func() { call(t, "root", "DELETE", "identity/group/id/"+id, nil) })
	return id
}

func stringsOf(v interface{}) []string {
	raw, _ := v.([]interface{})
	out := make([]string, 0, len(raw))
	for _, item := range raw {
		out = append(out, fmt.Sprint(item))
	}
	return out
}
