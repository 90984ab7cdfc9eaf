//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestVaultAgentInjectsTokensIntoARuntime runs Vault Agent as a runtime
// would: auto-auth with the user's token, templates rendering leased PATs
// and a resolved provider token into files. The Agent renews a short
// lease before it runs out, which moves the PAT's expiry; a PAT verifies
// until its lease is revoked. The Agent logs at trace level, and its log
// is part of the suite's leak check.
func TestVaultAgentInjectsTokensIntoARuntime(t *testing.T) {
	t.Parallel()
	const acmeIonQ = "acme-ionq-agent-key-0b7e55"
	s.remember(acmeIonQ, "acme's IonQ key for the agent")
	if _, err := as(t, "olivia").Logical().Write(mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": acmeIonQ}); err != nil {
		t.Fatal(err)
	}

	// A short lease the Agent must renew: it does so at about two thirds
	// of the lease, so 15s leaves it room on a slow machine.
	shortRole := newRole(t, "15s", "5m")
	dir := filepath.Join(s.srv.Dir, uniqueName("agent"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(tokenOf("mia")), 0o600); err != nil {
		t.Fatal(err)
	}
	patFile, ionqFile, shortFile := filepath.Join(dir, "planqk-pat"), filepath.Join(dir, "ionq-api-key"), filepath.Join(dir, "short-pat")
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
template {
  contents    = "{{ with secret \"%s/users/mia/creds/runtime\" }}{{ .Data.token }}{{ end }}"
  destination = %q
}
template {
  contents    = "{{ with secret \"%s/resolve/ionq?org=acme\" }}{{ .Data.api_key }}{{ end }}"
  destination = %q
}
template {
  contents    = "{{ with secret \"%s/users/mia/creds/%s\" }}{{ .Data.token }}{{ end }}"
  destination = %q
}
`, s.srv.Addr, tokenFile, mount, patFile, mount, ionqFile, mount, shortRole, shortFile)
	configFile := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	logPath := filepath.Join(s.srv.Dir, filepath.Base(dir)+".log")
	s.expectLog(logPath)
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	agent := exec.Command(s.srv.Bin, "agent", "-config="+configFile, "-log-level=trace")
	agent.Stdout, agent.Stderr = logFile, logFile
	agent.Env = append(os.Environ(), "VAULT_ADDR="+s.srv.Addr, "VAULT_TOKEN=")
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-agent.Process.Pid, syscall.SIGTERM)
		_ = agent.Wait()
	}()

	pat := waitForFile(t, patFile)
	ionqKey := waitForFile(t, ionqFile)
	s.remember(pat, "the PAT the agent rendered")
	if ionqKey != acmeIonQ {
		t.Fatalf("the agent rendered the wrong IonQ key (%d characters)", len(ionqKey))
	}
	got := verify(t, pat)
	if got["active"] != true || got["user"] != "mia" || got["role"] != "runtime" {
		t.Fatalf("the injected PAT does not verify: %v", got)
	}

	// The Agent renews the short lease: the same PAT, expiring later.
	short := waitForFile(t, shortFile)
	s.remember(short, "the short-lived PAT the agent rendered")
	issuedUntil := verifiedExpiry(t, short)
	eventually(t, time.Minute, "the Agent renewing the short lease", func() (bool, string) {
		if current, _ := os.ReadFile(shortFile); strings.TrimSpace(string(current)) != short {
			t.Fatal("the Agent fetched a new PAT instead of renewing the lease")
		}
		expiry := verifiedExpiry(t, short)
		return expiry.After(issuedUntil), "expires at " + expiry.Format(time.RFC3339)
	})

	// Revoking the leases revokes the tokens.
	for _, c := range []struct{ role, pat string }{{"runtime", pat}, {shortRole, short}} {
		prefix := mount + "/users/mia/creds/" + c.role + "/"
		leases, err := as(t, "root").Logical().List("sys/leases/lookup/" + prefix)
		if err != nil || leases == nil {
			t.Fatalf("listing leases under %s: %v", prefix, err)
		}
		keys := leases.Data["keys"].([]interface{})
		if len(keys) == 0 {
			t.Fatalf("the agent's PAT of role %s has no lease", c.role)
		}
		for _, key := range keys {
			if err := as(t, "root").Sys().RevokeWithContext(context.Background(), prefix+key.(string)); err != nil {
				t.Fatal(err)
			}
		}
		if got := verify(t, c.pat); got["active"] != false {
			t.Fatalf("the PAT of role %s still verifies after its lease was revoked: %v", c.role, got)
		}
	}
}

func waitForFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(path)
		if err == nil && len(strings.TrimSpace(string(data))) > 0 {
			return strings.TrimSpace(string(data))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("Vault Agent did not render %s within 60s; see agent.log", filepath.Base(path))
	return ""
}
