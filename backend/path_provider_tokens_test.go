package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

const ibmSecret = "ibmq-secret-0123456789abcdef"

func TestProviderTokens_readsShowMetadataNeverSecrets(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")

	written := env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", alice,
		map[string]interface{}{"token": ibmSecret, "instance": "ibm-q/open/main"}).Data
	require.Equal(t, 1, written["version"])

	got := env.ok(logical.ReadOperation, "users/alice/provider-tokens/ibm-quantum", alice, nil).Data
	require.Equal(t, "ibm-quantum", got["provider"])
	require.Equal(t, "alice", got["user"])
	require.Equal(t, []string{"instance", "token"}, got["fields"])
	require.Equal(t, map[string]interface{}{"token": "****cdef"}, got["secret_hints"])
	require.Equal(t, map[string]interface{}{"instance": "ibm-q/open/main"}, got["settings"])
	require.Equal(t, alice, got["updated_by"])
	require.NotEmpty(t, got["created_at"])
	require.NotContains(t, strings.Join(flatten(got), " "), ibmSecret)

	// A rewrite replaces the token and increments its version.
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", alice, map[string]interface{}{"token": "short"})
	got = env.ok(logical.ReadOperation, "users/alice/provider-tokens/ibm-quantum", alice, nil).Data
	require.Equal(t, 2, got["version"])
	require.Equal(t, []string{"token"}, got["fields"])
	require.Equal(t, map[string]interface{}{"token": "****"}, got["secret_hints"], "short secrets get no hint")

	require.Equal(t, []string{"ibm-quantum"}, env.ok(logical.ListOperation, "users/alice/provider-tokens/", alice, nil).Data["keys"])
	env.ok(logical.DeleteOperation, "users/alice/provider-tokens/ibm-quantum", alice, nil)
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "users/alice/provider-tokens/ibm-quantum", alice, nil))
}

func flatten(data map[string]interface{}) []string {
	var out []string
	for k, v := range data {
		out = append(out, k)
		switch v := v.(type) {
		case map[string]interface{}:
			out = append(out, flatten(v)...)
		case []string:
			out = append(out, v...)
		case string:
			out = append(out, v)
		}
	}
	return out
}

func TestProviderTokens_badWritesAreRefusedAndWriteNothing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "dwave-token"})
	before := env.storageSnapshot()

	cases := []struct {
		name, path string
		data       map[string]interface{}
		want       string
	}{
		{"unknown provider", "users/alice/provider-tokens/rigetti", map[string]interface{}{"api_key": "k"}, `unknown provider "rigetti"`},
		{"unknown field", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "t", "solver": "x"}, `unknown field "solver"`},
		{"missing required", "users/alice/provider-tokens/aws-braket", map[string]interface{}{"access_key_id": "AKIA"}, `missing required field "secret_access_key"`},
		{"empty required", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": ""}, `missing required field "token"`},
		{"empty body", "users/alice/provider-tokens/dwave", nil, `missing required field "token"`},
		{"number value", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": 12345}, `field "token" must be a string`},
		{"list value", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": []interface{}{"a"}}, `field "token" must be a string`},
		{"object value", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": map[string]interface{}{}}, `field "token" must be a string`},
		{"not UTF-8", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "\xff\xfe"}, `field "token" must be valid UTF-8`},
		{"not UTF-8 as sent", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "abc\uFFFDdef"}, `field "token" contains U+FFFD`},
		{"oversized", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": strings.Repeat("t", maxProviderValueLength+1)}, `field "token" must be at most`},
		{"path parameter in body", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "t", "org": "acme"}, `unknown field "org"`},
		{"NUL", "users/alice/provider-tokens/dwave", map[string]interface{}{"token": "ab\x00cd"}, `field "token" must not contain NUL`},
		{"azure resource id of another form", "users/alice/provider-tokens/azure-quantum", map[string]interface{}{
			"tenant_id": "t", "client_id": "c", "client_secret": "s", "resource_id": "/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Quantum/Workspaces/ws",
		}, `field "resource_id" must be of the form /subscriptions/{AZURE_QUANTUM_SUBSCRIPTION_ID}/`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := env.userError(logical.UpdateOperation, c.path, alice, c.data)
			require.Contains(t, msg, c.want)
			require.NotContains(t, msg, "dwave-token")
			require.Equal(t, before, env.storageSnapshot())
		})
	}
}

