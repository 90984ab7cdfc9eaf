//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// leasedPAT is a PAT issued as a Vault lease by users/<user>/creds/<role>.
type leasedPAT struct {
	token, tokenID, leaseID string
	createdAt, expiresAt    time.Time
}

// newRole writes a role of the test's own, removed at its end.
func newRole(t *testing.T, ttl, maxTTL string) string {
	t.Helper()
	role := uniqueName("role")
	if r := call(t, "root", "POST", mount+"/roles/"+role, map[string]interface{}{"ttl": ttl, "max_ttl": maxTTL}); r.status != 204 {
		t.Fatalf("writing role %s: %s", role, r)
	}
	t.Cleanup(func() { call(t, "root", "DELETE", mount+"/roles/"+role, nil) })
	return role
}

// leasePAT reads users/<user>/creds/<role> as the user.
func leasePAT(t *testing.T, user, role string) leasedPAT {
	t.Helper()
	secret, err := as(t, user).Logical().Read(mount + "/users/" + user + "/creds/" + role)
	if err != nil || secret == nil {
		t.Fatalf("%s leases a PAT of role %s: %v", user, role, err)
	}
	token, _ := secret.Data["token"].(string)
	if !strings.HasPrefix(token, "plqk_") || secret.LeaseID == "" || !secret.Renewable {
		t.Fatalf("creds answered lease %q (renewable %v) and %v", secret.LeaseID, secret.Renewable, redacted(secret.Data))
	}
	s.remember(token, "a leased PAT of "+user)
	pat := leasedPAT{token: token, tokenID: fmt.Sprint(secret.Data["token_id"]), leaseID: secret.LeaseID}
	pat.createdAt = parseTime(t, secret.Data["created_at"])
	pat.expiresAt = parseTime(t, secret.Data["expires_at"])
	return pat
}

func parseTime(t *testing.T, v interface{}) time.Time {
	t.Helper()
	parsed, err := time.Parse(time.RFC3339, fmt.Sprint(v))
	if err != nil {
		t.Fatalf("not an RFC 3339 time: %v", v)
	}
	return parsed
}

// verifiedExpiry verifies the PAT, which must be active, and returns the
// expiry verify reports.
func verifiedExpiry(t *testing.T, token string) time.Time {
	t.Helper()
	got := verify(t, token)
	if got["active"] != true {
		t.Fatalf("the PAT does not verify: %v", got)
	}
	return parseTime(t, got["expires_at"])
}

// renewWithCLI runs `vault lease renew -increment=... <lease>` as who and
// returns the lease duration it reports and its warnings.
func renewWithCLI(t *testing.T, who, leaseID, increment string) (int, []interface{}, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := s.srv.CLI(ctx, tokenOf(who), "lease", "renew", "-format=json", "-increment="+increment, leaseID)
	if err != nil {
		return 0, nil, err
	}
	var renewed struct {
		LeaseDuration int           `json:"lease_duration"`
		Warnings      []interface{} `json:"warnings"`
	}
	if err := json.Unmarshal([]byte(out), &renewed); err != nil {
		return 0, nil, fmt.Errorf("decoding %q: %w", out, err)
	}
	return renewed.LeaseDuration, renewed.Warnings, nil
}

