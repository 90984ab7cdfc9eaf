//go:build e2e

package e2e

// INTERIM, to be deleted when the engine serves introspect: an https
// endpoint with the introspect contract that answers from the engine's
// verify, authenticated with the caller's own Vault token.

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func (e *gatewayEngine) interimEndpoint(t *testing.T) (url, caBundle string) {
	t.Helper()
	shim := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		inactive := func() { w.Write([]byte(`{"active":false}`)) }
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path != "/v1/"+mount+"/introspect" || !ok || r.ParseForm() != nil {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		client, err := e.srv.Client(bearer)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		token := r.PostForm.Get("token")
		if token == "" {
			inactive()
			return
		}
		verified, err := client.Logical().Write(mount+"/verify", map[string]interface{}{"token": token})
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if verified.Data["active"] != true {
			inactive()
			return
		}
		at := func(key string) int64 {
			parsed, _ := time.Parse(time.RFC3339, verified.Data[key].(string))
			return parsed.Unix()
		}
		var scopes []string
		for _, scope := range verified.Data["scopes"].([]interface{}) {
			scopes = append(scopes, scope.(string))
		}
		_ = json.NewEncoder(w).Encode(map[string]interface{}{
			"active": true, "scope": strings.Join(scopes, " "), "username": verified.Data["user"],
			"sub": verified.Data["entity_id"], "exp": at("expires_at"), "iat": at("created_at"),
			"jti": verified.Data["token_id"], "token_type": "personal_access_token",
			"client_id": verified.Data["name"], "organizations": verified.Data["organizations"],
		})
	}))
	t.Cleanup(shim.Close)
	caBundle = filepath.Join(e.srv.Dir, "interim-ca.pem")
	if err := os.WriteFile(caBundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: shim.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return shim.URL + "/v1/" + mount + "/introspect", caBundle
}
