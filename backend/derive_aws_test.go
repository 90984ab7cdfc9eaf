package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Base credentials of the tests' organization: what must never appear in
// an answer.
const (
	testBaseKeyID  = "AKIAIOSFODNN7EXAMPLE"
	testBaseSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	testRoleARN    = "arn:aws:iam::123456789012:role/planqk-braket"
)

// stsStandIn answers AssumeRole as AWS STS does (query protocol, XML), and
// keeps every request's parameters and the key id it was signed with.
type stsStandIn struct {
	*httptest.Server
	mu       sync.Mutex
	requests []url.Values
	signers  []string
	// refuse, when set, is the error code STS answers with.
	refuse string
}

func newSTSStandIn(t *testing.T) *stsStandIn {
	t.Helper()
	s := &stsStandIn{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *stsStandIn) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, r.PostForm)
	// Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/sts/aws4_request, ...
	_, credential, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	keyID, _, _ := strings.Cut(credential, "/")
	s.signers = append(s.signers, keyID)
	refuse := s.refuse
	s.mu.Unlock()

	w.Header().Set("Content-Type", "text/xml")
	if refuse != "" {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>%s</Code><Message>User: arn:aws:iam::123456789012:user/planqk is not authorized to perform: sts:AssumeRole</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`, refuse)
		return
	}
	seconds := 3600
	fmt.Sscan(r.PostForm.Get("DurationSeconds"), &seconds)
	expiry := time.Now().Add(time.Duration(seconds) * time.Second).UTC().Format(time.RFC3339)
	n := len(s.requests)
	credentials := fmt.Sprintf(`<Credentials><AccessKeyId>ASIAJOBSESSION%04d</AccessKeyId><SecretAccessKey>job-session-secret-%d</SecretAccessKey>`+
		`<SessionToken>job-session-token-%d</SessionToken><Expiration>%s</Expiration></Credentials>`, n, n, n, expiry)
	switch action := r.PostForm.Get("Action"); action {
	case "AssumeRole":
		session := r.PostForm.Get("RoleSessionName")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>%s`+
			`<AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/planqk-braket/%s</Arn><AssumedRoleId>AROAEXAMPLE:%s</AssumedRoleId></AssumedRoleUser>`+
			`</AssumeRoleResult><ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata></AssumeRoleResponse>`, credentials, session, session)
	case "GetFederationToken":
		name := r.PostForm.Get("Name")
		fmt.Fprintf(w, `<GetFederationTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetFederationTokenResult>%s`+
			`<FederatedUser><Arn>arn:aws:sts::123456789012:federated-user/%s</Arn><FederatedUserId>123456789012:%s</FederatedUserId></FederatedUser>`+
			`</GetFederationTokenResult><ResponseMetadata><RequestId>r-3</RequestId></ResponseMetadata></GetFederationTokenResponse>`, credentials, name, name)
	default:
		http.Error(w, "unknown action "+action, http.StatusBadRequest)
	}
}

func (s *stsStandIn) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func (s *stsStandIn) last() (url.Values, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1], s.signers[len(s.signers)-1]
}

// acmeDerivesAWS makes alice an owner and bob a member of acme, whose
// aws-braket token derives through the stand-in; extra fields are added
// to the write.
func acmeDerivesAWS(t *testing.T, extra map[string]interface{}) (env *testEnv, sts *stsStandIn, alice, bob string) {
	t.Helper()
	env = newTestEnv(t)
	sts = newSTSStandIn(t)
	alice = env.addUser("alice")
	bob = env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.setRole(bob, "acme", "member")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": sts.URL})
	data := map[string]interface{}{
		"derivation":             derivationAWSAssumeRole,
		"role_arn":               testRoleARN,
		"base_access_key_id":     testBaseKeyID,
		"base_secret_access_key": testBaseSecret,
		"sts_endpoint":           sts.URL,
		"region":                 "eu-west-2",
	}
	for k, v := range extra {
		data[k] = v
	}
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", alice, data)
	return env, sts, alice, bob
}

