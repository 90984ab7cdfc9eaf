package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// exchange sends an exchange as a broker does: by GET with the PAT (and
// the organization, when set) in headers, or by POST in the body.
func (e *testEnv) exchange(path, pat, org string, post bool) (*logical.Response, error) {
	req := &logical.Request{Path: path, Storage: e.storage, Data: map[string]interface{}{}}
	if post {
		req.Operation = logical.UpdateOperation
		req.Data["token"] = pat
		if org != "" {
			req.Data["org"] = org
		}
	} else {
		req.Operation = logical.ReadOperation
		req.Headers = map[string][]string{authTokenHeader: {pat}}
		if org != "" {
			req.Headers[orgIDHeader] = []string{org}
		}
	}
	return e.b.HandleRequest(context.Background(), req)
}

// exchangeStatus returns the exchange's status and its error message, if
// any.
func (e *testEnv) exchangeStatus(path, pat, org string, post bool) (int, string) {
	e.t.Helper()
	resp, err := e.exchange(path, pat, org, post)
	require.NoError(e.t, err)
	if status, ok := resp.Data[logical.HTTPStatusCode].(int); ok {
		var body struct{ Errors []string }
		require.NoError(e.t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body))
		require.Len(e.t, body.Errors, 1)
		return status, body.Errors[0]
	}
	if resp.IsError() {
		return http.StatusBadRequest, resp.Error().Error()
	}
	return http.StatusOK, ""
}

// A broker holding a member's PAT gets exactly what resolve gives the
// member, plus whom it was for, by header and by body; and every provider
// at once as the runtime read's environment.
func TestExchange_answersWhatResolveAnswersTheOwner(t *testing.T) {
	env := newTestEnv(t)
	mia := env.addUser("mia")
	paul := env.addUser("paul")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", "", map[string]interface{}{"token": "acme-ibm-token", "instance": "acme/prod/main"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ibm-quantum", mia, map[string]interface{}{"token": "mia-own-ibm"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/dwave", mia, map[string]interface{}{"token": "mia-dwave"})
	env.ok(logical.UpdateOperation, "users/paul/provider-tokens/ibm-quantum", paul, map[string]interface{}{"token": "paul-ibm"})
	miaPAT := env.createToken("mia", mia, "jobs", nil)
	paulPAT := env.createToken("paul", paul, "jobs", nil)

	for _, post := range []bool{false, true} {
		for _, org := range []string{"", "acme"} {
			resp, err := env.exchange("exchange/ibm-quantum", miaPAT["token"].(string), org, post)
			require.NoError(t, err)
			want := env.ok(logical.ReadOperation, "resolve/ibm-quantum", mia, map[string]interface{}{"org": org}).Data
			want["on_behalf_of"] = map[string]interface{}{"entity_id": mia, "user": "mia", "token_id": miaPAT["token_id"], "kind": "named"}
			require.Equal(t, want, resp.Data, "post=%v org=%q", post, org)
		}
	}
	got, err := env.exchange("exchange/ibm-quantum", paulPAT["token"].(string), "", false)
	require.NoError(t, err)
	require.Equal(t, "paul-ibm", got.Data["token"])
	require.Equal(t, "paul", got.Data["on_behalf_of"].(map[string]interface{})["user"])

	// Every provider at once: the runtime read's environment, no PAT.
	resp, err := env.exchange("exchange", miaPAT["token"].(string), "acme", false)
	require.NoError(t, err)
	require.Equal(t, map[string]string{
		"QISKIT_IBM_TOKEN": "acme-ibm-token", "QISKIT_IBM_INSTANCE": "acme/prod/main", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform",
		"DWAVE_API_TOKEN": "mia-dwave", envPlanqkOrgID: "acme",
	}, resp.Data["env"])
	require.Equal(t, map[string]string{"ibm-quantum": sourceOrganization, "dwave": sourceUser}, resp.Data["providers"])
	require.Contains(t, resp.Data["dotenv"], "QISKIT_IBM_TOKEN='acme-ibm-token'\n")
	require.NotContains(t, resp.Data["dotenv"], miaPAT["token"])
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)
	runtime := env.ok(logical.ReadOperation, "users/mia/runtime/jobs", mia, map[string]interface{}{"org": "acme"}).Data
	delete(runtime["env"].(map[string]string), envPlanqkPAT)
	require.Equal(t, runtime["env"], resp.Data["env"], "the exchange's environment is the runtime read's, less the PAT")
}

