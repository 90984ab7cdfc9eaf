//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// The runtime read, users/<user>/runtime/<role>, through Vault Agent as job
// runtimes use it: process-supervisor mode (env_template + exec), file
// mode (one template renders an env file a runtime sources), and renewal
// up to max_ttl and past it. Each test has a user and an organization of
// its own, so that they run in parallel without touching the shared cast.

// runtimeFixture is one test's user, organization, role and the provider
// variables the user's jobs must get in the organization.
type runtimeFixture struct {
	user, org, role string
	client          *api.Client // as the user
	token           string      // the user's Vault token
	// providerEnv is what the provider tokens must put into a job's
	// environment; every value is a registered secret.
	providerEnv map[string]string
}

// newRuntimeFixture creates user as a member of org (both new), a role
// with the lease TTLs, and the organization's and the user's own provider
// tokens; values are registered with the leak check.
func newRuntimeFixture(t *testing.T, user, org, ttl, maxTTL string, orgTokens, ownTokens map[string]map[string]interface{}) *runtimeFixture {
	t.Helper()
	ctx := context.Background()
	// New per run: a second pass on the same server (-count=2) must not
	// meet the first pass's user, leases or provider tokens.
	user, org = uniqueName(user), uniqueName(org)
	must(t, s.boot.Org(ctx, org))
	password := "pw-" + user + "-runtime-e2e-61c0"
	s.remember(password, "password of "+user)
	if _, err := s.boot.User(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	must(t, s.boot.SetMember(ctx, org, user, "member"))
	token, err := s.srv.Login(ctx, authMount, user, password)
	must(t, err)
	client, err := s.srv.Client(token)
	must(t, err)

	f := &runtimeFixture{user: user, org: org, role: "jobs-" + user, client: client, token: token}
	_, err = as(t, "root").Logical().Write(mount+"/roles/"+f.role, map[string]interface{}{"ttl": ttl, "max_ttl": maxTTL})
	must(t, err)
	for provider, values := range orgTokens {
		rememberValues(values, org+"'s "+provider+" token")
		_, err := as(t, "root").Logical().Write(mount+"/orgs/"+org+"/provider-tokens/"+provider, values)
		must(t, err)
	}
	for provider, values := range ownTokens {
		rememberValues(values, user+"'s "+provider+" token")
		_, err := client.Logical().Write(mount+"/users/"+user+"/provider-tokens/"+provider, values)
		must(t, err)
	}
	return f
}

func rememberValues(values map[string]interface{}, what string) {
	for field, value := range values {
		if field != "region" && field != "instance" {
			s.remember(value.(string), what+" ("+field+")")
		}
	}
}

func (f *runtimeFixture) path() string {
	return mount + "/users/" + f.user + "/runtime/" + f.role
}

// leases returns the lease ids under the fixture's runtime path.
func (f *runtimeFixture) leases(t *testing.T) []string {
	t.Helper()
	prefix := f.path() + "/"
	list, err := as(t, "root").Logical().List("sys/leases/lookup/" + prefix)
	must(t, err)
	var ids []string
	if list != nil {
		for _, key := range list.Data["keys"].([]interface{}) {
			ids = append(ids, prefix+key.(string))
		}
	}
	return ids
}

func (f *runtimeFixture) revokeLeases(t *testing.T) {
	t.Helper()
	for _, id := range f.leases(t) {
		must(t, as(t, "root").Sys().RevokeWithContext(context.Background(), id))
	}
}

// agentProcess is a Vault Agent the test started; its log is
// agent-<name>-<n>.log in the server's directory, which the leak check reads
// (and requires to exist and not be empty).
type agentProcess struct {
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startAgent runs Vault Agent with the body after the common stanzas:
// the server's address, auto-auth with the user's token from a file, and
// templates that stop the Agent when they cannot be rendered. The Agent's
// environment is minimal: PATH, and the verifier token a child may use.
func startAgent(t *testing.T, name string, f *runtimeFixture, body func(dir string) string) *agentProcess {
	t.Helper()
	// One directory and log per Agent and run: a second pass (-count=2)
	// must neither read the first pass's rendered file nor truncate the
	// log the leak check reads.
	name = uniqueName("agent-" + name)
	dir := filepath.Join(s.srv.Dir, name)
	must(t, os.Mkdir(dir, 0o700))
	tokenFile := filepath.Join(dir, "vault-token")
	must(t, os.WriteFile(tokenFile, []byte(f.token), 0o600))
	config := fmt.Sprintf(`
vault {
  address = %q
}
auto_auth {
  method "token_file" {
    config = {
      token_file_path = %q
    }
  }
}
template_config {
  exit_on_retry_failure = true
}
%s`, s.srv.Addr, tokenFile, body(dir))
	configFile := filepath.Join(dir, "agent.hcl")
	must(t, os.WriteFile(configFile, []byte(config), 0o600))

	a := &agentProcess{dir: dir, log: filepath.Join(s.srv.Dir, name+".log"), done: make(chan struct{})}
	s.expectLog(a.log)
	logFile, err := os.OpenFile(a.log, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	must(t, err)
	a.cmd = exec.Command(s.srv.Bin, "agent", "-config="+configFile, "-log-level=info")
	a.cmd.Stdout, a.cmd.Stderr = logFile, logFile
	a.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "VAULT_ADDR=" + s.srv.Addr, "E2E_VERIFIER_TOKEN=" + s.verifier}
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	must(t, a.cmd.Start())
	go func() {
		a.err = a.cmd.Wait()
		logFile.Close()
		close(a.done)
	}()
	t.Cleanup(func() { a.stop() })
	return a
}

// stop ends the Agent and its children, and waits for it.
func (a *agentProcess) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

// childLines returns what the child process said in the Agent's log: it
// prints names and verdicts only, never a value.
func (a *agentProcess) childLines() string {
	data, _ := os.ReadFile(a.log)
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "runtimechild:") || strings.Contains(line, "[ERROR]") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// pollUntil calls check until it reports done or the deadline passes.
func pollUntil(t *testing.T, deadline time.Time, what string, check func() (bool, string)) {
	t.Helper()
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not by the deadline (%s)", what, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitForDotenv waits until the Agent rendered a non-empty file.
func waitForDotenv(t *testing.T, a *agentProcess, path string, deadline time.Time) string {
	t.Helper()
	var text string
	pollUntil(t, deadline, "Vault Agent rendering "+filepath.Base(path), func() (bool, string) {
		select {
		case <-a.done:
			t.Fatalf("Vault Agent exited (%v) before rendering %s:\n%s", a.err, filepath.Base(path), a.childLines())
		default:
		}
		data, err := os.ReadFile(path)
		text = string(data)
		return err == nil && len(text) > 0, fmt.Sprintf("%d bytes", len(text))
	})
	return text
}

// sourceEnvFile runs shell with an empty environment but PATH, sources the
// file with set -a as a runtime does, and returns what the shell exports
// to its child (env -0), exactly.
func sourceEnvFile(t *testing.T, shell, path string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, shell, "-c", `set -a; . "$1"; exec env -0`, "runtime", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.Output()
	if err != nil {
		// The shell's message could quote a line of the file: not shown.
		t.Fatalf("%s could not source the env file: %v", shell, err)
	}
	env := map[string]string{}
	for _, entry := range strings.Split(string(out), "\x00") {
		if name, value, ok := strings.Cut(entry, "="); ok {
			env[name] = value
		}
	}
	return env
}

// requireEnv compares the variables of want with got, naming differences
// without showing a value.
func requireEnv(t *testing.T, want, got map[string]string, where string) {
	t.Helper()
	for _, name := range sortedNames(want) {
		value, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: %s is not set", where, name)
		case value != want[name]:
			t.Errorf("%s: %s has the wrong value (%d bytes, want %d)", where, name, len(value), len(want[name]))
		}
	}
}

func sortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	childOnce sync.Once
	childBin  string
	childErr  error
)

// runtimeChild builds testdata/runtimechild once for the suite.
func runtimeChild(t *testing.T) string {
	t.Helper()
	childOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		childBin = filepath.Join(s.srv.Dir, "runtimechild")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", childBin, "./testdata/runtimechild")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			childErr = fmt.Errorf("building the runtime child: %v\n%s", err, out)
		}
	})
	must(t, childErr)
	return childBin
}

