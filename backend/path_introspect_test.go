package backend

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// introspect posts a token as a gateway does and returns the raw response
// Vault would write: status and decoded body.
func (e *testEnv) introspect(data map[string]interface{}) (int, map[string]interface{}) {
	e.t.Helper()
	resp, err := e.do(logical.UpdateOperation, "introspect", "", data)
	require.NoError(e.t, err)
	require.Equal(e.t, "application/json", resp.Data[logical.HTTPContentType])
	var body map[string]interface{}
	require.NoError(e.t, json.Unmarshal(resp.Data[logical.HTTPRawBody].([]byte), &body))
	for key := range resp.Data {
		require.True(e.t, strings.HasPrefix(key, "http_"), "only the raw response, no envelope fields: %s", key)
	}
	return resp.Data[logical.HTTPStatusCode].(int), body
}

func TestIntrospect_activeTokenIsRFC7662(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	created := env.createToken("alice", alice, "laptop", map[string]interface{}{"scopes": "api"})
	expires, err := time.Parse(time.RFC3339, created["expires_at"].(string))
	require.NoError(t, err)
	issued, err := time.Parse(time.RFC3339, created["created_at"].(string))
	require.NoError(t, err)

	status, body := env.introspect(map[string]interface{}{"token": created["token"], "token_type_hint": "access_token"})
	require.Equal(t, 200, status)
	require.Equal(t, map[string]interface{}{
		"active":        true,
		"scope":         "api",
		"client_id":     "laptop",
		"username":      "alice",
		"token_type":    "bearer",
		"exp":           float64(expires.Unix()),
		"iat":           float64(issued.Unix()),
		"sub":           alice,
		"jti":           created["token_id"],
		"kind":          "named",
		"organizations": []interface{}{map[string]interface{}{"name": "acme", "role": "owner"}},
		"org_roles":     []interface{}{"acme:owner"},
	}, body)

	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data
	_, body = env.introspect(map[string]interface{}{"token": lease["token"]})
	require.Equal(t, "lease", body["kind"])
	require.Equal(t, "runtime", body["client_id"])
	require.Equal(t, "api quantum_tokens", body["scope"])
}

// Anything but an active token is exactly {"active": false}.
func TestIntrospect_inactiveTokensSayNothingElse(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	revoked := env.createToken("alice", alice, "revoked", nil)["token"].(string)
	env.ok(logical.DeleteOperation, "users/alice/tokens/revoked", alice, nil)
	expired := env.createToken("alice", alice, "expired", nil)["token"].(string)
	ageToken(t, env, expired, 800*time.Hour)
	ofDisabled := env.createToken("bob", bob, "t", nil)["token"].(string)
	env.disableEntity(bob)
	valid := env.createToken("alice", alice, "valid", nil)["token"].(string)

	for name, token := range map[string]string{
		"revoked": revoked, "expired": expired, "owner disabled": ofDisabled,
		"garbled": garble(valid), "wrong prefix": "ghp_" + valid[5:], "not a token": "hello",
	} {
		status, body := env.introspect(map[string]interface{}{"token": token})
		require.Equal(t, 200, status, name)
		require.Equal(t, map[string]interface{}{"active": false}, body, name)
	}

	status, body := env.introspect(map[string]interface{}{})
	require.Equal(t, 400, status)
	require.Equal(t, "invalid_request", body["error"])
}

// The same cost as verify: none for a garbled token, one read for a cold
// record, none for a cached one.
func TestIntrospect_storageRoundTrips(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	token := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	env.introspect(map[string]interface{}{"token": token})

	env.storage.reset()
	env.b.records.purge()
	env.introspect(map[string]interface{}{"token": token})
	require.Equal(t, roundTrips{Gets: 1}, env.storage.counted())
	env.storage.reset()
	env.introspect(map[string]interface{}{"token": token})
	env.introspect(map[string]interface{}{"token": garble(token)})
	require.Equal(t, roundTrips{}, env.storage.counted())
}

// A token is never echoed, whatever is sent.
func TestIntrospect_neverEchoesTheToken(t *testing.T) {
	env := newTestEnv(t)
	resp, err := env.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.UpdateOperation, Path: "introspect", Storage: env.storage,
		Data: map[string]interface{}{"token": []interface{}{"plqk_secretsecretsecret"}},
	})
	require.NoError(t, err)
	require.NotContains(t, resp.Error().Error(), "plqk_secret")
}
