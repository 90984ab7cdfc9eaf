package backend

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// setOrgGroup puts the entity in one group of org with the given name and
// id, replacing its groups.
func (e *testEnv) setOrgGroup(entityID, groupName, org, role, orgID string) {
	e.sys.mu.Lock()
	defer e.sys.mu.Unlock()
	e.sys.groups[entityID] = []*logical.Group{{
		ID: "group-" + groupName, Name: groupName,
		Metadata: map[string]string{groupMetadataOrg: org, groupMetadataRole: role, groupMetadataOrgID: orgID},
	}}
	e.b.identities.purge()
}

// An organization deleted and created anew under its name - new groups,
// new id - starts with no provider tokens, for its members and for
// operators; the old one's stay under the old id.
func TestOrganizations_aNewOrganizationWithAReusedNameStartsEmpty(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	mallory := env.addUser("mallory")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret-0001"})

	// acme is deleted; an organization of the same name is created with a
	// new id (the bootstrap registers it), and mallory is its owner.
	env.setRole(alice, "acme", "")
	env.ok(logical.UpdateOperation, "orgs/acme", "", map[string]interface{}{"id": "id-acme-2"})
	env.setOrgGroup(mallory, "planqk-acme-owners", "acme", "owner", "id-acme-2")

	require.Empty(t, env.ok(logical.ListOperation, "orgs/acme/provider-tokens/", mallory, nil).Data["keys"])
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", mallory, nil))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "resolve/ionq", mallory, map[string]interface{}{"org": "acme"}))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", "", nil), "operators follow the new id")
	require.Equal(t, "id-acme-2", env.ok(logical.ReadOperation, "orgs/acme", "", nil).Data["id"])

	// The old organization's token is still there, under its id.
	old, err := getProviderToken(context.Background(), env.storage, orgProviderTokenPrefix(testOrgID("acme")), "ionq")
	require.NoError(t, err)
	require.Equal(t, "acme-ionq-secret-0001", old.Values["api_key"])
}

// A member's first request teaches the engine an organization nobody
// registered; a member never moves a name that points elsewhere.
func TestOrganizations_membersRegisterAnUnknownNameOnly(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setOrgGroup(alice, "planqk-initech-owners", "initech", "owner", "id-initech")
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "orgs/initech", "", nil))
	require.Contains(t, env.userError(logical.UpdateOperation, "orgs/initech/provider-tokens/ionq", "", map[string]interface{}{"api_key": "k"}),
		`organization "initech" has no id registered with the engine`)
	require.Empty(t, env.ok(logical.ListOperation, "orgs/initech/provider-tokens/", "", nil).Data["keys"])

	// A stored configuration (without one every request reads storage for
	// it), a warm identity and catalogue: only the registration counts.
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"identity_cache_ttl": "5s"})
	env.ok(logical.ReadOperation, "providers/dwave", alice, nil)
	env.storage.reset()
	env.ok(logical.ListOperation, "orgs/initech/provider-tokens/", alice, nil)
	require.Equal(t, roundTrips{Gets: 2, Puts: 2, Lists: 2}, env.storage.counted(),
		"once: the id's entry and the name's pointer read and written, the unclaimed tokens listed; then the list itself")
	require.Equal(t, "id-initech", env.ok(logical.ReadOperation, "orgs/initech", "", nil).Data["id"])

	// A second live organization claiming the name leaves the pointer.
	env.setOrgGroup(bob, "planqk-initech-members", "initech", "member", "id-initech-2")
	env.ok(logical.ListOperation, "orgs/initech/provider-tokens/", bob, nil)
	require.Equal(t, "id-initech", env.ok(logical.ReadOperation, "orgs/initech", "", nil).Data["id"])
}