// Every token that is not an active PAT gets one answer, whatever it is;
// an active PAT without quantum_tokens is refused naming the scope; an
// owner outside org is refused like resolve refuses them. No refusal
// changes storage or repeats the token.
func TestExchange_refusals(t *testing.T) {
	env := newTestEnv(t)
	mia := env.addUser("mia")
	bob := env.addUser("bob")
	carol := env.addUser("carol")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ibm-quantum", mia, map[string]interface{}{"token": "mia-own-ibm"})

	expired := env.createToken("mia", mia, "expired", map[string]interface{}{"ttl": "1h"})["token"].(string)
	ageToken(t, env, expired, 2*time.Hour)
	revoked := env.createToken("mia", mia, "revoked", nil)["token"].(string)
	env.ok(logical.DeleteOperation, "users/mia/tokens/revoked", mia, nil)
	ofDisabled := env.createToken("bob", bob, "t", nil)["token"].(string)
	env.disableEntity(bob)
	ofDeleted := env.createToken("carol", carol, "t", nil)["token"].(string)
	env.deleteEntity(carol)
	valid := env.createToken("mia", mia, "valid", nil)["token"].(string)
	apiOnly := env.createToken("mia", mia, "api-only", map[string]interface{}{"scopes": "api"})["token"].(string)
	quantumOnly := env.createToken("mia", mia, "quantum-only", map[string]interface{}{"scopes": "quantum_tokens"})["token"].(string)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": ""})
	noScopes := env.createToken("mia", mia, "none", nil)["token"].(string)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": "api,quantum_tokens"})
	before := env.storageSnapshot()

	inactive := map[string]string{
		"expired":        expired,
		"revoked":        revoked,
		"owner disabled": ofDisabled,
		"owner deleted":  ofDeleted,
		"garbled":        valid[:len(valid)-1] + string(nextBase62(valid[len(valid)-1])),
		"not a PAT":      "hvs.CAESIJlWh0b0bGlr",
		"wrong prefix":   "ghp_" + valid[len("plqk_"):],
	}
	for name, token := range inactive {
		for _, path := range []string{"exchange/ibm-quantum", "exchange"} {
			for _, post := range []bool{false, true} {
				status, body := env.exchangeStatus(path, token, "", post)
				require.Equal(t, http.StatusUnauthorized, status, "%s %s post=%v", name, path, post)
				require.Equal(t, notActiveMessage, body, name)
			}
		}
	}

	for name, token := range map[string]string{"api only": apiOnly, "no scopes": noScopes} {
		status, msg := env.exchangeStatus("exchange/ibm-quantum", token, "", false)
		require.Equal(t, http.StatusForbidden, status, name)
		require.Contains(t, msg, `lacks the scope "quantum_tokens"`, name)
		require.NotContains(t, msg, token)
		status, _ = env.exchangeStatus("exchange", token, "", true)
		require.Equal(t, http.StatusForbidden, status, name)
	}
	status, _ := env.exchangeStatus("exchange/ibm-quantum", quantumOnly, "", false)
	require.Equal(t, http.StatusOK, status, "quantum_tokens alone is enough: api is the gateway's business")

	status, msg := env.exchangeStatus("exchange/ibm-quantum", valid, "globex", false)
	require.Equal(t, http.StatusForbidden, status)
	require.Contains(t, msg, `not a member of organization "globex"`)
	status, _ = env.exchangeStatus("exchange", valid, "globex", true)
	require.Equal(t, http.StatusForbidden, status)
	status, _ = env.exchangeStatus("exchange/ionq", valid, "acme", false)
	require.Equal(t, http.StatusNotFound, status)

	// Bad input: 400, and the token is never echoed.
	for name, req := range map[string]*logical.Request{
		"no token by GET":       {Operation: logical.ReadOperation, Path: "exchange/ibm-quantum"},
		"no token by POST":      {Operation: logical.UpdateOperation, Path: "exchange"},
		"token in the URL":      {Operation: logical.ReadOperation, Path: "exchange/ibm-quantum", Data: map[string]interface{}{"token": valid}},
		"org and header differ": {Operation: logical.ReadOperation, Path: "exchange", Data: map[string]interface{}{"org": "acme"}, Headers: map[string][]string{authTokenHeader: {valid}, orgIDHeader: {"globex"}}},
		"bad org name":          {Operation: logical.UpdateOperation, Path: "exchange", Data: map[string]interface{}{"token": valid, "org": "../acme"}},
		// A PAT pasted into the organization header must not come back
		// in the error, with org or without.
		"token in the org header, org given": {Operation: logical.ReadOperation, Path: "exchange", Data: map[string]interface{}{"org": "acme"}, Headers: map[string][]string{authTokenHeader: {valid}, orgIDHeader: {valid}}},
		"token in the org header":            {Operation: logical.ReadOperation, Path: "exchange", Headers: map[string][]string{authTokenHeader: {valid}, orgIDHeader: {valid}}},
	} {
		req.Storage = env.storage
		resp, err := env.b.HandleRequest(context.Background(), req)
		require.NoError(t, err, name)
		require.True(t, resp.IsError(), name)
		require.NotContains(t, resp.Error().Error(), valid, name)
	}
	require.Equal(t, before, env.storageSnapshot(), "refusals change nothing")
}

