package vaultharness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// Cluster is a Vault cluster with integrated storage (raft) on loopback,
// initialised with a single unseal key.
type Cluster struct {
	Nodes     []*Server
	UnsealKey string
	RootToken string
}

// NodeConfig is the configuration of one node of a raft cluster, or of a
// single server with the storage stanza given, logging at info level.
func NodeConfig(dir string, port, clusterPort int, storage string) string {
	return NodeConfigAt(dir, port, clusterPort, storage, "info")
}

// NodeConfigAt is NodeConfig at the log level given (Vault's plugins follow it).
func NodeConfigAt(dir string, port, clusterPort int, storage, logLevel string) string {
	return fmt.Sprintf(`
%s
listener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
}
api_addr             = "http://127.0.0.1:%d"
cluster_addr         = "https://127.0.0.1:%d"
disable_mlock        = true
plugin_directory     = %q
raw_storage_endpoint = true
log_level            = %q
`, storage, port, clusterPort, port, clusterPort, filepath.Join(dir, "plugins"), logLevel)
}

// RaftStorage is the storage stanza of node id of a cluster whose nodes
// listen on ports.
func RaftStorage(dir, id string, ports []int) string {
	var joins strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = \"http://127.0.0.1:%d\"\n  }\n", p)
	}
	return fmt.Sprintf("storage \"raft\" {\n  path    = %q\n  node_id = %q\n%s}\n", filepath.Join(dir, "data"), id, joins.String())
}

// StartConfigured starts `vault server -config` with the configuration in
// dir/vault.hcl and waits until it answers (sealed or not).
func StartConfigured(ctx context.Context, vaultBin, dir string, port int, config string) (*Server, error) {
	s, err := newConfiguredServer(vaultBin, dir)
	if err != nil {
		return nil, err
	}
	s.Port, s.Addr = port, fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := os.WriteFile(s.configPath(), []byte(config), 0o600); err != nil {
		return nil, err
	}
	if err := s.start([]string{"server", "-config=" + s.configPath()}); err != nil {
		return nil, err
	}
	return s, s.waitAnswering(ctx, 60*time.Second)
}

// StartNode starts `vault server -config` with the configuration config
// renders for the API and cluster ports it is given, which it picks free;
// when another process takes the API port first, it starts again on new
// ones. It waits until the server answers (sealed or not).
func StartNode(ctx context.Context, vaultBin, dir string, config func(port, clusterPort int) string) (*Server, error) {
	s, err := newConfiguredServer(vaultBin, dir)
	if err != nil {
		return nil, err
	}
	err = s.startOnFreePorts(func(port, clusterPort int) ([]string, error) {
		err := os.WriteFile(s.configPath(), []byte(config(port, clusterPort)), 0o600)
		return []string{"server", "-config=" + s.configPath()}, err
	})
	if err != nil {
		return nil, err
	}
	return s, s.waitAnswering(ctx, 60*time.Second)
}

func newConfiguredServer(vaultBin, dir string) (*Server, error) {
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	return &Server{Bin: vaultBin, Dir: dir, LogPath: filepath.Join(dir, "server.log")}, nil
}

func (s *Server) configPath() string { return filepath.Join(s.Dir, "vault.hcl") }

// Restart starts a stopped server again with the same configuration.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.start([]string{"server", "-config=" + s.configPath()}); err != nil {
		return err
	}
	return s.waitAnswering(ctx, 60*time.Second)
}

