package backend

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"

	"github.com/planqk/vault-plugin-secrets-planqk/internal/ibmiam"
)

// acmeDerivesIBM makes alice an owner and bob a member of acme, whose
// ibm-quantum token derives per-job keys of a service ID at the IAM
// stand-in.
func acmeDerivesIBM(t *testing.T) (env *testEnv, iam *ibmFixture, alice, bob string) {
	t.Helper()
	env = newTestEnv(t)
	iam = newIBMFixture(t)
	alice = env.addUser("alice")
	bob = env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.setRole(bob, "acme", "member")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": iam.srv.URL})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(nil))
	return env, iam, alice, bob
}

// derivation is the write of a token deriving keys at the stand-in, with
// extra fields.
func (f *ibmFixture) derivation(extra map[string]interface{}) map[string]interface{} {
	data := map[string]interface{}{
		"derivation": derivationIBMServiceIDKey, "manager_api_key": f.mgmtKey, "account_id": f.iam.AccountID,
		"service_id": f.serviceID, "iam_endpoint": f.srv.URL, "key_max_ttl": "4h", "instance": "crn:v1:acme",
	}
	for k, v := range extra {
		data[k] = v
	}
	return data
}

// jobKeys are the service ID's keys that exist at the stand-in.
func (f *ibmFixture) jobKeys() []string {
	var names []string
	for _, key := range f.iam.Keys(f.iamID) {
		names = append(names, key.Name)
	}
	return names
}

func (e *testEnv) revokeSecret(path string, secret *logical.Secret) {
	e.t.Helper()
	secret.InternalData = roundTripJSON(e.t, secret.InternalData)
	_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: path, Storage: e.storage, Secret: secret})
	require.NoError(e.t, err)
}

func (e *testEnv) derivedRecords() []string {
	var keys []string
	for key := range e.storageSnapshot() {
		if strings.HasPrefix(key, derivedKeysPrefix) {
			keys = append(keys, key)
		}
	}
	return keys
}

