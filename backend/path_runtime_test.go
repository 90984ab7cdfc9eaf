package backend

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// runtimeEnvFixture: alice is a member of acme. acme has IBM Quantum and
// Braket tokens; alice has her own Braket and D-Wave tokens.
func runtimeEnvFixture(t *testing.T) (*testEnv, string) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.CreateOperation, "roles/jobs", "", map[string]interface{}{"ttl": "15m", "max_ttl": "2h", "scopes": "quantum_tokens"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", "", map[string]interface{}{"token": "acme-ibm", "instance": "crn:v1:acme"})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", "", map[string]interface{}{
		"access_key_id": "AKIAACME", "secret_access_key": "acme-aws-secret", "region": "eu-north-1",
	})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/aws-braket", alice, map[string]interface{}{
		"access_key_id": "AKIAALICE", "secret_access_key": "alice-aws-secret",
	})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave"})
	return env, alice
}

func TestRuntime_givesALeasedPATAndTheProviderTokensOfTheOrganizationContext(t *testing.T) {
	env, alice := runtimeEnvFixture(t)

	resp := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
	require.NotNil(t, resp.Secret)
	require.Equal(t, secretPATType, resp.Secret.InternalData["secret_type"])
	require.Equal(t, 15*time.Minute, resp.Secret.TTL)
	require.Equal(t, 2*time.Hour, resp.Secret.MaxTTL)
	require.True(t, resp.Secret.Renewable)
	require.Empty(t, resp.Warnings)

	token := resp.Data["token"].(string)
	require.Equal(t, map[string]string{
		"PLANQK_PERSONAL_ACCESS_TOKEN": token,
		"PLANQK_ORGANIZATION_ID":       "acme",
		// acme's IBM Quantum token, with the channel its SDK needs.
		"QISKIT_IBM_TOKEN": "acme-ibm", "QISKIT_IBM_INSTANCE": "crn:v1:acme", "QISKIT_IBM_CHANNEL": "ibm_quantum_platform",
		// acme's Braket token wins over alice's own.
		"AWS_ACCESS_KEY_ID": "AKIAACME", "AWS_SECRET_ACCESS_KEY": "acme-aws-secret",
		"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "eu-north-1",
		// acme has no D-Wave token: alice's own.
		"DWAVE_API_TOKEN": "alice-dwave",
	}, resp.Data["env"])
	require.Equal(t, map[string]string{"ibm-quantum": "organization", "aws-braket": "organization", "dwave": "user"}, resp.Data["providers"])
	wantDotenv, err := renderDotenv(resp.Data["env"].(map[string]string))
	require.NoError(t, err)
	require.Equal(t, wantDotenv, resp.Data["dotenv"])
	require.Equal(t, "acme", resp.Data["org"])
	require.Equal(t, []string{"quantum_tokens"}, resp.Data["scopes"])
	for key := range resp.Secret.InternalData {
		require.NotEqual(t, token, resp.Secret.InternalData[key], "the secret must not travel in internal data (%s)", key)
	}

	// The PAT is an ordinary leased PAT of the role: it verifies, and
	// revoking the lease revokes it.
	got := env.verify(token)
	require.Equal(t, true, got["active"])
	require.Equal(t, "jobs", got["role"])
	require.Equal(t, "alice", got["user"])
	require.Equal(t, []string{"quantum_tokens"}, got["scopes"])
	_, err = env.b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.RevokeOperation, Path: "users/alice/runtime/jobs", Storage: env.storage, Secret: resp.Secret,
	})
	require.NoError(t, err)
	require.Equal(t, false, env.verify(token)["active"])
}

// Without org: the caller's own tokens and no organization id. PUT/POST
// take org in the body, as the Vault Secrets Operator sends it.
func TestRuntime_withoutOrganizationAndByWrite(t *testing.T) {
	env, alice := runtimeEnvFixture(t)

	resp := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil)
	token := resp.Data["token"].(string)
	require.Equal(t, map[string]string{
		"PLANQK_PERSONAL_ACCESS_TOKEN": token,
		"AWS_ACCESS_KEY_ID":            "AKIAALICE", "AWS_SECRET_ACCESS_KEY": "alice-aws-secret",
		"DWAVE_API_TOKEN": "alice-dwave",
	}, resp.Data["env"])
	require.Equal(t, map[string]string{"aws-braket": "user", "dwave": "user"}, resp.Data["providers"])
	require.Equal(t, "", resp.Data["org"])

	resp = env.ok(logical.UpdateOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
	require.NotNil(t, resp.Secret)
	require.Equal(t, "acme", resp.Data["env"].(map[string]string)["PLANQK_ORGANIZATION_ID"])
	require.Equal(t, "acme-ibm", resp.Data["env"].(map[string]string)["QISKIT_IBM_TOKEN"])
}