// Hostile values: credentials may hold quotes, '$', backquotes,
// backslashes and newlines, and every way to a job must carry them intact.
const (
	hostileIBMKey    = "qlab-ibm-key-'quoted'-\"double\"-$HOME-`id`-\\back\\-end-7f3a"
	hostileAWSSecret = "qlab/aws+secret=\n second line ' \" $(id) \\n-9c1d"
	hostileIonQKey   = "own-ionq-\\x41-${PATH}-'-\r\t-5e2b"
)

// TestRuntimeAgentSupervisesAJob runs the Agent in process-supervisor mode:
// each variable is an env_template on the one runtime read, and the child
// the Agent starts finds the PAT (which it verifies itself) and the
// organization's provider credentials under the SDKs' variable names. The
// child's exit code is the Agent's.
func TestRuntimeAgentSupervisesAJob(t *testing.T) {
	t.Parallel()
	f := newRuntimeFixture(t, "rhea", "qlab-exec", "5m", "10m",
		map[string]map[string]interface{}{
			"ibm-quantum": {"token": hostileIBMKey, "instance": "crn:v1:bluemix:public:quantum-computing:us-east:a/qlab::"},
			"aws-braket":  {"access_key_id": "AKIAQLABEXEC0001", "secret_access_key": hostileAWSSecret, "region": "eu-north-1"},
		},
		map[string]map[string]interface{}{
			"aws-braket": {"access_key_id": "AKIARHEAOWN00001", "secret_access_key": "rhea-own-aws-secret-2d7e"},
			"dwave":      {"token": "rhea-dwave-token-5e2b"},
		})
	want := map[string]string{
		"QISKIT_IBM_TOKEN":      hostileIBMKey,
		"QISKIT_IBM_INSTANCE":   "crn:v1:bluemix:public:quantum-computing:us-east:a/qlab::",
		"QISKIT_IBM_CHANNEL":    "ibm_quantum_platform",
		"AWS_ACCESS_KEY_ID":     "AKIAQLABEXEC0001",
		"AWS_SECRET_ACCESS_KEY": hostileAWSSecret,
		"AWS_REGION":            "eu-north-1",
		"AWS_DEFAULT_REGION":    "eu-north-1",
		"DWAVE_API_TOKEN":       "rhea-dwave-token-5e2b",
	}
	child := runtimeChild(t)

	a := startAgent(t, "exec", f, func(dir string) string {
		var config, expect strings.Builder
		read := fmt.Sprintf("%s?org=%s", f.path(), f.org)
		expectFile := filepath.Join(dir, "expect")
		command := []string{child, "-vault-addr", s.srv.Addr, "-mount", mount, "-user", f.user, "-role", f.role, "-org", f.org, "-expect", expectFile}
		for _, name := range append(sortedNames(want), "PLANQK_PERSONAL_ACCESS_TOKEN", "PLANQK_ORGANIZATION_ID") {
			fmt.Fprintf(&config, "env_template %q {\n  contents = %q\n  error_on_missing_key = true\n}\n",
				name, fmt.Sprintf(`{{ with secret %q }}{{ .Data.env.%s }}{{ end }}`, read, name))
			if value, ok := want[name]; ok {
				sum := sha256.Sum256([]byte(value))
				fmt.Fprintf(&expect, "%s=%s\n", name, hex.EncodeToString(sum[:]))
			}
		}
		must(t, os.WriteFile(expectFile, []byte(expect.String()), 0o600))
		quoted := make([]string, len(command))
		for i, arg := range command {
			quoted[i] = fmt.Sprintf("%q", arg)
		}
		fmt.Fprintf(&config, "exec {\n  command = [%s]\n  restart_on_secret_changes = \"always\"\n}\n", strings.Join(quoted, ", "))
		return config.String()
	})

	select {
	case <-a.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the Agent's child did not finish within 90s:\n%s", a.childLines())
	}
	var exit *exec.ExitError
	if a.err != nil {
		if errors.As(a.err, &exit) {
			t.Fatalf("the Agent exited with %d (the child's verdict):\n%s", exit.ExitCode(), a.childLines())
		}
		t.Fatal(a.err)
	}
	if !strings.Contains(a.childLines(), "runtimechild: OK: 8 variables and a PAT that verifies") {
		t.Fatalf("the child did not report its checks:\n%s", a.childLines())
	}

	// Every env_template read the same path: one read, one lease, one PAT.
	if leases := f.leases(t); len(leases) != 1 {
		t.Errorf("the Agent's templates made %d leases, want 1", len(leases))
	}
	f.revokeLeases(t)
}

