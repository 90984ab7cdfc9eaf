package main

import (
	"testing"

	"github.com/stretchr/testify/require"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// Each check accepts the answer the operation should give and names what
// is wrong with anything else, without quoting the body.
func TestChecks_acceptRightAnswersOnly(t *testing.T) {
	cases := []struct {
		name  string
		check func([]byte) string
		right string
		wrong map[string]string // body -> reason
	}{
		{"verify, valid", checkActive(true, "data"), `{"data":{"active":true,"user":"alice"}}`, map[string]string{
			`{"data":{"active":false}}`:  "data.active is not true",
			`{"data":{"active":"true"}}`: "data.active is not true",
			`{"data":{}}`:                "data.active is not true",
			`{"active":true}`:            "data.active is not true",
			`<html>`:                     "data.active is not true",
		}},
		{"verify, garbled", checkActive(false, "data"), `{"data":{"active":false}}`, map[string]string{
			`{"data":{"active":true}}`: "data.active is not false",
			`{"data":null}`:            "data.active is not false",
		}},
		{"introspect, raw RFC 7662", checkActive(true), `{"active":true,"scope":"api quantum_tokens","username":"alice"}`, map[string]string{
			`{"data":{"active":true}}`: "active is not true",
			`{"active":false}`:         "active is not true",
		}},
		{"introspect, garbled", checkActive(false), `{"active":false}`, map[string]string{
			`{}`: "active is not false",
		}},
		{"resolve", checkResolvedOrgToken, `{"data":{"api_key":"` + orgProviderKey + `","source":"organization","org":"acme"}}`, map[string]string{
			`{"data":{"api_key":"` + orgProviderKey + `","source":"user"}}`: "data.source is not organization",
			`{"data":{"api_key":"other","source":"organization"}}`:          "data.api_key is not the stored value",
			`{"data":{"source":"organization"}}`:                            "data.api_key is not the stored value",
		}},
		{"named create", checkIssuedPAT(false), `{"data":{"token":"plqk_abc","name":"b1"}}`, map[string]string{
			`{"data":{"token":"hvs.abc"}}`: "no plqk_ token in data.token",
			`{"data":{"name":"b1"}}`:       "no plqk_ token in data.token",
		}},
		{"leased PAT", checkIssuedPAT(true), `{"lease_id":"planqk/users/a/creds/runtime/x","data":{"token":"plqk_abc"}}`, map[string]string{
			`{"lease_id":"","data":{"token":"plqk_abc"}}`: "no lease_id",
			`{"data":{"token":"plqk_abc"}}`:               "no lease_id",
		}},
		{"token lookup", checkTokenLookup, `{"data":{"accessor":"acc","entity_id":"e"}}`, map[string]string{
			`{"data":null,"errors":["bad token"]}`: "data.accessor is missing",
			`{"data":{"accessor":""}}`:             "data.accessor is missing",
		}},
		{"token create", checkTokenCreate, `{"auth":{"client_token":"hvs.x","accessor":"a"}}`, map[string]string{
			`{"auth":null}`: "auth.client_token is missing",
		}},
		{"KV read", func(b []byte) string { return expectString(b, kvValue, "data", "data", "value") }, `{"data":{"data":{"value":"` + kvValue + `"}}}`, map[string]string{
			`{"data":{"data":null}}`:            "data.data.value is not the stored value",
			`{"data":{"data":{"value":"old"}}}`: "data.data.value is not the stored value",
		}},
		{"KV write", func(b []byte) string { return expectPositive(b, "data", "version") }, `{"data":{"version":12}}`, map[string]string{
			`{"data":{"version":0}}`: "data.version is missing",
			`{"data":{}}`:            "data.version is missing",
		}},
		{"no-op", func(b []byte) string { return expectTrue(b, "data", "ok") }, `{"data":{"ok":true}}`, map[string]string{
			`{"data":{"ok":false}}`: "data.ok is not true",
		}},
		{"list", checkListed(2), `{"data":{"keys":["a","b"]}}`, map[string]string{
			`{"data":{"keys":["a"]}}`: "data.keys does not hold 2 names",
			`{"data":{}}`:             "data.keys does not hold 2 names",
		}},
	}
	for _, c := range cases {
		require.Empty(t, c.check([]byte(c.right)), c.name)
		for body, reason := range c.wrong {
			require.Equal(t, reason, c.check([]byte(body)), "%s: %s", c.name, body)
		}
	}
}

func TestGarble_changesTheChecksumCharacter(t *testing.T) {
	require.Equal(t, "plqk_abcA", garble("plqk_abcZ"))
	require.Equal(t, "plqk_abcB", garble("plqk_abcA"))
}

func TestVaultErrors_joinsAndBoundsMessages(t *testing.T) {
	require.Equal(t, "permission denied; second", vaultErrors([]byte(`{"errors":["permission denied","second"]}`)))
	require.Equal(t, "", vaultErrors([]byte(`{"data":{}}`)))
	require.Equal(t, "", vaultErrors([]byte(`garbage`)))
	long := vaultErrors([]byte(`{"errors":["` + string(make([]byte, 300)) + `"]}`))
	require.LessOrEqual(t, len(long), 164)
}

func TestComparisons_pairOperationsSentWithTheSameTokenKind(t *testing.T) {
	f := &fixtures{
		server:   &vaultharness.Server{Addr: "http://127.0.0.1:1"},
		verifier: "verifier-token",
		users:    []*benchUser{{name: "u", token: "user-token", pats: []string{"plqk_a"}, vaultTokens: []string{"hvs.a"}}},
		lister:   &benchUser{name: "lister", token: "lister-token"},
		pats:     []string{"plqk_a"}, garbled: []string{"plqk_b"}, vaultTokens: []string{"hvs.a"},
	}
	byName := map[string]*operation{}
	for _, op := range operations(f) {
		require.NotContains(t, byName, op.name, "names are unique")
		byName[op.name] = op
	}
	targets := map[[2]string]float64{}
	for _, c := range comparisons() {
		op, ref := byName[c.operation], byName[c.reference]
		require.NotNil(t, op, c.operation)
		require.NotNil(t, ref, c.reference)
		require.Equal(t, op.caller, ref.caller, "%s against %s: a token with an entity costs Vault about twice one without", c.operation, c.reference)
		if c.target > 0 {
			targets[[2]string{c.operation, c.reference}] = c.target
		}
	}
	require.Equal(t, map[[2]string]float64{
		{opVerify, refNoopWrite}:               0.95,
		{opExchange, refKVReadService}:         0.9,
		{opResolveOwn, refKVRead}:              0.9,
		{opVerifyGarbled, refNoopWrite}:        1.0,
		{opIntrospect, refNoopWriteForm}:       0.95,
		{opIntrospectGarble, refNoopWriteForm}: 1.0,
		{opVerifyHeader, refNoopReadHeader}:    0.9,
		{opVerifyHeader, refTokenLookup}:       0.8,
		{opResolve, refKVRead}:                 0.9,
		{opCreate, refKVWrite}:                 0.8,
		{opLease, refKVWrite}:                  0.9,
	}, targets, "the targets of issues 10 and 13")
}

func TestOperations_sendThePATWhereTheContractSays(t *testing.T) {
	f := &fixtures{
		server:   &vaultharness.Server{Addr: "http://vault"},
		verifier: "verifier-token",
		users:    []*benchUser{{name: "u", token: "user-token"}},
		lister:   &benchUser{name: "lister", token: "lister-token"},
		pats:     []string{"plqk_valid"}, garbled: []string{"plqk_garbled"}, vaultTokens: []string{"hvs.a"},
		moto: &vaultharness.Moto{URL: "http://moto"},
	}
	requests := map[string]vegeta.Target{}
	for _, op := range operations(f) {
		var target vegeta.Target
		require.NoError(t, op.targeter()(&target))
		requests[op.name] = target
	}

	introspect := requests[opIntrospect]
	require.Equal(t, "POST", introspect.Method)
	require.Equal(t, "http://vault/v1/planqk/introspect", introspect.URL)
	require.Equal(t, "token=plqk_valid", string(introspect.Body))
	require.Equal(t, "Bearer verifier-token", introspect.Header.Get("Authorization"))
	require.Equal(t, "application/x-www-form-urlencoded", introspect.Header.Get("Content-Type"))
	require.Equal(t, introspect.Header, requests[refNoopWriteForm].Header, "the no-op form write is sent like introspect")
	require.Equal(t, "token=plqk_garbled", string(requests[opIntrospectGarble].Body))

	header := requests[opVerifyHeader]
	require.Equal(t, "GET", header.Method)
	require.Equal(t, "http://vault/v1/planqk/verify", header.URL)
	require.Empty(t, header.Body)
	require.Equal(t, "plqk_valid", header.Header.Get("X-Auth-Token"))
	require.Equal(t, "verifier-token", header.Header.Get("X-Vault-Token"))
	require.Equal(t, header.Header, requests[refNoopReadHeader].Header, "the no-op header read is sent like verify")

	verify := requests[opVerify]
	require.Equal(t, "POST", verify.Method)
	require.JSONEq(t, `{"token":"plqk_valid"}`, string(verify.Body))
	require.JSONEq(t, `{"token":"plqk_garbled"}`, string(requests[opVerifyGarbled].Body))
	require.JSONEq(t, `{"token":"plqk_garbled"}`, string(requests[refNoopWrite].Body), "the no-op write gets a body of the same size")
	require.JSONEq(t, `{"token":"hvs.a"}`, string(requests[refTokenLookup].Body))
	require.Equal(t, "verifier-token", requests[refTokenLookup].Header.Get("X-Vault-Token"))

	derived := requests[opExchangeDerived]
	require.Equal(t, "http://vault/v1/planqk/exchange/aws-braket", derived.URL)
	require.Equal(t, requests[opExchange].Header, derived.Header, "the derived exchange is sent like the static one")
	assumeRole := requests[refMotoAssumeRole]
	require.Equal(t, "http://moto/", assumeRole.URL)
	require.Contains(t, string(assumeRole.Body), "Action=AssumeRole")
	require.Contains(t, string(assumeRole.Body), "DurationSeconds=3600", "the life the engine asks for by default")

	for name, target := range requests {
		require.NotContains(t, target.URL, "plqk_", "%s: a PAT never travels in a URL", name)
	}
}