// requireNoBaseKey fails if the response holds the base key anywhere.
func requireNoBaseKey(t *testing.T, resp *logical.Response) {
	t.Helper()
	raw, err := json.Marshal(resp)
	require.NoError(t, err)
	require.NotContains(t, string(raw), testBaseKeyID)
	require.NotContains(t, string(raw), testBaseSecret)
}

// The read of a derivable token shows the derivation's settings and hints,
// never its secrets; the catalogue says which methods a provider has.
func TestDeriveAWS_aDerivationIsStoredWriteOnly(t *testing.T) {
	env, _, alice, bob := acmeDerivesAWS(t, map[string]interface{}{"external_id": "acme-ext-42", "role_max_ttl": "2h"})
	read := env.ok(logical.ReadOperation, "orgs/acme/provider-tokens/aws-braket", bob, nil)
	requireNoBaseKey(t, read)
	derivation := read.Data["derivation"].(map[string]interface{})
	require.Equal(t, derivationAWSAssumeRole, derivation["method"])
	require.Equal(t, map[string]interface{}{
		"role_arn": testRoleARN, "external_id": "acme-ext-42", "role_max_ttl": "2h", "sts_endpoint": derivation["settings"].(map[string]interface{})["sts_endpoint"],
	}, derivation["settings"])
	require.Equal(t, map[string]interface{}{"base_access_key_id": secretHint(testBaseKeyID), "base_secret_access_key": secretHint(testBaseSecret)}, derivation["secret_hints"])
	// No static key: only the region, a setting.
	require.Equal(t, map[string]interface{}{"region": "eu-west-2"}, read.Data["settings"])
	require.Empty(t, read.Data["secret_hints"])

	catalogue := env.ok(logical.ReadOperation, "providers/aws-braket", alice, nil)
	methods := catalogue.Data["derivations"].([]map[string]interface{})
	require.Len(t, methods, 2)
	require.Equal(t, derivationAWSAssumeRole, methods[0]["name"])
	require.Equal(t, derivationAWSFederationToken, methods[1]["name"])
	dwave := env.ok(logical.ReadOperation, "providers/dwave", alice, nil)
	require.Empty(t, dwave.Data["derivations"])
}

