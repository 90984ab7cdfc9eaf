//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// TestProviderTokensAndResolve stores a user's own and an organization's
// provider tokens and checks what resolve hands each caller.
func TestProviderTokensAndResolve(t *testing.T) {
	const (
		miaOwn  = "mia-own-ibm-token-5e1f0c"
		acmeIBM = "acme-org-ibm-token-88d3aa"
		paulOwn = "paul-own-ibm-token-c41b27"
	)
	s.remember(miaOwn, "mia's IBM token")
	s.remember(acmeIBM, "acme's IBM token")
	s.remember(paulOwn, "paul's IBM token")

	write := func(who, path string, data map[string]interface{}) {
		t.Helper()
		if _, err := as(t, who).Logical().Write(mount+"/"+path, data); err != nil {
			t.Fatalf("%s writes %s: %v", who, path, err)
		}
	}
	write("mia", "users/mia/provider-tokens/ibm-quantum", map[string]interface{}{"token": miaOwn})
	write("paul", "users/paul/provider-tokens/ibm-quantum", map[string]interface{}{"token": paulOwn})
	write("max", "orgs/acme/provider-tokens/ibm-quantum", map[string]interface{}{"token": acmeIBM, "instance": "acme/prod/main"})

	// Metadata reads never return the secret.
	meta, err := as(t, "mia").Logical().Read(mount + "/orgs/acme/provider-tokens/ibm-quantum")
	if err != nil {
		t.Fatal(err)
	}
	if asJSON(t, meta.Data) == "" || strings.Contains(asJSON(t, meta.Data), acmeIBM) || meta.Data["updated_by"] == "" || meta.Data["version"] == nil {
		t.Fatalf("metadata: %v", meta.Data)
	}
	hints := meta.Data["secret_hints"].(map[string]interface{})
	if hints["token"] != "****"+acmeIBM[len(acmeIBM)-4:] {
		t.Fatalf("hint: %v", hints)
	}

	resolve := func(who, provider, org string) (map[string]interface{}, int) {
		t.Helper()
		query := map[string][]string{}
		if org != "" {
			query["org"] = []string{org}
		}
		secret, err := as(t, who).Logical().ReadWithData(mount+"/resolve/"+provider, query)
		if err != nil {
			return nil, vaultharness.StatusOf(err)
		}
		if secret == nil {
			return nil, 404 // the API client turns a 404 into no secret and no error
		}
		return secret.Data, 200
	}

	got, status := resolve("mia", "ibm-quantum", "acme")
	if status != 200 || got["token"] != acmeIBM || got["instance"] != "acme/prod/main" || got["source"] != "organization" || got["org"] != "acme" || got["provider"] != "ibm-quantum" {
		t.Fatalf("member with org: %d %v", status, got)
	}
	got, status = resolve("mia", "ibm-quantum", "")
	if status != 200 || got["token"] != miaOwn || got["source"] != "user" {
		t.Fatalf("member without org: %d %v", status, got)
	}
	// Nina owns globex, not acme: refused, never silently given her own token.
	if _, status = resolve("nina", "ibm-quantum", "acme"); status != 403 {
		t.Fatalf("non-member with org: got %d, want 403", status)
	}
	if _, status = resolve("paul", "ibm-quantum", "acme"); status != 403 {
		t.Fatalf("plain user with org: got %d, want 403", status)
	}
	if _, status = resolve("nina", "ibm-quantum", ""); status != 404 {
		t.Fatalf("user without any token: got %d, want 404", status)
	}
	got, status = resolve("paul", "ibm-quantum", "")
	if status != 200 || got["token"] != paulOwn {
		t.Fatalf("plain user's own token: %d", status)
	}

	// The organization has no IBM Cloud key and neither has Mia: 404. Once
	// Mia stores one, it is her fallback. (It is removed again, so that the
	// next run starts from none.)
	t.Cleanup(func() { call(t, "mia", "DELETE", mount+"/users/mia/provider-tokens/ibm-cloud", nil) })
	if _, status = resolve("mia", "ibm-cloud", "acme"); status != 404 {
		t.Fatalf("no token anywhere: got %d, want 404", status)
	}
	write("mia", "users/mia/provider-tokens/ibm-cloud", map[string]interface{}{"api_key": "mia-ibm-cloud-key-aa01"})
	s.remember("mia-ibm-cloud-key-aa01", "mia's IBM Cloud key")
	got, status = resolve("mia", "ibm-cloud", "acme")
	if status != 200 || got["source"] != "user" {
		t.Fatalf("fallback to the member's own token: %d %v", status, got["source"])
	}

	// Bad writes are refused with the field named.
	_, err = as(t, "mia").Logical().Write(mount+"/users/mia/provider-tokens/aws-braket", map[string]interface{}{"access_key_id": "AKIAEXAMPLE"})
	if vaultharness.StatusOf(err) != 400 || !strings.Contains(err.Error(), "secret_access_key") {
		t.Fatalf("missing field: %v", err)
	}
}

func asJSON(t *testing.T, v interface{}) string {
	t.Helper()
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
