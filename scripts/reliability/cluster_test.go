//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestHACluster starts three raft nodes, mounts the engine once (the
// catalogue and mounts replicate) and checks that requests sent to
// standbys are forwarded, and reads after writes see the writes.
func TestHACluster(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	// Trace level: the leak check reads the most the nodes and the plugin log.
	c, sha, err := vaultharness.StartCluster(ctx, vaultBin, pluginBin, filepath.Join(workDir, "cluster"), 3, "trace")
	if err != nil {
		t.Fatal(err)
	}
	cluster = c
	for _, node := range c.Nodes {
		expectLog(node.LogPath)
	}
	leader, err := c.WaitLeader(ctx, time.Minute)
	must(t, err)
	report("3-node raft cluster up, unsealed, engine mounted", time.Since(start).Round(time.Second))
	setUpEngine(ctx, t, clientFor(t, leader, c.RootToken), sha)
	login(ctx, t, leader)

	forwarded := 0
	for i, writer := range c.Nodes {
		reader := c.Nodes[(i+1)%len(c.Nodes)]
		name := fmt.Sprintf("ha-%d", i)
		created, err := clientFor(t, writer, userTokens["alice"]).Logical().Write(mount+"/users/alice/tokens/"+name, nil)
		if err != nil {
			t.Fatalf("create through %s: %v", writer.Addr, err)
		}
		secret := created.Data["token"].(string)
		remember(secret, "alice's "+name+" PAT")
		ackPAT(secret, "alice", created.Data)
		if writer != leader {
			forwarded++
		}

		read, err := clientFor(t, reader, userTokens["alice"]).Logical().Read(mount + "/users/alice/tokens/" + name)
		if err != nil || read == nil || read.Data["token_id"] != created.Data["token_id"] {
			t.Fatalf("read through %s after a write through %s: %v %v", reader.Addr, writer.Addr, read, err)
		}
		verified, err := clientFor(t, reader, verifierToken).Logical().Write(mount+"/verify", map[string]interface{}{"token": secret})
		if err != nil || verified.Data["active"] != true {
			t.Fatalf("verify through %s: %v %v", reader.Addr, verified, err)
		}
		value := fmt.Sprintf("ionq-alice-ha-%d-5d1e", i)
		remember(value, "alice's IonQ key")
		attemptProviderWrite("alice", value)
		if _, err := clientFor(t, writer, userTokens["alice"]).Logical().Write(mount+"/users/alice/provider-tokens/ionq", map[string]interface{}{"api_key": value}); err != nil {
			t.Fatalf("provider token through %s: %v", writer.Addr, err)
		}
		ackProviderWrite("alice", value)
		resolved, err := clientFor(t, reader, userTokens["alice"]).Logical().Read(mount + "/resolve/ionq")
		if err != nil || resolved.Data["api_key"] != value {
			t.Fatalf("resolve through %s after a write through %s: %v", reader.Addr, writer.Addr, err)
		}
	}
	report("writes through standbys (forwarded), each read back elsewhere", forwarded)
}