func (s *Server) waitAnswering(ctx context.Context, timeout time.Duration) error {
	client, err := s.Client("")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		if _, err := client.Sys().SealStatusWithContext(ctx); err == nil {
			return nil
		}
		if !s.Running() {
			return fmt.Errorf("vault exited while starting; see %s", s.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vault at %s not answering after %s; see %s", s.Addr, timeout, s.LogPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Initialize initialises the server with one unseal key and unseals it.
func (s *Server) Initialize(ctx context.Context) (unsealKey, rootToken string, err error) {
	client, err := s.Client("")
	if err != nil {
		return "", "", err
	}
	init, err := client.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return "", "", err
	}
	s.RootToken = init.RootToken
	return init.Keys[0], init.RootToken, s.Unseal(ctx, init.Keys[0])
}

// Unseal unseals the server (a raft node joins its cluster doing so) and
// waits until it reports unsealed.
func (s *Server) Unseal(ctx context.Context, key string) error {
	client, err := s.Client("")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		status, err := client.Sys().UnsealWithContext(ctx, key)
		if err == nil && !status.Sealed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still sealed after 90s (last error: %v); see %s", s.Addr, err, s.LogPath)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// StartCluster starts n raft nodes under dir, initialises the first,
// unseals all (the others join through retry_join), installs the plugin in
// every node's plugin directory and waits for an active node. The nodes
// log at logLevel.
func StartCluster(ctx context.Context, vaultBin, pluginBin, dir string, n int, logLevel string) (*Cluster, string, error) {
	// Every node's retry_join names every API address, so all are picked
	// first; a node that must move to another port (see StartNode) updates
	// the list the nodes after it get. The first node, which the others
	// join, always knows its own address.
	ports := make([]int, n)
	for i := range ports {
		var err error
		if ports[i], err = FreePort(); err != nil {
			return nil, "", err
		}
	}
	c := &Cluster{}
	var sha string
	for i := 0; i < n; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i+1))
		_, nodeSHA, err := InstallPlugin(pluginBin, nodeDir)
		if err != nil {
			return nil, "", err
		}
		sha = nodeSHA
		id := fmt.Sprintf("node%d", i+1)
		node, err := StartNode(ctx, vaultBin, nodeDir, func(port, clusterPort int) string {
			ports[i] = port
			return NodeConfigAt(nodeDir, port, clusterPort, RaftStorage(nodeDir, id, ports), logLevel)
		})
		if err != nil {
			c.Stop()
			return nil, "", err
		}
		c.Nodes = append(c.Nodes, node)
	}
	key, root, err := c.Nodes[0].Initialize(ctx)
	if err != nil {
		c.Stop()
		return nil, "", err
	}
	c.UnsealKey, c.RootToken = key, root
	if _, err := c.WaitLeader(ctx, 60*time.Second); err != nil {
		c.Stop()
		return nil, "", err
	}
	for _, node := range c.Nodes[1:] {
		node.RootToken = root
		if err := node.Unseal(ctx, key); err != nil {
			c.Stop()
			return nil, "", err
		}
	}
	if err := c.waitVoters(ctx, n, 90*time.Second); err != nil {
		c.Stop()
		return nil, "", err
	}
	return c, sha, nil
}

// waitVoters shortens autopilot's stabilisation time and waits until n
// nodes are raft voters, so that the cluster survives losing its leader.
func (c *Cluster) waitVoters(ctx context.Context, n int, timeout time.Duration) error {
	leader, err := c.WaitLeader(ctx, timeout)
	if err != nil {
		return err
	}
	root, err := leader.Client(c.RootToken)
	if err != nil {
		return err
	}
	if _, err := root.Logical().WriteWithContext(ctx, "sys/storage/raft/autopilot/configuration", map[string]interface{}{
		"server_stabilization_time": "2s",
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		config, err := root.Logical().ReadWithContext(ctx, "sys/storage/raft/configuration")
		voters := 0
		if err == nil && config != nil {
			inner, _ := config.Data["config"].(map[string]interface{})
			servers, _ := inner["servers"].([]interface{})
			for _, server := range servers {
				if s, ok := server.(map[string]interface{}); ok && s["voter"] == true {
					voters++
				}
			}
		}
		if voters == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d raft nodes are voters after %s (last error: %v)", voters, n, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// WaitLeader waits until one node is active and returns it.
func (c *Cluster) WaitLeader(ctx context.Context, timeout time.Duration) (*Server, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, node := range c.Nodes {
			if !node.Running() {
				continue
			}
			client, err := node.Client("")
			if err != nil {
				return nil, err
			}
			health, err := client.Sys().HealthWithContext(ctx)
			if err == nil && !health.Sealed && !health.Standby {
				return node, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no active node")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Running returns the nodes whose process is alive.
func (c *Cluster) Running() []*Server {
	var running []*Server
	for _, node := range c.Nodes {
		if node.Running() {
			running = append(running, node)
		}
	}
	return running
}

// Stop stops every node.
func (c *Cluster) Stop() {
	for _, node := range c.Nodes {
		node.Stop()
	}
}

// Restart stops every node, starts them again and unseals them.
func (c *Cluster) Restart(ctx context.Context) error {
	c.Stop()
	for _, node := range c.Nodes {
		if err := node.Restart(ctx); err != nil {
			return err
		}
	}
	for _, node := range c.Nodes {
		if err := node.Unseal(ctx, c.UnsealKey); err != nil {
			return err
		}
	}
	_, err := c.WaitLeader(ctx, 60*time.Second)
	return err
}

// PluginPIDs returns the processes running this server's copy of the plugin.
func (s *Server) PluginPIDs() ([]int, error) {
	binary := filepath.Join(s.Dir, "plugins", PluginName)
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.HasPrefix(string(cmdline), binary+"\x00") || string(cmdline) == binary {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