// The role matrix of organization provider tokens as the engine itself
// enforces it for requests that carry an entity.
func TestProviderTokens_organizationRoleMatrix(t *testing.T) {
	env := newTestEnv(t)
	callers := map[string]string{}
	for _, role := range []string{"owner", "maintainer", "member"} {
		callers[role] = env.addUser(role)
		env.setRole(callers[role], "acme", role)
	}
	callers["outsider"] = env.addUser("outsider")
	env.setRole(callers["outsider"], "globex", "owner")
	callers["admin"] = env.addUser("admin")
	env.setRole(callers["admin"], adminOrg, "admin")
	callers["root"] = ""

	want := map[string]map[string]int{
		//               write read list delete resolve
		"owner":      {"write": 200, "read": 200, "list": 200, "delete": 204, "resolve": 200},
		"maintainer": {"write": 200, "read": 200, "list": 200, "delete": 204, "resolve": 200},
		"member":     {"write": 403, "read": 200, "list": 200, "delete": 403, "resolve": 200},
		"outsider":   {"write": 403, "read": 403, "list": 403, "delete": 403, "resolve": 403},
		"admin":      {"write": 200, "read": 200, "list": 200, "delete": 204, "resolve": 200},
		"root":       {"write": 200, "read": 200, "list": 200, "delete": 204, "resolve": 400},
	}
	const path = "orgs/acme/provider-tokens/ionq"
	for name, entity := range callers {
		t.Run(name, func(t *testing.T) {
			reset := func() {
				env.ok(logical.UpdateOperation, path, "", map[string]interface{}{"api_key": "ionq-org-key-1234567890"})
			}
			reset()
			got := map[string]int{
				"write":   env.statusOf(logical.UpdateOperation, path, entity, map[string]interface{}{"api_key": "ionq-new-key-1234567890"}),
				"read":    env.statusOf(logical.ReadOperation, path, entity, nil),
				"list":    env.statusOf(logical.ListOperation, "orgs/acme/provider-tokens/", entity, nil),
				"resolve": env.statusOf(logical.ReadOperation, "resolve/ionq", entity, map[string]interface{}{"org": "acme"}),
				"delete":  env.statusOf(logical.DeleteOperation, path, entity, nil),
			}
			require.Equal(t, want[name], got)
		})
	}

	msg := env.refusal(403, logical.UpdateOperation, path, callers["member"], map[string]interface{}{"api_key": "k"})
	require.Equal(t, `entity "member" needs the role maintainer or stronger in organization "acme"`, msg)
}

func TestProviderTokens_orgsListShowsCallersOrganizations(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	for _, org := range []string{"acme", "globex"} {
		env.registerOrg(org)
		env.ok(logical.UpdateOperation, "orgs/"+org+"/provider-tokens/dwave", "", map[string]interface{}{"token": "t"})
	}
	require.Equal(t, []string{"acme", "globex"}, env.ok(logical.ListOperation, "orgs/", "", nil).Data["keys"])
	require.Equal(t, []string{"acme"}, env.ok(logical.ListOperation, "orgs/", alice, nil).Data["keys"])
}

func TestProviderTokens_userPathsRefuseOtherEntities(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "t"})
	for _, op := range []logical.Operation{logical.ReadOperation, logical.DeleteOperation, logical.UpdateOperation} {
		require.Equal(t, 403, env.statusOf(op, "users/alice/provider-tokens/dwave", bob, map[string]interface{}{"token": "x"}), op)
	}
	require.Equal(t, 403, env.statusOf(logical.ListOperation, "users/alice/provider-tokens/", bob, nil))
	require.Equal(t, 200, env.statusOf(logical.ReadOperation, "users/alice/provider-tokens/dwave", "", nil))
}

