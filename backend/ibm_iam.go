package backend

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	lru "github.com/hashicorp/golang-lru/v2"
)

// The IBM Cloud IAM client: the few calls of the IAM Identity API that
// per-job API keys need, on net/http. A management API key (one allowed
// to manage the API keys of one service ID) is exchanged for a bearer at
// /identity/token; the bearer creates a service-ID API key per job at
// POST /v1/apikeys and deletes it at DELETE /v1/apikeys/{id} when the
// job's lease ends. Nothing here ever puts a key value - the management
// key, a bearer or a created key - into an error or a log line.

const (
	// defaultIAMEndpoint is IBM Cloud's public IAM endpoint.
	defaultIAMEndpoint = "https://iam.cloud.ibm.com"

	ibmAPIKeyGrantType = "urn:ibm:params:oauth:grant-type:apikey"

	// ibmIAMTimeout bounds one call to IAM.
	ibmIAMTimeout = 30 * time.Second
	// ibmBearerMargin is how long before its expiry a cached bearer is
	// no longer used (IAM bearers live an hour).
	ibmBearerMargin = 5 * time.Minute
	// ibmBearerCacheSize bounds the bearers kept, one per management key
	// and endpoint.
	ibmBearerCacheSize = 1000
	// ibmListPageSize is the page size when listing a service ID's keys.
	ibmListPageSize = 100
	// ibmMaxListPages bounds a listing (100 pages of 100 keys).
	ibmMaxListPages = 100
	// ibmMaxResponse bounds what is read of one IAM response.
	ibmMaxResponse = 1 << 20
)

// errIBMNotFound is what a lookup of a key IAM does not know returns.
var errIBMNotFound = errors.New("IBM Cloud IAM answered 404")

// ibmErrorCodeRegex is what an IAM error code looks like (BXNIM0415E);
// anything else in an error answer is not repeated.
var ibmErrorCodeRegex = regexp.MustCompile(`^[A-Z0-9_-]{1,32}$`)

// checkIAMEndpoint accepts https URLs, and http ones to loopback addresses
// (a stand-in on the same host); the message names what is wrong.
func checkIAMEndpoint(raw string) string {
	return checkOutboundURL("iam_endpoint", raw, true)
}

// ibmBearer is a cached IAM bearer.
type ibmBearer struct {
	token    string
	usableTo time.Time
}

// ibmBearers caches bearers by a hash of endpoint and management key, so
// that deriving keys for many jobs costs one token exchange an hour per
// management key. It holds only bearers, never a management key.
type ibmBearers struct {
	entries *lru.Cache[string, ibmBearer]
	now     func() time.Time
}

func newIBMBearers() *ibmBearers {
	entries, err := lru.New[string, ibmBearer](ibmBearerCacheSize)
	if err != nil {
		panic(err) // only a non-positive size fails
	}
	return &ibmBearers{entries: entries, now: time.Now}
}

// ibmIAM is a client of one IAM endpoint acting with one management key.
type ibmIAM struct {
	endpoint string
	apiKey   string
	client   *http.Client
	bearers  *ibmBearers
	// cacheKey names endpoint and management key in bearers.
	cacheKey string
	// fill serialises token exchanges of this client.
	fill sync.Mutex
}

// ibmHTTPClient is the client every ibmIAM uses: TLS verified, no
// redirects followed (IAM answers none, and a bearer must not follow one),
// each call bounded.
var ibmHTTPClient = func() *http.Client {
	c := cleanhttp.DefaultPooledClient()
	c.Timeout = ibmIAMTimeout
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}()

// newIBMIAM returns a client of endpoint (empty: IBM Cloud's public one)
// acting with apiKey; endpoint must pass checkIAMEndpoint.
func newIBMIAM(endpoint, apiKey string, bearers *ibmBearers) (*ibmIAM, error) {
	if endpoint == "" {
		endpoint = defaultIAMEndpoint
	}
	if msg := checkIAMEndpoint(endpoint); msg != "" {
		return nil, errors.New(msg)
	}
	if apiKey == "" {
		return nil, errors.New("no IBM Cloud management API key")
	}
	sum := sha256.Sum256([]byte(endpoint + "\x00" + apiKey))
	return &ibmIAM{
		endpoint: strings.TrimSuffix(endpoint, "/"),
		apiKey:   apiKey,
		client:   ibmHTTPClient,
		bearers:  bearers,
		cacheKey: hex.EncodeToString(sum[:]),
	}, nil
}