// TestLeaseRenewalThroughVault renews a leased PAT with `vault lease renew`
// as its owner: the lease and the PAT's own expiry move together; a
// renewal asking for more than the role's max_ttl is capped at the lease's
// issue time plus max_ttl, with a warning.
func TestLeaseRenewalThroughVault(t *testing.T) {
	role := newRole(t, "30s", "2m")
	pat := leasePAT(t, "mia", role)
	t.Cleanup(func() { _ = as(t, "root").Sys().Revoke(pat.leaseID) })
	if got := verifiedExpiry(t, pat.token); !got.Equal(pat.expiresAt) {
		t.Fatalf("verify reports expiry %s, creds %s", got, pat.expiresAt)
	}

	before := time.Now()
	duration, _, err := renewWithCLI(t, "mia", pat.leaseID, "90s")
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	if duration != 90 {
		t.Errorf("renewal by 90s gave a lease of %ds", duration)
	}
	renewed := verifiedExpiry(t, pat.token)
	if renewed.Before(before.Add(89*time.Second)) || renewed.After(after.Add(90*time.Second)) {
		t.Errorf("after renewing by 90s between %s and %s the PAT expires at %s", before.Format(time.RFC3339), after.Format(time.RFC3339), renewed)
	}

	duration, warnings, err := renewWithCLI(t, "mia", pat.leaseID, "1h")
	if err != nil {
		t.Fatal(err)
	}
	// The cap is the lease's issue time plus max_ttl. Vault takes the issue
	// time just after the engine stamped created_at (whole seconds), so the
	// expiry lies from a second before created_at + max_ttl to a little
	// after - far from the hour asked for.
	capped := verifiedExpiry(t, pat.token)
	maxExpiry := pat.createdAt.Add(2 * time.Minute)
	if capped.Before(maxExpiry.Add(-time.Second)) || capped.After(maxExpiry.Add(10*time.Second)) || !capped.After(renewed) {
		t.Errorf("a renewal by 1h past max_ttl 2m (issued %s) lets the PAT expire at %s", pat.createdAt, capped)
	}
	if duration > 120 || len(warnings) == 0 {
		t.Errorf("the capped renewal gave a lease of %ds with warnings %v", duration, warnings)
	}
	lookup, err := as(t, "root").Logical().Write("sys/leases/lookup", map[string]interface{}{"lease_id": pat.leaseID})
	if err != nil {
		t.Fatal(err)
	}
	if leaseExpiry := parseTime(t, lookup.Data["expire_time"]); leaseExpiry.Sub(capped).Abs() > 2*time.Second {
		t.Errorf("the lease expires at %s, the PAT at %s", leaseExpiry, capped)
	}
}

// TestLeaseRenewalAfterTheRoleIsDeleted deletes a lease's role: renewing is
// refused, and the PAT keeps verifying, with its expiry unchanged, until
// that expiry - no sooner, no later.
func TestLeaseRenewalAfterTheRoleIsDeleted(t *testing.T) {
	t.Parallel()
	role := newRole(t, "15s", "1m")
	pat := leasePAT(t, "mia", role)
	if r := call(t, "root", "DELETE", mount+"/roles/"+role, nil); r.status != 204 {
		t.Fatalf("deleting the role: %s", r)
	}
	if _, _, err := renewWithCLI(t, "mia", pat.leaseID, "1m"); err == nil || !strings.Contains(err.Error(), "no longer exists") {
		t.Fatalf("renewing a lease whose role is gone: %v", err)
	}
	activeUntilExpiry(t, pat)
}

// TestLeaseExpiryInVault lets a leased PAT's lease expire - no revocation
// by anyone - and checks that the PAT verifies until its expiry, not after,
// and that Vault's expiry of the lease removed it from the engine.
func TestLeaseExpiryInVault(t *testing.T) {
	t.Parallel()
	role := newRole(t, "10s", "10s")
	pat := leasePAT(t, "mia", role)
	activeUntilExpiry(t, pat)
	eventually(t, 30*time.Second, "Vault expiring the lease", func() (bool, string) {
		_, err := as(t, "root").Logical().Write("sys/leases/lookup", map[string]interface{}{"lease_id": pat.leaseID})
		return err != nil, "the lease still exists"
	})
	snapshot, err := vaultharness.StorageSnapshot(context.Background(), as(t, "root"), mount)
	if err != nil {
		t.Fatal(err)
	}
	for key, value := range snapshot {
		if strings.Contains(value, pat.tokenID) {
			t.Errorf("after its lease expired the PAT is still stored at %s", key)
		}
	}
}

