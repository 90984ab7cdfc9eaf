package backend

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// Every operation declares its responses: the OpenAPI document Vault
// publishes is otherwise a bare 200, and clients generated from it are
// untyped.
func TestResponses_everyOperationDeclaresItsResponses(t *testing.T) {
	env := newTestEnv(t)
	for _, p := range env.b.Paths {
		for op, handler := range p.Operations {
			declared := handler.Properties().Responses
			require.NotEmpty(t, declared, "%s %s declares no Responses", op, p.Pattern)
			var successes []int
			for status, list := range declared {
				require.Len(t, list, 1, "%s %s: one response per status", op, p.Pattern)
				response := list[0]
				require.NotEmpty(t, response.Description, "%s %s %d has no description", op, p.Pattern, status)
				if status >= 200 && status < 300 {
					successes = append(successes, status)
				} else {
					// The framework names every status's schema after the
					// operation alone: fields here would overwrite the
					// success's schema in the OpenAPI document.
					require.Empty(t, response.Fields, "%s %s %d: only the success status may declare fields", op, p.Pattern, status)
				}
				if status == http.StatusOK {
					require.NotEmpty(t, response.Fields, "%s %s: a 200 declares its fields; an operation without data answers 204", op, p.Pattern)
				} else {
					require.Empty(t, response.Fields, "%s %s %d: only a 200 has data", op, p.Pattern, status)
				}
				for name, field := range response.Fields {
					require.NotEmpty(t, field.Description, "%s %s: response field %q has no description", op, p.Pattern, name)
					_, known := jsonKindOf[field.Type]
					require.True(t, known, "%s %s: response field %q has type %s, which this test does not check", op, p.Pattern, name, field.Type)
				}
			}
			require.Len(t, successes, 1, "%s %s: exactly one success status", op, p.Pattern)
		}
	}
}

// Generated clients name their methods after operation ids: two
// operations with one id make two methods of one name.
func TestResponses_operationIDsAreUnique(t *testing.T) {
	env := newTestEnv(t)
	// The root help asks the system view for Vault's version.
	env.sys.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "v1.21.0"}
	resp := env.ok(logical.HelpOperation, "", "", nil)
	doc, ok := resp.Data["openapi"].(*framework.OASDocument)
	require.True(t, ok, "the root help holds the OpenAPI document")
	seen := make(map[string]string)
	for path, item := range doc.Paths {
		for method, op := range map[string]*framework.OASOperation{"get": item.Get, "post": item.Post, "delete": item.Delete, "patch": item.Patch} {
			if op == nil {
				continue
			}
			where := method + " " + path
			require.NotContains(t, seen, op.OperationID, "%s and %s share the operation id %q", seen[op.OperationID], where, op.OperationID)
			seen[op.OperationID] = where
		}
	}
	require.Greater(t, len(seen), 30)
}

// responseCase is one request whose answer is checked against the
// operation's declared response.
type responseCase struct {
	op      logical.Operation
	path    string
	entity  string
	data    map[string]interface{}
	headers map[string][]string
	// status is the status the request must get; 0 means the declared
	// success status.
	status int
	// absent are declared fields this answer rightly leaves out; extra are
	// keys it holds that OpenAPI cannot declare.
	absent, extra []string
	// wholeBody says the declared fields describe a raw response's whole
	// body, not the data of Vault's envelope (introspect, RFC 7662).
	wholeBody bool
}