// bearer returns a bearer for the management key, cached until shortly
// before it expires.
func (c *ibmIAM) bearer(ctx context.Context) (string, error) {
	if b, ok := c.bearers.entries.Get(c.cacheKey); ok && c.bearers.now().Before(b.usableTo) {
		return b.token, nil
	}
	c.fill.Lock()
	defer c.fill.Unlock()
	if b, ok := c.bearers.entries.Get(c.cacheKey); ok && c.bearers.now().Before(b.usableTo) {
		return b.token, nil
	}
	form := url.Values{"grant_type": {ibmAPIKeyGrantType}, "apikey": {c.apiKey}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+"/identity/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("IBM Cloud IAM token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var answer struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Expiration  int64  `json:"expiration"`
	}
	if err := c.do(req, http.StatusOK, &answer); err != nil {
		return "", fmt.Errorf("exchanging the IBM Cloud management API key for a bearer: %w", err)
	}
	if answer.AccessToken == "" {
		return "", errors.New("exchanging the IBM Cloud management API key for a bearer: IAM answered no access_token")
	}
	now := c.bearers.now()
	expires := now.Add(time.Duration(answer.ExpiresIn) * time.Second)
	if answer.Expiration > 0 {
		expires = time.Unix(answer.Expiration, 0)
	}
	c.bearers.entries.Add(c.cacheKey, ibmBearer{token: answer.AccessToken, usableTo: expires.Add(-ibmBearerMargin)})
	return answer.AccessToken, nil
}

// ibmAPIKey is a service-ID API key as IAM describes it. Value is set only
// in the answer to its creation.
type ibmAPIKey struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	IAMID     string `json:"iam_id"`
	AccountID string `json:"account_id"`
	Value     string `json:"apikey,omitempty"`
}

// ibmAPIKeyRequest is what creating a key sends.
type ibmAPIKeyRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	IAMID       string `json:"iam_id"`
	AccountID   string `json:"account_id"`
	// StoreValue false: IAM keeps no copy of the key to show again.
	StoreValue bool `json:"store_value"`
}

// createAPIKey creates an API key of the service ID iamID and returns it
// with its value.
func (c *ibmIAM) createAPIKey(ctx context.Context, create ibmAPIKeyRequest) (*ibmAPIKey, error) {
	body, err := json.Marshal(create)
	if err != nil {
		return nil, err
	}
	var key ibmAPIKey
	if err := c.call(ctx, http.MethodPost, "/v1/apikeys", body, http.StatusCreated, &key); err != nil {
		return nil, fmt.Errorf("creating an API key of %s: %w", create.IAMID, err)
	}
	if key.ID == "" || key.Value == "" {
		return nil, fmt.Errorf("creating an API key of %s: IAM answered no id or no apikey", create.IAMID)
	}
	return &key, nil
}

// deleteAPIKey deletes the API key id; a key IAM no longer knows is gone
// already, which is what the caller wants.
func (c *ibmIAM) deleteAPIKey(ctx context.Context, id string) error {
	err := c.call(ctx, http.MethodDelete, "/v1/apikeys/"+url.PathEscape(id), nil, http.StatusNoContent, nil)
	if errors.Is(err, errIBMNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting API key %s: %w", id, err)
	}
	return nil
}