// A trusted group that carries another organization's id gets its members
// nothing of that organization; an id registered under one name cannot be
// registered under another.
func TestOrganizations_aGroupCarryingAnotherOrganizationsIDGetsNothing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	mallory := env.addUser("mallory")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret-0001"})

	env.setOrgGroup(mallory, "planqk-evil-owners", "evil", "owner", testOrgID("acme"))
	for _, op := range []logical.Operation{logical.ListOperation, logical.ReadOperation, logical.DeleteOperation} {
		path := "orgs/evil/provider-tokens/ionq"
		if op == logical.ListOperation {
			path = "orgs/evil/provider-tokens/"
		}
		require.Equal(t, 403, env.statusOf(op, path, mallory, nil), op)
	}
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "resolve/ionq", mallory, map[string]interface{}{"org": "evil"}))
	require.Empty(t, env.ok(logical.ListOperation, "orgs/", mallory, nil).Data["keys"])
	require.Contains(t, env.userError(logical.UpdateOperation, "orgs/evil", "", map[string]interface{}{"id": testOrgID("acme")}),
		`belongs to organization "acme"`)
	require.Equal(t, testOrgID("acme"), env.ok(logical.ReadOperation, "orgs/acme", "", nil).Data["id"])
}

// Groups of one organization that disagree about its id, or carry none,
// reach no organization data: the role still shows in verify.
func TestOrganizations_groupsWithoutOneIDReachNoData(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.registerOrg("acme")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	for name, ids := range map[string][]string{"none": {"", ""}, "two": {testOrgID("acme"), "id-other"}, "one missing": {testOrgID("acme"), ""}} {
		t.Run(name, func(t *testing.T) {
			env.sys.mu.Lock()
			env.sys.groups[alice] = []*logical.Group{
				{ID: "g1", Name: "planqk-acme-owners", Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "owner", groupMetadataOrgID: ids[0]}},
				{ID: "g2", Name: "planqk-acme-members", Metadata: map[string]string{groupMetadataOrg: "acme", groupMetadataRole: "member", groupMetadataOrgID: ids[1]}},
			}
			env.sys.mu.Unlock()
			env.b.identities.purge()
			require.Contains(t, env.refusal(403, logical.ListOperation, "orgs/acme/provider-tokens/", alice, nil), "no single planqk_org_id")
			require.Equal(t, 403, env.statusOf(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"}))
			require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "owner"}}, env.verify(token)["organizations"])
		})
	}
}

// Names are compared as Vault compares group names: a path's organization
// is lower case, and a group's metadata in any case names the same
// organization, bound to the group whose name matches without regard to
// case.
func TestOrganizations_caseVariantsAreOneOrganization(t *testing.T) {
	env := newTestEnv(t)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"org_group_name_template": "planqk-{{org}}-{{role}}s"})
	alice := env.addUser("alice")
	mallory := env.addUser("mallory")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret-0001"})

	for _, path := range []string{"orgs/ACME/provider-tokens/ionq", "orgs/Acme/provider-tokens/", "orgs/ACME"} {
		var op logical.Operation = logical.ReadOperation
		if path[len(path)-1] == '/' {
			op = logical.ListOperation
		}
		for _, caller := range []string{"", alice} {
			require.Contains(t, env.userError(op, path, caller, nil), "lower-case", path)
		}
	}
	require.Equal(t, 400, env.statusOf(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "ACME"}))
	require.Equal(t, 400, env.statusOf(logical.UpdateOperation, "orgs/ACME", "", map[string]interface{}{"id": "id-x"}))

	// A group written as "ACME" (what the bootstrap did when told "org
	// ACME") is acme's group: Vault has one group of that name.
	env.setOrgGroup(mallory, "planqk-ACME-owners", "ACME", "owner", testOrgID("acme"))
	token := env.createToken("mallory", mallory, "laptop", nil)["token"].(string)
	require.Equal(t, []map[string]interface{}{{"name": "acme", "role": "owner"}}, env.verify(token)["organizations"])
	require.Equal(t, "acme-ionq-secret-0001", env.ok(logical.ReadOperation, "resolve/ionq", mallory, map[string]interface{}{"org": "acme"}).Data["api_key"])
}