// Bad derivations get a 400 naming the field, never a value, and change
// nothing.
func TestDeriveAWS_badDerivationsAreRefused(t *testing.T) {
	good := func() map[string]interface{} {
		return map[string]interface{}{
			"derivation": derivationAWSAssumeRole, "role_arn": testRoleARN,
			"base_access_key_id": testBaseKeyID, "base_secret_access_key": testBaseSecret,
		}
	}
	cases := []struct {
		name     string
		provider string
		change   map[string]interface{}
		drop     string
		want     string
	}{
		{"unknown method", "aws-braket", map[string]interface{}{"derivation": "federation"}, "", `unknown derivation "federation"`},
		{"provider without derivations", "dwave", map[string]interface{}{"token": "dwave-0123456789"}, "", "offers no derivation"},
		{"no role", "aws-braket", nil, "role_arn", `missing required field "role_arn"`},
		{"no base secret", "aws-braket", nil, "base_secret_access_key", `missing required field "base_secret_access_key"`},
		{"not a role ARN", "aws-braket", map[string]interface{}{"role_arn": "arn:aws:iam::123456789012:user/mallory"}, "", "role_arn must be an IAM role ARN"},
		{"lower-case key id", "aws-braket", map[string]interface{}{"base_access_key_id": "akia-not-a-key"}, "", "base_access_key_id must be an AWS access key id"},
		{"short external id", "aws-braket", map[string]interface{}{"external_id": "x"}, "", "external_id must be"},
		{"role max below STS's minimum", "aws-braket", map[string]interface{}{"role_max_ttl": "10m"}, "", "role_max_ttl must be"},
		{"role max above 12 h", "aws-braket", map[string]interface{}{"role_max_ttl": "13h"}, "", "role_max_ttl must be"},
		{"policy not JSON", "aws-braket", map[string]interface{}{"session_policy": "{allow all"}, "", "session_policy must be an IAM policy document in JSON"},
		{"policy without statement", "aws-braket", map[string]interface{}{"session_policy": `{"Version":"2012-10-17"}`}, "", "with a Statement"},
		{"policy over STS's limit", "aws-braket", map[string]interface{}{"session_policy": `{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"` + strings.Repeat("a", 2100) + `"}]}`}, "", "at most 2048 characters"},
		{"bucket with capitals", "aws-braket", map[string]interface{}{"results_bucket": "Results"}, "", "results_bucket must be"},
		{"plain http to another host", "aws-braket", map[string]interface{}{"sts_endpoint": "http://sts.example.com"}, "", "sts_endpoint must use https"},
		{"endpoint with credentials", "aws-braket", map[string]interface{}{"sts_endpoint": "https://user:pass@sts.example.com"}, "", "sts_endpoint must be an absolute"},
		{"an internal host", "aws-braket", map[string]interface{}{"sts_endpoint": "https://metadata.internal"}, "", "sts_endpoint must be the provider's own https endpoint, or one the operator lists"},
		{"loopback the operator did not list", "aws-braket", map[string]interface{}{"sts_endpoint": "http://127.0.0.1:8200"}, "", "or one the operator lists in config allowed_endpoints"},
		{"AWS's host on another port", "aws-braket", map[string]interface{}{"sts_endpoint": "https://sts.amazonaws.com:8443"}, "", "sts_endpoint must be the provider's own"},
		{"half a static key", "aws-braket", map[string]interface{}{"access_key_id": "AKIASTATIC0000000000"}, "", "store the whole key or none of it"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			alice := env.addUser("alice")
			env.setRole(alice, "acme", "owner")
			before := env.storageSnapshot()
			data := good()
			for k, v := range c.change {
				data[k] = v
			}
			delete(data, c.drop)
			msg := env.userError(logical.UpdateOperation, "orgs/acme/provider-tokens/"+c.provider, alice, data)
			require.Contains(t, msg, c.want)
			require.NotContains(t, msg, testBaseSecret)
			require.NotContains(t, msg, testBaseKeyID)
			require.Equal(t, before, env.storageSnapshot(), "a refused write changes nothing")
		})
	}
}

