//go:build e2e

package e2e

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/internal/ibmiam"
)

// walRollbackMinAgeEnv is backend.WALRollbackMinAgeEnv: the suite
// registers the plugin with it so that Vault's rollback acts within its
// minute.
const walRollbackMinAgeEnv = "PLANQK_WAL_ROLLBACK_MIN_AGE"

// ibmKeyWorks reports whether an API key is one IAM still knows, as
// qiskit-ibm-runtime would find out: by exchanging it for a bearer.
func ibmKeyWorks(t *testing.T, iamURL, key string) bool {
	t.Helper()
	resp, err := http.PostForm(iamURL+"/identity/token", url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {key}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// An IBM job key lives exactly as long as its Vault lease: made on issue
// (a key IAM knows, of the organization's service ID), gone when the lease
// is revoked and when it expires, and a key whose answer was lost in a
// crash is deleted by Vault's rollback of the write-ahead log. The
// management key is in no answer, log or audit entry.
func TestDerivedIBM_aJobKeyEndsWithItsLease(t *testing.T) {
	iam := ibmiam.New("acct-e2e-0123")
	srv := httptest.NewServer(iam)
	t.Cleanup(srv.Close)
	allowEndpoint(t, srv.URL)
	serviceID, iamID := iam.AddServiceID("planqk-jobs")
	manager := iam.AddManagementKey(serviceID)
	s.remember(manager, "the organization's IBM management key")

	org := newOrg(t, "qiskitlab")
	owner := newUser(t, "ivy", org, "owner")
	mia := newUser(t, "mia", org, "member")
	token := map[string]interface{}{
		"derivation": "ibm_service_id_key", "manager_api_key": manager, "account_id": iam.AccountID,
		"service_id": serviceID, "iam_endpoint": srv.URL, "key_max_ttl": "2h",
	}
	if r := call(t, owner, "POST", mount+"/orgs/"+org+"/provider-tokens/ibm-quantum", token); r.status != 200 {
		t.Fatalf("the owner stores the derivation: %s", r)
	}
	jobKeys := func() int { return len(iam.Keys(iamID)) }

	// Issue: a working key of the service ID, renewable to key_max_ttl.
	issued, err := as(t, mia).Logical().ReadWithData(mount+"/resolve/ibm-quantum", map[string][]string{"org": {org}, "job_id": {"bell-1"}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := issued.Data["token"].(string)
	s.remember(key, "mia's IBM job key")
	if jobKeys() != 1 || !ibmKeyWorks(t, srv.URL, key) || !issued.Renewable || issued.LeaseDuration < 3590 || issued.LeaseDuration > 3600 {
		t.Fatalf("issue: %d job keys, key works %v, lease %ds renewable %v", jobKeys(), ibmKeyWorks(t, srv.URL, key), issued.LeaseDuration, issued.Renewable)
	}
	if strings.Contains(asJSON(t, issued), manager) {
		t.Fatal("the answer holds the management key")
	}
	renewed, err := s.srv.Root().Sys().Renew(issued.LeaseID, 7200)
	if err != nil || renewed.LeaseDuration > 7200 || renewed.LeaseDuration < 7000 {
		t.Fatalf("renew to key_max_ttl: %v %v", renewed, err)
	}

	// Revoke: the key is gone at IAM, and no longer works.
	if err := s.srv.Root().Sys().Revoke(issued.LeaseID); err != nil {
		t.Fatal(err)
	}
	if jobKeys() != 0 || ibmKeyWorks(t, srv.URL, key) {
		t.Fatalf("after revoke: %d job keys; the key still works: %v", jobKeys(), ibmKeyWorks(t, srv.URL, key))
	}

	// Expiry and a crash, waited for together: a 30 s key, and a key IAM
	// made while its answer was lost (the job got a 502).
	short, err := as(t, mia).Logical().ReadWithData(mount+"/resolve/ibm-quantum", map[string][]string{"org": {org}, "ttl": {"30"}})
	if err != nil {
		t.Fatal(err)
	}
	s.remember(short.Data["token"].(string), "mia's short IBM job key")
	iam.FailCreates(1)
	if r := call(t, mia, "GET", mount+"/resolve/ibm-quantum?org="+org, nil); r.status != http.StatusBadGateway {
		t.Fatalf("a lost answer from IAM: %s", r)
	}
	if jobKeys() != 2 {
		t.Fatalf("want the short key and the one whose answer was lost, have %d", jobKeys())
	}
	// Vault revokes the expired lease; its rollback manager, once a
	// minute, rolls back WAL entries older than the suite's 2 s.
	eventually(t, 100*time.Second, "the expired and the crashed job keys are deleted", func() (bool, string) {
		return jobKeys() == 0, strings.Join(keyNames(iam.Keys(iamID)), ", ")
	})
}

func keyNames(keys []ibmiam.Key) []string {
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, k.Name)
	}
	return names
}
