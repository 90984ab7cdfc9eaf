package backend

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestDueNotice(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	thresholds := []time.Duration{168 * time.Hour, 24 * time.Hour}
	for _, c := range []struct {
		name     string
		left     time.Duration
		sent     []string
		due      string
		notified []string
	}{
		{"far away", 200 * time.Hour, nil, "", nil},
		{"within a week", 100 * time.Hour, nil, "168h0m0s", []string{"168h0m0s"}},
		{"within a week, reminded", 100 * time.Hour, []string{"168h0m0s"}, "", nil},
		{"within a day", 20 * time.Hour, []string{"168h0m0s"}, "24h0m0s", []string{"168h0m0s", "24h0m0s"}},
		{"both at once: one reminder, for the nearest", 10 * time.Hour, nil, "24h0m0s", []string{"168h0m0s", "24h0m0s"}},
		{"all reminded", 10 * time.Hour, []string{"168h0m0s", "24h0m0s"}, "", nil},
		{"expired", -time.Hour, nil, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			due, notified := dueNotice(now.Add(c.left), now, thresholds, c.sent)
			require.Equal(t, c.due, due)
			require.Equal(t, c.notified, notified)
		})
	}
	due, _ := dueNotice(time.Time{}, now, thresholds, nil)
	require.Empty(t, due, "no expiry, no reminder")
}

// Reminders are due once per token and threshold, across sweeps; what was
// reminded is stored with the token.
func TestExpiryNotices_oncePerTokenAndThreshold(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.createToken("alice", alice, "soon", map[string]interface{}{"ttl": "30h"})
	env.createToken("alice", alice, "later", map[string]interface{}{"ttl": "720h"})
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{
		"token": "t", "expires_at": time.Now().Add(100 * time.Hour).UTC().Format(time.RFC3339),
	})
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", alice, map[string]interface{}{
		"api_key": "k", "expires_at": time.Now().Add(10 * time.Hour).UTC().Format(time.RFC3339),
	})

	require.Equal(t, 3, env.tidy(nil)["notices_sent"], "the PAT's 168h, the user's token's 168h, the org's 24h")
	require.Equal(t, 0, env.tidy(nil)["notices_sent"], "never twice")

	index, err := getTokenIndex(ctx, env.storage, alice)
	require.NoError(t, err)
	require.Equal(t, []string{"168h0m0s"}, index.Tokens["soon"].NoticesSent)
	require.Empty(t, index.Tokens["later"].NoticesSent)
	org, err := getProviderToken(ctx, env.storage, orgProviderTokenPrefix(testOrgID("acme")), "ionq")
	require.NoError(t, err)
	require.Equal(t, []string{"168h0m0s", "24h0m0s"}, org.NoticesSent)

	// A day later the PAT crosses 24h: one more reminder.
	env.ageNamedToken(alice, "soon", 10*time.Hour)
	require.Equal(t, 1, env.tidy(nil)["notices_sent"])
	require.Equal(t, 0, env.tidy(nil)["notices_sent"])

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"expiry_notices": ""})
	env.ageNamedToken(alice, "later", 700*time.Hour)
	require.Equal(t, 0, env.tidy(nil)["notices_sent"], "expiry_notices empty: no reminders")
}

// ageNamedToken moves a named token's life into the past by d.
func (e *testEnv) ageNamedToken(entityID, name string, d time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	index, err := getTokenIndex(ctx, e.storage, entityID)
	require.NoError(e.t, err)
	summary := index.Tokens[name]
	record, err := getTokenRecord(ctx, e.storage, summary.Hash)
	require.NoError(e.t, err)
	record.CreatedAt, record.ExpiresAt = record.CreatedAt.Add(-d), record.ExpiresAt.Add(-d)
	summary.CreatedAt, summary.ExpiresAt = record.CreatedAt, record.ExpiresAt
	require.NoError(e.t, putTokenRecord(ctx, e.storage, record))
	require.NoError(e.t, e.b.putTokenIndex(ctx, e.storage, entityID, index))
	e.b.records.remove(summary.Hash)
}