// Every operation is called in process, and the keys of its answer must be
// exactly the fields it declares, each value of the declared JSON type: a
// handler that adds, renames or retypes a field without updating its
// declaration fails here, and so does an operation this test forgets.
func TestResponses_handlersReturnExactlyTheDeclaredFields(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	bob := env.addUser("bob")

	covered := make(map[string]bool)
	check := func(c responseCase) map[string]interface{} {
		t.Helper()
		name := fmt.Sprintf("%s %s", c.op, c.path)
		p := env.b.Route(c.path)
		require.NotNil(t, p, name)
		handler := p.Operations[c.op]
		require.NotNil(t, handler, name)
		covered[operationKey(p, c.op)] = true

		resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
			Operation: c.op, Path: c.path, Data: c.data, Headers: c.headers, Storage: env.storage, EntityID: c.entity,
		})
		require.NoError(t, err, name)
		status, data := answerOf(t, name, c.op, resp, c.wholeBody)

		declared := handler.Properties().Responses
		want := c.status
		if want == 0 {
			want = successStatus(declared)
		}
		require.Equal(t, want, status, "%s: %v", name, data)
		require.Contains(t, declared, status, "%s answers %d, which it does not declare", name, status)
		fields := declared[status][0].Fields

		expected := make([]string, 0, len(fields)+len(c.extra))
		for field := range fields {
			if !slices.Contains(c.absent, field) {
				expected = append(expected, field)
			}
		}
		for _, field := range c.absent {
			require.Contains(t, fields, field, "%s: %q is listed as absent but is not declared", name, field)
		}
		for _, key := range c.extra {
			require.NotContains(t, fields, key, "%s: %q is listed as extra but is declared", name, key)
		}
		expected = append(expected, c.extra...)
		sort.Strings(expected)
		got := make([]string, 0, len(data))
		for key := range data {
			got = append(got, key)
		}
		sort.Strings(got)
		require.Equal(t, expected, got, "%s: the answer's keys are not the declared fields", name)

		for key, value := range data {
			if field := fields[key]; field != nil {
				requireDeclaredType(t, name, key, field, value)
			}
		}
		return data
	}

	// Configuration.
	check(responseCase{op: logical.ReadOperation, path: "config"})
	check(responseCase{op: logical.UpdateOperation, path: "config", data: map[string]interface{}{"identity_cache_ttl": "10s"}})

	// Named tokens.
	created := check(responseCase{op: logical.UpdateOperation, path: "users/alice/tokens/laptop", entity: alice,
		data: map[string]interface{}{"description": "CLI", "scopes": "api"}})
	check(responseCase{op: logical.ListOperation, path: "users/alice/tokens/", entity: alice})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/tokens/laptop", entity: alice})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/tokens/laptop", entity: bob, status: http.StatusForbidden})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/tokens/desktop", entity: alice, status: http.StatusNotFound})
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/tokens/desktop/rotate", entity: alice, status: http.StatusNotFound})
	rotated := check(responseCase{op: logical.UpdateOperation, path: "users/alice/tokens/laptop/rotate", entity: alice})
	require.NotEqual(t, created["token"], rotated["token"])
	token := rotated["token"].(string)

	// Verification. An inactive token's answer is "active" alone.
	notActive := []string{"token_id", "kind", "name", "user", "entity_id", "role", "scopes", "created_at", "expires_at", "organizations"}
	require.Equal(t, true, check(responseCase{op: logical.UpdateOperation, path: "verify", data: map[string]interface{}{"token": token}})["active"])
	check(responseCase{op: logical.UpdateOperation, path: "verify", data: map[string]interface{}{"token": "plqk_garbled"}, absent: notActive})
	check(responseCase{op: logical.ReadOperation, path: "verify", headers: map[string][]string{authTokenHeader: {token}}})
	check(responseCase{op: logical.UpdateOperation, path: "introspect", data: map[string]interface{}{"token": token}, wholeBody: true})
	check(responseCase{op: logical.UpdateOperation, path: "introspect", data: map[string]interface{}{"token": "plqk_garbled"}, wholeBody: true,
		absent: []string{"scope", "client_id", "username", "token_type", "exp", "iat", "sub", "jti", "kind", "organizations", "org_roles"}})
	check(responseCase{op: logical.UpdateOperation, path: "introspect", wholeBody: true, status: http.StatusBadRequest})

	// Roles and leased tokens.
	check(responseCase{op: logical.CreateOperation, path: "roles/runtime", data: map[string]interface{}{"ttl": "10m", "scopes": "api"}})
	check(responseCase{op: logical.UpdateOperation, path: "roles/runtime", data: map[string]interface{}{"description": "job runtimes"}})
	check(responseCase{op: logical.ReadOperation, path: "roles/runtime"})
	check(responseCase{op: logical.ReadOperation, path: "roles/batch", status: http.StatusNotFound})
	check(responseCase{op: logical.ListOperation, path: "roles/"})
	lease := check(responseCase{op: logical.ReadOperation, path: "users/alice/creds/runtime", entity: alice})
	require.Equal(t, "lease", check(responseCase{op: logical.UpdateOperation, path: "verify", data: map[string]interface{}{"token": lease["token"]}})["kind"])

	// The user.
	check(responseCase{op: logical.ReadOperation, path: "users/alice", entity: alice})

	// Leaks: a leased token revoked by value, and where it leaked.
	check(responseCase{op: logical.UpdateOperation, path: "leaks/revoke", data: map[string]interface{}{"leaks": []interface{}{
		map[string]interface{}{"token": lease["token"], "url": "https://example.com/log", "source": "ci-log"}}}})
	check(responseCase{op: logical.ListOperation, path: "users/alice/leaks/", entity: alice})
	check(responseCase{op: logical.ListOperation, path: "users/alice/leaks/", entity: bob, status: http.StatusForbidden})

	// The catalogue.
	check(responseCase{op: logical.ListOperation, path: "providers/"})
	check(responseCase{op: logical.ReadOperation, path: "providers/dwave"})
	check(responseCase{op: logical.UpdateOperation, path: "providers/rigetti", data: map[string]interface{}{"required_fields": "api_key", "secret_fields": "api_key"}})
	check(responseCase{op: logical.DeleteOperation, path: "providers/rigetti"})

	// Provider tokens of a user and of an organization, and resolve: static
	// keys, whose reads show no derivation and whose answers are the stored
	// key (derived_test.go checks derivable ones).
	static := []string{"derivation"}
	stored := []string{"credentials", "expires_at"}
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/provider-tokens/ibm-quantum", entity: alice, absent: static,
		data: map[string]interface{}{"token": "ibm-secret-0123456789", "instance": "ibm-q/open/main", "expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/provider-tokens/ibm-quantum", entity: alice, absent: static})
	check(responseCase{op: logical.ListOperation, path: "users/alice/provider-tokens/", entity: alice})
	check(responseCase{op: logical.UpdateOperation, path: "orgs/acme/provider-tokens/dwave", entity: alice, data: map[string]interface{}{"token": "dwave-secret-0123456789"}, absent: static})
	check(responseCase{op: logical.ReadOperation, path: "orgs/acme/provider-tokens/dwave", entity: alice, absent: static})
	check(responseCase{op: logical.ReadOperation, path: "orgs/acme/provider-tokens/dwave", entity: bob, status: http.StatusForbidden})
	check(responseCase{op: logical.ListOperation, path: "orgs/acme/provider-tokens/", entity: alice})
	check(responseCase{op: logical.ListOperation, path: "orgs/", entity: alice})
	check(responseCase{op: logical.UpdateOperation, path: "orgs/globex", data: map[string]interface{}{"id": "id-globex"}})
	check(responseCase{op: logical.UpdateOperation, path: "orgs/globex", entity: alice, data: map[string]interface{}{"id": "id-globex"}, status: http.StatusForbidden})
	check(responseCase{op: logical.ReadOperation, path: "orgs/acme", entity: alice})
	check(responseCase{op: logical.ReadOperation, path: "orgs/initech", status: http.StatusNotFound})
	check(responseCase{op: logical.ReadOperation, path: "orgs/globex", entity: alice, status: http.StatusForbidden})
	own := check(responseCase{op: logical.ReadOperation, path: "resolve/ibm-quantum", entity: alice, absent: stored, extra: []string{"token", "instance"}})
	require.Equal(t, "ibm-secret-0123456789", own["token"])
	check(responseCase{op: logical.ReadOperation, path: "resolve/dwave", entity: alice, data: map[string]interface{}{"org": "acme"},
		absent: append([]string{"user", "entity_id"}, stored...), extra: []string{"token"}})
	check(responseCase{op: logical.ReadOperation, path: "resolve/ionq", entity: alice, status: http.StatusNotFound})
	runtime := check(responseCase{op: logical.ReadOperation, path: "users/alice/runtime/runtime", entity: alice, data: map[string]interface{}{"org": "acme"}})
	require.Equal(t, map[string]interface{}{"dwave": "organization", "ibm-quantum": "user"}, runtime["providers"])
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/runtime/runtime", entity: alice, data: map[string]interface{}{"org": "acme"}})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/runtime/runtime", entity: alice, data: map[string]interface{}{"org": "globex"}, status: http.StatusForbidden})
	check(responseCase{op: logical.ReadOperation, path: "resolve/dwave", entity: bob, data: map[string]interface{}{"org": "acme"}, status: http.StatusForbidden})

	// Organization and user settings.
	check(responseCase{op: logical.ReadOperation, path: "orgs/acme/settings", entity: alice})
	check(responseCase{op: logical.UpdateOperation, path: "orgs/acme/settings", entity: alice, data: map[string]interface{}{"provider_tokens_for": "member"}})
	check(responseCase{op: logical.UpdateOperation, path: "orgs/acme/settings", entity: bob, data: map[string]interface{}{"provider_tokens_for": "none"}, status: http.StatusForbidden})
	check(responseCase{op: logical.ReadOperation, path: "users/alice/settings", entity: alice})
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/settings", entity: alice, data: map[string]interface{}{"derived_only": false}})
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/settings", entity: bob, data: map[string]interface{}{"derived_only": false}, status: http.StatusForbidden})

	// The exchange, for a broker holding alice's PAT.
	pat := env.createToken("alice", alice, "jobs", nil)["token"].(string)
	inHeader := map[string][]string{authTokenHeader: {pat}}
	exchanged := check(responseCase{op: logical.ReadOperation, path: "exchange/dwave", headers: map[string][]string{authTokenHeader: {pat}, orgIDHeader: {"acme"}},
		absent: append([]string{"user", "entity_id"}, stored...), extra: []string{"token"}})
	require.Equal(t, "dwave-secret-0123456789", exchanged["token"])
	check(responseCase{op: logical.UpdateOperation, path: "exchange/ibm-quantum", data: map[string]interface{}{"token": pat}, absent: stored, extra: []string{"token", "instance"}})
	check(responseCase{op: logical.ReadOperation, path: "exchange/ionq", headers: inHeader, status: http.StatusNotFound})
	check(responseCase{op: logical.ReadOperation, path: "exchange/dwave", headers: map[string][]string{authTokenHeader: {"plqk_garbled"}}, status: http.StatusUnauthorized})
	check(responseCase{op: logical.ReadOperation, path: "exchange/dwave", headers: map[string][]string{authTokenHeader: {token}}, status: http.StatusForbidden})
	environment := check(responseCase{op: logical.ReadOperation, path: "exchange", headers: inHeader, data: map[string]interface{}{"org": "acme"}, absent: []string{"expires_at"}})
	require.Equal(t, map[string]interface{}{"dwave": "organization", "ibm-quantum": "user"}, environment["providers"])
	check(responseCase{op: logical.UpdateOperation, path: "exchange", data: map[string]interface{}{"token": pat, "org": "globex"}, status: http.StatusForbidden})

	// Governance.
	check(responseCase{op: logical.ReadOperation, path: "inventory"})
	check(responseCase{op: logical.ListOperation, path: "inventory/tokens/"})
	check(responseCase{op: logical.ListOperation, path: "inventory/provider-tokens/"})
	check(responseCase{op: logical.UpdateOperation, path: "tidy"})
	waitForTidy(t, env)
	check(responseCase{op: logical.ReadOperation, path: "tidy/status"})

	// Notifications.
	check(responseCase{op: logical.UpdateOperation, path: "notifications/webhook-secret"})
	check(responseCase{op: logical.UpdateOperation, path: "notifications/webhook-secret", data: map[string]interface{}{"previous_secret_ttl": "1h"}})
	check(responseCase{op: logical.ReadOperation, path: "notifications/status"})
	check(responseCase{op: logical.DeleteOperation, path: "notifications/webhook-secret"})

	// What the upgrade from v0.1.0 set aside.
	unclaimed, err := logical.StorageEntryJSON(unclaimedProviderTokenPrefix+"dave/ionq", &providerTokenEntry{Provider: "ionq", Values: map[string]string{"api_key": "dave-ionq-0123456789"}, SecretFields: []string{"api_key"}, Version: 1})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(context.Background(), unclaimed))
	check(responseCase{op: logical.UpdateOperation, path: "unclaimed/dave/ionq/claim", data: map[string]interface{}{"entity_id": bob}, absent: static})
	check(responseCase{op: logical.UpdateOperation, path: "unclaimed/dave/ionq/claim", data: map[string]interface{}{"entity_id": bob}, status: http.StatusNotFound})
	check(responseCase{op: logical.DeleteOperation, path: "unclaimed/dave/ionq"})
	require.NoError(t, env.storage.Put(context.Background(), &logical.StorageEntry{Key: unclaimedOrgProviderTokenPrefix + "initech/ionq", Value: unclaimed.Value}))
	check(responseCase{op: logical.UpdateOperation, path: "unclaimed-orgs/initech/ionq/claim", data: map[string]interface{}{"org_id": "id-globex"}, absent: static})
	check(responseCase{op: logical.UpdateOperation, path: "unclaimed-orgs/initech/ionq/claim", data: map[string]interface{}{"org_id": "id-globex"}, status: http.StatusNotFound})
	check(responseCase{op: logical.UpdateOperation, path: "unclaimed-orgs/initech/ionq/claim", entity: bob, data: map[string]interface{}{"org_id": "id-globex"}, status: http.StatusForbidden})
	check(responseCase{op: logical.DeleteOperation, path: "unclaimed-orgs/initech/ionq"})

	// Deletes and offboarding.
	check(responseCase{op: logical.DeleteOperation, path: "users/alice/provider-tokens/ibm-quantum", entity: alice})
	check(responseCase{op: logical.DeleteOperation, path: "orgs/acme/provider-tokens/dwave", entity: alice})
	check(responseCase{op: logical.DeleteOperation, path: "users/alice/tokens/laptop", entity: alice})
	check(responseCase{op: logical.DeleteOperation, path: "roles/runtime"})
	check(responseCase{op: logical.UpdateOperation, path: "users/alice/revoke-all", entity: alice})

	// Operations no in-process call can check; none so far.
	exceptions := map[string]string{}
	for _, p := range env.b.Paths {
		for op := range p.Operations {
			key := operationKey(p, op)
			if _, excepted := exceptions[key]; !excepted {
				require.True(t, covered[key], "%s is not called by this test: add a case for it", key)
			}
		}
	}
}

