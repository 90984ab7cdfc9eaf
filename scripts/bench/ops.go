package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// Who sends a request. A token with an identity entity costs Vault itself
// about twice a token without one, so every comparison pairs operations
// sent with the same kind.
const (
	asVerifier = "service" // a service token without entity, as the PlanQK API holds
	asUser     = "user"    // the user's userpass login token, with an entity
	asRoot     = "root"
)

// operation is one kind of request under load.
type operation struct {
	name      string
	caller    string // asVerifier, asUser or asRoot
	request   string // method and path, for the table and for "n/a"
	reference bool   // not served by the engine
	// probe, for what the engine may not serve yet, is asked once before
	// measuring; a reason it gives makes the operation unavailable.
	probe func(ctx context.Context, op *operation) (reason string, err error)

	status   int                    // the HTTP status of a right answer
	targeter func() vegeta.Targeter // a fresh one for each attack
	// check says why a response with the right status is still the wrong
	// answer; "" when it is right. It never quotes the body (secrets).
	check func(body []byte) string
	// config holds engine configuration fields that differ from the
	// defaults while this operation runs.
	config map[string]interface{}
	// cleanup runs after each attack, outside the measured time, so that
	// state does not grow from one attack to the next.
	cleanup func(ctx context.Context, results []*vegeta.Result) error

	unavailable string // why it is not measured ("" when it is)

	// pair makes this operation a schedule entry that measures two
	// operations at the same time, the clients shared out between them.
	// A pause of the whole server then falls on both alike, so the ratio
	// of their figures, round by round, leaves it out. Each member keeps
	// its figures under its own name.
	pair []*operation
	// paired marks a member of a pair: measured only inside it.
	paired bool
}

// comparison is an engine operation's throughput relative to a reference,
// computed round by round.
type comparison struct {
	operation, reference string
	target               float64 // the median ratio it must reach; 0: none
	source               string  // where the target comes from
}

// Operation names.
const (
	refNoopWrite       = "no-op plugin write (JSON body)"
	refNoopWriteAnswer = "no-op plugin write (verify-sized answer)"
	refNoopWriteForm   = "no-op plugin write (form body, Bearer)"
	refNoopRead        = "no-op plugin read"
	refNoopReadHeader  = "no-op plugin read (X-Auth-Token header)"
	refNoopWriteUser   = "no-op plugin write (user)"
	refNoopReadUser    = "no-op plugin read (user)"
	refTokenLookup     = "auth/token/lookup"
	refTokenCreate     = "auth/token/create (role planqk-pat)"
	refKVRead          = "KV v2 read (user)"
	refKVWrite         = "KV v2 write (user)"
	refKVReadService   = "KV v2 read (service token)"
	opVerify           = "verify (POST)"
	opVerifyCold       = "verify (POST, cold identity cache)"
	opVerifyLongCache  = "verify (POST, identity_cache_ttl=5m)"
	opVerifyGarbled    = "verify (POST, garbled checksum)"
	opVerifyHeader     = "verify (GET, X-Auth-Token header)"
	opIntrospect       = "introspect (POST form, Bearer)"
	opIntrospectGarble = "introspect (garbled checksum)"
	opResolve          = "resolve (org token)"
	opResolveOwn       = "resolve (own token)"
	opExchange         = "exchange (GET, X-Auth-Token, X-OrganizationId)"
	opExchangeDerived  = "exchange (derived AWS credentials, STS at moto)"
	refMotoAssumeRole  = "STS AssumeRole at moto (direct)"
	opCreate           = "PAT create (named)"
	opLease            = "PAT lease (creds)"
	opProviderWrite    = "provider-token write"
	opList             = "PAT list (1,000 tokens)"
)

