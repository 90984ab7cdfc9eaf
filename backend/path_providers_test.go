package backend

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestProviders_builtInCatalogue(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, []string{"aws-braket", "azure-quantum", "dwave", "ibm-cloud", "ibm-quantum", "ionq"},
		env.ok(logical.ListOperation, "providers/", "", nil).Data["keys"])

	got := env.ok(logical.ReadOperation, "providers/aws-braket", "", nil).Data
	require.Equal(t, true, got["built_in"])
	require.Equal(t, false, got["overridden"])
	require.Equal(t, []map[string]interface{}{
		{"name": "access_key_id", "required": true, "secret": true, "env": []string{"AWS_ACCESS_KEY_ID"}},
		{"name": "secret_access_key", "required": true, "secret": true, "env": []string{"AWS_SECRET_ACCESS_KEY"}},
		{"name": "region", "required": false, "secret": false, "env": []string{"AWS_REGION", "AWS_DEFAULT_REGION"}},
		{"name": "session_token", "required": false, "secret": true, "env": []string{"AWS_SESSION_TOKEN"}},
	}, got["fields"])
	require.Equal(t, map[string]string{}, got["env_constants"])

	got = env.ok(logical.ReadOperation, "providers/ibm-cloud", "", nil).Data
	require.Equal(t, map[string]string{"QISKIT_IBM_CHANNEL": "ibm_cloud"}, got["env_constants"])
	got = env.ok(logical.ReadOperation, "providers/azure-quantum", "", nil).Data
	resourceID := got["fields"].([]map[string]interface{})[3]
	require.Equal(t, "resource_id", resourceID["name"])
	require.Equal(t, []string{"AZURE_QUANTUM_SUBSCRIPTION_ID", "AZURE_QUANTUM_WORKSPACE_RG", "AZURE_QUANTUM_WORKSPACE_NAME"}, resourceID["env"])
	require.Contains(t, resourceID["env_format"], "/resourceGroups/{AZURE_QUANTUM_WORKSPACE_RG}/")

	// Fields are only ever added: every field of v0.1.0 is still there,
	// required as it was, so tokens stored by v0.1.0 stay valid.
	v010 := map[string][]string{
		"ibm-quantum":   {"token", ";", "instance"},
		"ibm-cloud":     {"api_key", ";", "service_crn"},
		"aws-braket":    {"access_key_id", "secret_access_key", ";", "region"},
		"azure-quantum": {"tenant_id", "client_id", "client_secret", "resource_id", ";", "location"},
		"dwave":         {"token", ";"},
		"ionq":          {"api_key", ";"},
	}
	for name, fields := range v010 {
		isRequired := true
		for _, field := range fields {
			if field == ";" {
				isRequired = false
				continue
			}
			f, ok := builtinProviders[name].field(field)
			require.True(t, ok, "%s lost field %s", name, field)
			require.Equal(t, isRequired, f.Required, "%s.%s", name, field)
		}
	}
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
}