// Two providers feeding one variable are never mixed: organization tokens
// win over the caller's own, then the provider first in name order; the
// loser is left out whole and a warning names both.
func TestRuntime_conflictsAreResolvedDeterministicallyAndSaid(t *testing.T) {
	cases := []struct {
		name        string
		orgTokens   map[string]map[string]interface{}
		userTokens  map[string]map[string]interface{}
		wantChannel string
		wantToken   string
		providers   map[string]string
		warning     string
	}{
		{
			name:        "the organization's token wins over the caller's own",
			orgTokens:   map[string]map[string]interface{}{"ibm-quantum": {"token": "org-quantum"}},
			userTokens:  map[string]map[string]interface{}{"ibm-cloud": {"api_key": "own-cloud", "service_crn": "crn:own"}},
			wantChannel: "ibm_quantum_platform", wantToken: "org-quantum",
			providers: map[string]string{"ibm-quantum": "organization"},
			warning:   `providers "ibm-quantum" and "ibm-cloud" both set QISKIT_IBM_CHANNEL, QISKIT_IBM_TOKEN: the organization token of "ibm-quantum" is used, the user token of "ibm-cloud" is left out`,
		},
		{
			name:        "the caller's own token wins the other way round too",
			orgTokens:   map[string]map[string]interface{}{"ibm-cloud": {"api_key": "org-cloud"}},
			userTokens:  map[string]map[string]interface{}{"ibm-quantum": {"token": "own-quantum", "instance": "crn:own"}},
			wantChannel: "ibm_cloud", wantToken: "org-cloud",
			providers: map[string]string{"ibm-cloud": "organization"},
			warning:   `providers "ibm-cloud" and "ibm-quantum" both set QISKIT_IBM_CHANNEL, QISKIT_IBM_TOKEN: the organization token of "ibm-cloud" is used, the user token of "ibm-quantum" is left out`,
		},
		{
			name: "among the organization's tokens, name order",
			orgTokens: map[string]map[string]interface{}{
				"ibm-quantum": {"token": "org-quantum", "instance": "crn:q"},
				"ibm-cloud":   {"api_key": "org-cloud", "service_crn": "crn:c"},
			},
			wantChannel: "ibm_cloud", wantToken: "org-cloud",
			providers: map[string]string{"ibm-cloud": "organization"},
			warning:   `providers "ibm-cloud" and "ibm-quantum" both set QISKIT_IBM_CHANNEL, QISKIT_IBM_INSTANCE, QISKIT_IBM_TOKEN: the organization token of "ibm-cloud" is used, the organization token of "ibm-quantum" is left out`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			alice := env.addUser("alice")
			env.setRole(alice, "acme", "member")
			env.ok(logical.CreateOperation, "roles/jobs", "", nil)
			for provider, values := range c.orgTokens {
				env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/"+provider, "", values)
			}
			for provider, values := range c.userTokens {
				env.ok(logical.UpdateOperation, "users/alice/provider-tokens/"+provider, alice, values)
			}
			// The same answer every time, whatever the order maps iterate in.
			for i := 0; i < 5; i++ {
				resp := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
				vars := resp.Data["env"].(map[string]string)
				require.Equal(t, c.wantChannel, vars["QISKIT_IBM_CHANNEL"])
				require.Equal(t, c.wantToken, vars["QISKIT_IBM_TOKEN"])
				require.Equal(t, c.providers, resp.Data["providers"])
				require.Equal(t, []string{c.warning}, resp.Warnings)
			}
		})
	}
}

// An operator-defined provider whose entry names no variables gives
// nothing, and says so.
func TestRuntime_providersWithoutVariablesAreLeftOutWithAWarning(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/rigetti", alice, map[string]interface{}{"api_key": "rk"})
	resp := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil)
	require.Len(t, resp.Data["env"], 1)
	require.Equal(t, []string{`provider "rigetti": the catalogue names no environment variable for the fields of its user token, which is left out`}, resp.Warnings)
}

// Credentials may hold anything but NUL; the dotenv text gives a shell
// back exactly the env map.
func TestRuntime_dotenvCarriesHostileValuesExactly(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "member")
	env.ok(logical.CreateOperation, "roles/jobs", "", nil)
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/aws-braket", "", map[string]interface{}{
		"access_key_id": hostileValues["QUOTES"], "secret_access_key": hostileValues["PEM"], "session_token": hostileValues["DOLLAR"],
	})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/ionq", alice, map[string]interface{}{"api_key": hostileValues["BACKSLASH"] + hostileValues["NEWLINES"]})
	resp := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
	want := resp.Data["env"].(map[string]string)
	require.Len(t, want, 6)
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	for _, shell := range shells(t) {
		require.Equal(t, want, sourceInShell(t, shell, resp.Data["dotenv"].(string), names), shell)
	}
}

