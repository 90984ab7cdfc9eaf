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
// would: auto-auth with the user's token, templates rendering a leased PAT
// and a resolved provider token into files. The PAT verifies until its
// lease is revoked.
func TestVaultAgentInjectsTokensIntoARuntime(t *testing.T) {
	const acmeIonQ = "acme-ionq-agent-key-0b7e55"
	s.remember(acmeIonQ, "acme's IonQ key for the agent")
	if _, err := as(t, "olivia").Logical().Write(mount+"/orgs/acme/provider-tokens/ionq", map[string]interface{}{"api_key": acmeIonQ}); err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(s.srv.Dir, "agent")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(s.tokens["mia"]), 0o600); err != nil {
		t.Fatal(err)
	}
	patFile, ionqFile := filepath.Join(dir, "planqk-pat"), filepath.Join(dir, "ionq-api-key")
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
`, s.srv.Addr, tokenFile, mount, patFile, mount, ionqFile)
	configFile := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	logFile, err := os.Create(filepath.Join(s.srv.Dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	agent := exec.Command(s.srv.Bin, "agent", "-config="+configFile, "-log-level=info")
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

	// Revoking the lease revokes the token.
	leases, err := as(t, "root").Logical().List("sys/leases/lookup/" + mount + "/users/mia/creds/runtime/")
	if err != nil || leases == nil {
		t.Fatalf("listing leases: %v", err)
	}
	keys := leases.Data["keys"].([]interface{})
	if len(keys) == 0 {
		t.Fatal("the agent's PAT has no lease")
	}
	for _, key := range keys {
		leaseID := mount + "/users/mia/creds/runtime/" + key.(string)
		if err := as(t, "root").Sys().RevokeWithContext(context.Background(), leaseID); err != nil {
			t.Fatal(err)
		}
	}
	if got := verify(t, pat); got["active"] != false {
		t.Fatalf("the PAT still verifies after its lease was revoked: %v", got)
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