// FuzzValidateProviderValues checks that a write is either refused with a
// message that never contains a submitted value, or yields only known,
// non-empty string fields with every required one present.
func FuzzValidateProviderValues(f *testing.F) {
	f.Add("token", "secret-value", "instance", "hub/group/project")
	f.Add("token", "", "", "")
	f.Add("unknown", "value", "token", "t")
	f.Add("instance", "\xff", "token", "secret")
	provider := builtinProviders["ibm-quantum"]
	f.Fuzz(func(t *testing.T, key1, value1, key2, value2 string) {
		data := map[string]interface{}{key1: value1, key2: value2}
		values, msg := validateProviderValues("ibm-quantum", provider, data, false)
		if msg != "" {
			for _, v := range []string{value1, value2} {
				if len(v) >= 8 && strings.Contains(msg, v) {
					t.Fatalf("message %q repeats a submitted value", msg)
				}
			}
			return
		}
		if values["token"] == "" {
			t.Fatalf("accepted a write without the required token: %v", data)
		}
		for k := range values {
			if _, ok := provider.field(k); !ok {
				t.Fatalf("accepted unknown field %q", k)
			}
		}
	})
}

// A settings page shows every stored token's metadata from one list: its
// key_info is what a read of each returns, never a secret. Writes and reads
// of a warm owner cost only what they change.
func TestProviderTokens_listCarriesWhatReadsShowAndWritesReadNothing(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", alice, map[string]interface{}{"token": ibmSecret, "instance": "ibm-q/open/main"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ionq", alice, map[string]interface{}{"api_key": "ionq-secret-value-123"})

	list := env.ok(logical.ListOperation, "users/alice/provider-tokens/", alice, nil).Data
	require.Equal(t, []string{"ibm-quantum", "ionq"}, list["keys"])
	keyInfo := list["key_info"].(map[string]interface{})
	for _, provider := range []string{"ibm-quantum", "ionq"} {
		read := env.ok(logical.ReadOperation, "users/alice/provider-tokens/"+provider, alice, nil).Data
		require.Equal(t, read, keyInfo[provider], provider)
	}
	flat := strings.Join(flatten(map[string]interface{}{"info": keyInfo}), " ")
	require.NotContains(t, flat, ibmSecret)
	require.NotContains(t, flat, "ionq-secret-value-123")

	env.storage.reset()
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ibm-quantum", alice, map[string]interface{}{"token": ibmSecret + "2"})
	require.Equal(t, roundTrips{Puts: 1}, env.storage.counted(), "a rewrite reads neither the catalogue nor the old token from storage")
	env.storage.reset()
	env.ok(logical.ReadOperation, "users/alice/provider-tokens/ibm-quantum", alice, nil)
	env.ok(logical.DeleteOperation, "users/alice/provider-tokens/ionq", alice, nil)
	require.Equal(t, roundTrips{Deletes: 1, Puts: 1}, env.storage.counted(), "the token, and the counter shard")
}

// An operator who marks a field secret after tokens were stored must not
// see those tokens keep showing the value: a catalogue change can hide a
// stored value from reads, never expose one.
func TestProviderTokens_fieldsMadeSecretLaterAreHidden(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key", "optional_fields": "endpoint_token"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/rigetti", alice, map[string]interface{}{"api_key": "rigetti-api-key-0001", "endpoint_token": "endpoint-secret-0002"})
	require.Equal(t, "endpoint-secret-0002", env.ok(logical.ReadOperation, "users/alice/provider-tokens/rigetti", alice, nil).Data["settings"].(map[string]interface{})["endpoint_token"])

	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key", "optional_fields": "endpoint_token", "secret_fields": "api_key,endpoint_token"})
	read := env.ok(logical.ReadOperation, "users/alice/provider-tokens/rigetti", alice, nil).Data
	listed := env.ok(logical.ListOperation, "users/alice/provider-tokens/", alice, nil).Data["key_info"].(map[string]interface{})["rigetti"]
	for what, data := range map[string]map[string]interface{}{"read": read, "list": listed.(map[string]interface{})} {
		flat := strings.Join(flatten(data), " ")
		require.NotContains(t, flat, "endpoint-secret-0002", what)
		require.NotContains(t, flat, "rigetti-api-key-0001", what)
		require.Equal(t, map[string]interface{}{"api_key": "****0001", "endpoint_token": "****0002"}, data["secret_hints"], what)
	}

	// A field the definition no longer has is shown as a secret too.
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key"})
	require.NotContains(t, strings.Join(flatten(env.ok(logical.ReadOperation, "users/alice/provider-tokens/rigetti", alice, nil).Data), " "), "endpoint-secret-0002")
}