// comparisons lists the targets first (issue 13, issue 10's introspect),
// then the ratios shown for information. Last-use recording is not here:
// verify picks among a few hundred PATs, each noted once an hour, so the
// recording's cost cannot show over HTTP; BenchmarkVerifyLastUse (backend)
// measures it where every use is recorded.
func comparisons() []comparison {
	return []comparison{
		{opVerify, refNoopWrite, 0.95, "issue 13"},
		{opVerifyGarbled, refNoopWrite, 1.0, "issue 13"},
		{opIntrospect, refNoopWriteForm, 0.95, "issue 13"},
		{opIntrospectGarble, refNoopWriteForm, 1.0, "issue 10"},
		{opVerifyHeader, refNoopReadHeader, 0.9, "issue 13"},
		{opVerifyHeader, refTokenLookup, 0.8, "issue 13"},
		{opResolve, refKVRead, 0.9, "issue 13"},
		{opExchange, refKVReadService, 0.9, "issue 16"},
		{opResolveOwn, refKVRead, 0.9, "issue 16"},
		{opCreate, refKVWrite, 0.8, "issue 13"},
		{opLease, refKVWrite, 0.9, "issue 13"},

		{opVerify, refTokenLookup, 0, ""},
		{opVerifyCold, refNoopWrite, 0, ""},
		{opVerifyCold, refTokenLookup, 0, ""},
		{opVerifyLongCache, refNoopWriteAnswer, 0, ""},
		{opVerify, opVerifyLongCache, 0, ""},
		{opIntrospect, refTokenLookup, 0, ""},
		{opVerifyHeader, opVerify, 0, ""},
		{opResolve, refNoopReadUser, 0, ""},
		{opResolveOwn, opResolve, 0, ""},
		{opExchange, refNoopReadHeader, 0, ""},
		{opExchange, opVerifyHeader, 0, ""},
		// What a derived answer costs (issue 22): the static exchange, and
		// the STS round trip alone, against the same moto.
		{opExchangeDerived, opExchange, 0, ""},
		{opExchangeDerived, refMotoAssumeRole, 0, ""},
		{opResolveOwn, refNoopReadUser, 0, ""},
		{opCreate, refTokenCreate, 0, ""},
		{opCreate, refNoopWriteUser, 0, ""},
		{opLease, refTokenCreate, 0, ""},
		{opLease, refNoopReadUser, 0, ""},
		{opProviderWrite, refKVWrite, 0, ""},
		{opList, refKVRead, 0, ""},
		// What the references themselves cost: Vault's in-process token
		// lookup against a plugin's gRPC hop, a plugin write's existence
		// check, a passed-through header.
		{opVerify, refNoopWriteAnswer, 0, ""},
		{refTokenLookup, refNoopWrite, 0, ""},
		{refNoopWriteAnswer, refNoopWrite, 0, ""},
		{refNoopWrite, refNoopRead, 0, ""},
		{refNoopReadHeader, refNoopRead, 0, ""},
	}
}

