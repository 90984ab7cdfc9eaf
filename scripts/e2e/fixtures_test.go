//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var nameCounter atomic.Int64

// uniqueName returns base with a suffix that no other call in this process
// returns: a test that names its objects with it finds none of them left
// over, whatever ran before it and however often it runs (-count).
func uniqueName(base string) string {
	return fmt.Sprintf("%s-%d", base, nameCounter.Add(1))
}

// newUser creates a user of its own for a test, named after base, gives it
// role in org (none when org is ""), logs it in and returns its name;
// tokenOf(name) is then its Vault token. Tests that disable, delete or
// regroup a user use one of these, never the shared cast.
func newUser(t *testing.T, base, org, role string) string {
	t.Helper()
	ctx := context.Background()
	name := uniqueName(base)
	password := "pw-" + name + "-e2e-77d1"
	s.remember(password, "password of "+name)
	if _, err := s.boot.User(ctx, name, password); err != nil {
		t.Fatal(err)
	}
	if org != "" {
		if err := s.boot.SetMember(ctx, org, name, role); err != nil {
			t.Fatal(err)
		}
	}
	token, err := s.srv.Login(ctx, authMount, name, password)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.tokens[name] = token
	s.mu.Unlock()
	return name
}

// createPAT creates a named PAT as its owner, registers its secret for the
// leak checks and returns the response data.
func createPAT(t *testing.T, user, name string, body map[string]interface{}) map[string]interface{} {
	t.Helper()
	created, err := as(t, user).Logical().Write(mount+"/users/"+user+"/tokens/"+name, body)
	if err != nil {
		t.Fatalf("%s creates PAT %s: %v", user, name, err)
	}
	token, _ := created.Data["token"].(string)
	if !strings.HasPrefix(token, "plqk_") {
		t.Fatalf("create returned no PAT: %v", redacted(created.Data))
	}
	s.remember(token, user+"'s PAT "+name)
	return created.Data
}

// eventually polls check every 250ms until it reports done, and fails the
// test with check's last state when timeout passes first. Waits on Vault's
// identity store, the engine's identity cache or a lease use it instead of
// a fixed sleep, so that a slow machine is waited for, not failed.
func eventually(t *testing.T, timeout time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// identityWait bounds a wait for a change in Vault's identity store to show
// in the engine. The README promises "within identity_cache_ttl" (5s by
// default, as the suite runs): the bound is that plus 5s for a loaded
// machine's requests, so that an engine reusing identity answers for 15s
// fails the tests that wait.
const identityWait = 5*time.Second + 5*time.Second

// response is one answer of Vault's HTTP API, with its exact status: the
// API client turns a 404 of a read into "no secret, no error", which an
// allowed cell of the role matrix must not mistake for success.
type response struct {
	status int
	data   map[string]interface{} // the body's "data"
	errors []string
}

func (r response) String() string {
	if len(r.errors) > 0 {
		return fmt.Sprintf("%d %s", r.status, strings.Join(r.errors, "; "))
	}
	return fmt.Sprint(r.status)
}

// call sends method (GET, POST, DELETE or LIST) to path under /v1/ as who,
// with body as JSON, and returns the answer.
func call(t *testing.T, who, method, path string, body map[string]interface{}) response {
	t.Helper()
	var payload bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&payload).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	url := s.srv.Addr + "/v1/" + path
	if method == "LIST" {
		method, url = "GET", url+"?list=true"
	}
	req, err := http.NewRequest(method, url, &payload)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", tokenOf(who))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var decoded struct {
		Data   map[string]interface{} `json:"data"`
		Errors []string               `json:"errors"`
	}
	decoder := json.NewDecoder(resp.Body)
	decoder.UseNumber()
	_ = decoder.Decode(&decoded) // a 204 has no body
	return response{status: resp.StatusCode, data: decoded.Data, errors: decoded.Errors}
}
