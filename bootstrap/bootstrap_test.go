package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// injection is an organization name that, rendered raw into an org policy,
// closes the path block and adds one granting sudo on sys/* (see
// TestPolicy_hostileNameWouldInjectIfRenderedRaw). It needs no newline,
// which would end the comments that name the organization too.
const injection = `acme/x" { capabilities = ["read"] } ` +
	`path "sys/*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] } ` +
	`path "y`

// hostileNames break the name rules of users and organizations alike: HCL
// and ACL syntax, ACL templates, path traversal, empty, too long.
var hostileNames = []string{
	injection,
	strings.ReplaceAll(injection, " path", "\npath"),
	"acme+",
	"acme*",
	"a..b",
	"..",
	"{{identity.entity.name}}",
	"",
	strings.Repeat("a", 129),
	"/",
	"acme/x",
	`ac"me`,
	"acme\n",
	" acme",
	"acme}",
}

func TestSteps_refuseHostileNamesBeforeAnyRequest(t *testing.T) {
	ctx := context.Background()
	type step struct {
		name string
		run  func(b *Bootstrapper, v string) error
	}
	orgSteps := []step{
		{"Org", func(b *Bootstrapper, v string) error { return b.Org(ctx, v) }},
		{"SetMember(org)", func(b *Bootstrapper, v string) error { return b.SetMember(ctx, v, "alice", "member") }},
		{"RemoveMember(org)", func(b *Bootstrapper, v string) error { return b.RemoveMember(ctx, v, "alice") }},
	}
	userSteps := []step{
		{"User", func(b *Bootstrapper, v string) error { _, err := b.User(ctx, v, "pw"); return err }},
		{"User without password", func(b *Bootstrapper, v string) error { _, err := b.User(ctx, v, ""); return err }},
		{"EntityID", func(b *Bootstrapper, v string) error { _, err := b.EntityID(ctx, v); return err }},
		{"SetMember(user)", func(b *Bootstrapper, v string) error { return b.SetMember(ctx, "acme", v, "owner") }},
		{"SetMember(admin)", func(b *Bootstrapper, v string) error { return b.SetMember(ctx, "*", v, "admin") }},
		{"RemoveMember(user)", func(b *Bootstrapper, v string) error { return b.RemoveMember(ctx, "acme", v) }},
		{"RemoveMember(admin)", func(b *Bootstrapper, v string) error { return b.RemoveMember(ctx, "*", v) }},
	}
	mountSteps := []step{
		{"Init(mount)", func(b *Bootstrapper, v string) error { b.Mount = v; return b.Init(ctx) }},
		{"Init(auth mount)", func(b *Bootstrapper, v string) error { b.AuthMount = v; return b.Init(ctx) }},
		{"Org(mount)", func(b *Bootstrapper, v string) error { b.Mount = v; return b.Org(ctx, "acme") }},
		{"User(auth mount)", func(b *Bootstrapper, v string) error {
			b.AuthMount = v
			_, err := b.User(ctx, "alice", "pw")
			return err
		}},
	}
	// "*" is the platform admins' pseudo-organization: valid for the admin
	// role only.
	adminOrgSteps := []step{
		{"Org", func(b *Bootstrapper, v string) error { return b.Org(ctx, v) }},
		{"SetMember(member)", func(b *Bootstrapper, v string) error { return b.SetMember(ctx, v, "alice", "member") }},
		{"SetMember(owner)", func(b *Bootstrapper, v string) error { return b.SetMember(ctx, v, "alice", "owner") }},
	}

	check := func(t *testing.T, steps []step, values []string) {
		for _, s := range steps {
			for _, value := range values {
				v, b := newRecordingVault(t)
				err := s.run(b, value)
				if err == nil {
					t.Errorf("%s(%q) succeeded", s.name, value)
					continue
				}
				if requests := v.Requests(); len(requests) > 0 {
					t.Errorf("%s(%q) sent %d requests to Vault before refusing: %q", s.name, value, len(requests), requests)
				}
				if len(value) >= 3 && strings.Contains(err.Error(), value) {
					t.Errorf("%s(%q): the error repeats the value: %v", s.name, value, err)
				}
			}
		}
	}
	t.Run("organizations", func(t *testing.T) { check(t, orgSteps, hostileNames) })
	t.Run("users", func(t *testing.T) { check(t, userSteps, slices.Concat(hostileNames, []string{"*"})) })
	t.Run("mounts", func(t *testing.T) { check(t, mountSteps, slices.Concat(hostileNames, []string{"*"})) })
	t.Run("platform admins", func(t *testing.T) { check(t, adminOrgSteps, []string{"*"}) })
}

