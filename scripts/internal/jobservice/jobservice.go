// Package jobservice is a stand-in for the PlanQK platform in the loop of a
// job, for the end-to-end suite: a job service that accepts a job over HTTP
// as the PlanQK SDK sends it (the user's PAT in x-auth-token, the
// organization in x-organizationid), exchanges the PAT for the provider
// token the user may use through the engine's exchange with its own broker
// token, and submits the job to a provider; and a stand-in quantum provider
// API that runs a job only for a provider token it knows, on that token's
// account.
//
// For aws-braket the provider is AWS itself (moto in the tests): the service
// calls STS GetCallerIdentity with the credentials the exchange gave it,
// as the Braket SDK's first call would, and the account is the caller's
// ARN - for derived credentials, the job's assumed-role session.
//
// Neither logs a PAT or a provider token: the service logs whom a job ran
// for and on which account, by name and id only.
package jobservice

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Job is what a client submits: the provider to run on, and the job's id
// (passed to the exchange, which tags derived credentials with it).
type Job struct {
	Provider string `json:"provider"`
	JobID    string `json:"job_id,omitempty"`
}

// Result is the service's answer to an accepted job.
type Result struct {
	// Account is the provider account the job ran on, as the provider
	// reports it.
	Account string `json:"account"`
	// Source and Org say whose provider token it was, as the exchange
	// answered: "organization" with the organization, or "user".
	Source string `json:"source"`
	Org    string `json:"org"`
	// User and EntityID are whom the exchange answered for.
	User     string `json:"user"`
	EntityID string `json:"entity_id"`
	// Credentials and ExpiresAt are the exchange's for derived
	// credentials ("derived", their expiry); LeaseDuration and Renewable
	// its lease's.
	Credentials   string `json:"credentials,omitempty"`
	ExpiresAt     string `json:"expires_at,omitempty"`
	LeaseDuration int    `json:"lease_duration"`
	Renewable     bool   `json:"renewable"`
}

// Service is the stand-in job service.
type Service struct {
	// VaultAddr and Mount address the engine; BrokerToken is a Vault token
	// with the planqk-broker policy.
	VaultAddr   string
	Mount       string
	BrokerToken string
	// Providers maps a provider name to its API's base URL and the field
	// of the exchanged token that the API takes as a bearer token.
	Providers map[string]ProviderAPI
	Client    *http.Client
	Log       *log.Logger
}

// ProviderAPI is where a provider's API is and which field of its token it
// takes; or, for AWS, the STS endpoint that GetCallerIdentity is sent to
// with the exchanged aws-braket credentials.
type ProviderAPI struct {
	URL   string
	Field string
	STS   string
}

// ServeHTTP accepts POST /jobs.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/jobs" {
		respond(w, http.StatusNotFound, map[string]string{"error": "POST /jobs"})
		return
	}
	pat := r.Header.Get("X-Auth-Token")
	org := r.Header.Get("X-OrganizationId")
	var job Job
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&job); err != nil || job.Provider == "" {
		respond(w, http.StatusBadRequest, map[string]string{"error": "the body must be {\"provider\": \"<name>\"}"})
		return
	}
	api, ok := s.Providers[job.Provider]
	if !ok || pat == "" {
		respond(w, http.StatusBadRequest, map[string]string{"error": "unknown provider or no x-auth-token"})
		return
	}

	status, answer, reason, err := s.exchange(job.Provider, job.JobID, pat, org)
	if err != nil {
		s.Log.Printf("job refused: exchange failed: %v", err)
		respond(w, http.StatusBadGateway, map[string]string{"error": "the token exchange failed"})
		return
	}
	if status != http.StatusOK {
		// The engine's reasons name no secret; they are passed on.
		s.Log.Printf("job refused: provider=%s org=%q exchange=%d reason=%q", job.Provider, org, status, reason)
		respond(w, status, map[string]string{"error": reason})
		return
	}
	data := answer.Data
	behalf, _ := data["on_behalf_of"].(map[string]interface{})
	result := Result{Source: fmt.Sprint(data["source"]), Org: fmt.Sprint(data["org"]), User: fmt.Sprint(behalf["user"]), EntityID: fmt.Sprint(behalf["entity_id"]),
		LeaseDuration: answer.LeaseDuration, Renewable: answer.Renewable}
	result.Credentials, _ = data["credentials"].(string)
	result.ExpiresAt, _ = data["expires_at"].(string)
	var account string
	if api.STS != "" {
		account, err = s.callerIdentity(r.Context(), api.STS, data)
	} else {
		secret, _ := data[api.Field].(string)
		account, err = s.submit(api.URL, secret)
	}
	if err != nil {
		s.Log.Printf("job failed at the provider: provider=%s user=%s token_id=%v source=%s: %v", job.Provider, result.User, behalf["token_id"], result.Source, err)
		respond(w, http.StatusBadGateway, map[string]string{"error": "the provider refused the job"})
		return
	}
	result.Account = account
	s.Log.Printf("job ran: provider=%s user=%s entity_id=%s token_id=%v org=%q source=%s account=%s",
		job.Provider, result.User, result.EntityID, behalf["token_id"], result.Org, result.Source, account)
	respond(w, http.StatusCreated, result)
}