// A member's job gets a new API key of the organization's service ID, one
// that works at IBM, under a renewable lease bounded by key_max_ttl; the
// management key is in no answer; revoking the lease deletes the key.
func TestDeriveIBM_aJobGetsAKeyThatEndsWithItsLease(t *testing.T) {
	env, iam, _, bob := acmeDerivesIBM(t)
	resp := env.ok(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme", "job_id": "run-3"})
	raw, err := json.Marshal(resp)
	require.NoError(t, err)
	require.NotContains(t, string(raw), iam.mgmtKey, "the management key is in no answer")

	keys := iam.iam.Keys(iam.iamID)
	require.Len(t, keys, 1)
	require.True(t, strings.HasPrefix(keys[0].Name, "planqk-bob-run-3-"), keys[0].Name)
	require.Contains(t, keys[0].Description, bob)
	require.Equal(t, iam.iam.KeyValue(keys[0].ID), resp.Data["token"], "the job's key is the one IAM made")
	env2 := resp.Data["env"].(map[string]string)
	require.Equal(t, resp.Data["token"], env2["QISKIT_IBM_TOKEN"])
	require.Equal(t, "crn:v1:acme", env2["QISKIT_IBM_INSTANCE"])
	require.Equal(t, credentialsDerived, resp.Data["credentials"])
	require.True(t, resp.Secret.Renewable)
	require.InDelta(t, time.Hour.Seconds(), resp.Secret.TTL.Seconds(), 5)
	require.InDelta(t, (4 * time.Hour).Seconds(), resp.Secret.MaxTTL.Seconds(), 5, "renewable up to key_max_ttl")
	require.Len(t, env.derivedRecords(), 2, "recorded under its token and its member")

	// Renewing extends within the max; past it, to the max.
	secret := *resp.Secret
	secret.InternalData = roundTripJSON(t, secret.InternalData)
	secret.IssueTime = time.Now()
	secret.Increment = 2 * time.Hour
	renewed, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: env.storage, Secret: &secret})
	require.NoError(t, err)
	require.False(t, renewed.IsError())
	require.InDelta(t, (2 * time.Hour).Seconds(), renewed.Secret.TTL.Seconds(), 5)
	secret.Increment = 9 * time.Hour
	renewed, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: env.storage, Secret: &secret})
	require.NoError(t, err)
	require.InDelta(t, (4 * time.Hour).Seconds(), renewed.Secret.TTL.Seconds(), 5)

	env.revokeSecret("resolve/ibm-quantum", resp.Secret)
	require.Empty(t, iam.jobKeys(), "revoking the lease deleted the key")
	require.Empty(t, env.derivedRecords())
	// A second revoke (Vault retries) is fine: the key is gone already.
	env.revokeSecret("resolve/ibm-quantum", resp.Secret)

	require.Contains(t, env.userError(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme", "ttl": "5h"}), "ttl must be at most 14400s")
	require.Contains(t, env.userError(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme", "ttl": "29"}), "at least 30s")
	require.Empty(t, iam.jobKeys(), "refused requests make no key")
}

// The runtime read's PAT lease carries the job key and deletes it when it
// is revoked; revoke-all, offboarding and deleting the token delete the
// keys made for jobs, and a token pointed at another service ID deletes
// the old one's with the old management key.
func TestDeriveIBM_nothingIsLeftBehind(t *testing.T) {
	env, iam, alice, bob := acmeDerivesIBM(t)
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "30m"})

	runtime := env.ok(logical.ReadOperation, "users/bob/runtime/runtime", bob, map[string]interface{}{"org": "acme"})
	require.Equal(t, iam.iam.KeyValue(iam.iam.Keys(iam.iamID)[0].ID), runtime.Data["env"].(map[string]string)["QISKIT_IBM_TOKEN"])
	env.revokeSecret("users/bob/runtime/runtime", runtime.Secret)
	require.Empty(t, iam.jobKeys(), "the runtime lease's revoke deleted its key")

	ask := func() {
		env.ok(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
	}
	ask()
	ask()
	require.Len(t, iam.jobKeys(), 2)
	env.ok(logical.UpdateOperation, "users/bob/revoke-all", bob, nil)
	require.Empty(t, iam.jobKeys(), "revoke-all deleted bob's job keys")
	require.Empty(t, env.derivedRecords())

	ask()
	env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, nil)
	require.Empty(t, iam.jobKeys(), "deleting the token deleted its job keys")

	// The same service ID with a new management key keeps the keys (the
	// new key deletes them); another service ID deletes them first.
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(nil))
	ask()
	rekeyed := iam.derivation(map[string]interface{}{"manager_api_key": iam.iam.AddManagementKey(iam.serviceID)})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, rekeyed)
	require.Len(t, iam.jobKeys(), 1)
	otherID, _ := iam.iam.AddServiceID("other-jobs")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(map[string]interface{}{
		"service_id": otherID, "manager_api_key": iam.iam.AddManagementKey(otherID),
	}))
	require.Empty(t, iam.jobKeys(), "keys of the old service ID were deleted with the old management key")

	// Offboarding: bob's job keys go with him.
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(nil))
	env.createToken("bob", bob, "laptop", nil)
	ask()
	require.Len(t, iam.jobKeys(), 1)
	env.deleteEntity(bob)
	require.Equal(t, 1, env.tidy(nil)["entities_offboarded"])
	require.Empty(t, iam.jobKeys(), "offboarding deleted bob's job keys")
	require.Empty(t, env.derivedRecords())
}

// A key IAM made while the plugin died before handing it out is deleted by
// Vault's rollback of the write-ahead log; the answer the job never got was
// a 502.
func TestDeriveIBM_aCrashMidIssueIsRolledBack(t *testing.T) {
	env, iam, _, bob := acmeDerivesIBM(t)
	iam.iam.FailCreates(1)
	env.refusal(http.StatusBadGateway, logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
	require.Len(t, iam.jobKeys(), 1, "IAM made the key; its answer was lost")
	wals, err := framework.ListWAL(context.Background(), env.storage)
	require.NoError(t, err)
	require.Len(t, wals, 1)

	env.b.WALRollbackMinAge = time.Nanosecond // Vault waits walRollbackMinAge (0 means its default 10m); the test does not
	_, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: env.storage})
	require.NoError(t, err)
	require.Empty(t, iam.jobKeys(), "the rollback deleted the key by its name")
	wals, err = framework.ListWAL(context.Background(), env.storage)
	require.NoError(t, err)
	require.Empty(t, wals)
	require.Empty(t, env.derivedRecords())
}