// Claiming the tokens the upgrade kept aside under a name survives an
// interruption at any write: run again, it ends as an uninterrupted claim.
func TestOrganizations_claimingSurvivesInterruption(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T) *testEnv {
		env := newTestEnv(t)
		for _, provider := range []string{"dwave", "ionq", "aws-braket"} {
			value, err := json.Marshal(&providerTokenEntry{Provider: provider, Values: map[string]string{"token": provider + "-legacy-secret"}, Version: 1})
			require.NoError(t, err)
			require.NoError(t, env.storage.Put(ctx, &logical.StorageEntry{Key: unclaimedOrgProviderTokenPrefix + "acme/" + provider, Value: value}))
		}
		// acme wrote its own ionq token since: the old one stays aside.
		value, err := json.Marshal(&providerTokenEntry{Provider: "ionq", Values: map[string]string{"api_key": "new"}, Version: 1})
		require.NoError(t, err)
		require.NoError(t, env.storage.Put(ctx, &logical.StorageEntry{Key: orgProviderTokenPrefix(testOrgID("acme")) + "ionq", Value: value}))
		return env
	}
	snapshot := func(env *testEnv) map[string]string {
		// The recount corrects the counts an interrupted claim left.
		require.NoError(t, env.b.recountNow(env.storage, true))
		s := env.storageSnapshot()
		delete(s, orgEntryPath(testOrgID("acme"))) // holds first_seen
		delete(s, recountPath)                     // holds times
		delete(s, dueIndexPath)
		delete(s, migrationPath)    // holds completed_at: a second apart
		delete(s, orgMigrationPath) // from the reference's now and then
		return s
	}
	reference := setup(t)
	msg, err := reference.b.registerOrg(ctx, reference.storage, "acme", testOrgID("acme"), true)
	require.NoError(t, err)
	require.Empty(t, msg)
	want := snapshot(reference)
	require.Contains(t, want, orgProviderTokenPrefix(testOrgID("acme"))+"dwave")
	require.Contains(t, want, unclaimedOrgProviderTokenPrefix+"acme/ionq")
	require.NotContains(t, want, unclaimedOrgProviderTokenPrefix+"acme/dwave")
	require.Contains(t, want, orgNamePath("acme"))

	for failAt := int64(1); ; failAt++ {
		env := setup(t)
		failing := &failingStorage{Storage: env.storage, failAt: failAt}
		_, err := env.b.registerOrg(ctx, failing, "acme", testOrgID("acme"), true)
		if err == nil {
			require.Equal(t, want, snapshot(env), "no interruption")
			break
		}
		require.ErrorIs(t, err, errInjected)
		_, err = env.b.registerOrg(ctx, env.storage, "acme", testOrgID("acme"), true)
		require.NoError(t, err)
		require.Equal(t, want, snapshot(env), "interrupted at write %d", failAt)
	}
}

// Only operators and platform admins register organizations.
func TestOrganizations_onlyOperatorsAndAdminsRegister(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	admin := env.addUser("admin")
	env.setRole(alice, "acme", "owner")
	env.setRole(admin, adminOrg, "admin")
	require.Equal(t, 403, env.statusOf(logical.UpdateOperation, "orgs/acme", alice, map[string]interface{}{"id": "id-mine"}))
	env.ok(logical.UpdateOperation, "orgs/globex", admin, map[string]interface{}{"id": "id-globex"})
	require.Equal(t, 400, env.statusOf(logical.UpdateOperation, "orgs/acme", "", map[string]interface{}{"id": "bad/id"}))
	require.Equal(t, 400, env.statusOf(logical.UpdateOperation, "orgs/acme", "", nil))
	require.Equal(t, testOrgID("acme"), env.ok(logical.ReadOperation, "orgs/acme", "", nil).Data["id"])
}

// A warm member read of an organization's token costs what it did before
// organization ids: the id comes from the member's groups, the pin from
// memory.
func TestOrganizations_warmRequestsReadNoOrganizationEntry(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "k"})
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	env.storage.reset()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", alice, nil)
	require.Equal(t, roundTrips{}, env.storage.counted())

	// Cold on this node (a restart, another node's change): the id's entry
	// and the name's pointer are read once; the bootstrap registered both,
	// so nothing is written.
	env.b.orgNames.purge()
	env.b.orgPointers.purge()
	env.storage.reset()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{Gets: 2}, env.storage.counted())
	env.storage.reset()
	env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{}, env.storage.counted())
}

