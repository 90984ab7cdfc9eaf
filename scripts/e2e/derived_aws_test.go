//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/internal/jobservice"
	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// startMoto runs moto_server (MOTO_SERVER_BIN, which `make test` sets from
// scripts/ensure-moto.sh) for one test, its log beside Vault's so that the
// suite's leak check reads it too. Without moto the test fails with the
// command that installs it.
func startMoto(t *testing.T) *vaultharness.Moto {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	moto, err := vaultharness.StartMoto(ctx, os.Getenv("MOTO_SERVER_BIN"), s.srv.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(moto.Stop)
	return moto
}

// allowEndpoint adds a stand-in's endpoint to the engine's
// allowed_endpoints for the test (a token's own endpoint must be the
// provider's, or one the operator allows), and takes it out again after.
func allowEndpoint(t *testing.T, endpoint string) {
	t.Helper()
	root := s.srv.Root()
	set := func(list []string) {
		t.Helper()
		if _, err := root.Logical().Write(mount+"/config", map[string]interface{}{"allowed_endpoints": strings.Join(list, ",")}); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := root.Logical().Read(mount + "/config")
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	if list, ok := cfg.Data["allowed_endpoints"].([]interface{}); ok {
		for _, e := range list {
			before = append(before, e.(string))
		}
	}
	set(append(append([]string(nil), before...), endpoint))
	t.Cleanup(func() { set(before) })
}

// motoIAM sends one IAM query-API action to moto (which checks no
// signature, but routes by the credential scope's service) and decodes
// its XML answer into out.
func motoIAM(t *testing.T, moto *vaultharness.Moto, params url.Values, out interface{}) {
	t.Helper()
	params.Set("Version", "2010-05-08")
	req, err := http.NewRequest(http.MethodPost, moto.URL+"/", strings.NewReader(params.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAADMINEXAMPLE0000/20261204/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto IAM %s: %d %s", params.Get("Action"), resp.StatusCode, body)
	}
	if err := xml.Unmarshal(body, out); err != nil {
		t.Fatalf("moto IAM %s: %v", params.Get("Action"), err)
	}
}

// awsAccount is what an organization sets up in its AWS account for the
// engine: an IAM user whose key is the base credential, and a role that
// user may assume (and tag) for jobs.
type awsAccount struct {
	roleARN, roleName     string
	baseKeyID, baseSecret string
}

func newAWSAccount(t *testing.T, moto *vaultharness.Moto) awsAccount {
	t.Helper()
	user := uniqueName("planqk-engine")
	var created struct {
		Arn string `xml:"CreateUserResult>User>Arn"`
	}
	motoIAM(t, moto, url.Values{"Action": {"CreateUser"}, "UserName": {user}}, &created)
	var key struct {
		ID     string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		Secret string `xml:"CreateAccessKeyResult>AccessKey>SecretAccessKey"`
	}
	motoIAM(t, moto, url.Values{"Action": {"CreateAccessKey"}, "UserName": {user}}, &key)
	role := uniqueName("planqk-braket")
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + created.Arn + `"},` +
		`"Action":["sts:AssumeRole","sts:TagSession"],"Condition":{"StringEquals":{"sts:ExternalId":"acme-7f3a"}}}]}`
	var made struct {
		Arn string `xml:"CreateRoleResult>Role>Arn"`
	}
	motoIAM(t, moto, url.Values{"Action": {"CreateRole"}, "RoleName": {role}, "AssumeRolePolicyDocument": {trust}, "MaxSessionDuration": {"7200"}}, &made)
	if made.Arn == "" || key.ID == "" || key.Secret == "" {
		t.Fatalf("moto set up no role or key: %q %q", made.Arn, key.ID)
	}
	s.remember(key.ID, "the organization's base AWS key id")
	s.remember(key.Secret, "the organization's base AWS secret key")
	return awsAccount{roleARN: made.Arn, roleName: role, baseKeyID: key.ID, baseSecret: key.Secret}
}

// motoSessions returns the sessions moto's STS issued: its state, as
// /moto-api/data.json shows it.
func motoSessions(t *testing.T, moto *vaultharness.Moto) []map[string]interface{} {
	t.Helper()
	resp, err := http.Get(moto.URL + "/moto-api/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var state struct {
		STS struct {
			AssumedRole []map[string]interface{} `json:"AssumedRole"`
		} `json:"sts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&state); err != nil {
		t.Fatal(err)
	}
	return state.STS.AssumedRole
}

// requireNoBaseKey fails when what holds the base key.
func requireNoBaseKey(t *testing.T, account awsAccount, what string, value interface{}) {
	t.Helper()
	raw, err := json.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(account.baseKeyID)) || bytes.Contains(raw, []byte(account.baseSecret)) {
		t.Fatalf("%s holds the base key", what)
	}
}

// A member's job in an organization whose AWS token derives runs on STS
// credentials of the organization's role, made for that job: the job
// service sees assumed-role/<role>/planqk-<member>-<job>, the credentials
// expire with their lease, the session policy the engine sent is the one
// moto recorded, and the base key is in no answer, no log, no audit entry.
func TestDerivedAWS_aJobGetsItsOwnSTSCredentials(t *testing.T) {
	moto := startMoto(t)
	allowEndpoint(t, moto.URL)
	account := newAWSAccount(t, moto)
	org := newOrg(t, "braketlab")
	owner := newUser(t, "oscar", org, "owner")
	mia := newUser(t, "mia", org, "member")

	token := map[string]interface{}{
		"derivation": "aws_assume_role", "role_arn": account.roleARN, "external_id": "acme-7f3a", "role_max_ttl": "2h",
		"base_access_key_id": account.baseKeyID, "base_secret_access_key": account.baseSecret,
		"sts_endpoint": moto.URL, "region": "eu-central-1",
	}
	if r := call(t, owner, "POST", mount+"/orgs/"+org+"/provider-tokens/aws-braket", token); r.status != 200 {
		t.Fatalf("the owner stores the derivation: %s", r)
	}
	read := call(t, mia, "GET", mount+"/orgs/"+org+"/provider-tokens/aws-braket", nil)
	requireNoBaseKey(t, account, "a member's read of the token", read.data)
	if method := read.data["derivation"].(map[string]interface{})["method"]; method != "aws_assume_role" {
		t.Fatalf("the read shows derivation %v", method)
	}

	// The platform runs Mia's job: the job service holds only a broker
	// token and her PAT, and calls AWS with what the exchange gave it.
	logPath := filepath.Join(s.srv.Dir, uniqueName("jobservice-aws")+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	service := httptest.NewServer(&jobservice.Service{
		VaultAddr: s.srv.Addr, Mount: mount, BrokerToken: tokenOf("broker"),
		Providers: map[string]jobservice.ProviderAPI{"aws-braket": {STS: moto.URL}},
		Client:    http.DefaultClient,
		Log:       log.New(logFile, "jobservice ", log.LstdFlags),
	})
	t.Cleanup(service.Close)
	pat := createPAT(t, mia, "jobs", nil)["token"].(string)
	submit := func(jobID string) (int, jobservice.Result, string) {
		t.Helper()
		body, _ := json.Marshal(jobservice.Job{Provider: "aws-braket", JobID: jobID})
		req, _ := http.NewRequest(http.MethodPost, service.URL+"/jobs", bytes.NewReader(body))
		req.Header.Set("x-auth-token", pat)
		req.Header.Set("x-organizationid", org)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var result jobservice.Result
		_ = json.Unmarshal(raw, &result)
		return resp.StatusCode, result, string(raw)
	}
	before := time.Now()
	status, result, raw := submit("job-42")
	if status != http.StatusCreated {
		t.Fatalf("mia's job: %d %s", status, raw)
	}
	want := "arn:aws:sts::123456789012:assumed-role/" + account.roleName + "/planqk-" + mia + "-job-42"
	if result.Account != want || result.Credentials != "derived" || result.Source != "organization" {
		t.Fatalf("mia's job ran as %q with %q credentials of the %s; want %s, derived, organization", result.Account, result.Credentials, result.Source, want)
	}
	expires, err := time.Parse(time.RFC3339, result.ExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	if life := expires.Sub(before); math.Abs(life.Seconds()-3600) > 10 || math.Abs(float64(result.LeaseDuration)-life.Seconds()) > 10 || result.Renewable {
		t.Fatalf("credentials live %s, the lease %ds (renewable %v): want one hour, the lease as long, not renewable", life, result.LeaseDuration, result.Renewable)
	}

	// moto recorded the session as the engine asked for it: the role, the
	// external id, the session policy narrowing the role to Braket.
	var session map[string]interface{}
	for _, candidate := range motoSessions(t, moto) {
		if candidate["session_name"] == "planqk-"+mia+"-job-42" {
			session = candidate
		}
	}
	if session == nil || session["role_arn"] != account.roleARN || session["external_id"] != "acme-7f3a" ||
		!strings.Contains(session["policy"].(string), `"Action":"braket:*"`) {
		t.Fatalf("moto's session: %v", session)
	}

	// Mia asks herself, within the bounds: 900 s is AWS's minimum, the
	// role allows two hours; the stored key is never given (derived only).
	resolved, err := as(t, mia).Logical().ReadWithData(mount+"/resolve/aws-braket", map[string][]string{"org": {org}, "ttl": {"900"}})
	if err != nil {
		t.Fatal(err)
	}
	requireNoBaseKey(t, account, "resolve's answer", resolved)
	if resolved.LeaseDuration < 890 || resolved.LeaseDuration > 900 || resolved.LeaseID == "" {
		t.Fatalf("ttl=900: lease %q of %ds", resolved.LeaseID, resolved.LeaseDuration)
	}
	for ttl, reason := range map[string]string{"899": "at least 900s", "7201": "at most 7200s"} {
		r := call(t, mia, "GET", mount+"/resolve/aws-braket?org="+org+"&ttl="+ttl, nil)
		if r.status != 400 || !strings.Contains(r.String(), reason) {
			t.Fatalf("ttl=%s: %s", ttl, r)
		}
	}
	if r := call(t, mia, "GET", mount+"/resolve/aws-braket?org="+org+"&credentials=stored", nil); r.status != 403 {
		t.Fatalf("credentials=stored under derived_only: %s", r)
	}
	// Revoking the lease is a no-op for STS credentials, and succeeds.
	if err := s.srv.Root().Sys().Revoke(resolved.LeaseID); err != nil {
		t.Fatal(err)
	}

	// Vault Agent's path: the runtime read's PAT lease ends with the
	// credentials in its environment.
	runtime, err := as(t, mia).Logical().ReadWithData(mount+"/users/"+mia+"/runtime/runtime", map[string][]string{"org": {org}, "ttl": {"1200"}})
	if err != nil {
		t.Fatal(err)
	}
	requireNoBaseKey(t, account, "the runtime read", runtime)
	s.remember(runtime.Data["token"].(string), mia+"'s runtime PAT")
	env := runtime.Data["env"].(map[string]interface{})
	if !strings.HasPrefix(env["AWS_ACCESS_KEY_ID"].(string), "ASIA") || env["AWS_SESSION_TOKEN"] == "" || env["AWS_REGION"] != "eu-central-1" {
		t.Fatalf("the runtime environment has no derived AWS credentials")
	}
	if runtime.LeaseDuration > 1200 {
		t.Fatalf("the runtime lease lives %ds, longer than its credentials (1200s)", runtime.LeaseDuration)
	}

	logged, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logged), "account="+want) {
		t.Fatalf("the job service logged no run as %s", want)
	}
}