// TestChangesAreSeenAtOnceOnEveryNode: verify serves token records from a
// cache, so every change that ends a token must be seen by the very next
// verify, whichever node it is sent to - rotation, revocation, expiry, a
// new token prefix, a revoked lease. On Community Edition every standby
// forwards to the active node, so one plugin process answers all of them:
// this proves forwarding and the active node's own cache, not cross-node
// invalidation, which backend's TestBackend_aStandbySeesTheActiveNodesChangesAtOnce
// proves in process (an Enterprise performance standby's Invalidate path).
func TestChangesAreSeenAtOnceOnEveryNode(t *testing.T) {
	ctx := context.Background()
	nodes := cluster.Running()
	verifyOn := func(i int, token string) bool {
		t.Helper()
		got, err := clientFor(t, nodes[i%len(nodes)], verifierToken).Logical().Write(mount+"/verify", map[string]interface{}{"token": token})
		must(t, err)
		return got.Data["active"] == true
	}
	alice := func(i int) *api.Client { return clientFor(t, nodes[i%len(nodes)], userTokens["alice"]) }
	create := func(i int, name string, data map[string]interface{}) string {
		t.Helper()
		created, err := alice(i).Logical().Write(mount+"/users/alice/tokens/"+name, data)
		must(t, err)
		secret := created.Data["token"].(string)
		remember(secret, "alice's "+name+" PAT")
		return secret
	}
	for i := range nodes {
		// Every node has verified (and cached) the token before it changes.
		rotated := create(i, fmt.Sprintf("cache-rotate-%d", i), nil)
		revoked := create(i+1, fmt.Sprintf("cache-revoke-%d", i), nil)
		for j := range nodes {
			if !verifyOn(j, rotated) || !verifyOn(j, revoked) {
				t.Fatalf("a new token does not verify through node %d", j)
			}
		}
		renewed, err := alice(i+2).Logical().Write(mount+"/users/alice/tokens/"+fmt.Sprintf("cache-rotate-%d", i)+"/rotate", nil)
		must(t, err)
		remember(renewed.Data["token"].(string), "alice's rotated PAT")
		_, err = alice(i).Logical().Delete(mount + "/users/alice/tokens/" + fmt.Sprintf("cache-revoke-%d", i))
		must(t, err)
		for j := range nodes {
			if verifyOn(j, rotated) {
				t.Errorf("the rotated-away secret verifies through node %d", j)
			}
			if verifyOn(j, revoked) {
				t.Errorf("the revoked token verifies through node %d", j)
			}
			if !verifyOn(j, renewed.Data["token"].(string)) {
				t.Errorf("the new secret does not verify through node %d", j)
			}
		}
	}

	// Expiry: cached records are checked against their expiry on each use.
	short := create(0, "cache-expiry", map[string]interface{}{"ttl": "8s"})
	for j := range nodes {
		if !verifyOn(j, short) {
			t.Fatalf("the short-lived token does not verify through node %d", j)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && verifyOn(0, short) {
		time.Sleep(200 * time.Millisecond)
	}
	for j := range nodes {
		if verifyOn(j, short) {
			t.Errorf("the expired token verifies through node %d", j)
		}
	}

	// A leased token revoked through Vault.
	leased, err := alice(1).Logical().Read(mount + "/users/alice/creds/runtime")
	must(t, err)
	leasePAT := leased.Data["token"].(string)
	remember(leasePAT, "alice's leased PAT")
	for j := range nodes {
		if !verifyOn(j, leasePAT) {
			t.Fatalf("the leased token does not verify through node %d", j)
		}
	}
	must(t, clientFor(t, nodes[2], cluster.RootToken).Sys().RevokeWithContext(ctx, leased.LeaseID))
	for j := range nodes {
		if verifyOn(j, leasePAT) {
			t.Errorf("the revoked leased token verifies through node %d", j)
		}
	}

	// A configuration change: tokens of the old prefix stop at once.
	kept := create(2, "cache-prefix", nil)
	for j := range nodes {
		if !verifyOn(j, kept) {
			t.Fatalf("a token does not verify through node %d", j)
		}
	}
	root := clientFor(t, nodes[1], cluster.RootToken)
	_, err = root.Logical().Write(mount+"/config", map[string]interface{}{"token_prefix": "acme_"})
	must(t, err)
	for j := range nodes {
		if verifyOn(j, kept) {
			t.Errorf("a token of the old prefix verifies through node %d after the prefix changed", j)
		}
	}
	_, err = root.Logical().Write(mount+"/config", map[string]interface{}{"token_prefix": "plqk_"})
	must(t, err)
	report("changes seen at once through every node's API (forwarded to the active node)", "yes")
}

// TestFailoverWithoutLoss issues PATs and writes provider tokens through
// all three nodes while the active node is killed with SIGKILL; the load
// goes on for a while after a new active node is elected. Afterwards every
// acknowledged PAT verifies and is in its user's index, every provider
// token holds the last acknowledged value, nothing half-written remains,
// and issuing continues.
func TestFailoverWithoutLoss(t *testing.T) {
	if cluster == nil {
		t.Fatal("no cluster: TestHACluster failed")
	}
	ctx := context.Background()
	leader, err := cluster.WaitLeader(ctx, time.Minute)
	must(t, err)

	// The load runs killAfter before the kill and afterElection after a
	// new active node is elected, however long the election takes.
	const workers, killAfter, afterElection = 6, 4 * time.Second, 6 * time.Second
	var ackedWrites, attempted, errorsSeen, ackedAfterElection atomic.Int64
	var electedAt atomic.Int64 // unix nanoseconds; 0 until elected
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	acknowledged := func() {
		ackedWrites.Add(1)
		if at := electedAt.Load(); at != 0 && time.Now().UnixNano() > at {
			ackedAfterElection.Add(1)
		}
	}
	userNames := []string{"alice", "bob", "carol"}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			user := userNames[w%len(userNames)]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				node := cluster.Nodes[(w+i)%len(cluster.Nodes)]
				if !node.Running() {
					continue
				}
				client := clientFor(t, node, userTokens[user])
				name := fmt.Sprintf("failover-w%d-%d", w, i)
				attempted.Add(1)
				created, err := client.Logical().Write(mount+"/users/"+user+"/tokens/"+name, nil)
				if err != nil {
					errorsSeen.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				secret := created.Data["token"].(string)
				remember(secret, user+"'s "+name+" PAT")
				ackPAT(secret, user, created.Data)
				acknowledged()

				if w < len(userNames) { // one writer per user keeps the order of writes known
					value := fmt.Sprintf("ionq-%s-failover-%d-8c2", user, i)
					remember(value, user+"'s IonQ key")
					attempted.Add(1)
					attemptProviderWrite(user, value)
					if _, err := client.Logical().Write(mount+"/users/"+user+"/provider-tokens/ionq", map[string]interface{}{"api_key": value}); err != nil {
						errorsSeen.Add(1)
						continue
					}
					ackProviderWrite(user, value)
					acknowledged()
				}
			}
		}(w)
	}

	time.Sleep(killAfter)
	killedAt := time.Now()
	leader.Kill()
	newLeader, err := cluster.WaitLeader(ctx, time.Minute)
	must(t, err)
	election := time.Since(killedAt)
	electedAt.Store(time.Now().UnixNano())
	time.Sleep(afterElection)
	stopLoad()

	// Every surviving node names the new active node as the leader, and
	// it is one of them.
	if len(cluster.Running()) != len(cluster.Nodes)-1 {
		t.Fatalf("%d of %d nodes run after killing one", len(cluster.Running()), len(cluster.Nodes))
	}
	for _, node := range cluster.Running() {
		status, err := clientFor(t, node, "").Sys().Leader()
		if err != nil {
			t.Fatalf("sys/leader on %s: %v", node.Addr, err)
		}
		if status.LeaderAddress != newLeader.Addr || status.IsSelf != (node == newLeader) {
			t.Errorf("%s names leader %s (self: %v); the active node is %s", node.Addr, status.LeaderAddress, status.IsSelf, newLeader.Addr)
		}
	}
	if ackedAfterElection.Load() == 0 {
		t.Error("no write was acknowledged after the new active node was elected")
	}

	presentPATs := checkAcknowledged(t, newLeader)
	indexed := checkIndex(t, newLeader)
	presentProviderWrites, unconfirmedValues := checkProviderTokens(t, newLeader)

	// Interrupted writes (the kill landed between a create's two storage
	// writes) may have left halves behind, never acknowledged; repair
	// removes them, and a second pass must find nothing.
	root := clientFor(t, newLeader, cluster.RootToken)
	first := repairTidy(t, root)
	second := repairTidy(t, root)
	if fmt.Sprint(second["orphans_removed"]) != "0" || fmt.Sprint(second["dangling_removed"]) != "0" {
		t.Errorf("half-written entries remain after repair: %v", second)
	}
	if again := checkAcknowledged(t, newLeader); again != len(acked) {
		t.Errorf("repair removed acknowledged tokens: %d of %d verify", again, len(acked))
	}
	if again := checkIndex(t, newLeader); again != len(acked) {
		t.Errorf("repair removed acknowledged tokens from the index: %d of %d listed", again, len(acked))
	}

	// Issuing continues, through every surviving node.
	for _, node := range cluster.Running() {
		if _, err := clientFor(t, node, userTokens["bob"]).Logical().Write(mount+"/users/bob/tokens/after-failover-"+fmt.Sprint(node.Port), nil); err != nil {
			t.Errorf("issuing through %s after the failover: %v", node.Addr, err)
		}
	}

	report("failover: writes attempted", attempted.Load())
	report("failover: writes acknowledged", ackedWrites.Load())
	report("failover: of them after the new active node was elected", ackedAfterElection.Load())
	report("failover: acknowledged PATs verifying afterwards (whole run)", fmt.Sprintf("%d of %d", presentPATs, len(acked)))
	report("failover: acknowledged PATs in the index, read back by name", fmt.Sprintf("%d of %d", indexed, len(acked)))
	report("failover: provider tokens at their last acknowledged value", fmt.Sprintf("%d users, covering %d acknowledged writes (%d at a later unacknowledged write's value)", len(providerWrites), presentProviderWrites, unconfirmedValues))
	report("failover: errors seen during the election", errorsSeen.Load())
	report("failover: time to a new active node", election.Round(time.Millisecond))
	report("failover: half-written entries repaired (unacknowledged)", fmt.Sprintf("%v orphan records, %v dangling index entries", first["orphans_removed"], first["dangling_removed"]))

	// The killed node comes back and rejoins as a standby.
	must(t, leader.Restart(ctx))
	must(t, leader.Unseal(ctx, cluster.UnsealKey))
}