// TestRuntimeEnvFileForARuntime reads the runtime path with the vault CLI,
// then has the Agent render its dotenv into one file that a runtime
// sources (set -a; . file) in sh and bash: every variable comes back
// exactly, hostile values included, and revoking the lease kills the PAT.
func TestRuntimeEnvFileForARuntime(t *testing.T) {
	t.Parallel()
	f := newRuntimeFixture(t, "fenna", "qlab-file", "5m", "10m",
		map[string]map[string]interface{}{
			"ibm-quantum": {"token": hostileIBMKey},
			"aws-braket":  {"access_key_id": "AKIAQLABFILE0001", "secret_access_key": hostileAWSSecret},
		},
		map[string]map[string]interface{}{
			// Conflicts with the organization's IBM Quantum token: left out.
			"ibm-cloud": {"api_key": "fenna-ibm-cloud-key-3b8f", "service_crn": "crn:v1:fenna"},
			"ionq":      {"api_key": hostileIonQKey},
		})
	want := map[string]string{
		"QISKIT_IBM_TOKEN":       hostileIBMKey,
		"QISKIT_IBM_CHANNEL":     "ibm_quantum_platform",
		"AWS_ACCESS_KEY_ID":      "AKIAQLABFILE0001",
		"AWS_SECRET_ACCESS_KEY":  hostileAWSSecret,
		"IONQ_API_KEY":           hostileIonQKey,
		"PLANQK_ORGANIZATION_ID": f.org,
	}

	// The read itself, through the CLI: env, providers, the conflict said.
	decoded, err := cliAs(t, f.token, "read", f.path(), "org="+f.org)
	must(t, err)
	response := decoded.(map[string]interface{})
	data := response["data"].(map[string]interface{})
	pat, _ := data["token"].(string)
	s.remember(pat, "a PAT of the runtime read")
	env := map[string]string{}
	for name, value := range data["env"].(map[string]interface{}) {
		env[name] = value.(string)
	}
	requireEnv(t, want, env, "the read's env")
	if env["PLANQK_PERSONAL_ACCESS_TOKEN"] != pat || len(env) != len(want)+1 {
		t.Errorf("the read's env holds %v, want the PAT and %v", sortedNames(env), sortedNames(want))
	}
	if got := fmt.Sprint(data["providers"]); got != "map[aws-braket:organization ibm-quantum:organization ionq:user]" {
		t.Errorf("providers: %s", got)
	}
	if warnings := fmt.Sprint(response["warnings"]); !strings.Contains(warnings, `"ibm-quantum" and "ibm-cloud" both set`) {
		t.Errorf("the conflict is not said: %s", warnings)
	}
	if got := verify(t, pat); got["active"] != true || got["role"] != f.role {
		t.Fatalf("the read's PAT does not verify: %v", got)
	}
	must(t, as(t, "root").Sys().RevokeWithContext(context.Background(), response["lease_id"].(string)))
	if got := verify(t, pat); got["active"] != false {
		t.Fatalf("the PAT still verifies after its lease was revoked: %v", got)
	}

	// The same through the Agent, into a file.
	var envFile string
	a := startAgent(t, "file", f, func(dir string) string {
		envFile = filepath.Join(dir, "planqk.env")
		contents := fmt.Sprintf(`{{ with secret "%s?org=%s" }}{{ .Data.dotenv }}{{ end }}`, f.path(), f.org)
		return fmt.Sprintf("template {\n  contents = %q\n  destination = %q\n  perms = \"0600\"\n}\n", contents, envFile)
	})
	waitForDotenv(t, a, envFile, time.Now().Add(60*time.Second))
	if info, err := os.Stat(envFile); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the env file's mode: %v %v", info.Mode(), err)
	}
	var agentPAT string
	for _, shell := range []string{"sh", "bash"} {
		sourced := sourceEnvFile(t, shell, envFile)
		requireEnv(t, want, sourced, shell)
		if agentPAT == "" {
			agentPAT = sourced["PLANQK_PERSONAL_ACCESS_TOKEN"]
			s.remember(agentPAT, "the PAT of the Agent's env file")
		} else if sourced["PLANQK_PERSONAL_ACCESS_TOKEN"] != agentPAT {
			t.Errorf("%s read another PAT", shell)
		}
	}
	if got := verify(t, agentPAT); got["active"] != true || got["user"] != f.user || got["role"] != f.role {
		t.Fatalf("the env file's PAT does not verify: %v", got)
	}
	a.stop()
	f.revokeLeases(t)
	if got := verify(t, agentPAT); got["active"] != false {
		t.Fatalf("the env file's PAT still verifies after its lease was revoked: %v", got)
	}
}