// The exchange is the platform's hot path: warm, it makes no round trip to
// Vault at all - no storage operation, no identity lookup, no other
// system-view call, no event - in either form, with or without org, by
// header or body. Once identity_cache_ttl has passed, the next one asks
// Vault's identity store about the owner again (EntityInfo and
// GroupsForEntity), and only that.
func TestExchange_warmCostsNoRoundTrip(t *testing.T) {
	env := newTestEnv(t)
	mia := env.addUser("mia")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", "", map[string]interface{}{"token": "acme-ibm-token"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ionq", mia, map[string]interface{}{"api_key": "mia-own-ionq"})
	pat := env.createToken("mia", mia, "jobs", nil)["token"].(string)
	calls := env.countVaultCalls()
	for _, path := range []string{"exchange/ibm-quantum", "exchange/ionq", "exchange"} {
		for _, org := range []string{"acme", ""} {
			for _, post := range []bool{false, true} {
				name := fmt.Sprintf("%s org=%q post=%v", path, org, post)
				if path == "exchange/ibm-quantum" && org == "" {
					continue // mia has no ibm-quantum token of her own
				}
				_, err := env.exchange(path, pat, org, post) // warms what a first exchange reads
				require.NoError(t, err, name)
				env.refreshIdentity(mia)
				calls()
				for i := 0; i < 5; i++ {
					resp, err := env.exchange(path, pat, org, post)
					require.NoError(t, err, name)
					require.False(t, resp.IsError(), name)
				}
				require.Equal(t, vaultCalls{System: map[string]int{}}, calls(), name)

				env.ageIdentity(mia)
				resp, err := env.exchange(path, pat, org, post)
				require.NoError(t, err, name)
				require.False(t, resp.IsError(), name)
				require.Equal(t, vaultCalls{System: map[string]int{"EntityInfo": 1, "GroupsForEntity": 1}}, calls(),
					"%s: once identity_cache_ttl has passed, the owner is looked up again", name)
			}
		}
	}
}

// A revoked PAT is refused at once, also when its record was cached; a
// member who leaves the organization stops getting its token once the
// identity cache lets go.
func TestExchange_followsRevocationAndMembership(t *testing.T) {
	env := newTestEnv(t)
	mia := env.addUser("mia")
	env.setRole(mia, "acme", "member")
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", "", map[string]interface{}{"token": "acme-ibm-token"})
	env.ok(logical.UpdateOperation, "users/mia/provider-tokens/ibm-quantum", mia, map[string]interface{}{"token": "mia-own-ibm"})
	pat := env.createToken("mia", mia, "jobs", nil)["token"].(string)

	resp, err := env.exchange("exchange/ibm-quantum", pat, "acme", false)
	require.NoError(t, err)
	require.Equal(t, "acme-ibm-token", resp.Data["token"])

	env.setRole(mia, "acme", "")
	env.b.identities.purge()
	status, msg := env.exchangeStatus("exchange/ibm-quantum", pat, "acme", false)
	require.Equal(t, http.StatusForbidden, status)
	require.True(t, strings.Contains(msg, "not a member"), msg)
	resp, err = env.exchange("exchange/ibm-quantum", pat, "", false)
	require.NoError(t, err)
	require.Equal(t, "mia-own-ibm", resp.Data["token"])

	env.ok(logical.DeleteOperation, "users/mia/tokens/jobs", mia, nil)
	status, _ = env.exchangeStatus("exchange/ibm-quantum", pat, "", false)
	require.Equal(t, http.StatusUnauthorized, status)
}