// A member's job gets STS credentials of the role, asked with the base
// key, for the session the engine names, tagged and narrowed as the
// issue asks; the answer is a lease that ends when the credentials do,
// and holds no trace of the base key.
func TestDeriveAWS_resolveAsksSTSForAJobsSession(t *testing.T) {
	env, sts, _, bob := acmeDerivesAWS(t, map[string]interface{}{"external_id": "acme-ext-42"})
	before := time.Now()
	resp := env.ok(logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme", "job_id": "job-7"})
	requireNoBaseKey(t, resp)

	form, signer := sts.last()
	require.Equal(t, testBaseKeyID, signer, "signed with the base key")
	require.Equal(t, "AssumeRole", form.Get("Action"))
	require.Equal(t, testRoleARN, form.Get("RoleArn"))
	require.Equal(t, "planqk-bob-job-7", form.Get("RoleSessionName"))
	require.Equal(t, "3600", form.Get("DurationSeconds"))
	require.Equal(t, "acme-ext-42", form.Get("ExternalId"))
	require.Equal(t,
		`{"Statement":[{"Action":"braket:*","Effect":"Allow","Resource":"*","Sid":"Braket"},`+
			`{"Action":["s3:GetObject","s3:PutObject","s3:ListBucket","s3:GetBucketLocation","s3:CreateBucket","s3:PutBucketPolicy"],"Effect":"Allow",`+
			`"Resource":["arn:aws:s3:::amazon-braket-*","arn:aws:s3:::amazon-braket-*/*"],"Sid":"BraketResults"}],"Version":"2012-10-17"}`,
		form.Get("Policy"))
	tags := map[string]string{}
	for i := 1; form.Get(fmt.Sprintf("Tags.member.%d.Key", i)) != ""; i++ {
		tags[form.Get(fmt.Sprintf("Tags.member.%d.Key", i))] = form.Get(fmt.Sprintf("Tags.member.%d.Value", i))
	}
	require.Equal(t, map[string]string{
		"planqk:org": "acme", "planqk:org-id": testOrgID("acme"), "planqk:entity-id": bob, "planqk:member": "bob", "planqk:job-id": "job-7",
	}, tags)

	require.Equal(t, "ASIAJOBSESSION0001", resp.Data["access_key_id"])
	require.Equal(t, "job-session-secret-1", resp.Data["secret_access_key"])
	require.Equal(t, "job-session-token-1", resp.Data["session_token"])
	require.Equal(t, "eu-west-2", resp.Data["region"])
	require.Equal(t, map[string]string{
		"AWS_ACCESS_KEY_ID": "ASIAJOBSESSION0001", "AWS_SECRET_ACCESS_KEY": "job-session-secret-1",
		"AWS_SESSION_TOKEN": "job-session-token-1", "AWS_REGION": "eu-west-2", "AWS_DEFAULT_REGION": "eu-west-2",
	}, resp.Data["env"])
	require.Equal(t, credentialsDerived, resp.Data["credentials"])
	require.Equal(t, "organization", resp.Data["source"])

	require.NotNil(t, resp.Secret, "derived credentials are leased")
	require.False(t, resp.Secret.Renewable, "STS credentials are not renewable")
	require.InDelta(t, time.Hour.Seconds(), resp.Secret.TTL.Seconds(), 5)
	require.Equal(t, resp.Secret.TTL, resp.Secret.MaxTTL)
	expires, err := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, before.Add(time.Hour), expires, 5*time.Second)
	require.Equal(t, secretDerivedType, resp.Secret.InternalData["secret_type"])
	raw, err := json.Marshal(resp.Secret.InternalData)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "job-session-secret", "lease data holds no secret")
	require.NotContains(t, string(raw), "job-session-token")

	// Revoking is a no-op, as with Vault's AWS engine; renewing is refused.
	secret := resp.Secret
	secret.InternalData = roundTripJSON(t, secret.InternalData)
	revoked, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Path: "", Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.Nil(t, revoked)
	renewed, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: env.storage, Secret: secret})
	require.NoError(t, err)
	require.True(t, renewed.IsError())
	require.Contains(t, renewed.Error().Error(), "cannot be renewed")
	require.Equal(t, 1, sts.calls(), "one STS round trip per answer")
}

// roundTripJSON is lease data as Vault hands it back: through JSON.
func roundTripJSON(t testing.TB, data map[string]interface{}) map[string]interface{} {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	var back map[string]interface{}
	require.NoError(t, json.Unmarshal(raw, &back))
	return back
}