// activeUntilExpiry polls verify until the PAT is inactive: every answer
// received before its expiry must be active, and it must turn inactive
// within a bound after it. The bound is generous and nothing needs to
// happen quickly: a slow machine delays the polls, never fails them.
func activeUntilExpiry(t *testing.T, pat leasedPAT) {
	t.Helper()
	eventually(t, time.Until(pat.expiresAt)+30*time.Second, "the PAT stopping at its expiry", func() (bool, string) {
		got := verify(t, pat.token)
		received := time.Now()
		switch {
		case got["active"] == true:
			if expiry := parseTime(t, got["expires_at"]); !expiry.Equal(pat.expiresAt) {
				t.Fatalf("verify reports expiry %s, the lease was issued until %s", expiry, pat.expiresAt)
			}
			return false, "still active"
		case received.Before(pat.expiresAt):
			t.Fatalf("the PAT stopped verifying before its expiry %s: %v", pat.expiresAt, got)
		case len(got) != 1:
			t.Fatalf("an expired PAT must verify as inactive and nothing else: %v", got)
		}
		return true, ""
	})
}

// TestRenewRacingRevoke renews and revokes fresh leases at the same
// moment, round after round, in odd rounds the renewals a little later, in
// even ones the revocation: both orders happen - renewals that win (a lease of at most the asked 120s)
// and renewals refused because the lease is gone - and nothing else;
// whatever the order, a revoked PAT never verifies again, and nothing of it
// stays in the engine's storage.
func TestRenewRacingRevoke(t *testing.T) {
	const rounds = 30
	role := newRole(t, "1m", "10m")
	var (
		pats              []leasedPAT
		renewed, rejected int
		wrong             []string
	)
	for i := 0; i < rounds; i++ {
		pat := leasePAT(t, "mia", role)
		pats = append(pats, pat)
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for r := 0; r < 3; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := as(t, "mia")
				<-start
				if i%2 == 1 {
					// 0 to 9 ms after the revocation starts.
					time.Sleep(time.Duration((i+3*r)%10) * time.Millisecond)
				}
				secret, err := client.Sys().Renew(pat.leaseID, 120)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && secret != nil && secret.LeaseDuration > 0 && secret.LeaseDuration <= 120:
					renewed++
				case err == nil:
					wrong = append(wrong, fmt.Sprintf("round %d: a renewal answered %+v", i, secret))
				case refusedAsGone(err):
					rejected++
				default:
					wrong = append(wrong, fmt.Sprintf("round %d: a renewal failed otherwise than on a gone lease: %v", i, err))
				}
			}()
		}
		var revokeErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := as(t, "root")
			<-start
			if i%2 == 0 {
				// 0 to 8 ms after the renewals start.
				time.Sleep(time.Duration(i%10) * time.Millisecond)
			}
			revokeErr = client.Sys().Revoke(pat.leaseID)
		}()
		close(start)
		wg.Wait()
		if revokeErr != nil {
			t.Fatalf("round %d: revoke: %v", i, revokeErr)
		}
		if got := verify(t, pat.token); got["active"] != false {
			t.Fatalf("round %d: the revoked PAT verifies: %v", i, got)
		}
	}
	t.Logf("%d rounds: %d renewals succeeded before the revocation, %d were refused", rounds, renewed, rejected)
	if len(wrong) > 0 {
		t.Fatalf("wrong outcomes:\n  %s", strings.Join(wrong, "\n  "))
	}
	if renewed == 0 || rejected == 0 {
		t.Fatalf("only one order happened (%d renewed, %d refused): the race was not run", renewed, rejected)
	}

	// A renewal that lost the race must not have written anything back.
	snapshot, err := vaultharness.StorageSnapshot(context.Background(), as(t, "root"), mount)
	if err != nil {
		t.Fatal(err)
	}
	for i, pat := range pats {
		if got := verify(t, pat.token); got["active"] != false {
			t.Errorf("round %d: the revoked PAT verifies again: %v", i, got)
		}
		for key, value := range snapshot {
			if strings.Contains(value, pat.tokenID) {
				t.Errorf("round %d: the revoked PAT is still stored at %s", i, key)
			}
		}
	}
}

// refusedAsGone tells the refusals of a renewal whose lease was revoked:
// Vault's own, when the lease is gone from its expiration manager, or the
// engine's, when the revocation removed the token first.
func refusedAsGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "lease not found") || strings.Contains(msg, "the token of this lease was revoked") ||
		strings.Contains(msg, "lease expired") || strings.Contains(msg, "invalid lease")
}
