//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/jobservice"
)

// jobPlatform is the platform in the loop: a stand-in job service holding
// only a planqk-broker token, and a stand-in IBM Quantum API that knows
// the provider tokens of the test's organization and users.
type jobPlatform struct {
	service  *httptest.Server
	provider *jobservice.Provider
	logPath  string
}

func newJobPlatform(t *testing.T, accounts map[string]string) *jobPlatform {
	t.Helper()
	provider := jobservice.NewProvider(accounts)
	providerAPI := httptest.NewServer(provider)
	t.Cleanup(providerAPI.Close)
	// The service's log lies beside Vault's, where the suite's leak check
	// reads every *.log for PATs and provider tokens.
	logPath := filepath.Join(s.srv.Dir, uniqueName("jobservice")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	service := httptest.NewServer(&jobservice.Service{
		VaultAddr:   s.srv.Addr,
		Mount:       mount,
		BrokerToken: tokenOf("broker"),
		Providers:   map[string]jobservice.ProviderAPI{"ibm-quantum": {URL: providerAPI.URL, Field: "token"}},
		Client:      http.DefaultClient,
		Log:         log.New(logFile, "jobservice ", log.LstdFlags),
	})
	t.Cleanup(service.Close)
	return &jobPlatform{service: service, provider: provider, logPath: logPath}
}

// submit sends a job as the PlanQK SDK does: the PAT in x-auth-token, the
// organization (when not "") in x-organizationid.
func (p *jobPlatform) submit(t *testing.T, pat, org string) (int, map[string]interface{}) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.service.URL+"/jobs", bytes.NewReader([]byte(`{"provider":"ibm-quantum"}`)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-auth-token", pat)
	if org != "" {
		req.Header.Set("x-organizationid", org)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]interface{}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestExchange_aPlatformRunsJobsOnBehalfOfPATs is the product's central
// flow with the platform in the loop: a member's job in her organization
// runs on the organization's IBM token, a user without organization's on
// his own, an api-only PAT is refused, the organization's setting decides
// who gets its token, a member who leaves stops getting it within
// identity_cache_ttl, a revoked PAT is refused at once - and no PAT or
// provider token reaches a log (the service's, Vault's, the audit log).
func TestExchange_aPlatformRunsJobsOnBehalfOfPATs(t *testing.T) {
	ctx := context.Background()
	org := newOrg(t, "quantumlab")
	owner := newUser(t, "olga", org, "owner")
	mia := newUser(t, "mia", org, "member")
	paul := newUser(t, "paul", "", "")

	secrets := map[string]string{} // provider token -> account
	store := func(who, path, account string) {
		t.Helper()
		secret := "ibm-" + uniqueName(account) + "-0123456789abcdef"
		s.remember(secret, account+"'s IBM token")
		secrets[secret] = account
		if r := call(t, who, "POST", path, map[string]interface{}{"token": secret}); r.status != 200 {
			t.Fatalf("%s stores %s: %s", who, path, r)
		}
	}
	store(owner, mount+"/orgs/"+org+"/provider-tokens/ibm-quantum", org)
	store(mia, mount+"/users/"+mia+"/provider-tokens/ibm-quantum", mia)
	store(paul, mount+"/users/"+paul+"/provider-tokens/ibm-quantum", paul)
	platform := newJobPlatform(t, secrets)

	miaPAT := createPAT(t, mia, "jobs", nil)["token"].(string)
	miaAPIOnly := createPAT(t, mia, "api-only", map[string]interface{}{"scopes": "api"})["token"].(string)
	paulPAT := createPAT(t, paul, "jobs", nil)["token"].(string)

	ranOn := func(pat, org, account, source string) {
		t.Helper()
		status, body := platform.submit(t, pat, org)
		if status != http.StatusCreated || body["account"] != account || body["source"] != source {
			t.Fatalf("job with org %q: %d %v; want it run on %s's account (%s token)", org, status, body, account, source)
		}
	}
	refused := func(pat, org string, want int, reason string) {
		t.Helper()
		status, body := platform.submit(t, pat, org)
		if status != want || !strings.Contains(body["error"].(string), reason) {
			t.Fatalf("job with org %q: %d %v; want %d %q", org, status, body, want, reason)
		}
	}

	// Mia's job in her organization runs on its token; Paul's, without
	// organization, on his own; Mia without organization on her own.
	ranOn(miaPAT, org, org, "organization")
	ranOn(paulPAT, "", paul, "user")
	ranOn(miaPAT, "", mia, "user")
	// Paul is no member: the platform gets a 403, not the org's token.
	refused(paulPAT, org, http.StatusForbidden, "not a member")
	// A PAT without quantum_tokens may call the API, not have provider
	// tokens used for it.
	refused(miaAPIOnly, org, http.StatusForbidden, "quantum_tokens")

	// The organization decides: maintainers and up only, then Mia's job
	// runs on her own token; every member again, on the organization's.
	setting := func(value string) {
		t.Helper()
		if r := call(t, owner, "POST", mount+"/orgs/"+org+"/settings", map[string]interface{}{"provider_tokens_for": value}); r.status != 200 {
			t.Fatalf("the owner sets provider_tokens_for=%s: %s", value, r)
		}
	}
	setting("maintainer")
	ranOn(miaPAT, org, mia, "user")
	setting("member")
	ranOn(miaPAT, org, org, "organization")

	// The organization's token says whose job last used it: Mia's (the
	// uses are written in batches; a tidy writes them now).
	if r := tidyAs(t, "root"); r.status != 202 && r.status != 200 {
		t.Fatalf("tidy: %s", r)
	}
	eventually(t, identityWait, "last_used_by names mia", func() (bool, string) {
		r := call(t, owner, "GET", mount+"/orgs/"+org+"/provider-tokens/ibm-quantum", nil)
		return r.data["last_used_by_name"] == mia && r.data["last_used_at"] != "", r.String() + " " + asJSON(t, r.data)
	})

	// Mia leaves: within identity_cache_ttl her jobs in the organization
	// stop getting its token; her own still works.
	if err := s.boot.RemoveMember(ctx, org, mia); err != nil {
		t.Fatal(err)
	}
	eventually(t, identityWait, "mia's job no longer gets the organization's token", func() (bool, string) {
		status, body := platform.submit(t, miaPAT, org)
		return status == http.StatusForbidden, asJSON(t, body)
	})
	ranOn(miaPAT, "", mia, "user")

	// A revoked PAT is refused at once, with the answer every inactive
	// token gets.
	if r := call(t, mia, "DELETE", mount+"/users/"+mia+"/tokens/jobs", nil); r.status != 204 {
		t.Fatalf("mia revokes her PAT: %s", r)
	}
	refused(miaPAT, "", http.StatusUnauthorized, "the personal access token is not active")
	refused(paulPAT[:len(paulPAT)-1]+"x", "", http.StatusUnauthorized, "the personal access token is not active")
	refused("hvs.not-a-pat-at-all", "", http.StatusUnauthorized, "the personal access token is not active")

	// The provider saw exactly the jobs above, each on the right account;
	// while the identity cache still held Mia's membership, hers ran on
	// the organization's.
	got := platform.provider.Runs()
	want := []string{org, paul, mia, mia, org}
	if len(got) < len(want)+1 || strings.Join(got[:len(want)], ",") != strings.Join(want, ",") || got[len(got)-1] != mia {
		t.Errorf("the provider ran jobs on %v, want %v, the organization's while mia's membership was cached, and mia's", got, want)
	} else {
		for _, account := range got[len(want) : len(got)-1] {
			if account != org {
				t.Errorf("a job ran on %s's account while mia left %s", account, org)
			}
		}
	}
	// The service logged every job by name, never a secret (the suite's
	// leak check reads this log, Vault's and the audit log again at the
	// end).
	logged, err := os.ReadFile(platform.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append([]string{miaPAT, miaAPIOnly, paulPAT}, keys(secrets)...) {
		if strings.Contains(string(logged), secret) {
			t.Errorf("the job service logged a secret")
		}
	}
	if !strings.Contains(string(logged), "user="+mia) {
		t.Errorf("the job service's log does not name mia:\n%s", logged)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
