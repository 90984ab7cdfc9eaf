// Package ibmiam is a stand-in for IBM Cloud IAM for unit and end-to-end
// tests: the IAM Identity API calls the engine makes for per-job service-ID
// API keys - /identity/token (the API-key grant), /v1/serviceids/{id} and
// /v1/apikeys (create, get, list, delete) - and a stand-in quantum endpoint
// that answers only a bearer of a key that still exists, the way IBM
// Quantum refuses a deleted key. Tests ask it which keys exist.
//
// It follows the shapes of IBM's answers (iam_id "iam-ServiceId-...", key
// ids "ApiKey-...", 201 on create, 204 on delete, 404 for an unknown key,
// errorCode in error bodies) but is not a full IAM: one account, bearers
// that never expire unless told to, no access policies beyond "this
// management key may manage the keys of these service IDs".
package ibmiam

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key is an API key the stand-in holds, as tests see it.
type Key struct {
	ID          string
	Name        string
	Description string
	IAMID       string
	CreatedAt   time.Time
	// Manager is true for a management key added with AddManagementKey.
	Manager bool
}

type apiKey struct {
	Key
	value string
	// manages are the iam_ids whose keys this key may manage.
	manages map[string]bool
}

type bearer struct {
	keyID string
}

// Server is the stand-in; its zero value is not usable, use New.
type Server struct {
	// AccountID is the one account.
	AccountID string

	mu         sync.Mutex
	serviceIDs map[string]string // id -> iam_id
	names      map[string]string // id -> name
	keys       map[string]*apiKey
	byValue    map[string]string // key value -> key id
	bearers    map[string]bearer
	// failCreate: the next so many creations create the key and then
	// drop the connection, as if the caller had crashed before reading
	// the answer.
	failCreate int
	calls      map[string]int
}

// New returns a stand-in for the account accountID.
func New(accountID string) *Server {
	return &Server{
		AccountID:  accountID,
		serviceIDs: map[string]string{},
		names:      map[string]string{},
		keys:       map[string]*apiKey{},
		byValue:    map[string]string{},
		bearers:    map[string]bearer{},
		calls:      map[string]int{},
	}
}

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func uuidish() string {
	r := random(16)
	return r[0:8] + "-" + r[8:12] + "-" + r[12:16] + "-" + r[16:20] + "-" + r[20:32]
}

// AddServiceID creates a service ID and returns its id and iam_id.
func (s *Server) AddServiceID(name string) (id, iamID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id = "ServiceId-" + uuidish()
	s.serviceIDs[id] = "iam-" + id
	s.names[id] = name
	return id, "iam-" + id
}

// AddManagementKey returns the value of a new API key (of some other
// identity) that may manage the API keys of the given service IDs (by id).
func (s *Server) AddManagementKey(serviceIDs ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := &apiKey{Key: Key{ID: "ApiKey-" + uuidish(), Name: "manager", IAMID: "iam-ServiceId-manager", CreatedAt: time.Now(), Manager: true}, value: "mgmt-" + random(20), manages: map[string]bool{}}
	for _, id := range serviceIDs {
		if iamID, ok := s.serviceIDs[id]; ok {
			k.manages[iamID] = true
		}
	}
	s.keys[k.ID] = k
	s.byValue[k.value] = k.ID
	return k.value
}

// Keys returns the API keys of the service ID iamID that exist now,
// oldest first.
func (s *Server) Keys(iamID string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Key
	for _, k := range s.keys {
		if k.IAMID == iamID && !k.Manager {
			out = append(out, k.Key)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out
}

// KeyValue returns the value of key id, for tests that must use it as a
// job would; "" when it does not exist.
func (s *Server) KeyValue(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[id]; ok {
		return k.value
	}
	return ""
}

// FailCreates makes the next n key creations create the key and then drop
// the connection without an answer.
func (s *Server) FailCreates(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCreate = n
}

// ExpireBearers forgets every bearer issued so far, so that the next call
// with one gets 401.
func (s *Server) ExpireBearers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bearers = map[string]bearer{}
}

// Calls returns how many requests each endpoint ("POST /identity/token",
// "POST /v1/apikeys", ...) has had.
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"errorCode": code, "errorMessage": message, "trace": random(8)})
}

// ServeHTTP serves the IAM endpoints and the quantum check.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	endpoint := r.URL.Path
	if strings.HasPrefix(endpoint, "/v1/apikeys/") {
		endpoint = "/v1/apikeys/{id}"
	} else if strings.HasPrefix(endpoint, "/v1/serviceids/") {
		endpoint = "/v1/serviceids/{id}"
	}
	s.calls[r.Method+" "+endpoint]++
	s.mu.Unlock()

	if r.URL.Path == "/identity/token" && r.Method == http.MethodPost {
		s.token(w, r)
		return
	}
	// Every other endpoint takes a bearer: checked once, here.
	caller, ok := s.caller(r)
	if !ok {
		problem(w, http.StatusUnauthorized, "BXNIM0407E", "invalid bearer")
		return
	}
	switch {
	case r.URL.Path == "/quantum/check" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"ok": true})
	case r.URL.Path == "/v1/apikeys" && r.Method == http.MethodPost:
		s.create(w, r, caller)
	case r.URL.Path == "/v1/apikeys" && r.Method == http.MethodGet:
		s.list(w, r, caller)
	case strings.HasPrefix(r.URL.Path, "/v1/apikeys/") && (r.Method == http.MethodGet || r.Method == http.MethodDelete):
		s.one(w, r, caller, strings.TrimPrefix(r.URL.Path, "/v1/apikeys/"))
	case strings.HasPrefix(r.URL.Path, "/v1/serviceids/") && r.Method == http.MethodGet:
		s.serviceID(w, caller, strings.TrimPrefix(r.URL.Path, "/v1/serviceids/"))
	default:
		problem(w, http.StatusNotFound, "BXNIM0404E", "not found")
	}
}

