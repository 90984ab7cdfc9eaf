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
		{"name": "access_key_id", "required": true, "secret": true},
		{"name": "secret_access_key", "required": true, "secret": true},
		{"name": "region", "required": false, "secret": false},
	}, got["fields"])

	want := map[string][]string{
		"ibm-quantum":   {"token", ";", "instance"},
		"ibm-cloud":     {"api_key", ";", "service_crn"},
		"aws-braket":    {"access_key_id", "secret_access_key", ";", "region"},
		"azure-quantum": {"tenant_id", "client_id", "client_secret", "resource_id", ";", "location"},
		"dwave":         {"token", ";"},
		"ionq":          {"api_key", ";"},
	}
	for name, fields := range want {
		var described []string
		requiredDone := false
		for _, f := range builtinProviders[name].Fields {
			if !f.Required && !requiredDone {
				described, requiredDone = append(described, ";"), true
			}
			described = append(described, f.Name)
		}
		if !requiredDone {
			described = append(described, ";")
		}
		require.Equal(t, fields, described, name)
	}
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
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
	require.Len(t, got["fields"], 1)
	require.Contains(t, env.userError(logical.DeleteOperation, "providers/dwave", "", nil), "built in")

	env.ok(logical.DeleteOperation, "providers/rigetti", "", nil)
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "providers/rigetti", "", nil))
}

func TestProviders_badDefinitions(t *testing.T) {
	env := newTestEnv(t)
	env.requireRefusedWithoutWrites(t, logical.UpdateOperation, "providers/rigetti", []badInput{
		{"no required fields", map[string]interface{}{"optional_fields": "a"}, "required_fields"},
		{"bad field name", map[string]interface{}{"required_fields": "API-Key"}, "API-Key"},
		{"reserved field name", map[string]interface{}{"required_fields": "source"}, "reserved"},
		{"field twice", map[string]interface{}{"required_fields": "a", "optional_fields": "a"}, "twice"},
		{"unknown secret field", map[string]interface{}{"required_fields": "a", "secret_fields": "b"}, "secret_fields"},
		{"too many fields", map[string]interface{}{"required_fields": strings.Repeat("f,", 33) + "f"}, "at most"},
		{"description too long", map[string]interface{}{"required_fields": "a", "description": strings.Repeat("d", 300)}, "description"},
	})
	require.Equal(t, 404, env.statusOf(logical.UpdateOperation, "providers/Bad_Name", "", map[string]interface{}{"required_fields": "a"}))
}

// FuzzBuildProvider checks that any definition is either refused with a
// message or yields fields that are valid, unique and not reserved.
func FuzzBuildProvider(f *testing.F) {
	f.Add("token", "instance", "token")
	f.Add("a,b", "", "b")
	f.Add("", "x", "")
	f.Add("source", "", "")
	f.Add("a,a", "b", "c")
	f.Fuzz(func(t *testing.T, requiredFields, optionalFields, secretFields string) {
		split := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, ",")
		}
		provider, msg := buildProvider("", split(requiredFields), split(optionalFields), split(secretFields))
		if msg != "" {
			return
		}
		seen := map[string]bool{}
		for _, field := range provider.Fields {
			if !providerFieldRegex.MatchString(field.Name) || reservedFieldNames[field.Name] || seen[field.Name] {
				t.Fatalf("accepted field %q", field.Name)
			}
			seen[field.Name] = true
		}
	})
}