func TestRuntime_refusalsIssueNothing(t *testing.T) {
	env, alice := runtimeEnvFixture(t)
	bob := env.addUser("bob")
	env.setRole(bob, "globex", "owner")
	before := env.storageSnapshot()

	require.Contains(t, env.refusal(403, logical.ReadOperation, "users/bob/runtime/jobs", bob, map[string]interface{}{"org": "acme"}), `"bob" is not a member of organization "acme"`)
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/jobs", bob, map[string]interface{}{"org": "acme"}), `"bob"`)
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/jobs", "", nil), "user accounts")
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/missing", alice, nil), `role "missing" does not exist`)
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "a..b"}), "org is not a valid name")
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/a..b", alice, nil), "role is not a valid name")
	env.disableEntity(alice)
	require.Equal(t, 403, env.statusOf(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil))
	require.Equal(t, before, env.storageSnapshot())
}

// The per-user cap counts creds' and the runtime's leases together: they
// are one kind of lease.
func TestRuntime_sharesThePerUserLeaseCapWithCreds(t *testing.T) {
	env, alice := runtimeEnvFixture(t)
	ctx := context.Background()
	env.ok(logical.ReadOperation, "users/alice/creds/jobs", alice, nil)
	env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil)
	for i := 2; i < maxLeasesPerUser; i++ {
		record := &tokenRecord{Hash: fmt.Sprintf("%064x", i), TokenID: fmt.Sprint(i), EntityID: alice, Role: "jobs"}
		require.NoError(t, env.b.putLeaseMarker(ctx, env.storage, record))
	}
	env.b.leaseCounts.purge()
	before := env.storageSnapshot()
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"}), fmt.Sprint(maxLeasesPerUser))
	require.Contains(t, env.userError(logical.ReadOperation, "users/alice/creds/jobs", alice, nil), fmt.Sprint(maxLeasesPerUser))
	require.Equal(t, before, env.storageSnapshot())
}

// Cold, the read gets the organization's token of each catalogue provider
// and the caller's own of each the organization lacks - reads, no lists;
// warm, provider tokens and their absence come from the cache. Either way
// it stores the PAT as creds does (record and lease marker): no catalogue,
// role, configuration or identity round trip.
func TestRuntime_storageRoundTrips(t *testing.T) {
	env, alice := runtimeEnvFixture(t)
	env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})

	catalogue, err := env.b.catalogue(context.Background(), env.storage)
	require.NoError(t, err)
	providers := int64(len(catalogue))

	env.storage.reset()
	env.b.providerTokens.purge()
	lookups := env.sys.lookups.Load()
	env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
	// Cold: acme's token of every provider, then alice's own of each
	// provider acme has none of (ibm-quantum and aws-braket are acme's:
	// alice's own aws-braket is never read).
	require.Equal(t, roundTrips{Gets: providers + providers - 2, Puts: 3}, env.storage.counted())
	require.Equal(t, lookups, env.sys.lookups.Load())

	// Tokens and their absence are cached: a warm read stores the lease
	// (record, marker, counter shard) and reads nothing.
	env.storage.reset()
	env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, map[string]interface{}{"org": "acme"})
	require.Equal(t, roundTrips{Puts: 3}, env.storage.counted())

	env.storage.reset()
	env.b.providerTokens.purge()
	env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil)
	require.Equal(t, roundTrips{Gets: providers, Puts: 3}, env.storage.counted())
}

// A provider another node defines reaches this node's runtime reads once
// Vault invalidates the key.
func TestRuntime_catalogueChangesOnAnotherNodeAreSeen(t *testing.T) {
	env, alice := runtimeEnvFixture(t)
	ctx := context.Background()
	env.ok(logical.UpdateOperation, "providers/rigetti", "", map[string]interface{}{"required_fields": "api_key", "env": "api_key:RIGETTI_API_KEY"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/rigetti", alice, map[string]interface{}{"api_key": "rk"})
	require.Equal(t, "rk", env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil).Data["env"].(map[string]string)["RIGETTI_API_KEY"])

	entry, err := logical.StorageEntryJSON(providerPrefix+"rigetti", &providerEntry{
		Fields: []providerField{{Name: "api_key", Required: true, Env: []string{"QCS_API_KEY"}}},
	})
	require.NoError(t, err)
	require.NoError(t, env.storage.Put(ctx, entry))
	env.b.invalidate(ctx, providerPrefix+"rigetti")
	vars := env.ok(logical.ReadOperation, "users/alice/runtime/jobs", alice, nil).Data["env"].(map[string]string)
	require.Equal(t, "rk", vars["QCS_API_KEY"])
	require.NotContains(t, vars, "RIGETTI_API_KEY")
}