func operationKey(p *framework.Path, op logical.Operation) string {
	return fmt.Sprintf("%s %s", op, p.Pattern)
}

// successStatus returns the operation's declared 2xx status.
func successStatus(declared map[int][]framework.Response) int {
	for status := range declared {
		if status >= 200 && status < 300 {
			return status
		}
	}
	return 0
}

// answerOf returns the status Vault would answer with and the keys and
// values it would write: the response's data, or for a raw response the
// data of the envelope in its body (the whole body when wholeBody).
func answerOf(t *testing.T, name string, op logical.Operation, resp *logical.Response, wholeBody bool) (int, map[string]interface{}) {
	t.Helper()
	if resp == nil || (op == logical.ListOperation && len(resp.Data) == 0) {
		if op == logical.ReadOperation || op == logical.ListOperation {
			return http.StatusNotFound, nil
		}
		return http.StatusNoContent, nil
	}
	raw, isRaw := resp.Data[logical.HTTPStatusCode].(int)
	if !isRaw {
		require.False(t, resp.IsError(), "%s: %v", name, resp.Error())
		return http.StatusOK, jsonRoundTrip(t, name, resp.Data)
	}
	var body []byte
	switch b := resp.Data[logical.HTTPRawBody].(type) {
	case []byte:
		body = b
	case string:
		body = []byte(b)
	}
	decoder := json.NewDecoder(bytes.NewReader(body))
	decoder.UseNumber()
	var decoded map[string]interface{}
	require.NoError(t, decoder.Decode(&decoded), name)
	if wholeBody || raw >= 400 {
		if raw >= 400 {
			// Refusals carry no data; their body is described in prose.
			return raw, nil
		}
		return raw, decoded
	}
	data, _ := decoded["data"].(map[string]interface{})
	return raw, data
}