// operations builds every operation of the main table.
func operations(f *fixtures) []*operation {
	base := f.server.Addr + "/v1/"
	var serial atomic.Uint64 // makes created names unique across attacks

	vaultToken := func(token string) http.Header { return http.Header{"X-Vault-Token": {token}} }
	verifierHeader := vaultToken(f.verifier)
	bearerForm := http.Header{"Authorization": {"Bearer " + f.verifier}, "Content-Type": {"application/x-www-form-urlencoded"}}
	jsonBody := func(token string) []byte {
		body, _ := json.Marshal(map[string]string{"token": token})
		return body
	}
	formBody := func(token string) []byte { return []byte(url.Values{"token": {token}}.Encode()) }

	// Request bodies and headers built once, picked at random per request:
	// verify meets many PATs of many owners, never one hot token.
	verifyBodies := mapStrings(f.pats, jsonBody)
	garbledBodies := mapStrings(f.garbled, jsonBody)
	introspectForms := mapStrings(f.pats, formBody)
	garbledForms := mapStrings(f.garbled, formBody)
	lookupBodies := mapStrings(f.vaultTokens, jsonBody)
	patHeaders := make([]http.Header, len(f.pats))
	for i, pat := range f.pats {
		patHeaders[i] = http.Header{"X-Vault-Token": {f.verifier}, "X-Auth-Token": {pat}}
	}
	// The platform's job service: a service token, the user's PAT and the
	// organization in the headers the PlanQK SDK sends.
	exchangeHeaders := make([]http.Header, len(f.pats))
	for i, pat := range f.pats {
		exchangeHeaders[i] = http.Header{"X-Vault-Token": {f.verifier}, "X-Auth-Token": {pat}, "X-Organizationid": {org}}
	}
	userHeaders := make([]http.Header, len(f.users))
	for i, u := range f.users {
		userHeaders[i] = vaultToken(u.token)
	}

	// fixed sends the same method and URL with one of the bodies or headers.
	fixed := func(method, url string, header http.Header, bodies [][]byte, headers []http.Header) func() vegeta.Targeter {
		return func() vegeta.Targeter {
			return func(t *vegeta.Target) error {
				t.Method, t.URL, t.Header, t.Body = method, url, header, nil
				if len(bodies) > 0 {
					t.Body = bodies[rand.IntN(len(bodies))]
				}
				if len(headers) > 0 {
					t.Header = headers[rand.IntN(len(headers))]
				}
				return nil
			}
		}
	}
	// perUser sends a request built for a random user, with their token.
	perUser := func(method string, path func(u *benchUser) string, body []byte) func() vegeta.Targeter {
		return func() vegeta.Targeter {
			return func(t *vegeta.Target) error {
				i := rand.IntN(len(f.users))
				t.Method, t.URL, t.Header, t.Body = method, base+path(f.users[i]), userHeaders[i], body
				return nil
			}
		}
	}
	ok := func(path ...string) func([]byte) string {
		return func(body []byte) string { return expectTrue(body, path...) }
	}

	return []*operation{
		// The cheapest external-plugin operations, read and write, with the
		// verifier's token and with a user's.
		{name: refNoopWrite, caller: asVerifier, request: "POST noop/noop {token}", reference: true, status: 200,
			targeter: fixed("POST", base+"noop/noop", verifierHeader, garbledBodies, nil), check: ok("data", "ok")},
		{name: refNoopWriteAnswer, caller: asVerifier, request: "POST noop/answer {token}", reference: true, status: 200,
			targeter: fixed("POST", base+"noop/answer", verifierHeader, garbledBodies, nil), check: ok("data", "active")},
		{name: refNoopWriteForm, caller: asVerifier, request: "POST noop/noop token=…", reference: true, status: 200,
			targeter: fixed("POST", base+"noop/noop", bearerForm, garbledForms, nil), check: ok("data", "ok")},
		{name: refNoopRead, caller: asVerifier, request: "GET noop/noop", reference: true, status: 200,
			targeter: fixed("GET", base+"noop/noop", verifierHeader, nil, nil), check: ok("data", "ok")},
		{name: refNoopReadHeader, caller: asVerifier, request: "GET noop/noop, X-Auth-Token", reference: true, status: 200,
			targeter: fixed("GET", base+"noop/noop", nil, nil, patHeaders), check: ok("data", "ok")},
		{name: refNoopWriteUser, caller: asUser, request: "POST noop/noop", reference: true, status: 200,
			targeter: perUser("POST", func(*benchUser) string { return "noop/noop" }, nil), check: ok("data", "ok")},
		{name: refNoopReadUser, caller: asUser, request: "GET noop/noop", reference: true, status: 200,
			targeter: perUser("GET", func(*benchUser) string { return "noop/noop" }, nil), check: ok("data", "ok")},

		// "Why not Vault tokens as PATs?": look one up, create one.
		{name: refTokenLookup, caller: asVerifier, request: "POST auth/token/lookup {token}", reference: true, status: 200,
			targeter: fixed("POST", base+"auth/token/lookup", verifierHeader, lookupBodies, nil), check: checkTokenLookup},
		{name: refTokenCreate, caller: asUser, request: "POST auth/token/create/" + tokenRole, reference: true, status: 200,
			targeter: perUser("POST", func(*benchUser) string { return "auth/token/create/" + tokenRole }, nil),
			check:    checkTokenCreate, cleanup: f.revokeCreatedTokens},

		// "Why not keep tokens in KV?": the user reads and writes their own secret.
		{name: refKVRead, caller: asUser, request: "GET kv/data/pats/<user>", reference: true, status: 200,
			targeter: perUser("GET", func(u *benchUser) string { return kvPath(u.name) }, nil),
			check:    func(body []byte) string { return expectString(body, kvValue, "data", "data", "value") }},
		{name: refKVReadService, caller: asVerifier, request: "GET kv/data/pats/<user>", reference: true, status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					t.Method, t.URL, t.Header, t.Body = "GET", base+kvPath(f.users[rand.IntN(len(f.users))].name), verifierHeader, nil
					return nil
				}
			},
			check: func(body []byte) string { return expectString(body, kvValue, "data", "data", "value") }},
		{name: refKVWrite, caller: asUser, request: "POST kv/data/pats/<user>", reference: true, status: 200,
			targeter: perUser("POST", func(u *benchUser) string { return kvPath(u.name) }, []byte(`{"data":{"value":"`+kvValue+`"}}`)),
			check:    func(body []byte) string { return expectPositive(body, "data", "version") }},

		// The engine.
		{name: opVerify, caller: asVerifier, request: "POST planqk/verify {token}", status: 200,
			targeter: fixed("POST", base+mount+"/verify", verifierHeader, verifyBodies, nil), check: checkActive(true, "data")},
		{name: opVerifyCold, caller: asVerifier, request: "POST planqk/verify {token}, identity_cache_ttl=0", status: 200,
			config:   map[string]interface{}{"identity_cache_ttl": 0},
			targeter: fixed("POST", base+mount+"/verify", verifierHeader, verifyBodies, nil), check: checkActive(true, "data")},
		{name: opVerifyLongCache, caller: asVerifier, request: "POST planqk/verify {token}, identity_cache_ttl=5m", status: 200,
			config:   map[string]interface{}{"identity_cache_ttl": 300},
			targeter: fixed("POST", base+mount+"/verify", verifierHeader, verifyBodies, nil), check: checkActive(true, "data")},
		{name: opVerifyGarbled, caller: asVerifier, request: "POST planqk/verify {token}", status: 200,
			targeter: fixed("POST", base+mount+"/verify", verifierHeader, garbledBodies, nil), check: checkActive(false, "data")},
		{name: opVerifyHeader, caller: asVerifier, request: "GET planqk/verify, X-Auth-Token", status: 200, probe: probeServed,
			targeter: fixed("GET", base+mount+"/verify", nil, nil, patHeaders), check: checkActive(true, "data")},
		{name: opIntrospect, caller: asVerifier, request: "POST planqk/introspect token=…", status: 200, probe: probeServed,
			targeter: fixed("POST", base+mount+"/introspect", bearerForm, introspectForms, nil), check: checkActive(true)},
		{name: opIntrospectGarble, caller: asVerifier, request: "POST planqk/introspect token=…", status: 200, probe: probeServed,
			targeter: fixed("POST", base+mount+"/introspect", bearerForm, garbledForms, nil), check: checkActive(false)},
		{name: opResolve, caller: asUser, request: "GET planqk/resolve/ionq?org=" + org, status: 200,
			targeter: perUser("GET", func(*benchUser) string { return mount + "/resolve/ionq?org=" + org }, nil),
			check:    checkResolvedOrgToken},
		{name: opResolveOwn, caller: asUser, request: "GET planqk/resolve/ionq", status: 200,
			targeter: perUser("GET", func(*benchUser) string { return mount + "/resolve/ionq" }, nil),
			check:    checkResolvedOwnToken},
		{name: opExchange, caller: asVerifier, request: "GET planqk/exchange/ionq, X-Auth-Token, X-OrganizationId", status: 200, probe: probeServed,
			targeter: fixed("GET", base+mount+"/exchange/ionq", nil, nil, exchangeHeaders), check: checkResolvedOrgToken},
		{name: opExchangeDerived, caller: asVerifier, request: "GET planqk/exchange/aws-braket, X-Auth-Token, X-OrganizationId", status: 200, probe: f.probeMoto,
			targeter: fixed("GET", base+mount+"/exchange/aws-braket", nil, nil, exchangeHeaders), check: checkDerivedAWS, cleanup: f.revokeDerived},
		{name: refMotoAssumeRole, caller: asVerifier, request: "POST <moto>/ Action=AssumeRole", reference: true, status: 200, probe: f.probeMoto,
			targeter: f.motoAssumeRole(), check: checkMotoAssumeRole},
		{name: opCreate, caller: asUser, request: "POST planqk/users/<user>/tokens/<name>", status: 200,
			targeter: func() vegeta.Targeter {
				return func(t *vegeta.Target) error {
					i := rand.IntN(len(f.users))
					t.Method, t.Header, t.Body = "POST", userHeaders[i], nil
					t.URL = fmt.Sprintf("%s%s/users/%s/tokens/b%d", base, mount, f.users[i].name, serial.Add(1))
					return nil
				}
			},
			check: checkIssuedPAT(false), cleanup: f.deleteCreatedPATsOn(mount, len(f.users[0].pats))},
		{name: opLease, caller: asUser, request: "GET planqk/users/<user>/creds/" + leaseRole, status: 200,
			targeter: perUser("GET", func(u *benchUser) string { return mount + "/users/" + u.name + "/creds/" + leaseRole }, nil),
			check:    checkIssuedPAT(true), cleanup: f.revokeLeasesOn(mount)},
		{name: opProviderWrite, caller: asUser, request: "POST planqk/users/<user>/provider-tokens/ionq", status: 200,
			targeter: perUser("POST", func(u *benchUser) string { return mount + "/users/" + u.name + "/provider-tokens/ionq" }, []byte(`{"api_key":"ionq-bench-user-key-0000"}`)),
			check:    func(body []byte) string { return expectPositive(body, "data", "version") }},
		{name: opList, caller: asUser, request: "LIST planqk/users/lister/tokens", status: 200,
			targeter: fixed("LIST", base+mount+"/users/lister/tokens", vaultToken(f.lister.token), nil, nil),
			check:    checkListed(listedPATs)},
	}
}