// TestRuntimeAgentRenewsThenReplacesThePAT: with a lease TTL of 10s and a
// max_ttl of 45s, the Agent renews the lease, so the PAT keeps verifying
// past its first expiry; at max_ttl the Agent reads the path again and
// re-renders the file with a new PAT; the old one is inactive once its
// lease ends.
func TestRuntimeAgentRenewsThenReplacesThePAT(t *testing.T) {
	t.Parallel()
	const ttl, maxTTL = 10 * time.Second, 45 * time.Second
	f := newRuntimeFixture(t, "remy", "qlab-renew", "10s", "45s",
		map[string]map[string]interface{}{"dwave": {"token": "qlab-renew-dwave-token-8a41"}}, nil)

	var envFile string
	a := startAgent(t, "renewal", f, func(dir string) string {
		envFile = filepath.Join(dir, "planqk.env")
		contents := fmt.Sprintf(`{{ with secret "%s?org=%s" }}{{ .Data.dotenv }}{{ end }}`, f.path(), f.org)
		return fmt.Sprintf("template {\n  contents = %q\n  destination = %q\n  perms = \"0600\"\n}\n", contents, envFile)
	})
	waitForDotenv(t, a, envFile, time.Now().Add(60*time.Second))
	patOf := func() string { return sourceEnvFile(t, "sh", envFile)["PLANQK_PERSONAL_ACCESS_TOKEN"] }
	first := patOf()
	s.remember(first, "the first PAT of the renewal test")
	verified := verify(t, first)
	if verified["active"] != true || verified["user"] != f.user {
		t.Fatalf("the first PAT does not verify: %v", verified)
	}
	issued := parseRFC3339(t, verified["created_at"])
	firstExpiry := parseRFC3339(t, verified["expires_at"])
	if lifetime := firstExpiry.Sub(issued); lifetime != ttl {
		t.Fatalf("the first PAT was issued for %s, want the role's ttl %s", lifetime, ttl)
	}

	// Renewed: still the same PAT, still verifying, well past its first
	// expiry, with its expiry moved along.
	pollUntil(t, issued.Add(maxTTL-5*time.Second), "the PAT verifying past its first expiry", func() (bool, string) {
		got := verify(t, first)
		if got["active"] != true {
			t.Fatalf("the PAT stopped verifying while the Agent renews it (at %s, issued %s)", time.Now().UTC().Format(time.RFC3339), issued.Format(time.RFC3339))
		}
		if current := patOf(); current != first {
			t.Fatalf("the Agent replaced the PAT after %s, before max_ttl: it should renew", time.Since(issued).Round(time.Second))
		}
		expiry := parseRFC3339(t, got["expires_at"])
		return time.Now().After(firstExpiry.Add(3*time.Second)) && expiry.After(firstExpiry), "expires at " + expiry.Format(time.RFC3339)
	})

	// At max_ttl the Agent gets a new PAT and re-renders the file.
	var second string
	pollUntil(t, issued.Add(maxTTL+20*time.Second), "a new PAT once max_ttl is reached", func() (bool, string) {
		second = patOf()
		return second != first, "still the first PAT"
	})
	s.remember(second, "the second PAT of the renewal test")
	got := verify(t, second)
	if got["active"] != true {
		t.Fatalf("the new PAT does not verify: %v", got)
	}
	if renewedFor := parseRFC3339(t, got["created_at"]).Sub(issued); renewedFor < maxTTL/2 {
		t.Errorf("the new PAT came %s after the first: the Agent re-read instead of renewing", renewedFor)
	}

	// The first PAT dies with its lease, at max_ttl after its issue.
	pollUntil(t, issued.Add(maxTTL+15*time.Second), "the first PAT inactive once its lease ended", func() (bool, string) {
		return verify(t, first)["active"] == false, "still active"
	})
	if time.Now().Before(issued.Add(maxTTL - 2*time.Second)) {
		t.Errorf("the first PAT died at %s, before its lease's max_ttl", time.Now().UTC().Format(time.RFC3339))
	}
	a.stop()
	f.revokeLeases(t)
}

func parseRFC3339(t *testing.T, v interface{}) time.Time {
	t.Helper()
	parsed, err := time.Parse(time.RFC3339, fmt.Sprint(v))
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %v", v)
	}
	return parsed
}

// cliAs runs the vault CLI with a token and -format=json and decodes the output.
func cliAs(t *testing.T, token string, args ...string) (interface{}, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{args[0], "-format=json"}, args[1:]...)
	out, err := s.srv.CLI(ctx, token, full...)
	if err != nil {
		return nil, err
	}
	var decoded interface{}
	if err := json.Unmarshal([]byte(out), &decoded); err != nil {
		return nil, err
	}
	return decoded, nil
}