// Every variable of the built-in catalogue, as the SDKs' sources name them
// (cited beside builtinProviders), for a token with every field set.
func TestProviders_builtInVariablesAreWhatTheSDKsRead(t *testing.T) {
	cases := []struct {
		provider string
		values   map[string]string
		want     map[string]string
	}{
		{"ibm-quantum", map[string]string{"token": "k", "instance": "crn:v1:i", "url": "https://u"},
			map[string]string{"QISKIT_IBM_TOKEN": "k", "QISKIT_IBM_INSTANCE": "crn:v1:i", "QISKIT_IBM_URL": "https://u", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform"}},
		{"ibm-cloud", map[string]string{"api_key": "k", "service_crn": "crn:v1:c", "url": "https://u"},
			map[string]string{"QISKIT_IBM_TOKEN": "k", "QISKIT_IBM_INSTANCE": "crn:v1:c", "QISKIT_IBM_URL": "https://u", "QISKIT_IBM_CHANNEL": "ibm_cloud"}},
		{"aws-braket", map[string]string{"access_key_id": "a", "secret_access_key": "s", "session_token": "t", "region": "us-east-1"},
			map[string]string{"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}},
		{"azure-quantum", map[string]string{
			"tenant_id": "tn", "client_id": "cl", "client_secret": "cs", "location": "westeurope",
			"resource_id": "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-q/providers/Microsoft.Quantum/Workspaces/ws-1",
		}, map[string]string{
			"AZURE_TENANT_ID": "tn", "AZURE_CLIENT_ID": "cl", "AZURE_CLIENT_SECRET": "cs", "AZURE_QUANTUM_WORKSPACE_LOCATION": "westeurope",
			"AZURE_QUANTUM_SUBSCRIPTION_ID": "0b1f6471-1bf0-4dda-aec3-cb9272f09590", "AZURE_QUANTUM_WORKSPACE_RG": "rg-q", "AZURE_QUANTUM_WORKSPACE_NAME": "ws-1",
		}},
		{"dwave", map[string]string{"token": "d", "endpoint": "https://e", "region": "eu-central-1"},
			map[string]string{"DWAVE_API_TOKEN": "d", "DWAVE_API_ENDPOINT": "https://e", "DWAVE_API_REGION": "eu-central-1"}},
		{"ionq", map[string]string{"api_key": "i"}, map[string]string{"IONQ_API_KEY": "i"}},
		// Optional fields left out set nothing; constants are set anyway.
		{"ibm-quantum", map[string]string{"token": "k"}, map[string]string{"QISKIT_IBM_TOKEN": "k", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform"}},
	}
	for _, c := range cases {
		t.Run(c.provider, func(t *testing.T) {
			got, warnings := builtinProviders[c.provider].environment(c.provider, c.values)
			require.Equal(t, c.want, got)
			require.Empty(t, warnings)
			for name := range got {
				require.Empty(t, checkEnvName(name), "built-in %s sets a variable operators could not declare", name)
			}
		})
	}
}

// A token stored before the checks - a resource id of another form, a
// value with NUL - loses only the variables it cannot fill, with a warning
// that names the field and never the value.
func TestProviders_environmentOfTokensStoredBeforeTheChecks(t *testing.T) {
	got, warnings := builtinProviders["azure-quantum"].environment("azure-quantum", map[string]string{
		"tenant_id": "tn", "client_id": "cl\x00id", "client_secret": "secret-value-x", "resource_id": "secret-looking/resource",
	})
	require.Equal(t, map[string]string{"AZURE_TENANT_ID": "tn", "AZURE_CLIENT_SECRET": "secret-value-x"}, got)
	require.Len(t, warnings, 2)
	for _, warning := range warnings {
		require.NotContains(t, warning, "secret-looking")
		require.NotContains(t, warning, "cl\x00id")
	}
	require.Contains(t, warnings[0], "AZURE_CLIENT_ID")
	require.Contains(t, warnings[1], "AZURE_QUANTUM_SUBSCRIPTION_ID")
}

func TestProviders_operatorExtendsAndOverrides(t *testing.T) {
	env := newTestEnv(t)
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{
		"description": "Rigetti QCS", "required_fields": "api_key", "optional_fields": "region,qpu", "secret_fields": "api_key",
	})
	got := env.ok(logical.ReadOperation, "providers/rigetti", "", nil).Data
	require.Equal(t, false, got["built_in"])
	require.Equal(t, "Rigetti QCS", got["description"])
	require.Len(t, got["fields"], 3)
	require.Contains(t, env.ok(logical.ListOperation, "providers/", "", nil).Data["keys"], "rigetti")

	env.ok(logical.UpdateOperation, "providers/dwave", "", map[string]interface{}{"required_fields": "token", "optional_fields": "solver", "secret_fields": "token"})
	got = env.ok(logical.ReadOperation, "providers/dwave", "", nil).Data
	require.Equal(t, true, got["overridden"])
	require.Len(t, got["fields"], 2)

	// Deleting the override restores the built-in definition.
	env.ok(logical.DeleteOperation, "providers/dwave", "", nil)
	got = env.ok(logical.ReadOperation, "providers/dwave", "", nil).Data
	require.Equal(t, false, got["overridden"])
	require.Len(t, got["fields"], 3)
	require.Contains(t, env.userError(logical.DeleteOperation, "providers/dwave", "", nil), "built in")

	env.ok(logical.DeleteOperation, "providers/rigetti", "", nil)
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
}

// Operators declare each field's variables (field:VARIABLE, a field may
// feed several) and fixed variables, in the CLI's form or as JSON; resolve
// then hands a token's values out under them.
func TestProviders_operatorDeclaresEnvironmentVariables(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	resp := env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{
		"required_fields": "api_key", "optional_fields": "region,qpu", "secret_fields": "api_key",
		"env":           "api_key:QCS_API_KEY,region:QCS_REGION,region:RIGETTI_REGION",
		"env_constants": []interface{}{"QCS_PROFILE=planqk", "QCS_MODE=a=b"},
	})
	require.Equal(t, []string{"fields without an environment variable are left out of resolve's env and of the runtime read: qpu (declare them with env=field:VARIABLE)"}, resp.Warnings)
	got := env.ok(logical.ReadOperation, "providers/rigetti", "", nil).Data
	require.Equal(t, []map[string]interface{}{
		{"name": "api_key", "required": true, "secret": true, "env": []string{"QCS_API_KEY"}},
		{"name": "region", "required": false, "secret": false, "env": []string{"QCS_REGION", "RIGETTI_REGION"}},
		{"name": "qpu", "required": false, "secret": false, "env": []string{}},
	}, got["fields"])
	require.Equal(t, map[string]string{"QCS_PROFILE": "planqk", "QCS_MODE": "a=b"}, got["env_constants"])

	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/rigetti", alice, map[string]interface{}{"api_key": "rk", "region": "us", "qpu": "ankaa"})
	resolved := env.ok(logical.ReadOperation, "resolve/rigetti", alice, nil).Data
	require.Equal(t, map[string]string{
		"QCS_API_KEY": "rk", "QCS_REGION": "us", "RIGETTI_REGION": "us", "QCS_PROFILE": "planqk", "QCS_MODE": "a=b",
	}, resolved["env"])

	// JSON bodies: env as a list, env_constants as an object. A new
	// definition applies to tokens already stored.
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{
		"required_fields": "api_key", "optional_fields": "region,qpu",
		"env":           []interface{}{"api_key:RIGETTI_API_KEY", "qpu:RIGETTI_QPU"},
		"env_constants": map[string]interface{}{"QCS_PROFILE": "jobs"},
	})
	resolved = env.ok(logical.ReadOperation, "resolve/rigetti", alice, nil).Data
	require.Equal(t, map[string]string{"RIGETTI_API_KEY": "rk", "RIGETTI_QPU": "ankaa", "QCS_PROFILE": "jobs"}, resolved["env"])
}

func TestProviders_badDefinitions(t *testing.T) {
	env := newTestEnv(t)
	def := func(extra map[string]interface{}) map[string]interface{} {
		data := map[string]interface{}{"required_fields": "api_key", "optional_fields": "region"}
		for k, v := range extra {
			data[k] = v
		}
		return data
	}
	env.requireRefusedWithoutWrites(t, logical.UpdateOperation, "providers/rigetti", []badInput{
		{"no required fields", map[string]interface{}{"optional_fields": "a"}, "required_fields"},
		{"bad field name", map[string]interface{}{"required_fields": "API-Key"}, "API-Key"},
		{"reserved field name", map[string]interface{}{"required_fields": "source"}, "reserved"},
		{"field twice", map[string]interface{}{"required_fields": "a", "optional_fields": "a"}, "twice"},
		{"unknown secret field", map[string]interface{}{"required_fields": "a", "secret_fields": "b"}, "secret_fields"},
		{"too many fields", map[string]interface{}{"required_fields": strings.Repeat("f,", 33) + "f"}, "at most"},
		{"description too long", map[string]interface{}{"required_fields": "a", "description": strings.Repeat("d", 300)}, "description"},
		{"env without a colon", def(map[string]interface{}{"env": "api_key"}), "field:VARIABLE"},
		{"env of an unknown field", def(map[string]interface{}{"env": "token:QCS_TOKEN"}), `"token" is not one of`},
		{"env name with a dash", def(map[string]interface{}{"env": "api_key:QCS-KEY"}), "not a valid name"},
		{"env name starting with a digit", def(map[string]interface{}{"env": "api_key:1KEY"}), "not a valid name"},
		{"env name too long", def(map[string]interface{}{"env": "api_key:" + strings.Repeat("K", 129)}), "not a valid name"},
		{"env PATH", def(map[string]interface{}{"env": "api_key:PATH"}), "reserved"},
		{"env path in lower case", def(map[string]interface{}{"env": "api_key:path"}), "reserved"},
		{"env LD_PRELOAD", def(map[string]interface{}{"env": "api_key:LD_PRELOAD"}), "LD_"},
		{"env PYTHONPATH", def(map[string]interface{}{"env": "region:PYTHONPATH"}), "PYTHON"},
		{"env HTTPS_PROXY", def(map[string]interface{}{"env": "region:HTTPS_PROXY"}), "reserved"},
		{"env the engine's own", def(map[string]interface{}{"env": "api_key:PLANQK_PERSONAL_ACCESS_TOKEN"}), "PLANQK_"},
		{"env Vault's own", def(map[string]interface{}{"env": "api_key:VAULT_TOKEN"}), "VAULT_"},
		{"env fed twice", def(map[string]interface{}{"env": "api_key:QCS_KEY,region:QCS_KEY"}), "fed by both api_key and region"},
		{"env the same pair twice", def(map[string]interface{}{"env": "api_key:QCS_KEY,api_key:QCS_KEY"}), "fed by both"},
		{"env a field feeding too many", def(map[string]interface{}{"env": "region:R1,region:R2,region:R3,region:R4,region:R5,region:R6,region:R7,region:R8,region:R9"}), "at most 8"},
		{"constant fed by a field", def(map[string]interface{}{"env": "api_key:QCS_KEY", "env_constants": "QCS_KEY=x"}), "fed by field api_key"},
		{"constant reserved", def(map[string]interface{}{"env_constants": "LD_LIBRARY_PATH=/tmp"}), "LD_"},
		{"constant with NUL", def(map[string]interface{}{"env_constants": map[string]interface{}{"QCS_MODE": "a\x00b"}}), "NUL"},
		{"constant too long", def(map[string]interface{}{"env_constants": map[string]interface{}{"QCS_MODE": strings.Repeat("v", 1025)}}), "at most 1024"},
		{"constant not a pair", def(map[string]interface{}{"env_constants": "QCS_MODE"}), "env_constants"},
	})
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "providers/Bad_Name", "", map[string]interface{}{"required_fields": "a"}))
}

// FuzzBuildProvider checks that any definition is either refused with a
// message or yields fields that are valid, unique and not reserved, fed
// into variables that are valid, not reserved and fed by one field or
// constant only.
func FuzzBuildProvider(f *testing.F) {
	f.Add("token", "instance", "token", "token:QISKIT_IBM_TOKEN,instance:QISKIT_IBM_INSTANCE", "QISKIT_IBM_CHANNEL")
	f.Add("a,b", "", "b", "a:A,b:B,b:C", "D")
	f.Add("", "x", "", "", "")
	f.Add("source", "", "", "", "")
	f.Add("a,a", "b", "c", "a:A", "A")
	f.Add("a", "", "", "a:ld_preload", "")
	f.Add("a", "", "", "a:A", "PLANQK_X")
	f.Fuzz(func(t *testing.T, requiredFields, optionalFields, secretFields, envMappings, constantName string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		var constants map[string]string
		if constantName != "" {
			constants = map[string]string{constantName: "v"}
		}
		provider, msg := buildProvider("", split(requiredFields), split(optionalFields), split(secretFields), split(envMappings), constants)
		if msg != "" {
			return
		}
		seen := map[string]bool{}
		fed := map[string]bool{}
		for _, field := range provider.Fields {
			if !providerFieldRegex.MatchString(field.Name) || reservedFieldNames[field.Name] || seen[field.Name] {
				t.Fatalf("accepted field %q", field.Name)
			}
			seen[field.Name] = true
			for _, name := range field.Env {
				if checkEnvName(name) != "" || fed[name] {
					t.Fatalf("accepted variable %q", name)
				}
				fed[name] = true
			}
		}
		for name := range provider.EnvConstants {
			if checkEnvName(name) != "" || fed[name] {
				t.Fatalf("accepted constant %q", name)
			}
		}
	})
}

// The catalogue is served from memory; its list carries each entry as a
// read shows it.
func TestProviders_listCarriesEachEntryAndReadsAreServedFromMemory(t *testing.T) {
	env := newTestEnv(t)
	env.ok(logical.UpdateOperation, "providers/dwave", "", map[string]interface{}{"required_fields": "token", "secret_fields": "token"})
	list := env.ok(logical.ListOperation, "providers/", "", nil).Data
	keyInfo := list["key_info"].(map[string]interface{})
	require.Len(t, keyInfo, len(list["keys"].([]string)))

	env.storage.reset()
	for _, name := range list["keys"].([]string) {
		require.Equal(t, env.ok(logical.ReadOperation, "providers/"+name, "", nil).Data, keyInfo[name], name)
	}
	require.Equal(t, true, keyInfo["dwave"].(map[string]interface{})["overridden"])
	require.Equal(t, false, keyInfo["ionq"].(map[string]interface{})["overridden"])
	require.Equal(t, roundTrips{}, env.storage.counted())
}