// probeMoto makes the derived-credentials rows n/a without moto_server.
func (f *fixtures) probeMoto(ctx context.Context, op *operation) (string, error) {
	if f.moto == nil {
		return "n/a: no moto_server (MOTO_SERVER_BIN)", nil
	}
	return probeServed(ctx, op)
}

// motoAssumeRole asks moto's STS what the engine asks it for a job, with
// a signature header of the shape AWS's SDKs send (moto checks none).
func (f *fixtures) motoAssumeRole() func() vegeta.Targeter {
	header := http.Header{
		"Content-Type":  {"application/x-www-form-urlencoded"},
		"Authorization": {"AWS4-HMAC-SHA256 Credential=" + benchBaseKeyID + "/20261204/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=0"},
	}
	body := []byte(url.Values{
		"Action": {"AssumeRole"}, "Version": {"2011-06-15"}, "RoleArn": {benchRoleARN},
		"RoleSessionName": {"planqk-bench"}, "DurationSeconds": {"3600"},
	}.Encode())
	return func() vegeta.Targeter {
		return func(t *vegeta.Target) error {
			if f.moto == nil {
				return fmt.Errorf("no moto_server")
			}
			t.Method, t.URL, t.Header, t.Body = "POST", f.moto.URL+"/", header, body
			return nil
		}
	}
}

