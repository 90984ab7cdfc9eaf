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
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/bootstrap"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
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
	// after each fault; providerWrites each user's provider-token writes.
	ackedMu        sync.Mutex
	acked          = map[string]ackedPAT{} // secret -> what was acknowledged
	providerWrites = map[string]*writes{}  // user -> their IonQ token's writes

	secretsMu sync.Mutex
	secrets   = map[string]string{} // plaintext -> what it is
	logs      []string              // log files the leak check must find, non-empty

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
	report("secrets in audit, server and plugin logs (trace level)", fmt.Sprintf("%d of %d checked, in %d logs", len(leaks), len(secrets), len(logs)))
	for _, leak := range leaks {
		fmt.Fprintln(os.Stderr, "LEAK CHECK:", leak)
		code = 1
	}

	fmt.Println("\n== Reliability summary ==")
	for _, line := range summary {
		fmt.Println(line)
	}
	if out := os.Getenv("PLANQK_RELIABILITY_OUT"); out != "" {
		if err := writeSummary(out, code); err != nil {
			fmt.Fprintln(os.Stderr, "writing the summary:", err)
			code = 1
		}
	}
	if code == 0 {
		os.RemoveAll(workDir)
	} else {
		fmt.Println("logs kept in", workDir)
	}
	os.Exit(code)
}

// ackedPAT is a PAT whose creation was acknowledged.
type ackedPAT struct{ user, name, tokenID string }

func (a ackedPAT) String() string { return a.user + "/" + a.name }

// writes follows one user's writes of one provider token, made one after
// another: the value of the last acknowledged write, and the values of the
// writes attempted after it without an acknowledgement - each of those may
// or may not have been applied before its connection broke.
type writes struct {
	acknowledged int
	last         string
	unconfirmed  []string
}

// ackPAT records an acknowledged PAT creation.
func ackPAT(secret, user string, data map[string]interface{}) {
	ackedMu.Lock()
	defer ackedMu.Unlock()
	acked[secret] = ackedPAT{user: user, name: fmt.Sprint(data["name"]), tokenID: fmt.Sprint(data["token_id"])}
}

// attemptProviderWrite records a provider-token write about to be sent.
func attemptProviderWrite(user, value string) {
	ackedMu.Lock()
	defer ackedMu.Unlock()
	w := providerWrites[user]
	if w == nil {
		w = &writes{}
		providerWrites[user] = w
	}
	w.unconfirmed = append(w.unconfirmed, value)
}

// ackProviderWrite records that the write of value was acknowledged.
func ackProviderWrite(user, value string) {
	ackedMu.Lock()
	defer ackedMu.Unlock()
	w := providerWrites[user]
	w.acknowledged++
	w.last, w.unconfirmed = value, nil
}

// expectLog registers a log file the leak check must find, non-empty.
func expectLog(path string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	logs = append(logs, path)
}

// writeSummary stores the run's figures as an artifact, like the bench
// results: with the commit the plugin was built from, Vault's version, the
// machine and whether the run passed.
func writeSummary(path string, code int) error {
	commit, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		commit = []byte("unknown (git describe failed: " + err.Error() + ")")
	}
	version, err := exec.Command(vaultBin, "version").Output()
	if err != nil {
		version = []byte("unknown")
	}
	outcome := "passed"
	if code != 0 {
		outcome = "FAILED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Reliability run\n\n%s at commit %s; %s; %d cores, %s/%s; the run %s.\n\n",
		time.Now().UTC().Format(time.RFC3339), strings.TrimSpace(string(commit)), strings.TrimSpace(string(version)),
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, outcome)
	b.WriteString("Written by `make test-reliability` (scripts/reliability); what each figure proves is in scripts/reliability's README.\n\n```\n")
	for _, line := range summary {
		b.WriteString(line + "\n")
	}
	b.WriteString("```\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func report(what string, figure interface{}) {
	summary = append(summary, fmt.Sprintf("  %-52s %v", what, figure))
}

func remember(secret, what string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets[secret] = what
}