// apiKeysNamed lists the API keys of the service ID iamID that are named
// name: how a key whose id was never learned is found again.
func (c *ibmIAM) apiKeysNamed(ctx context.Context, accountID, iamID, name string) ([]ibmAPIKey, error) {
	var found []ibmAPIKey
	pageToken := ""
	for range ibmMaxListPages {
		query := url.Values{"account_id": {accountID}, "iam_id": {iamID}, "pagesize": {fmt.Sprint(ibmListPageSize)}}
		if pageToken != "" {
			query.Set("pagetoken", pageToken)
		}
		var page struct {
			Next    string      `json:"next"`
			APIKeys []ibmAPIKey `json:"apikeys"`
		}
		if err := c.call(ctx, http.MethodGet, "/v1/apikeys?"+query.Encode(), nil, http.StatusOK, &page); err != nil {
			return nil, fmt.Errorf("listing the API keys of %s: %w", iamID, err)
		}
		for _, key := range page.APIKeys {
			if key.Name == name && key.IAMID == iamID {
				found = append(found, key)
			}
		}
		if page.Next == "" {
			return found, nil
		}
		next, err := url.Parse(page.Next)
		if err != nil || next.Query().Get("pagetoken") == "" || next.Query().Get("pagetoken") == pageToken {
			return found, nil
		}
		pageToken = next.Query().Get("pagetoken")
	}
	return nil, fmt.Errorf("listing the API keys of %s: more than %d pages", iamID, ibmMaxListPages)
}

// ibmServiceID is a service ID as IAM describes it.
type ibmServiceID struct {
	ID        string `json:"id"`
	IAMID     string `json:"iam_id"`
	AccountID string `json:"account_id"`
	Name      string `json:"name"`
}

// serviceID reads the service ID id (ServiceId-...): whether the
// management key can see it, and its iam_id.
func (c *ibmIAM) serviceID(ctx context.Context, id string) (*ibmServiceID, error) {
	var sid ibmServiceID
	if err := c.call(ctx, http.MethodGet, "/v1/serviceids/"+url.PathEscape(id), nil, http.StatusOK, &sid); err != nil {
		if errors.Is(err, errIBMNotFound) {
			return nil, fmt.Errorf("service ID %s not found (or not visible to the management API key)", id)
		}
		return nil, fmt.Errorf("reading service ID %s: %w", id, err)
	}
	return &sid, nil
}

// call sends one IAM Identity API request with the bearer; a bearer IAM
// refuses is dropped and the call tried once more with a new one.
func (c *ibmIAM) call(ctx context.Context, method, path string, body []byte, want int, into any) error {
	for attempt := 0; ; attempt++ {
		bearer, err := c.bearer(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, c.endpoint+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+bearer)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		err = c.do(req, want, into)
		var status ibmStatusError
		if attempt == 0 && errors.As(err, &status) && status.code == http.StatusUnauthorized {
			c.bearers.entries.Remove(c.cacheKey)
			continue
		}
		return err
	}
}

// ibmStatusError is an IAM answer with an unexpected status.
type ibmStatusError struct {
	code      int
	errorCode string
}

func (e ibmStatusError) Error() string {
	if e.errorCode != "" {
		return fmt.Sprintf("IBM Cloud IAM answered %d (%s)", e.code, e.errorCode)
	}
	return fmt.Sprintf("IBM Cloud IAM answered %d", e.code)
}

// do sends req and decodes a want answer into into. An error names the
// status and IAM's error code, never the bodies: they can hold keys.
func (c *ibmIAM) do(req *http.Request, want int, into any) error {
	resp, err := c.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			// The URL holds no secret; the wrapped error is the transport's.
			return fmt.Errorf("IBM Cloud IAM %s %s: %w", req.Method, req.URL.Path, uerr.Err)
		}
		return fmt.Errorf("IBM Cloud IAM %s %s: %w", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, ibmMaxResponse))
	if err != nil {
		return fmt.Errorf("IBM Cloud IAM %s %s: reading the answer: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return errIBMNotFound
	}
	if resp.StatusCode != want {
		var problem struct {
			ErrorCode string `json:"errorCode"`
		}
		_ = json.Unmarshal(data, &problem)
		status := ibmStatusError{code: resp.StatusCode}
		if ibmErrorCodeRegex.MatchString(problem.ErrorCode) {
			status.errorCode = problem.ErrorCode
		}
		return status
	}
	if into == nil {
		return nil
	}
	if err := json.Unmarshal(data, into); err != nil {
		// json's syntax errors quote no input, but type errors can name
		// a value: say only that the answer was malformed.
		return fmt.Errorf("IBM Cloud IAM %s %s: malformed answer", req.Method, req.URL.Path)
	}
	return nil
}