// exchangeAnswer is the engine's answer: its data and its lease, if any.
type exchangeAnswer struct {
	Data          map[string]interface{} `json:"data"`
	LeaseDuration int                    `json:"lease_duration"`
	Renewable     bool                   `json:"renewable"`
	Errors        []string               `json:"errors"`
}

// exchange asks the engine for the provider token of the PAT's owner by
// GET, the PAT and the organization in headers, so that neither is in a
// URL or a request body; the job id (no secret) in the query.
func (s *Service) exchange(provider, jobID, pat, org string) (int, *exchangeAnswer, string, error) {
	target := s.VaultAddr + "/v1/" + s.Mount + "/exchange/" + url.PathEscape(provider)
	if jobID != "" {
		target += "?job_id=" + url.QueryEscape(jobID)
	}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("X-Vault-Token", s.BrokerToken)
	req.Header.Set("X-Auth-Token", pat)
	if org != "" {
		req.Header.Set("X-OrganizationId", org)
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, nil, "", fmt.Errorf("calling the engine: %w", err)
	}
	defer resp.Body.Close()
	var body exchangeAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return 0, nil, "", fmt.Errorf("decoding the engine's answer (%d): %w", resp.StatusCode, err)
	}
	return resp.StatusCode, &body, strings.Join(body.Errors, "; "), nil
}

// callerIdentity asks AWS STS at endpoint who the exchanged aws-braket
// credentials are, as the Braket SDK's first call would, and returns the
// caller's ARN.
func (s *Service) callerIdentity(ctx context.Context, endpoint string, data map[string]interface{}) (string, error) {
	field := func(name string) string { v, _ := data[name].(string); return v }
	region := field("region")
	if region == "" {
		region = "us-east-1"
	}
	client := sts.New(sts.Options{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(field("access_key_id"), field("secret_access_key"), field("session_token")),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   s.Client,
	})
	out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", fmt.Errorf("GetCallerIdentity: %w", err)
	}
	return aws.ToString(out.Arn), nil
}

// submit runs the job at the provider with the provider token as a bearer
// token and returns the account it ran on.
func (s *Service) submit(base, secret string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/v1/jobs", strings.NewReader(`{"circuit":"bell"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("calling the provider: %w", err)
	}
	defer resp.Body.Close()
	var answer struct {
		Account string `json:"account"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&answer); err != nil {
		return "", fmt.Errorf("decoding the provider's answer (%d): %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("the provider answered %d: %s", resp.StatusCode, answer.Error)
	}
	return answer.Account, nil
}

// Provider is the stand-in quantum provider API: POST /v1/jobs with
// Authorization: Bearer <token> runs a job on the token's account (201
// {"account": ...}); any other token gets 401.
type Provider struct {
	mu       sync.Mutex
	accounts map[string]string // token -> account
	runs     []string          // accounts jobs ran on, in order
}

// NewProvider returns a provider that knows the given tokens, each with
// its account.
func NewProvider(accounts map[string]string) *Provider {
	known := make(map[string]string, len(accounts))
	for token, account := range accounts {
		known[token] = account
	}
	return &Provider{accounts: known}
}

func (p *Provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/jobs" {
		respond(w, http.StatusNotFound, map[string]string{"error": "POST /v1/jobs"})
		return
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	account, known := p.accounts[token]
	if ok && known {
		p.runs = append(p.runs, account)
	}
	p.mu.Unlock()
	if !ok || !known {
		respond(w, http.StatusUnauthorized, map[string]string{"error": "unknown token"})
		return
	}
	respond(w, http.StatusCreated, map[string]string{"account": account, "job_id": fmt.Sprintf("job-%d", time.Now().UnixNano())})
}

// Runs returns the accounts jobs ran on, in order.
func (p *Provider) Runs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.runs...)
}

func respond(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}