func checkMotoAssumeRole(body []byte) string {
	if !bytes.Contains(body, []byte("<AccessKeyId>ASIA")) {
		return "no temporary access key in the answer"
	}
	return ""
}

// checkDerivedAWS wants the organization's token answered with STS
// credentials made for the job, never the base key.
func checkDerivedAWS(body []byte) string {
	if v, _ := lookup(body, "data", "credentials"); v != "derived" {
		return "data.credentials is not derived"
	}
	if v, _ := lookup(body, "data", "access_key_id"); func() bool { s, ok := v.(string); return !ok || !strings.HasPrefix(s, "ASIA") }() {
		return "data.access_key_id is not a temporary key"
	}
	if bytes.Contains(body, []byte(benchBaseKeyID)) {
		return "the answer holds the base key"
	}
	return ""
}

// revokeDerived revokes the derived credentials' leases (a no-op for STS
// credentials, which expire), so that leases do not pile up across attacks.
func (f *fixtures) revokeDerived(ctx context.Context, _ []*vegeta.Result) error {
	_, err := f.root.Logical().WriteWithContext(ctx, "sys/leases/revoke-prefix/"+mount+"/exchange/", map[string]interface{}{"sync": true})
	return err
}

// probeServed sends one request: a 404 or 405 means the engine does not
// serve the operation (yet).
func probeServed(ctx context.Context, op *operation) (string, error) {
	status, err := sendOnce(ctx, op)
	if err != nil || (status != http.StatusNotFound && status != http.StatusMethodNotAllowed) {
		return "", err
	}
	return fmt.Sprintf("n/a: the engine does not serve %s (%d)", op.request, status), nil
}

