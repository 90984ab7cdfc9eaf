//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestExpiredTokensStopAtTheirExpiryAndTidyRemovesThem checks that a PAT
// stops verifying at its expiry instant, not only after tidy, and that
// tidy then removes its record and its index entry. It verifies up to the
// expiry: every answer received before it must be active.
func TestExpiredTokensStopAtTheirExpiryAndTidyRemovesThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	name := uniqueName("short-lived")
	created, err := as(t, "max").Logical().Write(mount+"/users/max/tokens/"+name, map[string]interface{}{"ttl": "8s"})
	if err != nil {
		t.Fatal(err)
	}
	token := created.Data["token"].(string)
	s.remember(token, "max's short-lived PAT")
	expiresAt, err := time.Parse(time.RFC3339, created.Data["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// Every answer received before the expiry is active, up to the last
	// moment: an engine that ends a token early (by a second, say) fails.
	// expires_at is whole seconds, at or before the real expiry.
	answers := 0
	for {
		got := verify(t, token)
		received := time.Now()
		if !received.Before(expiresAt) {
			break
		}
		answers++
		if got["active"] != true {
			t.Fatalf("the PAT was inactive %s before its expiry: %v", expiresAt.Sub(received).Round(time.Millisecond), got)
		}
		time.Sleep(min(100*time.Millisecond, time.Until(expiresAt)/2))
	}
	if answers == 0 {
		t.Fatal("no answer came before the expiry: the test proves nothing")
	}
	time.Sleep(time.Until(expiresAt))
	if got := verify(t, token); got["active"] != false {
		t.Fatalf("the PAT still verifies at its expiry instant: %v", got)
	}

	tidy := runTidy(t, false)
	if removed, _ := tidy["expired_removed"].(interface{ String() string }); removed == nil || removed.String() == "0" {
		t.Fatalf("tidy removed nothing: %v", tidy)
	}
	read, err := as(t, "max").Logical().Read(mount + "/users/max/tokens/" + name)
	if err != nil || read != nil {
		t.Fatalf("the expired token is still listed after tidy: %v %v", read, err)
	}
	snapshot, err := vaultharness.StorageSnapshot(ctx, as(t, "root"), mount)
	if err != nil {
		t.Fatal(err)
	}
	for key, value := range snapshot {
		if strings.Contains(value, created.Data["token_id"].(string)) {
			t.Errorf("tidy left %s holding the expired token", key)
		}
	}
}

// runTidy runs a tidy and waits for its result.
func runTidy(t *testing.T, repair bool) map[string]interface{} {
	t.Helper()
	status, err := vaultharness.Tidy(context.Background(), as(t, "root"), mount, repair, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return status
}