// Without an endpoint of its own a token's keys are made - and deleted -
// at the configuration's iam_endpoint.
func TestDeriveIBM_theConfiguredEndpointServesTokensWithoutOne(t *testing.T) {
	env, iam, alice, bob := acmeDerivesIBM(t)
	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"iam_endpoint": "http://iam.example.com"}), "iam_endpoint must use https")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"iam_endpoint": iam.srv.URL})
	token := iam.derivation(nil)
	delete(token, "iam_endpoint")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, token)
	resp := env.ok(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
	require.Len(t, iam.jobKeys(), 1)
	env.revokeSecret("resolve/ibm-quantum", resp.Secret)
	require.Empty(t, iam.jobKeys())
}

// When IAM cannot be reached, revoking a runtime read's lease still ends
// its PAT at once; the revocation fails, so Vault retries it, and the
// retry deletes the job key once IAM answers again.
func TestDeriveIBM_anUnreachableIAMNeverKeepsAPATAlive(t *testing.T) {
	env := newTestEnv(t)
	iam := &ibmFixture{iam: ibmiam.New("acct-0123456789")}
	iam.serviceID, iam.iamID = iam.iam.AddServiceID("planqk-jobs")
	iam.mgmtKey = iam.iam.AddManagementKey(iam.serviceID)
	var down atomic.Bool
	iam.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		iam.iam.ServeHTTP(w, r)
	}))
	t.Cleanup(iam.srv.Close)
	bob := env.addUser("bob")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": iam.srv.URL})
	env.ok(logical.UpdateOperation, "users/bob/provider-tokens/ibm-quantum", bob, iam.derivation(nil))
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "30m"})
	runtime := env.ok(logical.ReadOperation, "users/bob/runtime/runtime", bob, nil)
	require.Len(t, iam.jobKeys(), 1)

	down.Store(true)
	secret := *runtime.Secret
	secret.InternalData = roundTripJSON(t, secret.InternalData)
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: "users/bob/runtime/runtime", Storage: env.storage, Secret: &secret})
	require.Error(t, err, "Vault must retry")
	require.Equal(t, false, env.verify(runtime.Data["token"].(string))["active"], "the PAT ended at once")
	require.Len(t, iam.jobKeys(), 1)

	down.Store(false)
	_, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: "users/bob/runtime/runtime", Storage: env.storage, Secret: &secret})
	require.NoError(t, err)
	require.Empty(t, iam.jobKeys(), "the retry deleted the key")
}

// A token deleted or pointed at another service ID while IAM is making a
// job's key (derivations take no lock) leaves no key behind: the job gets
// a 409 and the key is deleted with the management key that made it.
func TestDeriveIBM_aTokenChangedWhileAKeyIsMadeLeavesNoKey(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(env *testEnv, iam *ibmFixture, alice string)
	}{
		{"deleted", func(env *testEnv, _ *ibmFixture, alice string) {
			env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, nil)
		}},
		{"pointed at another service ID", func(env *testEnv, iam *ibmFixture, alice string) {
			otherID, _ := iam.iam.AddServiceID("other-jobs")
			env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(map[string]interface{}{
				"service_id": otherID, "manager_api_key": iam.iam.AddManagementKey(otherID),
			}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newTestEnv(t)
			iam := &ibmFixture{iam: ibmiam.New("acct-0123456789")}
			iam.serviceID, iam.iamID = iam.iam.AddServiceID("planqk-jobs")
			iam.mgmtKey = iam.iam.AddManagementKey(iam.serviceID)
			arrived, release := make(chan struct{}), make(chan struct{})
			var held atomic.Bool
			iam.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost && r.URL.Path == "/v1/apikeys" && held.CompareAndSwap(false, true) {
					close(arrived)
					<-release
				}
				iam.iam.ServeHTTP(w, r)
			}))
			t.Cleanup(iam.srv.Close)
			alice, bob := env.addUser("alice"), env.addUser("bob")
			env.setRole(alice, "acme", "owner")
			env.setRole(bob, "acme", "member")
			env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": iam.srv.URL})
			env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(nil))

			type answer struct {
				resp *logical.Response
				err  error
			}
			done := make(chan answer, 1)
			go func() {
				resp, err := env.do(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
				done <- answer{resp, err}
			}()
			<-arrived
			tc.change(env, iam, alice)
			close(release)
			got := <-done
			require.NoError(t, got.err)
			require.NotNil(t, got.resp)
			require.Equal(t, http.StatusConflict, got.resp.Data[logical.HTTPStatusCode], "%v", got.resp.Data)
			require.Nil(t, got.resp.Secret, "no lease for a deleted key")

			require.Empty(t, iam.jobKeys(), "the key made for the old token was deleted")
			require.Empty(t, env.derivedRecords())
			wals, err := framework.ListWAL(context.Background(), env.storage)
			require.NoError(t, err)
			require.Empty(t, wals)
		})
	}
}