// token is the API-key grant of /identity/token.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey" {
		problem(w, http.StatusBadRequest, "BXNIM0109E", "unsupported grant type")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byValue[r.PostForm.Get("apikey")]
	if !ok {
		problem(w, http.StatusBadRequest, "BXNIM0415E", "Provided API key could not be found")
		return
	}
	token := "bearer-" + random(24)
	s.bearers[token] = bearer{keyID: id}
	now := time.Now()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
		"expires_in": 3600, "expiration": now.Add(time.Hour).Unix(),
	})
}

// caller returns the key whose bearer the request carries, if the bearer
// is known and its key still exists.
func (s *Server) caller(r *http.Request) (*apiKey, bool) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bearers[token]
	if !ok {
		return nil, false
	}
	k, ok := s.keys[b.keyID]
	return k, ok
}

func (k *apiKey) view(withValue bool) map[string]any {
	v := map[string]any{
		"id": k.ID, "name": k.Name, "description": k.Description, "iam_id": k.IAMID,
		"created_at": k.CreatedAt.UTC().Format(time.RFC3339), "crn": "crn:v1:stand-in:public:iam-identity::a/x::apikey:" + k.ID,
	}
	if withValue {
		v["apikey"] = k.value
	}
	return v
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, caller *apiKey) {
	var body struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		IAMID       string `json:"iam_id"`
		AccountID   string `json:"account_id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Name == "" || body.IAMID == "" {
		problem(w, http.StatusBadRequest, "BXNIM0501E", "name and iam_id are required")
		return
	}
	if body.AccountID != s.AccountID {
		problem(w, http.StatusForbidden, "BXNIM0513E", "wrong account")
		return
	}
	s.mu.Lock()
	if !caller.manages[body.IAMID] {
		s.mu.Unlock()
		problem(w, http.StatusForbidden, "BXNIM0513E", "You are not authorized to create API keys of this service ID")
		return
	}
	k := &apiKey{Key: Key{ID: "ApiKey-" + uuidish(), Name: body.Name, Description: body.Description, IAMID: body.IAMID, CreatedAt: time.Now()}, value: "derived-" + random(20)}
	s.keys[k.ID] = k
	s.byValue[k.value] = k.ID
	drop := s.failCreate > 0
	if drop {
		s.failCreate--
	}
	s.mu.Unlock()
	if drop {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	writeJSON(w, http.StatusCreated, k.view(true))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, caller *apiKey) {
	q := r.URL.Query()
	iamID := q.Get("iam_id")
	s.mu.Lock()
	defer s.mu.Unlock()
	if !caller.manages[iamID] {
		problem(w, http.StatusForbidden, "BXNIM0513E", "not authorized")
		return
	}
	var all []*apiKey
	for _, k := range s.keys {
		if k.IAMID == iamID && !k.Manager {
			all = append(all, k)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	size, _ := strconv.Atoi(q.Get("pagesize"))
	if size <= 0 || size > 100 {
		size = 20
	}
	start, _ := strconv.Atoi(q.Get("pagetoken"))
	if start < 0 || start > len(all) {
		start = len(all)
	}
	end := min(start+size, len(all))
	page := make([]map[string]any, 0, end-start)
	for _, k := range all[start:end] {
		page = append(page, k.view(false))
	}
	answer := map[string]any{"offset": start, "limit": size, "apikeys": page}
	if end < len(all) {
		next := url.Values{"iam_id": {iamID}, "account_id": {q.Get("account_id")}, "pagesize": {strconv.Itoa(size)}, "pagetoken": {strconv.Itoa(end)}}
		answer["next"] = "http://" + r.Host + "/v1/apikeys?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) one(w http.ResponseWriter, r *http.Request, caller *apiKey, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok || k.Manager {
		problem(w, http.StatusNotFound, "BXNIM0410E", "API key not found")
		return
	}
	if !caller.manages[k.IAMID] {
		problem(w, http.StatusForbidden, "BXNIM0513E", "not authorized")
		return
	}
	if r.Method == http.MethodGet {
		writeJSON(w, http.StatusOK, k.view(false))
		return
	}
	delete(s.keys, id)
	delete(s.byValue, k.value)
	for token, b := range s.bearers {
		if b.keyID == id {
			delete(s.bearers, token)
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serviceID(w http.ResponseWriter, caller *apiKey, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	iamID, ok := s.serviceIDs[id]
	if !ok || !caller.manages[iamID] {
		problem(w, http.StatusNotFound, "BXNIM0410E", "service ID not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "iam_id": iamID, "account_id": s.AccountID, "name": s.names[id]})
}
