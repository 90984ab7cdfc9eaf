//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestClusterRestartPersistence stops and restarts the whole cluster: all
// PATs still verify (so the per-mount HMAC key survived) and all provider
// tokens still resolve.
func TestClusterRestartPersistence(t *testing.T) {
	if cluster == nil {
		t.Fatal("no cluster: TestHACluster failed")
	}
	ctx := context.Background()
	start := time.Now()
	must(t, cluster.Restart(ctx))
	leader, err := cluster.WaitLeader(ctx, time.Minute)
	must(t, err)
	restart := time.Since(start)
	present := checkAcknowledged(t, leader)
	indexed := checkIndex(t, leader)
	providers, _ := checkProviderTokens(t, leader)
	report("cluster restart: time until active again", restart.Round(time.Second))
	report("cluster restart: PATs verifying afterwards", fmt.Sprintf("%d of %d", present, len(acked)))
	report("cluster restart: PATs in the index", fmt.Sprintf("%d of %d", indexed, len(acked)))
	report("cluster restart: provider tokens at their last acknowledged value, covering writes", providers)
}

// TestSingleNodeRestartPersistence does the same for one server with file
// storage and one with integrated storage.
func TestSingleNodeRestartPersistence(t *testing.T) {
	for _, kind := range []string{"file", "raft"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := filepath.Join(workDir, "single-"+kind)
			_, sha, err := vaultharness.InstallPlugin(pluginBin, dir)
			must(t, err)
			storage := fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", filepath.Join(dir, "data"))
			if kind == "raft" {
				storage = vaultharness.RaftStorage(dir, "single", nil)
			}
			node, err := vaultharness.StartNode(ctx, vaultBin, dir, func(port, clusterPort int) string {
				return vaultharness.NodeConfigAt(dir, port, clusterPort, storage, "trace")
			})
			must(t, err)
			defer node.Stop()
			expectLog(node.LogPath)
			key, root, err := node.Initialize(ctx)
			must(t, err)
			single := &vaultharness.Cluster{Nodes: []*vaultharness.Server{node}, UnsealKey: key, RootToken: root}
			_, err = single.WaitLeader(ctx, time.Minute)
			must(t, err)

			rootClient := clientFor(t, node, root)
			must(t, node.RegisterPlugin(ctx, sha, pluginVersion))
			must(t, node.Mount(ctx, mount, pluginVersion))
			boot := &bootstrap.Bootstrapper{Client: rootClient, Mount: mount, AuthMount: authMount}
			must(t, boot.Init(ctx))
			const user, password = "dana", "pw-dana-single-3e0"
			remember(password, "dana's password")
			_, err = boot.User(ctx, user, password)
			must(t, err)
			token, err := node.Login(ctx, authMount, user, password)
			must(t, err)

			dana := clientFor(t, node, token)
			created, err := dana.Logical().Write(mount+"/users/"+user+"/tokens/persisted", nil)
			must(t, err)
			secret := created.Data["token"].(string)
			remember(secret, "dana's persisted PAT ("+kind+")")
			value := "dwave-dana-" + kind + "-persisted-41f"
			remember(value, "dana's D-Wave token")
			_, err = dana.Logical().Write(mount+"/users/"+user+"/provider-tokens/dwave", map[string]interface{}{"token": value})
			must(t, err)

			node.Stop()
			must(t, node.Restart(ctx))
			must(t, node.Unseal(ctx, key))
			_, err = single.WaitLeader(ctx, time.Minute)
			must(t, err)

			verified, err := rootClient.Logical().Write(mount+"/verify", map[string]interface{}{"token": secret})
			must(t, err)
			if verified.Data["active"] != true {
				t.Fatalf("the PAT does not verify after a restart of the %s server", kind)
			}
			resolved, err := dana.Logical().Read(mount + "/resolve/dwave")
			must(t, err)
			if resolved == nil || resolved.Data["token"] != value {
				t.Fatalf("the provider token did not survive a restart of the %s server", kind)
			}
			report("single "+kind+" server restart: PAT verifies, provider token resolves", "yes")
		})
	}
}
