package backend

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestRoles_lifecycle(t *testing.T) {
	env := newTestEnv(t)
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"description": "job runtimes"})
	require.Equal(t, map[string]interface{}{"ttl": int64(3600), "max_ttl": int64(86400), "description": "job runtimes", "scopes": []string{}},
		env.ok(logical.ReadOperation, "roles/runtime", "", nil).Data)

	env.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "15m"})
	got := env.ok(logical.ReadOperation, "roles/runtime", "", nil).Data
	require.Equal(t, int64(900), got["ttl"])
	require.Equal(t, "job runtimes", got["description"], "an update keeps what it does not set")

	env.ok(logical.CreateOperation, "roles/batch", "", nil)
	require.Equal(t, []string{"batch", "runtime"}, env.ok(logical.ListOperation, "roles/", "", nil).Data["keys"])

	env.ok(logical.DeleteOperation, "roles/runtime", "", nil)
	require.Equal(t, 404, env.statusOf(logical.ReadOperation, "roles/runtime", "", nil))
	require.Equal(t, []string{"batch"}, env.ok(logical.ListOperation, "roles/", "", nil).Data["keys"])
}

func TestRoles_existenceCheckSeparatesCreateFromUpdate(t *testing.T) {
	env := newTestEnv(t)
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "roles/runtime", Storage: env.storage}
	checkFound, exists, err := env.b.HandleExistenceCheck(context.Background(), req)
	require.NoError(t, err)
	require.True(t, checkFound)
	require.False(t, exists)
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	_, exists, err = env.b.HandleExistenceCheck(context.Background(), req)
	require.NoError(t, err)
	require.True(t, exists)
}

func TestRoles_badInput(t *testing.T) {
	env := newTestEnv(t)
	env.requireRefusedWithoutWrites(t, logical.CreateOperation, "roles/runtime", []badInput{
		{"ttl over max_ttl", map[string]interface{}{"ttl": "2h", "max_ttl": "1h"}, "ttl"},
		{"zero ttl", map[string]interface{}{"ttl": "0"}, "ttl"},
		{"zero max_ttl", map[string]interface{}{"max_ttl": "0"}, "max_ttl"},
		{"ttl not a duration", map[string]interface{}{"ttl": "a while"}, "ttl"},
		{"long description", map[string]interface{}{"description": string(make([]byte, 300))}, "description"},
	})
}
