//go:build e2e

package e2e

import (
	"context"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestServerMovesToAnotherPortWhenItsPortIsTaken starts a dev server whose
// first port is already taken by another listener, as happens when
// another process binds a port between the harness picking it and Vault
// binding it: the harness starts Vault again on another port.
func TestServerMovesToAnotherPortWhenItsPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 1 {
			return takenPort, nil
		}
		return vaultharness.FreePort()
	}

	srv, err := vaultharness.StartDevWithOptions(context.Background(), s.srv.Bin, t.TempDir(), vaultharness.DevOptions{PickPort: pick})
	if err != nil {
		t.Fatalf("the server did not start on another port: %v", err)
	}
	defer srv.Stop()
	if srv.Port == takenPort {
		t.Fatalf("the server claims the taken port %d", takenPort)
	}
	if _, err := srv.Root().Sys().Health(); err != nil {
		t.Fatalf("the server on port %d does not answer: %v", srv.Port, err)
	}
	log, err := os.ReadFile(srv.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "address already in use") {
		t.Fatal("the first start did not fail on the taken port: the test proves nothing")
	}
}
