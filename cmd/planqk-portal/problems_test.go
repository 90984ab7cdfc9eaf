package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

func TestExplainPutsVaultErrorsInWords(t *testing.T) {
	act := action{failed: "Vault did not save the ionq token", refusal: "You need to be owner or maintainer of acme to change its provider access tokens."}
	cases := []struct {
		err             error
		status          int
		message, detail string
	}{
		{&api.ResponseError{StatusCode: 400, Errors: []string{`missing required field "api_key" for provider "ionq"`}},
			400, `Vault did not save the ionq token: missing required field "api_key" for provider "ionq".`, ""},
		{&api.ResponseError{StatusCode: 400}, 400, "Vault did not save the ionq token.", ""},
		// Vault's ACL refusal says nothing the refusal sentence does not.
		{&api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}},
			403, act.refusal, ""},
		// The engine's own refusal is kept as detail.
		{&api.ResponseError{StatusCode: 403, Errors: []string{`entity "mia" needs the role maintainer or stronger in organization "acme"`}},
			403, act.refusal, `Vault says: entity "mia" needs the role maintainer or stronger in organization "acme".`},
		{&api.ResponseError{StatusCode: 404}, 404, "Vault did not save the ionq token: it was not found, and may have been deleted in the meantime.", ""},
		{&api.ResponseError{StatusCode: 429}, 503, "Vault is limiting requests right now. Try again in a moment.", ""},
		{&api.ResponseError{StatusCode: 500, Errors: []string{"internal error"}}, 502,
			"Vault did not save the ionq token: Vault could not complete the request (it answered 500). Try again later; if it keeps happening, tell your operator.", ""},
		{errors.New("dial tcp 127.0.0.1:8200: connect: connection refused"), 502,
			"Vault could not be reached. Try again in a moment; if it keeps happening, tell your operator.", ""},
	}
	for _, c := range cases {
		got := explain(c.err, act)
		if got.Status != c.status || got.Message != c.message || got.Detail != c.detail {
			t.Errorf("%v:\n got %d %q %q\nwant %d %q %q", c.err, got.Status, got.Message, got.Detail, c.status, c.message, c.detail)
		}
	}
}

func TestVaultMessagesUnwrapsMultiErrors(t *testing.T) {
	err := &api.ResponseError{StatusCode: http.StatusBadRequest, Errors: []string{"2 errors occurred:\n\t* first\n\t* second\n\n", "third"}}
	got := vaultMessages(err)
	if len(got) != 3 || got[0] != "first" || got[1] != "second" || got[2] != "third" {
		t.Fatalf("%q", got)
	}
	if vaultErrorForLog(err) != "status 400: first; second; third" {
		t.Errorf("log form: %q", vaultErrorForLog(err))
	}
}

// When Vault cannot be reached, the client's error quotes the request URL;
// the OIDC callback's query holds the authorization code, state and nonce.
func TestVaultErrorForLog_leavesOutTheURLOfATransportFailure(t *testing.T) {
	err := fmt.Errorf("reading: %w", &url.Error{
		Op:  "Get",
		URL: "http://127.0.0.1:8200/v1/auth/oidc/oidc/callback?client_nonce=n0nce&code=the-code&state=st4te",
		Err: errors.New("dial tcp 127.0.0.1:8200: connect: connection refused"),
	})
	got := vaultErrorForLog(err)
	for _, secret := range []string{"the-code", "st4te", "n0nce", "callback"} {
		if strings.Contains(got, secret) {
			t.Errorf("log form %q holds %q", got, secret)
		}
	}
	if !strings.Contains(got, "connection refused") {
		t.Errorf("log form %q lost the cause", got)
	}
}
