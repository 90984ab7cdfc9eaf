package backend

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Jobs get the stored key of a derivable token only when they ask for it
// and the owner's rule allows it: derived only by default, for an
// organization's tokens (its owners decide) and for a user's own (the
// user decides).
func TestDerive_theOwnersRuleDecidesWhetherJobsGetTheStoredKey(t *testing.T) {
	env, sts, alice, bob := acmeDerivesAWS(t, map[string]interface{}{
		"access_key_id": "AKIASTATICORGKEY0000", "secret_access_key": "static-org-secret-0123456789",
	})
	stored := map[string]interface{}{"org": "acme", "credentials": credentialsStored}

	require.Equal(t, true, env.ok(logical.ReadOperation, "orgs/acme/settings", bob, nil).Data["derived_only"])
	msg := env.refusal(http.StatusForbidden, logical.ReadOperation, "resolve/aws-braket", bob, stored)
	require.Contains(t, msg, "derived_only")
	require.NotContains(t, msg, "static-org-secret")
	require.Equal(t, 0, sts.calls())

	// Without asking, a job gets derived credentials even where stored keys
	// are allowed.
	require.Equal(t, http.StatusForbidden, env.statusOf(logical.UpdateOperation, "orgs/acme/settings", bob, map[string]interface{}{"derived_only": false}), "members do not decide")
	settings := env.ok(logical.UpdateOperation, "orgs/acme/settings", alice, map[string]interface{}{"derived_only": false}).Data
	require.Equal(t, false, settings["derived_only"])
	require.Equal(t, "member", settings["provider_tokens_for"], "the other setting is kept")
	resp := env.ok(logical.ReadOperation, "resolve/aws-braket", bob, stored)
	require.Equal(t, "static-org-secret-0123456789", resp.Data["secret_access_key"])
	require.Nil(t, resp.Secret, "a stored key is not leased")
	require.NotContains(t, resp.Data, "credentials")
	require.Equal(t, 0, sts.calls())
	resp = env.ok(logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme"})
	require.Equal(t, credentialsDerived, resp.Data["credentials"])
	require.Equal(t, 1, sts.calls())

	// A user's own derivable token follows the user's rule.
	env.ok(logical.UpdateOperation, "users/bob/provider-tokens/aws-braket", bob, map[string]interface{}{
		"derivation": derivationAWSAssumeRole, "role_arn": testRoleARN,
		"base_access_key_id": testBaseKeyID, "base_secret_access_key": testBaseSecret, "sts_endpoint": sts.URL,
	})
	own := map[string]interface{}{"credentials": credentialsStored}
	require.Contains(t, env.refusal(http.StatusForbidden, logical.ReadOperation, "resolve/aws-braket", bob, own), "users/bob/settings")
	require.Equal(t, http.StatusForbidden, env.statusOf(logical.UpdateOperation, "users/bob/settings", alice, map[string]interface{}{"derived_only": false}), "only the user decides")
	env.ok(logical.UpdateOperation, "users/bob/settings", bob, map[string]interface{}{"derived_only": false})
	require.Equal(t, false, env.ok(logical.ReadOperation, "users/bob/settings", bob, nil).Data["derived_only"])
	// Allowed, but the token stores no key to give.
	require.Contains(t, env.refusal(http.StatusNotFound, logical.ReadOperation, "resolve/aws-braket", bob, own), "stores no key, only a derivation")
}

// STS's refusal, or its absence, is a 502 that says what went wrong and
// holds no secret; nothing is leased.
func TestDerive_aProvidersRefusalIsABadGateway(t *testing.T) {
	env, sts, _, bob := acmeDerivesAWS(t, nil)
	sts.refuse = "AccessDenied"
	msg := env.refusal(http.StatusBadGateway, logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme"})
	require.Contains(t, msg, "AccessDenied")
	require.NotContains(t, msg, testBaseSecret)
	require.NotContains(t, msg, testBaseKeyID)

	sts.Close()
	msg = env.refusal(http.StatusBadGateway, logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme"})
	require.Contains(t, msg, "STS could not be reached")
}

// The exchange's one-call environment and the runtime read derive too: the
// runtime read's PAT lease lives no longer than the credentials and ends
// them; the exchange's answer is leased like resolve's.
func TestDerive_environmentsCarryDerivedCredentials(t *testing.T) {
	env, sts, _, bob := acmeDerivesAWS(t, map[string]interface{}{"role_max_ttl": "1h"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/dwave", "", map[string]interface{}{"token": "dwave-org-0123456789"})
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "4h", "max_ttl": "8h"})

	runtime := env.ok(logical.ReadOperation, "users/bob/runtime/runtime", bob, map[string]interface{}{"org": "acme", "ttl": "1800", "job_id": "nightly"})
	requireNoBaseKey(t, runtime)
	environment := runtime.Data["env"].(map[string]string)
	require.Equal(t, "ASIAJOBSESSION0001", environment["AWS_ACCESS_KEY_ID"])
	require.Equal(t, "job-session-token-1", environment["AWS_SESSION_TOKEN"])
	require.Equal(t, "dwave-org-0123456789", environment["DWAVE_API_TOKEN"], "static tokens beside derived ones")
	form, _ := sts.last()
	require.Equal(t, "1800", form.Get("DurationSeconds"))
	require.Equal(t, "planqk-bob-nightly", form.Get("RoleSessionName"))
	require.InDelta(t, 1800, runtime.Secret.TTL.Seconds(), 5, "the PAT's lease ends with the credentials")
	require.InDelta(t, 1800, runtime.Secret.MaxTTL.Seconds(), 5)
	leases, err := parseDerivedLease(roundTripJSON(t, runtime.Secret.InternalData))
	require.NoError(t, err)
	require.Len(t, leases, 1)
	require.Equal(t, derivationAWSAssumeRole, leases[0]["method"])

	// Revoking the PAT's lease revokes the PAT (and what was derived).
	secret := runtime.Secret
	secret.InternalData = roundTripJSON(t, secret.InternalData)
	_, err = env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: "users/bob/runtime/runtime", Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.Equal(t, false, env.verify(runtime.Data["token"].(string))["active"])

	pat := env.createToken("bob", bob, "jobs", nil)["token"].(string)
	resp, err := env.exchange("exchange", pat, "acme", false)
	require.NoError(t, err)
	require.False(t, resp.IsError(), "%v", resp.Data)
	requireNoBaseKey(t, resp)
	require.Equal(t, "ASIAJOBSESSION0002", resp.Data["env"].(map[string]string)["AWS_ACCESS_KEY_ID"])
	expires, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), expires, 5*time.Second)
	require.Equal(t, secretDerivedType, resp.Secret.InternalData["secret_type"])
	require.InDelta(t, time.Hour.Seconds(), resp.Secret.TTL.Seconds(), 5)

	single, err := env.exchange("exchange/aws-braket", pat, "acme", true)
	require.NoError(t, err)
	require.Equal(t, credentialsDerived, single.Data["credentials"])
	require.Equal(t, bob, single.Data["on_behalf_of"].(map[string]interface{})["entity_id"])
	require.Equal(t, 3, sts.calls(), "credentials are never reused across answers")
}

// Offboarding removes a user's settings with everything else they own,
// also when settings are all they ever stored.
func TestDerive_offboardingRemovesTheUsersSettings(t *testing.T) {
	env := newTestEnv(t)
	bob := env.addUser("bob")
	carol := env.addUser("carol")
	env.createToken("bob", bob, "laptop", nil)
	env.ok(logical.UpdateOperation, "users/bob/settings", bob, map[string]interface{}{"derived_only": false})
	env.ok(logical.UpdateOperation, "users/carol/settings", carol, map[string]interface{}{"derived_only": false})
	for _, id := range []string{bob, carol} {
		stored, err := getUserSettings(context.Background(), env.storage, id)
		require.NoError(t, err)
		require.NotNil(t, stored)
		env.deleteEntity(id)
	}
	require.Equal(t, 2, env.tidy(nil)["entities_offboarded"])
	env.requireNothingLeftOf(bob)
	env.requireNothingLeftOf(carol)
}

// A token's endpoint is the provider's own, or one the operator allows:
// owners and users write tokens, and an open endpoint would make Vault's
// host send signed requests wherever they like. Withdrawing an endpoint
// stops tokens that name it at their next use.
func TestDerive_tokenEndpointsAreTheProvidersOrTheOperators(t *testing.T) {
	cfg := &configEntry{AllowedEndpoints: []string{"http://127.0.0.1:4566", "https://sts.sovereign.example"}}
	for _, c := range []struct {
		field, endpoint string
		ok              bool
	}{
		{"sts_endpoint", "https://sts.amazonaws.com", true},
		{"sts_endpoint", "https://sts.eu-central-1.amazonaws.com/", true},
		{"sts_endpoint", "https://sts-fips.us-east-1.amazonaws.com", true},
		{"sts_endpoint", "https://sts.cn-north-1.amazonaws.com.cn", true},
		{"sts_endpoint", "https://sts.sovereign.example/", true},
		{"sts_endpoint", "http://127.0.0.1:4566", true},
		{"sts_endpoint", "http://127.0.0.1:8200", false},
		{"sts_endpoint", "https://sts.amazonaws.com.evil.example", false},
		{"sts_endpoint", "https://evilsts.amazonaws.com", false},
		{"sts_endpoint", "http://sts.amazonaws.com", false},
		{"sts_endpoint", "https://iam.cloud.ibm.com", false},
		{"iam_endpoint", "https://iam.cloud.ibm.com", true},
		{"iam_endpoint", "https://private.eu-de.iam.cloud.ibm.com", true},
		{"iam_endpoint", "https://iam.test.cloud.ibm.com", true},
		{"iam_endpoint", "https://iam.cloud.ibm.com.evil.example", false},
		{"iam_endpoint", "https://sts.amazonaws.com", false},
	} {
		require.Equal(t, c.ok, cfg.tokenEndpointAllowed(c.field, c.endpoint) == "", "%s %s", c.field, c.endpoint)
	}

	env, sts, _, bob := acmeDerivesAWS(t, nil)
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": ""})
	msg := env.refusal(http.StatusForbidden, logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme"})
	require.Contains(t, msg, "config allowed_endpoints")
	require.Equal(t, 0, sts.calls(), "a withdrawn endpoint is never called")
	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": "http://10.0.0.1:4566"}), "allowed_endpoints must use https")
}
