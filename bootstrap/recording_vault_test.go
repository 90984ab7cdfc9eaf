package bootstrap

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/api"
)

// recordingVault stands in for Vault's HTTP API in unit tests: it records
// every request that reaches it and keeps what the bootstrap writes, with
// just enough of Vault's behaviour (auth mounts, policies, entities,
// aliases, groups, userpass users) for the bootstrap's steps to run.
type recordingVault struct {
	mu       sync.Mutex
	requests []string                  // "METHOD path", path without /v1/
	data     map[string]map[string]any // written data by path
	auths    map[string]string         // auth mount path ("userpass/") -> accessor
	policies map[string]string         // ACL policy name -> HCL
	aliases  map[string]string         // accessor + "/" + alias name -> entity id
}

// newRecordingVault starts the stand-in and returns it with a bootstrapper
// pointed at it, for mount "planqk" and userpass mount "userpass".
func newRecordingVault(t *testing.T) (*recordingVault, *Bootstrapper) {
	t.Helper()
	v := &recordingVault{
		data:     map[string]map[string]any{},
		auths:    map[string]string{},
		policies: map[string]string{},
		aliases:  map[string]string{},
	}
	server := httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(server.Close)
	config := api.DefaultConfig()
	config.Address = server.URL
	config.MaxRetries = 0
	client, err := api.NewClient(config)
	if err != nil {
		t.Fatal(err)
	}
	client.SetToken("root")
	return v, &Bootstrapper{Client: client, Mount: "planqk", AuthMount: "userpass"}
}

// Requests returns the requests received so far.
func (v *recordingVault) Requests() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.requests...)
}

// Writes returns the requests received so far that may change something:
// neither reads nor identity lookups.
func (v *recordingVault) Writes() []string {
	var writes []string
	for _, r := range v.Requests() {
		if !strings.HasPrefix(r, http.MethodGet+" ") && !strings.HasSuffix(r, " identity/lookup/entity") {
			writes = append(writes, r)
		}
	}
	return writes
}

// caseInsensitive are the prefixes under which Vault finds names without
// regard to case: identity groups and entities, and userpass users (which
// userpass keeps in lower case).
var caseInsensitive = []string{"identity/group/name/", "identity/entity/name/", "auth/userpass/users/"}

// storageKey is where the stand-in keeps path: as Vault finds it.
func storageKey(path string) string {
	for _, prefix := range caseInsensitive {
		if name, ok := strings.CutPrefix(path, prefix); ok {
			return prefix + strings.ToLower(name)
		}
	}
	return path
}

func (v *recordingVault) serve(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	v.requests = append(v.requests, r.Method+" "+path)
	key := storageKey(path)

	var body map[string]any
	if r.Method != http.MethodGet {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"errors":["bad JSON"]}`, http.StatusBadRequest)
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && path == "sys/auth":
		mounts := map[string]any{}
		for mount, accessor := range v.auths {
			mounts[mount] = map[string]any{"type": "userpass", "accessor": accessor}
		}
		respond(w, mounts)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "sys/auth/"):
		mount := strings.TrimPrefix(path, "sys/auth/") + "/"
		v.auths[mount] = "auth_userpass_" + strings.TrimSuffix(mount, "/")
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && strings.HasPrefix(path, "sys/policies/acl/"):
		v.policies[strings.TrimPrefix(path, "sys/policies/acl/")], _ = body["policy"].(string)
		w.WriteHeader(http.StatusNoContent)
	case path == "identity/lookup/entity":
		accessor, _ := body["alias_mount_accessor"].(string)
		name, _ := body["alias_name"].(string)
		if id, ok := v.aliases[accessor+"/"+name]; ok {
			respond(w, map[string]any{"id": id})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case path == "identity/entity-alias":
		accessor, _ := body["mount_accessor"].(string)
		name, _ := body["name"].(string)
		id, _ := body["canonical_id"].(string)
		v.aliases[accessor+"/"+name] = id
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "sys/mounts/") && strings.HasSuffix(path, "/tune"):
		// Kept like any other write, to assert what was tuned.
		v.data[path] = body
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodGet:
		stored, ok := v.data[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		respond(w, stored)
	case r.Method == http.MethodPut:
		stored, ok := v.data[key]
		if !ok {
			stored = map[string]any{}
			if name, isEntity := strings.CutPrefix(path, "identity/entity/name/"); isEntity {
				stored["id"] = "entity-" + name
				stored["name"] = name
			}
			if name, isGroup := strings.CutPrefix(path, "identity/group/name/"); isGroup {
				stored["name"] = name
			}
			v.data[key] = stored
		}
		for k, val := range body {
			stored[k] = val
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, `{"errors":["unsupported by the recording Vault"]}`, http.StatusMethodNotAllowed)
	}
}

func respond(w http.ResponseWriter, data map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}