// TestPluginCrash kills the active node's plugin process while requests
// run; Vault starts it again, requests succeed again within a deadline,
// and nothing is lost.
func TestPluginCrash(t *testing.T) {
	if cluster == nil {
		t.Fatal("no cluster: TestHACluster failed")
	}
	ctx := context.Background()
	leader, err := cluster.WaitLeader(ctx, time.Minute)
	must(t, err)
	pids, err := leader.PluginPIDs()
	must(t, err)
	if len(pids) == 0 {
		t.Fatal("the active node runs no plugin process")
	}

	// A success counts as a recovery only for a request sent after the
	// kill: one already answered when the plugin died proves nothing.
	var ok, failed, okAfterKill atomic.Int64
	var killedAt, recoveredAt atomic.Int64 // unix nanoseconds; 0 until then
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := clientFor(t, leader, userTokens["carol"])
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("crash-w%d-%d", w, i)
				sent := time.Now().UnixNano()
				created, err := client.Logical().Write(mount+"/users/carol/tokens/"+name, nil)
				if err != nil {
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				ok.Add(1)
				if k := killedAt.Load(); k != 0 && sent > k {
					okAfterKill.Add(1)
					recoveredAt.CompareAndSwap(0, time.Now().UnixNano())
				}
				secret := created.Data["token"].(string)
				remember(secret, "carol's "+name+" PAT")
				ackPAT(secret, "carol", created.Data)
			}
		}(w)
	}
	time.Sleep(time.Second)
	if ok.Load() == 0 {
		t.Fatal("no request succeeded before the plugin was killed")
	}
	killedAt.Store(time.Now().UnixNano())
	for _, pid := range pids {
		must(t, syscall.Kill(pid, syscall.SIGKILL))
	}
	// Recovery is measured, with a deadline: a slow machine takes longer,
	// a plugin that never comes back fails.
	const deadline = 30 * time.Second
	for recoveredAt.Load() == 0 {
		if time.Since(time.Unix(0, killedAt.Load())) > deadline {
			stopLoad()
			t.Fatalf("no request sent after the plugin was killed succeeded within %s", deadline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	recovery := time.Duration(recoveredAt.Load() - killedAt.Load())
	time.Sleep(2 * time.Second)
	stopLoad()

	newPIDs, err := leader.PluginPIDs()
	must(t, err)
	if len(newPIDs) == 0 || slices.Contains(pids, newPIDs[0]) {
		t.Errorf("the plugin was not restarted: %v -> %v", pids, newPIDs)
	}
	present := checkAcknowledged(t, leader)
	indexed := checkIndex(t, leader)
	report("plugin crash: requests failed while it restarted", failed.Load())
	report("plugin crash: time to the first success of a request sent after the kill", recovery.Round(time.Millisecond))
	report("plugin crash: requests sent after the kill that succeeded", okAfterKill.Load())
	report("plugin crash: acknowledged PATs verifying afterwards", fmt.Sprintf("%d of %d", present, len(acked)))
	report("plugin crash: acknowledged PATs in the index", fmt.Sprintf("%d of %d", indexed, len(acked)))
}

// repairTidy runs tidy with repair and waits for its result.
func repairTidy(t *testing.T, root *api.Client) map[string]interface{} {
	t.Helper()
	status, err := vaultharness.Tidy(context.Background(), root, mount, true, 2*time.Minute)
	must(t, err)
	return status
}