// The session's life: asked for within 900 s and the role's maximum, or
// an hour; a token's own policy and bucket replace the default narrowing.
func TestDeriveAWS_ttlBoundsAndPolicies(t *testing.T) {
	env, sts, alice, bob := acmeDerivesAWS(t, map[string]interface{}{"role_max_ttl": "2h", "results_bucket": "acme-braket-results"})
	ask := func(data map[string]interface{}) *logical.Response {
		data["org"] = "acme"
		resp, err := env.do(logical.ReadOperation, "resolve/aws-braket", bob, data)
		require.NoError(t, err)
		return resp
	}
	resp := ask(map[string]interface{}{"ttl": "900"})
	require.False(t, resp.IsError())
	form, _ := sts.last()
	require.Equal(t, "900", form.Get("DurationSeconds"))
	require.InDelta(t, 900, resp.Secret.TTL.Seconds(), 5)
	require.Contains(t, form.Get("Policy"), `"arn:aws:s3:::acme-braket-results","arn:aws:s3:::acme-braket-results/*"`)

	resp = ask(map[string]interface{}{"ttl": "2h"})
	require.False(t, resp.IsError())
	form, _ = sts.last()
	require.Equal(t, "7200", form.Get("DurationSeconds"))

	calls := sts.calls()
	for _, c := range []struct{ ttl, want string }{
		{"899", "ttl must be at least 900s"},
		{"7201", "ttl must be at most 7200s"},
	} {
		resp = ask(map[string]interface{}{"ttl": c.ttl})
		require.True(t, resp.IsError(), c.ttl)
		require.Contains(t, resp.Error().Error(), c.want)
	}
	for _, bad := range []map[string]interface{}{{"job_id": "job 7; rm"}, {"job_id": strings.Repeat("j", 65)}, {"credentials": "both"}} {
		resp = ask(bad)
		require.True(t, resp.IsError(), "%v", bad)
	}
	require.Equal(t, calls, sts.calls(), "a refused request never reaches STS")

	// The token's own session policy is sent as written, without white
	// space.
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", alice, map[string]interface{}{
		"derivation": derivationAWSAssumeRole, "role_arn": testRoleARN,
		"base_access_key_id": testBaseKeyID, "base_secret_access_key": testBaseSecret, "sts_endpoint": sts.URL,
		"session_policy": `{"Version": "2012-10-17",
		  "Statement": [{"Effect": "Allow", "Action": "braket:GetDevice", "Resource": "*"}]}`,
	})
	require.False(t, ask(map[string]interface{}{}).IsError())
	form, _ = sts.last()
	require.Equal(t, `{"Statement":[{"Action":"braket:GetDevice","Effect":"Allow","Resource":"*"}],"Version":"2012-10-17"}`, form.Get("Policy"))
}

// With an IAM user's key instead of a role, each job gets a federated
// user's credentials: named after the member, tagged and narrowed alike,
// up to 36 h.
func TestDeriveAWS_federationTokens(t *testing.T) {
	env := newTestEnv(t)
	sts := newSTSStandIn(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.setRole(alice, "acme", "owner")
	env.setRole(bob, "acme", "member")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"allowed_endpoints": sts.URL})
	write := map[string]interface{}{
		"derivation": derivationAWSFederationToken, "base_access_key_id": testBaseKeyID, "base_secret_access_key": testBaseSecret,
		"sts_endpoint": sts.URL, "max_session_ttl": "36h",
	}
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", alice, write)
	write["max_session_ttl"] = "37h"
	require.Contains(t, env.userError(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", alice, write), "max_session_ttl must be from 900s to 36h")

	resp := env.ok(logical.ReadOperation, "resolve/aws-braket", bob, map[string]interface{}{"org": "acme", "job_id": "job-9", "ttl": "24h"})
	requireNoBaseKey(t, resp)
	form, signer := sts.last()
	require.Equal(t, testBaseKeyID, signer)
	require.Equal(t, "GetFederationToken", form.Get("Action"))
	require.Equal(t, "planqk-bob", form.Get("Name"))
	require.Equal(t, "86400", form.Get("DurationSeconds"))
	require.Equal(t, awsSessionPolicy(map[string]string{}), form.Get("Policy"), "the default narrowing: without a policy a federated user may do nothing")
	require.Equal(t, "job-9", form.Get("Tags.member.5.Value"))
	require.Equal(t, "ASIAJOBSESSION0001", resp.Data["access_key_id"])
	require.Equal(t, credentialsDerived, resp.Data["credentials"])
	require.InDelta(t, (24 * time.Hour).Seconds(), resp.Secret.TTL.Seconds(), 5)
	require.False(t, resp.Secret.Renewable)
	require.Equal(t, "arn:aws:sts::123456789012:federated-user/planqk-bob", roundTripJSON(t, resp.Secret.InternalData)[derivedLeaseKey].([]interface{})[0].(map[string]interface{})["federated_user_arn"])
	require.Equal(t, "planqk-"+strings.Repeat("m", 25), awsFederatedUserName(strings.Repeat("m", 40)), "STS allows 32 characters")
}
