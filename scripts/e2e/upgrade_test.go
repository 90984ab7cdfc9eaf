//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestUpgradeFromThePreviousRelease mounts the previous release (built from
// this repository's history by `make test-e2e`), fills it as its users
// would - PATs, a lease, users' and an organization's provider tokens, and
// the rename the security review reproduced - then upgrades the mount the
// way an operator does: register the new version, tune the mount to it,
// reload the plugin. Every PAT, lease and provider token must survive, each
// with its own entity.
func TestUpgradeFromThePreviousRelease(t *testing.T) {
	ctx := context.Background()
	previousBin, previous := os.Getenv("PLANQK_PREVIOUS_PLUGIN_BIN"), os.Getenv("PLANQK_PREVIOUS_VERSION")
	current := os.Getenv("PLANQK_PLUGIN_VERSION")
	if previousBin == "" || previous == "" {
		t.Fatal("PLANQK_PREVIOUS_PLUGIN_BIN and PLANQK_PREVIOUS_VERSION are not set: run the suite with `make test`")
	}
	root := as(t, "root")
	const upgradeMount = "planqk-upgrade"

	// Register the previous release beside the current one and mount it.
	command := vaultharness.PluginName + "-" + previous
	sha, err := vaultharness.CopyPlugin(previousBin, filepath.Join(s.srv.Dir, "plugins", command))
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: vaultharness.PluginName, Type: api.PluginTypeSecrets, Command: command, SHA256: sha, Version: previous,
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.srv.Mount(ctx, upgradeMount, previous); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Sys().UnmountWithContext(ctx, upgradeMount) })
	requireRunningVersion(t, upgradeMount, previous)

	// Users of the upgrade mount: the planqk-user policy rendered for it,
	// granted through their entities.
	boot := &bootstrap.Bootstrapper{Client: root, Mount: upgradeMount, AuthMount: authMount}
	policy, err := boot.Policy("planqk-user", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicyWithContext(ctx, "upgrade-user", policy); err != nil {
		t.Fatal(err)
	}
	suffix := fmt.Sprint(loginSeq.Add(1))
	userA, userB := "up-a"+suffix, "up-b"+suffix
	login := func(name string) (*api.Client, string) {
		token, entityID := newLogin(t, name)
		if _, err := root.Logical().Write("identity/entity/id/"+entityID, map[string]interface{}{"policies": "upgrade-user"}); err != nil {
			t.Fatal(err)
		}
		if err := s.boot.SetMember(ctx, "acme", name, "member"); err != nil {
			t.Fatal(err)
		}
		return clientWith(t, token), entityID
	}
	if _, err := root.Logical().Write(upgradeMount+"/roles/runtime", map[string]interface{}{"ttl": "10m", "max_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}

	type issued struct {
		token, entityID, user, name string
	}
	var pats []issued
	createPAT := func(client *api.Client, user, entityID, name string) {
		created, err := client.Logical().Write(upgradeMount+"/users/"+user+"/tokens/"+name, map[string]interface{}{"description": "before the upgrade"})
		if err != nil {
			t.Fatal(err)
		}
		token := created.Data["token"].(string)
		s.remember(token, "pre-upgrade PAT "+user+"/"+name)
		pats = append(pats, issued{token, entityID, user, name})
	}
	writeProviderToken := func(client *api.Client, path, field, value string) {
		s.remember(value, "pre-upgrade provider token at "+path)
		if _, err := client.Logical().Write(upgradeMount+"/"+path, map[string]interface{}{field: value}); err != nil {
			t.Fatal(err)
		}
	}

	clientA, entityA := login(userA)
	createPAT(clientA, userA, entityA, "laptop")
	writeProviderToken(clientA, "users/"+userA+"/provider-tokens/ibm-quantum", "token", "up-a-ibm-secret-"+suffix+"-7c1e")
	lease, err := clientA.Logical().Read(upgradeMount + "/users/" + userA + "/creds/runtime")
	if err != nil {
		t.Fatal(err)
	}
	leasePAT := lease.Data["token"].(string)
	s.remember(leasePAT, "pre-upgrade leased PAT")
	writeProviderToken(root, "orgs/acme/provider-tokens/ionq", "api_key", "acme-ionq-upgrade-secret-"+suffix)

	// The rename under the previous release: B stores as userB, is renamed,
	// and a new entity takes the name and creates a PAT of its own.
	clientB, entityB := login(userB)
	createPAT(clientB, userB, entityB, "old")
	bDwave := "up-b-dwave-secret-" + suffix + "-e93a"
	writeProviderToken(clientB, "users/"+userB+"/provider-tokens/dwave", "token", bDwave)
	renameEntity(t, entityB, userB+"-old")
	clientB2, entityB2 := login(userB)
	createPAT(clientB2, userB, entityB2, "new")
	for i := range pats {
		if pats[i].entityID == entityB {
			pats[i].user = userB + "-old"
		}
	}

	// Upgrade as an operator does.
	if _, err := s.srv.CLI(ctx, s.srv.RootToken, "secrets", "tune", "-plugin-version="+current, upgradeMount); err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.CLI(ctx, s.srv.RootToken, "plugin", "reload", "-plugin="+vaultharness.PluginName); err != nil {
		t.Fatal(err)
	}
	requireRunningVersion(t, upgradeMount, current)

	verifyAt := func(token string) map[string]interface{} {
		got, err := root.Logical().Write(upgradeMount+"/verify", map[string]interface{}{"token": token})
		if err != nil {
			t.Fatal(err)
		}
		return got.Data
	}
	deadline := time.Now().Add(30 * time.Second)
	for verifyAt(pats[0].token)["active"] != true {
		if time.Now().After(deadline) {
			t.Fatal("the upgraded mount does not verify a PAT after 30s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every PAT verifies as its own entity, under its live name.
	for _, p := range pats {
		got := verifyAt(p.token)
		if got["active"] != true || got["entity_id"] != p.entityID || got["user"] != p.user {
			t.Errorf("%s's PAT %s after the upgrade: %v", p.user, p.name, redacted(got))
		}
	}
	// Each entity lists its own.
	for client, want := range map[*api.Client]struct{ user, name string }{
		clientA: {userA, "laptop"}, clientB: {userB + "-old", "old"}, clientB2: {userB, "new"},
	} {
		listed, err := client.Logical().List(upgradeMount + "/users/" + want.user + "/tokens/")
		if err != nil || listed == nil || fmt.Sprint(listed.Data["keys"]) != "["+want.name+"]" {
			t.Errorf("%s lists %v after the upgrade (%v)", want.user, listed, err)
		}
	}
	// Provider tokens go to their owner: B (renamed) keeps its D-Wave
	// token, the new holder of B's old name gets none.
	resolved, err := clientB.Logical().Read(upgradeMount + "/resolve/dwave")
	if err != nil || resolved == nil || resolved.Data["token"] != bDwave {
		t.Errorf("the renamed entity resolving its own token after the upgrade: %v", err)
	}
	if got := statusWith(t, clientB2.Token(), "GET", upgradeMount+"/resolve/dwave"); got != 404 {
		t.Errorf("the new holder of the name resolves the old holder's token: %d", got)
	}
	resolved, err = clientA.Logical().ReadWithData(upgradeMount+"/resolve/ionq", map[string][]string{"org": {"acme"}})
	if err != nil || resolved == nil || !strings.HasPrefix(fmt.Sprint(resolved.Data["api_key"]), "acme-ionq-upgrade-secret-") {
		t.Errorf("the organization's token after the upgrade: %v", err)
	}
	resolved, err = clientA.Logical().Read(upgradeMount + "/resolve/ibm-quantum")
	if err != nil || resolved == nil || resolved.Data["source"] != "user" {
		t.Errorf("A's own token after the upgrade: %v", err)
	}

	// The lease issued by the previous release renews and revokes through
	// Vault.
	if got := verifyAt(leasePAT); got["active"] != true || got["entity_id"] != entityA {
		t.Fatalf("the leased PAT after the upgrade: %v", redacted(got))
	}
	if _, err := root.Sys().Renew(lease.LeaseID, 600); err != nil {
		t.Fatalf("renewing a lease of the previous release: %v", err)
	}
	if err := root.Sys().Revoke(lease.LeaseID); err != nil {
		t.Fatal(err)
	}
	if verifyAt(leasePAT)["active"] != false {
		t.Fatal("the leased PAT verifies after its lease was revoked")
	}

	// Nothing is left under a name.
	snapshot, err := vaultharness.StorageSnapshot(ctx, root, upgradeMount)
	if err != nil {
		t.Fatal(err)
	}
	for key := range snapshot {
		if strings.HasPrefix(key, "token-index/") || strings.HasPrefix(key, "provider-tokens/users/") {
			t.Errorf("the upgrade left %s", key)
		}
	}
	if _, ok := snapshot["migrations/storage-v2"]; !ok {
		t.Error("the upgrade wrote no marker")
	}
}

func requireRunningVersion(t *testing.T, path, version string) {
	t.Helper()
	mounts, err := as(t, "root").Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	if got := mounts[path+"/"].RunningVersion; got != version {
		t.Fatalf("mount %s runs %q, want %q", path, got, version)
	}
}