// Another node's registration reaches this node's caches through
// Invalidate: the name's pointer and the id's name.
func TestOrganizations_anotherNodesRegistrationIsSeen(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "k"})
	require.Equal(t, 200, env.statusOf(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", "", nil))
	require.Equal(t, []string{"acme"}, env.ok(logical.ListOperation, "orgs/", "", nil).Data["keys"])

	// Another node registers acme anew (the organization was recreated).
	require.NoError(t, putOrgEntry(ctx, env.storage, &orgEntry{ID: "id-acme-2", Name: "acme"}))
	require.NoError(t, putOrgName(ctx, env.storage, "acme", "id-acme-2"))
	env.b.invalidate(ctx, orgEntryPath("id-acme-2"))
	env.b.invalidate(ctx, orgNamePath("acme"))
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "orgs/acme/provider-tokens/ionq", "", nil))

	// And an id's entry rewritten there (restored from a backup, say).
	require.NoError(t, putOrgEntry(ctx, env.storage, &orgEntry{ID: testOrgID("acme"), Name: "acme-old"}))
	require.NoError(t, putOrgName(ctx, env.storage, "acme-old", testOrgID("acme")))
	env.b.invalidate(ctx, orgEntryPath(testOrgID("acme")))
	env.b.invalidate(ctx, orgNamePath("acme-old"))
	require.Equal(t, []string{"acme-old"}, env.ok(logical.ListOperation, "orgs/", "", nil).Data["keys"])
}

// A registration interrupted after the id's entry was written is completed
// by the next member's request: the pointer, and the claim.
func TestOrganizations_aMembersRequestCompletesAnInterruptedRegistration(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	value, err := json.Marshal(&providerTokenEntry{Provider: "ionq", Values: map[string]string{"api_key": "legacy-ionq-secret"}, SecretFields: []string{"api_key"}, Version: 1})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, &logical.StorageEntry{Key: unclaimedOrgProviderTokenPrefix + "acme/ionq", Value: value}))

	failing := &failingStorage{Storage: env.storage, failAt: 2} // the entry is written, the claim is not
	_, err = env.b.registerOrg(ctx, failing, "acme", testOrgID("acme"), true)
	require.ErrorIs(t, err, errInjected)
	require.Contains(t, env.storageSnapshot(), orgEntryPath(testOrgID("acme")))

	env.setOrgGroup(alice, "planqk-acme-members", "acme", "member", testOrgID("acme"))
	require.Equal(t, "legacy-ionq-secret", env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"}).Data["api_key"])
	require.Equal(t, testOrgID("acme"), env.ok(logical.ReadOperation, "orgs/acme", "", nil).Data["id"])
	require.NotContains(t, env.storageSnapshot(), unclaimedOrgProviderTokenPrefix+"acme/ionq")
}

// On a performance standby a member's read writes nothing: the id from the
// member's groups serves, and the pin is still checked.
func TestOrganizations_aStandbyChecksThePinAndWritesNothing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	mallory := env.addUser("mallory")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret"})
	env.setOrgGroup(mallory, "planqk-evil-owners", "evil", "owner", testOrgID("acme"))
	bob := env.addUser("bob")
	env.setOrgGroup(bob, "planqk-initech-owners", "initech", "owner", "id-initech")
	env.b.orgNames.purge()
	env.b.orgPointers.purge()
	env.setReplicationState(consts.ReplicationPerformanceStandby)

	before := env.storageSnapshot()
	require.Equal(t, "acme-ionq-secret", env.ok(logical.ReadOperation, "resolve/ionq", alice, map[string]interface{}{"org": "acme"}).Data["api_key"])
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "orgs/evil/provider-tokens/ionq", mallory, nil))
	require.Empty(t, env.ok(logical.ListOperation, "orgs/initech/provider-tokens/", bob, nil).Data["keys"])
	require.Equal(t, before, env.storageSnapshot())
}

// Review of issue 21: after acme was created anew, the list of
// organizations with provider tokens named acme twice for operators (the
// old id's tokens and the new one's), though "acme" addresses only the new
// id; the old id is reachable by no name and is listed by the inventory.
func TestOrganizations_theListNamesAnOrganizationOnceAfterItIsCreatedAnew(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	mallory := env.addUser("mallory")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "acme-ionq-secret-0001"})
	env.setRole(alice, "acme", "")
	env.ok(logical.UpdateOperation, "orgs/acme", "", map[string]interface{}{"id": "id-acme-2"})
	env.setOrgGroup(mallory, "planqk-acme-owners", "acme", "owner", "id-acme-2")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/dwave", mallory, map[string]interface{}{"token": "acme2-dwave-secret-0001"})

	require.Equal(t, []string{"acme"}, env.ok(logical.ListOperation, "orgs/", "", nil).Data["keys"])
	require.Equal(t, []string{"acme"}, env.ok(logical.ListOperation, "orgs/", mallory, nil).Data["keys"])
}