// A key made just before a crash (no record, only its write-ahead log
// entry) is deleted when its token is deleted or pointed at another service
// ID before Vault's rollback runs: afterwards no management key could.
func TestDeriveIBM_aCrashedKeyGoesWithItsToken(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(env *testEnv, iam *ibmFixture, alice string)
	}{
		{"deleted", func(env *testEnv, _ *ibmFixture, alice string) {
			env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, nil)
		}},
		{"pointed at another service ID", func(env *testEnv, iam *ibmFixture, alice string) {
			otherID, _ := iam.iam.AddServiceID("other-jobs")
			env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, iam.derivation(map[string]interface{}{
				"service_id": otherID, "manager_api_key": iam.iam.AddManagementKey(otherID),
			}))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, iam, alice, bob := acmeDerivesIBM(t)
			iam.iam.FailCreates(1)
			env.refusal(http.StatusBadGateway, logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
			require.Len(t, iam.jobKeys(), 1, "IAM made the key; its answer was lost")

			tc.change(env, iam, alice)
			require.Empty(t, iam.jobKeys(), "the crashed key went with its token")
			wals, err := framework.ListWAL(context.Background(), env.storage)
			require.NoError(t, err)
			require.Empty(t, wals)
		})
	}
}

// A lease whose job key was deleted before it ended (revoke-all, the token
// deleted) cannot be renewed: Vault would otherwise keep a lease for a key
// that no longer exists. One whose key lives renews.
func TestDeriveIBM_aLeaseWhoseKeyIsGoneIsNotRenewed(t *testing.T) {
	env, iam, alice, bob := acmeDerivesIBM(t)
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "30m"})
	renew := func(path string, s *logical.Secret) *logical.Response {
		secret := *s
		secret.InternalData = roundTripJSON(t, secret.InternalData)
		secret.IssueTime = time.Now()
		secret.Increment = 10 * time.Minute
		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Path: path, Storage: env.storage, Secret: &secret})
		require.NoError(t, err)
		require.NotNil(t, resp)
		return resp
	}

	resolved := env.ok(logical.ReadOperation, "resolve/ibm-quantum", bob, map[string]interface{}{"org": "acme"})
	require.False(t, renew("resolve/ibm-quantum", resolved.Secret).IsError(), "a live key renews")
	env.ok(logical.UpdateOperation, "users/bob/revoke-all", bob, nil)
	require.Empty(t, iam.jobKeys())
	refused := renew("resolve/ibm-quantum", resolved.Secret)
	require.True(t, refused.IsError())
	require.Contains(t, refused.Error().Error(), "was deleted")

	runtime := env.ok(logical.ReadOperation, "users/bob/runtime/runtime", bob, map[string]interface{}{"org": "acme"})
	require.False(t, renew("users/bob/runtime/runtime", runtime.Secret).IsError(), "a live key renews")
	env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, nil)
	require.Empty(t, iam.jobKeys())
	refused = renew("users/bob/runtime/runtime", runtime.Secret)
	require.True(t, refused.IsError())
	require.Contains(t, refused.Error().Error(), "was deleted")
}
