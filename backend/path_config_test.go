package backend

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestConfig_defaults(t *testing.T) {
	env := newTestEnv(t)
	require.Equal(t, map[string]interface{}{
		"token_prefix":            "plqk_",
		"default_ttl":             int64(720 * 3600),
		"max_ttl":                 int64(8760 * 3600),
		"identity_cache_ttl":      int64(5),
		"tidy_interval":           int64(3600),
		"scopes":                  []string{"api", "quantum_tokens"},
		"default_scopes":          []string{"api", "quantum_tokens"},
		"admin_groups":            []string{},
		"org_group_name_template": "",
		"expiry_notices":          []string{"168h0m0s", "24h0m0s"},
		"last_used_granularity":   int64(3600),
		"offboarding_grace":       int64(0),
		"disabled_grace":          int64(30 * 24 * 3600),
		"webhook_url":             "",
		"sts_endpoint":            "",
		"iam_endpoint":            "",
		"allowed_endpoints":       []string{},
	}, env.ok(logical.ReadOperation, "config", "", nil).Data)
}

func TestConfig_updateIsPartialAndPersisted(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	resp := env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"token_prefix": "acme_", "max_ttl": "0"})
	require.Len(t, resp.Warnings, 1)
	require.Contains(t, resp.Warnings[0], "acme_")

	// A fresh backend on the same storage reads what was stored.
	env.b.invalidate(context.Background(), configPath)
	got := env.ok(logical.ReadOperation, "config", "", nil).Data
	require.Equal(t, "acme_", got["token_prefix"])
	require.Equal(t, int64(0), got["max_ttl"])
	require.Equal(t, int64(720*3600), got["default_ttl"])

	token := env.createToken("alice", alice, "long", map[string]interface{}{"ttl": "100000h"})["token"].(string)
	require.Regexp(t, `^acme_[A-Za-z0-9]{36}$`, token)
	require.Equal(t, true, env.verify(token)["active"])

	// Tokens with the old prefix stop verifying once it changes.
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"token_prefix": "plqk_"})
	require.Equal(t, false, env.verify(token)["active"])
}

func TestConfig_badInput(t *testing.T) {
	env := newTestEnv(t)
	env.requireRefusedWithoutWrites(t, logical.UpdateOperation, "config", []badInput{
		{"prefix without underscore", map[string]interface{}{"token_prefix": "plqk"}, "token_prefix"},
		{"prefix upper case", map[string]interface{}{"token_prefix": "PLQK_"}, "token_prefix"},
		{"prefix empty", map[string]interface{}{"token_prefix": ""}, "token_prefix"},
		{"prefix too long", map[string]interface{}{"token_prefix": "abcdefghijklmnopq_"}, "token_prefix"},
		{"prefix of wrong type", map[string]interface{}{"token_prefix": []interface{}{"a"}}, "token_prefix"},
		{"zero default ttl", map[string]interface{}{"default_ttl": "0"}, "default_ttl"},
		{"default over max", map[string]interface{}{"default_ttl": "10h", "max_ttl": "5h"}, "default_ttl"},
		{"negative max", map[string]interface{}{"max_ttl": "-1h"}, "max_ttl"},
		{"max not a duration", map[string]interface{}{"max_ttl": "forever"}, "max_ttl"},
		{"identity cache too long", map[string]interface{}{"identity_cache_ttl": "1h"}, "identity_cache_ttl"},
		{"negative tidy interval", map[string]interface{}{"tidy_interval": "-1s"}, "tidy_interval"},
	})
}

func TestConfig_notificationsAndGovernance(t *testing.T) {
	env := newTestEnv(t)
	got := env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{
		"expiry_notices": "24h,720h,24h", "last_used_granularity": "15m", "offboarding_grace": "72h",
		"webhook_url": "https://hooks.example.com/planqk",
	}).Data
	require.Equal(t, []string{"720h0m0s", "24h0m0s"}, got["expiry_notices"], "longest first, repeats dropped")
	require.Equal(t, int64(900), got["last_used_granularity"])
	require.Equal(t, int64(72*3600), got["offboarding_grace"])
	require.Equal(t, "https://hooks.example.com/…", got["webhook_url"], "a path may carry the receiver's token: never shown")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": "http://127.0.0.1:9000/hook", "expiry_notices": ""})
	require.Equal(t, []string{}, env.ok(logical.ReadOperation, "config", "", nil).Data["expiry_notices"])

	before := env.storageSnapshot()
	for field, value := range map[string]string{
		"expiry_notices":        "soon",
		"last_used_granularity": "5s",
		"offboarding_grace":     "-1h",
		"webhook_url":           "http://hooks.example.com/planqk",
	} {
		require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{field: value}), field)
	}
	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": "https://user:pw@example.com/"}), "without credentials")
	require.Equal(t, before, env.storageSnapshot())
}

// Every setting survives storage exactly as written: read back through a
// backend that did not write it (another node, or after a restart).
func TestConfig_emptyListsSurviveStorage(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"default_scopes": "", "expiry_notices": "7d,1d,86400"})
	env.b.invalidate(context.Background(), configPath)
	got := env.ok(logical.ReadOperation, "config", "", nil).Data
	require.Equal(t, []string{}, got["default_scopes"], "no default scopes must not come back as the defaults")
	require.Equal(t, []string{"168h0m0s", "24h0m0s"}, got["expiry_notices"], "7d, 1d and seconds parse as every other duration")

	env.b.invalidate(context.Background(), configPath)
	created := env.createToken("alice", alice, "bare", nil)
	require.Empty(t, created["scopes"], "a token created without scopes gets the (empty) defaults")
	require.Empty(t, env.verify(created["token"].(string))["scopes"])
}
