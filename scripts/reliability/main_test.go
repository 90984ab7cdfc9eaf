//go:build reliability

// Package reliability proves the engine on a 3-node Vault cluster with
// integrated storage: requests through standbys, failover without losing
// an acknowledged write, restarts, a crashing plugin, and no secret in any
// log. `make test-reliability` runs it and prints a summary of the figures.
package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/vaultharness"
)

const (
	mount     = "planqk"
	authMount = "userpass"
)

var (
	vaultBin, pluginBin, pluginVersion string
	workDir                            string
	cluster                            *vaultharness.Cluster
	users                              = map[string]string{"alice": "owner", "bob": "maintainer", "carol": "member"}
	userTokens                         = map[string]string{}
	verifierToken                      string

	// acked holds every PAT whose creation was acknowledged, to be checked
	// after each fault; providerAcked the last acknowledged provider-token
	// write of each user.
	ackedMu       sync.Mutex
	acked         = map[string]string{} // secret -> user/name
	providerAcked = map[string]int{}    // user -> acknowledged writes

	secretsMu sync.Mutex
	secrets   = map[string]string{} // plaintext -> what it is

	summary []string
)

func TestMain(m *testing.M) {
	vaultBin, pluginBin, pluginVersion = os.Getenv("VAULT_BIN"), os.Getenv("PLANQK_PLUGIN_BIN"), os.Getenv("PLANQK_PLUGIN_VERSION")
	if vaultBin == "" || pluginBin == "" || pluginVersion == "" {
		fmt.Fprintln(os.Stderr, "VAULT_BIN, PLANQK_PLUGIN_BIN and PLANQK_PLUGIN_VERSION must be set: run `make test-reliability`")
		os.Exit(1)
	}
	var err error
	if workDir, err = os.MkdirTemp("", "planqk-reliability-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if cluster != nil {
		cluster.Stop()
	}
	leaks := leakedSecrets()
	report("secrets in audit, server and plugin logs", fmt.Sprintf("%d of %d checked", len(leaks), len(secrets)))
	for _, leak := range leaks {
		fmt.Fprintln(os.Stderr, "LEAK:", leak)
		code = 1
	}

	fmt.Println("\n== Reliability summary ==")
	for _, line := range summary {
		fmt.Println(line)
	}
	if code == 0 {
		os.RemoveAll(workDir)
	} else {
		fmt.Println("logs kept in", workDir)
	}
	os.Exit(code)
}

func report(what string, figure interface{}) {
	summary = append(summary, fmt.Sprintf("  %-52s %v", what, figure))
}

func remember(secret, what string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets[secret] = what
}

// leakedSecrets checks every log under the work directory.
func leakedSecrets() []string {
	var logs []string
	_ = filepath.Walk(workDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".log") {
			logs = append(logs, path)
		}
		return nil
	})
	if len(logs) == 0 {
		return []string{"no logs found: the leak check would prove nothing"}
	}
	var leaks []string
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for secret, what := range secrets {
			if strings.Contains(string(data), secret) {
				leaks = append(leaks, fmt.Sprintf("%s in %s", what, path))
			}
		}
	}
	sort.Strings(leaks)
	return leaks
}

// setUpEngine registers and mounts the plugin through the active node,
// turns on an audit device, and creates the users.
func setUpEngine(ctx context.Context, t *testing.T, root *api.Client, sha string) {
	t.Helper()
	if err := root.Sys().EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": filepath.Join(workDir, "audit.log")},
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().RegisterPluginWithContext(ctx, &api.RegisterPluginInput{
		Name: vaultharness.PluginName, Type: api.PluginTypeSecrets, Command: vaultharness.PluginName, SHA256: sha, Version: pluginVersion,
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().MountWithContext(ctx, mount, &api.MountInput{
		Type: vaultharness.PluginName, Config: api.MountConfigInput{PluginVersion: pluginVersion},
	}); err != nil {
		t.Fatal(err)
	}
	boot := &bootstrap.Bootstrapper{Client: root, Mount: mount, AuthMount: authMount}
	must(t, boot.Init(ctx))
	must(t, boot.Org(ctx, "acme"))
	for user, role := range users {
		password := "pw-" + user + "-reliability-71c"
		remember(password, user+"'s password")
		if _, err := boot.User(ctx, user, password); err != nil {
			t.Fatal(err)
		}
		must(t, boot.SetMember(ctx, "acme", user, role))
	}
	verifier, err := root.Auth().Token().CreateWithContext(ctx, &api.TokenCreateRequest{
		Policies: []string{"planqk-verifier"}, NoDefaultPolicy: true, TTL: "2h",
	})
	if err != nil {
		t.Fatal(err)
	}
	verifierToken = verifier.Auth.ClientToken
	_, err = root.Logical().WriteWithContext(ctx, mount+"/roles/runtime", map[string]interface{}{"ttl": "30m", "max_ttl": "1h"})
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// clientFor returns a client for node with token.
func clientFor(t *testing.T, node *vaultharness.Server, token string) *api.Client {
	t.Helper()
	client, err := node.Client(token)
	if err != nil {
		t.Fatal(err)
	}
	client.SetClientTimeout(15 * time.Second)
	return client
}

// login logs every user in through node.
func login(ctx context.Context, t *testing.T, node *vaultharness.Server) {
	t.Helper()
	for user := range users {
		token, err := node.Login(ctx, authMount, user, "pw-"+user+"-reliability-71c")
		if err != nil {
			t.Fatal(err)
		}
		userTokens[user] = token
	}
}

// checkAcknowledged verifies every acknowledged PAT through node and
// returns how many verified.
func checkAcknowledged(t *testing.T, node *vaultharness.Server) int {
	t.Helper()
	client := clientFor(t, node, verifierToken)
	ackedMu.Lock()
	defer ackedMu.Unlock()
	present := 0
	for secret, what := range acked {
		resp, err := client.Logical().Write(mount+"/verify", map[string]interface{}{"token": secret})
		if err != nil {
			t.Errorf("verify %s: %v", what, err)
			continue
		}
		if resp.Data["active"] == true {
			present++
		} else {
			t.Errorf("acknowledged PAT %s no longer verifies", what)
		}
	}
	return present
}

// checkProviderTokens checks that every user's provider token holds at
// least as many writes as were acknowledged, through node.
func checkProviderTokens(t *testing.T, node *vaultharness.Server) int {
	t.Helper()
	ackedMu.Lock()
	defer ackedMu.Unlock()
	present := 0
	for user, writes := range providerAcked {
		resolved, err := clientFor(t, node, userTokens[user]).Logical().Read(mount + "/resolve/ionq")
		if err != nil || resolved == nil {
			t.Errorf("resolve for %s: %v", user, err)
			continue
		}
		version, _ := resolved.Data["version"].(interface{ Int64() (int64, error) }).Int64()
		if int(version) < writes {
			t.Errorf("%s's provider token is at version %d after %d acknowledged writes", user, version, writes)
			continue
		}
		present += writes
	}
	return present
}