// jsonRoundTrip returns data as a client decodes it.
func jsonRoundTrip(t *testing.T, name string, data map[string]interface{}) map[string]interface{} {
	t.Helper()
	encoded, err := json.Marshal(data)
	require.NoError(t, err, name)
	decoder := json.NewDecoder(bytes.NewReader(encoded))
	decoder.UseNumber()
	var decoded map[string]interface{}
	require.NoError(t, decoder.Decode(&decoded), name)
	return decoded
}

// jsonKind is what a JSON value decodes to.
type jsonKind int

const (
	jsonString jsonKind = iota
	jsonInteger
	jsonBool
	jsonStringArray
	jsonObjectArray
	jsonObject
)

// jsonKindOf is the JSON value each response field type declares in the
// OpenAPI document (framework's convertType).
var jsonKindOf = map[framework.FieldType]jsonKind{
	framework.TypeString:      jsonString,
	framework.TypeTime:        jsonString,
	framework.TypeInt:         jsonInteger,
	framework.TypeInt64:       jsonInteger,
	framework.TypeBool:        jsonBool,
	framework.TypeStringSlice: jsonStringArray,
	framework.TypeSlice:       jsonObjectArray,
	framework.TypeMap:         jsonObject,
}

// requireDeclaredType fails unless value, as a client decodes it, is what
// the field's OpenAPI type promises: a generated client would fail to
// decode anything else.
func requireDeclaredType(t *testing.T, name, key string, field *framework.FieldSchema, value interface{}) {
	t.Helper()
	where := fmt.Sprintf("%s: field %q (%s) is %T %v", name, key, field.Type, value, value)
	switch jsonKindOf[field.Type] {
	case jsonString:
		text, ok := value.(string)
		require.True(t, ok, where)
		if field.Type == framework.TypeTime {
			_, err := time.Parse(time.RFC3339, text)
			require.NoError(t, err, where)
		}
	case jsonInteger:
		number, ok := value.(json.Number)
		require.True(t, ok, where)
		_, err := number.Int64()
		require.NoError(t, err, where)
	case jsonBool:
		_, ok := value.(bool)
		require.True(t, ok, where)
	case jsonStringArray:
		items, ok := value.([]interface{})
		require.True(t, ok, where)
		for _, item := range items {
			_, ok := item.(string)
			require.True(t, ok, where)
		}
	case jsonObjectArray:
		items, ok := value.([]interface{})
		require.True(t, ok, where)
		for _, item := range items {
			_, ok := item.(map[string]interface{})
			require.True(t, ok, where)
		}
	case jsonObject:
		_, ok := value.(map[string]interface{})
		require.True(t, ok, where)
	}
	if len(field.AllowedValues) > 0 {
		require.Contains(t, field.AllowedValues, value, where)
	}
}

// waitForTidy waits until the background sweep has ended.
func waitForTidy(t *testing.T, env *testEnv) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		env.b.tidy.mu.Lock()
		running := env.b.tidy.running
		env.b.tidy.mu.Unlock()
		if !running {
			return
		}
		require.True(t, time.Now().Before(deadline), "tidy still running after 10s")
		time.Sleep(5 * time.Millisecond)
	}
}