func mapStrings(values []string, build func(string) []byte) [][]byte {
	out := make([][]byte, len(values))
	for i, v := range values {
		out[i] = build(v)
	}
	return out
}

// lookup walks a decoded JSON document along path.
func lookup(body []byte, path ...string) (interface{}, bool) {
	var doc interface{}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, false
	}
	for _, key := range path {
		object, ok := doc.(map[string]interface{})
		if !ok {
			return nil, false
		}
		if doc, ok = object[key]; !ok {
			return nil, false
		}
	}
	return doc, true
}

func where(path []string) string {
	if len(path) == 0 {
		return "body"
	}
	return strings.Join(path, ".")
}

func expectTrue(body []byte, path ...string) string {
	if v, _ := lookup(body, path...); v != true {
		return where(path) + " is not true"
	}
	return ""
}

func expectString(body []byte, want string, path ...string) string {
	if v, _ := lookup(body, path...); v != want {
		return where(path) + " is not the stored value"
	}
	return ""
}

func expectPositive(body []byte, path ...string) string {
	if v, _ := lookup(body, path...); func() bool { n, ok := v.(float64); return !ok || n <= 0 }() {
		return where(path) + " is missing"
	}
	return ""
}

// checkActive wants verify's (under "data") or introspect's (top level)
// "active" to be want.
func checkActive(want bool, path ...string) func([]byte) string {
	path = append(path, "active")
	return func(body []byte) string {
		v, found := lookup(body, path...)
		if !found || v != want {
			return fmt.Sprintf("%s is not %v", where(path), want)
		}
		return ""
	}
}

func checkTokenLookup(body []byte) string {
	if v, _ := lookup(body, "data", "accessor"); v == nil || v == "" {
		return "data.accessor is missing"
	}
	return ""
}

func checkTokenCreate(body []byte) string {
	if v, _ := lookup(body, "auth", "client_token"); v == nil || v == "" {
		return "auth.client_token is missing"
	}
	return ""
}

func checkResolvedOrgToken(body []byte) string {
	if v, _ := lookup(body, "data", "source"); v != "organization" {
		return "data.source is not organization"
	}
	return expectString(body, orgProviderKey, "data", "api_key")
}

func checkResolvedOwnToken(body []byte) string {
	if v, _ := lookup(body, "data", "source"); v != "user" {
		return "data.source is not user"
	}
	return expectString(body, userProviderKey, "data", "api_key")
}

func checkIssuedPAT(leased bool) func([]byte) string {
	return func(body []byte) string {
		token, _ := lookup(body, "data", "token")
		if s, ok := token.(string); !ok || !strings.HasPrefix(s, "plqk_") {
			return "no plqk_ token in data.token"
		}
		if leased {
			if id, _ := lookup(body, "lease_id"); id == nil || id == "" {
				return "no lease_id"
			}
		}
		return ""
	}
}