// leakedSecrets checks every log under the work directory, and that every
// expected log is there and not empty.
func leakedSecrets() []string {
	var problems []string
	for _, path := range logs {
		if info, err := os.Stat(path); err != nil || info.Size() == 0 {
			problems = append(problems, fmt.Sprintf("%s is missing or empty: the leak check would prove nothing", path))
		}
	}
	if len(logs) == 0 {
		problems = append(problems, "no log was expected: the leak check would prove nothing")
	}
	var found []string
	_ = filepath.Walk(workDir, func(path string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(path, ".log") {
			found = append(found, path)
		}
		return nil
	})
	list := make([]string, 0, len(secrets))
	for secret := range secrets {
		list = append(list, secret)
	}
	set := vaultharness.NewSecretSet(list)
	for _, path := range found {
		data, err := os.ReadFile(path)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, secret := range set.FoundIn(data) {
			problems = append(problems, fmt.Sprintf("%s in %s", secrets[secret], path))
		}
	}
	sort.Strings(problems)
	return problems
}

// setUpEngine registers and mounts the plugin through the active node,
// turns on an audit device, and creates the users.
func setUpEngine(ctx context.Context, t *testing.T, root *api.Client, sha string) {
	t.Helper()
	auditLog := filepath.Join(workDir, "audit.log")
	expectLog(auditLog)
	if err := root.Sys().EnableAuditWithOptionsWithContext(ctx, "file", &api.EnableAuditOptions{
		Type: "file", Options: map[string]string{"file_path": auditLog},
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
	// No periodic sweep: its first run (a minute after mounting) would
	// race the failover test's repair and the counts taken around it.
	_, err := root.Logical().WriteWithContext(ctx, mount+"/config", map[string]interface{}{"tidy_interval": 0})
	must(t, err)
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
		if resp.Data["active"] == true && resp.Data["token_id"] == what.tokenID {
			present++
		} else {
			t.Errorf("acknowledged PAT %s no longer verifies: %v", what, resp.Data["active"])
		}
	}
	return present
}

// checkIndex checks the engine's index of named PATs through its API on
// node: each user's list holds every acknowledged PAT with its token id,
// and reading it by name gives that id. It returns how many were found.
func checkIndex(t *testing.T, node *vaultharness.Server) int {
	t.Helper()
	client := clientFor(t, node, cluster.RootToken)
	ackedMu.Lock()
	defer ackedMu.Unlock()
	listed := map[string]map[string]interface{}{} // user -> key_info
	found := 0
	for _, pat := range acked {
		info, ok := listed[pat.user]
		if !ok {
			list, err := client.Logical().List(mount + "/users/" + pat.user + "/tokens/")
			if err != nil || list == nil {
				t.Errorf("listing %s's PATs: %v", pat.user, err)
				continue
			}
			info, _ = list.Data["key_info"].(map[string]interface{})
			listed[pat.user] = info
		}
		entry, _ := info[pat.name].(map[string]interface{})
		if entry["token_id"] != pat.tokenID {
			t.Errorf("acknowledged PAT %s is not in its user's list (listed: %v)", pat, entry)
			continue
		}
		read, err := client.Logical().Read(mount + "/users/" + pat.user + "/tokens/" + pat.name)
		if err != nil || read == nil || read.Data["token_id"] != pat.tokenID {
			t.Errorf("acknowledged PAT %s does not read back by name: %v", pat, err)
			continue
		}
		found++
	}
	return found
}

// checkProviderTokens resolves each user's IonQ token through node, as
// that user: its value must be the last acknowledged write's - or that of
// a write attempted after it whose acknowledgement was lost - and its
// version must count at least the acknowledged writes. It returns how many
// acknowledged writes that covers and how many users hold the value of an
// unacknowledged write.
func checkProviderTokens(t *testing.T, node *vaultharness.Server) (covered, unconfirmed int) {
	t.Helper()
	ackedMu.Lock()
	defer ackedMu.Unlock()
	for user, w := range providerWrites {
		if w.acknowledged == 0 {
			continue
		}
		resolved, err := clientFor(t, node, userTokens[user]).Logical().Read(mount + "/resolve/ionq")
		if err != nil || resolved == nil {
			t.Errorf("resolve for %s: %v", user, err)
			continue
		}
		value, _ := resolved.Data["api_key"].(string)
		version, _ := resolved.Data["version"].(interface{ Int64() (int64, error) }).Int64()
		switch {
		case value == w.last:
		case slices.Contains(w.unconfirmed, value):
			unconfirmed++
		default:
			t.Errorf("%s's provider token holds neither the last acknowledged value nor a later attempted one (%d acknowledged writes)", user, w.acknowledged)
			continue
		}
		if int(version) < w.acknowledged {
			t.Errorf("%s's provider token is at version %d after %d acknowledged writes", user, version, w.acknowledged)
			continue
		}
		covered += w.acknowledged
	}
	return covered, unconfirmed
}