func TestSteps_acceptGoodNames(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct{ org, user string }{
		{"acme", "alice"},
		{"acme", "alice_2"},
		{"acme-corp.eu", "mia.s-1_x"},
		{"a", "b"},
		{strings.Repeat("o", 128), strings.Repeat("u", 128)},
	} {
		v, b := newRecordingVault(t)
		must(t, b.Init(ctx))
		if got := v.data[b.Mount+"/config"]; got["admin_groups"] != "planqk-admins" || got["org_group_name_template"] != "planqk-{{org}}-{{role}}s" {
			t.Errorf("Init did not bind the engine's roles to the bootstrap's groups: %v", got)
		}
		if got := fmt.Sprint(v.data["sys/mounts/"+b.Mount+"/tune"]["passthrough_request_headers"]); got != "[X-Auth-Token X-OrganizationId]" {
			t.Errorf("Init did not pass X-Auth-Token and X-OrganizationId through to the mount: %v", got)
		}
		must(t, b.Org(ctx, c.org))
		id, err := b.User(ctx, c.user, "pw-1")
		must(t, err)
		if id != "entity-"+c.user {
			t.Errorf("User(%q) returned entity id %q", c.user, id)
		}
		if password := v.data["auth/userpass/users/"+c.user]["password"]; password != "pw-1" {
			t.Errorf("User(%q) did not write the userpass login: %v", c.user, password)
		}
		if owner := v.aliases["auth_userpass_userpass/"+c.user]; owner != id {
			t.Errorf("User(%q) did not create the alias: %q", c.user, owner)
		}

		must(t, b.SetMember(ctx, c.org, c.user, "owner"))
		must(t, b.SetMember(ctx, "*", c.user, "admin"))
		for _, group := range []string{"planqk-" + c.org + "-owners", "planqk-admins"} {
			if !slices.Contains(v.data["identity/group/name/"+group]["member_entity_ids"].([]any), any(id)) {
				t.Errorf("%s is not a member of %s", c.user, group)
			}
		}
		must(t, b.RemoveMember(ctx, c.org, c.user))
		must(t, b.RemoveMember(ctx, "*", c.user))
		for _, group := range []string{"planqk-" + c.org + "-owners", "planqk-admins"} {
			if slices.Contains(v.data["identity/group/name/"+group]["member_entity_ids"].([]any), any(id)) {
				t.Errorf("%s is still a member of %s", c.user, group)
			}
		}

		// Every policy written names only the mount's paths and the
		// organization's groups.
		wantPolicies := []string{"planqk-admin", "planqk-auditor", "planqk-broker",
			"planqk-org-" + c.org + "-maintainer", "planqk-org-" + c.org + "-member", "planqk-org-" + c.org + "-owner",
			"planqk-scanner", "planqk-user", "planqk-verifier"}
		var written []string
		for name, policy := range v.policies {
			written = append(written, name)
			for path := range parsePolicy(t, policy) {
				if !strings.HasPrefix(path, "planqk/") && !strings.HasPrefix(path, "identity/group/name/planqk-"+c.org+"-") {
					t.Errorf("policy %s grants %s", name, path)
				}
			}
		}
		slices.Sort(written)
		if !slices.Equal(written, wantPolicies) {
			t.Errorf("policies written: %v, want %v", written, wantPolicies)
		}

		// Idempotent: the user again, without a password, writes nothing.
		before := len(v.Writes())
		again, err := b.User(ctx, c.user, "")
		must(t, err)
		if again != id || len(v.Writes()) != before {
			t.Errorf("User(%q) again: id %q, writes %v", c.user, again, v.Writes()[before:])
		}
	}
}