func checkListed(n int) func([]byte) string {
	return func(body []byte) string {
		keys, _ := lookup(body, "data", "keys")
		if list, ok := keys.([]interface{}); !ok || len(list) != n {
			return fmt.Sprintf("data.keys does not hold %d names", n)
		}
		return ""
	}
}

// deleteCreatedPATsOn revokes the named PATs an attack created on the
// mount at path (every name it tried: a failed create leaves nothing to
// delete, which is a 204 too), then checks that one of those users is back
// to the kept PATs they had before.
func (f *fixtures) deleteCreatedPATsOn(path string, kept int) func(context.Context, []*vegeta.Result) error {
	return func(ctx context.Context, results []*vegeta.Result) error {
		prefix := f.server.Addr + "/v1/"
		err := parallel(8, len(results), func(i int) error {
			created := strings.TrimPrefix(results[i].URL, prefix)
			if created == "" || created == results[i].URL {
				return nil // the request was never built
			}
			_, err := f.root.Logical().DeleteWithContext(ctx, created)
			return err
		})
		if err != nil || len(results) == 0 {
			return err
		}
		user := strings.Split(strings.TrimPrefix(results[len(results)-1].URL, prefix+path+"/"), "/")[1]
		list, err := f.root.Logical().ListWithContext(ctx, path+"/users/"+user+"/tokens")
		if err != nil {
			return err
		}
		var keys []interface{}
		if list != nil { // nil: none left
			keys, _ = list.Data["keys"].([]interface{})
		}
		if len(keys) != kept {
			return fmt.Errorf("user %s holds %d PATs on %s after the cleanup, not %d", user, len(keys), path, kept)
		}
		return nil
	}
}

// revokeLeasesOn revokes every leased PAT of the mount at path, as Vault
// would when they expire, and checks that none is left.
func (f *fixtures) revokeLeasesOn(path string) func(context.Context, []*vegeta.Result) error {
	return func(ctx context.Context, _ []*vegeta.Result) error {
		prefix := path + "/users/"
		if _, err := f.root.Logical().WriteWithContext(ctx, "sys/leases/revoke-prefix/"+prefix, map[string]interface{}{"sync": true}); err != nil {
			return err
		}
		left, err := f.root.Logical().ListWithContext(ctx, "sys/leases/lookup/"+prefix)
		if err != nil {
			return err
		}
		if left == nil {
			return nil
		}
		if keys, _ := left.Data["keys"].([]interface{}); len(keys) > 0 {
			return fmt.Errorf("leases under %s remain after revoke-prefix", prefix)
		}
		return nil
	}
}

// withCleanup is op with another cleanup.
func withCleanup(op *operation, cleanup func(context.Context, []*vegeta.Result) error) *operation {
	changed := *op
	changed.cleanup = cleanup
	return &changed
}

// revokeCreatedTokens revokes the Vault tokens an attack created, by the
// accessors in the responses (the tokens verify's reference looks up
// stay), and checks that the last one is gone.
func (f *fixtures) revokeCreatedTokens(ctx context.Context, results []*vegeta.Result) error {
	var accessors []string
	for _, res := range results {
		if accessor, _ := lookup(res.Body, "auth", "accessor"); accessor != nil && accessor != "" {
			accessors = append(accessors, accessor.(string))
		}
	}
	err := parallel(8, len(accessors), func(i int) error {
		_, err := f.root.Logical().WriteWithContext(ctx, "auth/token/revoke-accessor", map[string]interface{}{"accessor": accessors[i]})
		return err
	})
	if err != nil || len(accessors) == 0 {
		return err
	}
	_, err = f.root.Logical().WriteWithContext(ctx, "auth/token/lookup-accessor", map[string]interface{}{"accessor": accessors[len(accessors)-1]})
	switch vaultharness.StatusOf(err) {
	case http.StatusOK:
		return fmt.Errorf("a created Vault token is still there after its revocation")
	case http.StatusBadRequest: // invalid accessor: revoked
		return nil
	}
	return err
}