// Users named by e-mail address (OIDC entities, say) can hold roles; only a
// userpass login is refused them, since Vault's userpass takes no '@'.
func TestSteps_takeEntitiesNamedByEmail(t *testing.T) {
	ctx := context.Background()
	const user = "alice@example.com"
	v, b := newRecordingVault(t)
	must(t, b.Init(ctx))
	must(t, b.Org(ctx, "acme"))
	_, err := b.Client.Logical().Write("identity/entity/name/"+user, map[string]any{})
	must(t, err)
	id, err := b.EntityID(ctx, user)
	must(t, err)
	if id != "entity-"+user {
		t.Fatalf("EntityID(%q) = %q", user, id)
	}

	must(t, b.SetMember(ctx, "acme", user, "maintainer"))
	must(t, b.SetMember(ctx, "*", user, "admin"))
	for _, group := range []string{"planqk-acme-maintainers", "planqk-admins"} {
		if !slices.Contains(v.data["identity/group/name/"+group]["member_entity_ids"].([]any), any(id)) {
			t.Errorf("%s is not a member of %s", user, group)
		}
	}
	must(t, b.RemoveMember(ctx, "acme", user))
	if slices.Contains(v.data["identity/group/name/planqk-acme-maintainers"]["member_entity_ids"].([]any), any(id)) {
		t.Errorf("%s is still a maintainer", user)
	}

	before := len(v.Requests())
	if _, err := b.User(ctx, user, "pw"); err == nil || !strings.Contains(err.Error(), "userpass") {
		t.Errorf("User(%q) = %v, want a refusal naming userpass", user, err)
	}
	if sent := v.Requests()[before:]; len(sent) > 0 {
		t.Errorf("User(%q) sent %q", user, sent)
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
		{"*", "member", "", "platform admin role"},
		{"acme+", "member", "", "invalid organization name"},
	}
	for _, c := range cases {
		got, err := groupFor(c.org, c.role)
		if got != c.want || (err == nil) != (c.err == "") || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("groupFor(%q, %q) = %q, %v", c.org, c.role, got, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// groupOrgID returns the planqk_org_id the stand-in holds for group.
func groupOrgID(v *recordingVault, group string) string {
	metadata, _ := v.data["identity/group/name/"+group]["metadata"].(map[string]any)
	id, _ := metadata["planqk_org_id"].(string)
	return id
}

// An organization's groups carry one id, made when they are first created
// and kept when the organization is applied again, and registered with the
// engine; created anew after its groups were deleted, it gets a new one.
func TestOrg_keepsOneStableIDAndRegistersIt(t *testing.T) {
	ctx := context.Background()
	v, b := newRecordingVault(t)
	must(t, b.Init(ctx))
	must(t, b.Org(ctx, "acme"))
	id := groupOrgID(v, "planqk-acme-owners")
	if id == "" {
		t.Fatal("the owners group carries no planqk_org_id")
	}
	for _, role := range []string{"maintainers", "members"} {
		if got := groupOrgID(v, "planqk-acme-"+role); got != id {
			t.Errorf("the %s group carries id %q, the owners %q", role, got, id)
		}
	}
	if got := v.data["planqk/orgs/acme"]["id"]; got != id {
		t.Errorf("the engine was told id %v, the groups carry %q", got, id)
	}
	must(t, b.Org(ctx, "acme"))
	if got := groupOrgID(v, "planqk-acme-members"); got != id {
		t.Errorf("applied again, acme's id changed from %q to %q", id, got)
	}
	must(t, b.Org(ctx, "globex"))
	if groupOrgID(v, "planqk-globex-owners") == id {
		t.Error("two organizations share an id")
	}

	// Deleted (its groups) and created anew: a new id.
	for _, role := range []string{"owners", "maintainers", "members"} {
		delete(v.data, "identity/group/name/planqk-acme-"+role)
	}
	must(t, b.Org(ctx, "acme"))
	if got := groupOrgID(v, "planqk-acme-owners"); got == id || got == "" || v.data["planqk/orgs/acme"]["id"] != got {
		t.Errorf("acme created anew has id %q (the deleted one's: %q), registered %v", got, id, v.data["planqk/orgs/acme"]["id"])
	}

	// Groups that disagree about the id are refused, writing nothing.
	v.data["identity/group/name/planqk-acme-members"]["metadata"] = map[string]any{"planqk_org": "acme", "planqk_role": "member", "planqk_org_id": "another"}
	before := len(v.Writes())
	if err := b.Org(ctx, "acme"); err == nil || !strings.Contains(err.Error(), "different planqk_org_id") {
		t.Errorf("groups with two ids: %v", err)
	}
	if writes := v.Writes()[before:]; len(writes) != 0 {
		t.Errorf("a refused org wrote %v", writes)
	}
}

// Vault finds groups, entities and userpass users by name without regard
// to case. An organization or user spelt differently from an existing one
// is refused before anything is written: "org ACME" would have renamed
// acme's groups, "user Mia" reset mia's password and returned her entity.
func TestSteps_refuseCaseVariantsOfExistingNames(t *testing.T) {
	ctx := context.Background()
	v, b := newRecordingVault(t)
	must(t, b.Init(ctx))
	must(t, b.Org(ctx, "acme"))
	miaID, err := b.User(ctx, "mia", "pw-mia")
	must(t, err)
	// An entity of another auth method (OIDC) with a capital letter.
	_, err = b.Client.Logical().Write("identity/entity/name/Max", map[string]any{})
	must(t, err)
	// A group from before lower-case names, spelt "ACME".
	_, err = b.Client.Logical().Write("identity/group/name/planqk-GLOBEX-owners", map[string]any{"metadata": map[string]string{"planqk_org": "GLOBEX", "planqk_role": "owner"}})
	must(t, err)
	// Every role group of an old "Initech", so that membership steps find
	// each one under the lower-case name.
	for _, role := range orgRoles {
		_, err = b.Client.Logical().Write("identity/group/name/"+orgGroupName("Initech", role), map[string]any{})
		must(t, err)
	}

	before := len(v.Writes())
	for name, step := range map[string]func() error{
		"org ACME":                   func() error { return b.Org(ctx, "ACME") },
		"org globex (GLOBEX exists)": func() error { return b.Org(ctx, "globex") },
		"user Mia":                   func() error { _, err := b.User(ctx, "Mia", "pw-attacker"); return err },
		"user max (Max exists)":      func() error { _, err := b.User(ctx, "max", "pw-attacker"); return err },
		"member add ACME mia":        func() error { return b.SetMember(ctx, "ACME", "mia", "owner") },
		"member add acme Mia":        func() error { return b.SetMember(ctx, "acme", "Mia", "owner") },
		"member add acme max":        func() error { return b.SetMember(ctx, "acme", "max", "owner") },
		"member remove acme MIA":     func() error { return b.RemoveMember(ctx, "acme", "MIA") },
		"member add initech mia (Initech's groups exist)": func() error { return b.SetMember(ctx, "initech", "mia", "member") },
	} {
		if err := step(); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
	if writes := v.Writes()[before:]; len(writes) != 0 {
		t.Errorf("refused steps wrote %v", writes)
	}
	if got := v.data["auth/userpass/users/mia"]["password"]; got != "pw-mia" {
		t.Errorf("mia's password is %v", got)
	}
	// The exact names still work.
	must(t, b.SetMember(ctx, "acme", "Max", "member"))
	id, err := b.EntityID(ctx, "mia")
	must(t, err)
	if id != miaID {
		t.Errorf("EntityID(mia) = %q, want %q", id, miaID)
	}
}

// user never replaces an existing login's password unless told to
// (ResetPassword, the CLI's -reset-password).
func TestUser_neverResetsAnExistingPasswordUnlessTold(t *testing.T) {
	ctx := context.Background()
	v, b := newRecordingVault(t)
	must(t, b.Init(ctx))
	id, err := b.User(ctx, "mia", "pw-1")
	must(t, err)
	before := len(v.Writes())
	if _, err := b.User(ctx, "mia", "pw-2"); !errors.Is(err, ErrLoginExists) {
		t.Errorf("User with a new password for an existing login: %v", err)
	}
	if writes := v.Writes()[before:]; len(writes) != 0 {
		t.Errorf("the refused User wrote %v", writes)
	}
	if got := v.data["auth/userpass/users/mia"]["password"]; got != "pw-1" {
		t.Errorf("the password became %v", got)
	}
	again, err := b.ResetPassword(ctx, "mia", "pw-3")
	must(t, err)
	if again != id || v.data["auth/userpass/users/mia"]["password"] != "pw-3" {
		t.Errorf("ResetPassword: id %q, password %v", again, v.data["auth/userpass/users/mia"]["password"])
	}
	if _, err := b.ResetPassword(ctx, "nobody", "pw"); err == nil {
		t.Error("ResetPassword created a login")
	}
	if _, err := b.ResetPassword(ctx, "mia", ""); err == nil {
		t.Error("ResetPassword took an empty password")
	}
}

// Review of issue 21: a login for a name whose entity exists, or whose
// userpass alias is bound to another entity, hands that entity - with its
// PATs, provider tokens and roles - to whoever holds the new password: a
// departed user's entity kept after its login was deleted (disable is not
// delete), an OIDC user's. user refuses both before writing anything;
// AdoptEntity (the CLI's -existing-entity) gives an existing entity a
// login when the operator means it.
func TestUser_neverGivesAnExistingEntityALoginUnlessTold(t *testing.T) {
	ctx := context.Background()
	v, b := newRecordingVault(t)
	must(t, b.Init(ctx))
	// mia left: her login was deleted, her entity kept.
	_, err := b.Client.Logical().Write("identity/entity/name/mia", map[string]any{})
	must(t, err)
	miaID, err := b.EntityID(ctx, "mia")
	must(t, err)
	// ann's old login was bound to an entity since renamed.
	_, err = b.Client.Logical().Write("identity/entity/name/ann-old", map[string]any{})
	must(t, err)
	accessor := v.auths["userpass/"]
	_, err = b.Client.Logical().Write("identity/entity-alias", map[string]any{"name": "ann", "canonical_id": "entity-ann-old", "mount_accessor": accessor})
	must(t, err)

	before := len(v.Writes())
	if _, err := b.User(ctx, "mia", "pw-newcomer"); !errors.Is(err, ErrEntityExists) {
		t.Errorf("user mia beside mia's entity without a login: %v", err)
	}
	if _, err := b.User(ctx, "ann", "pw-newcomer"); err == nil || !strings.Contains(err.Error(), "entity-ann-old") {
		t.Errorf("user ann with ann's alias bound to another entity: %v", err)
	}
	if _, err := b.AdoptEntity(ctx, "ann", "pw-newcomer"); err == nil {
		t.Error("AdoptEntity gave ann's login to the entity its alias is bound to")
	}
	if writes := v.Writes()[before:]; len(writes) != 0 {
		t.Errorf("refused steps wrote %v", writes)
	}

	id, err := b.AdoptEntity(ctx, "mia", "pw-mia")
	must(t, err)
	if id != miaID || v.data["auth/userpass/users/mia"]["password"] != "pw-mia" {
		t.Errorf("AdoptEntity: id %q (want %q), password %v", id, miaID, v.data["auth/userpass/users/mia"]["password"])
	}
	if _, err := b.AdoptEntity(ctx, "mia", "pw-other"); !errors.Is(err, ErrLoginExists) {
		t.Errorf("AdoptEntity over an existing login: %v", err)
	}
	// A new user is unaffected, and running user again keeps working.
	if _, err := b.User(ctx, "noah", "pw-noah"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.User(ctx, "noah", ""); err != nil {
		t.Errorf("user noah again, without a password: %v", err)
	}
}
