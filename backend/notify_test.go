package backend

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

// recordingEventSender plays Vault's event bus.
type recordingEventSender struct {
	mu     sync.Mutex
	events []recordedEvent
	err    error // returned by every send when set
}

type recordedEvent struct {
	Type string
	Data *logical.EventData
}

func (r *recordingEventSender) SendEvent(_ context.Context, eventType logical.EventType, data *logical.EventData) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, recordedEvent{Type: string(eventType), Data: data})
	return r.err
}

func (r *recordingEventSender) sent() []recordedEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recordedEvent(nil), r.events...)
}

func (r *recordingEventSender) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}

// metadataOf returns an event's metadata as strings.
func metadataOf(event recordedEvent) map[string]string {
	out := map[string]string{}
	for key, value := range event.Data.GetMetadata().GetFields() {
		out[key] = value.GetStringValue()
	}
	return out
}

// hexHMAC matches what a stored token hash looks like.
var hexHMAC = regexp.MustCompile(`[0-9a-f]{64}`)

// lifecycleSecrets walks every kind of lifecycle change as a user would and
// returns the secrets it saw: PATs and provider token values.
func lifecycleSecrets(t *testing.T, env *testEnv) []string {
	t.Helper()
	alice := env.addUser("alice")
	env.setRole(alice, "acme", "owner")
	env.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m"})

	created := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	rotated := env.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", alice, nil).Data["token"].(string)
	env.ok(logical.DeleteOperation, "users/alice/tokens/laptop", alice, nil)

	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	leased := lease.Data["token"].(string)
	_, err := env.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: env.storage, Secret: lease.Secret})
	require.NoError(t, err)

	userToken := "dwave-token-of-alice-0001"
	orgToken := "ibm-token-of-acme-0002"
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": userToken})
	env.ok(logical.DeleteOperation, "users/alice/provider-tokens/dwave", alice, nil)
	env.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, map[string]interface{}{"token": orgToken})
	env.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ibm-quantum", alice, nil)
	return []string{created, rotated, leased, userToken, orgToken}
}

// lifecycleTypes are the events lifecycleSecrets causes, in order.
var lifecycleTypes = []string{
	eventPATCreated, eventPATRotated, eventPATRevoked, eventLeaseIssued, eventLeaseRevoked,
	eventProviderTokenWritten, eventProviderTokenDeleted, eventProviderTokenWritten, eventProviderTokenDeleted,
}

func TestNotify_vaultEventForEveryLifecycleChange(t *testing.T) {
	env := newTestEnv(t)
	secrets := lifecycleSecrets(t, env)
	alice := "entity-alice"

	events := env.events.sent()
	var types []string
	for _, event := range events {
		types = append(types, strings.TrimPrefix(event.Type, "planqk/"))
		require.True(t, strings.HasPrefix(event.Type, "planqk/"), event.Type)
	}
	require.Equal(t, lifecycleTypes, types)

	ids := map[string]bool{}
	for _, event := range events {
		require.NotEmpty(t, event.Data.Id)
		require.False(t, ids[event.Data.Id], "event ids are unique")
		ids[event.Data.Id] = true
		metadata := metadataOf(event)
		require.Equal(t, "true", metadata["modified"], event.Type)
		_, err := time.Parse(time.RFC3339Nano, metadata["at"])
		require.NoError(t, err)
		for key, value := range metadata {
			for _, secret := range secrets {
				require.NotContains(t, value, secret, "%s metadata %s", event.Type, key)
			}
			require.False(t, hexHMAC.MatchString(value), "%s metadata %s looks like a token hash: %s", event.Type, key, value)
		}
	}

	created := metadataOf(events[0])
	require.Equal(t, "users/alice/tokens/laptop", created["path"], "Vault prepends the mount path itself")
	require.Equal(t, created["path"], created["data_path"], "subscription filters test data_path")
	require.Equal(t, "pat-created", created["operation"])
	require.Equal(t, alice, created["entity_id"])
	require.Equal(t, "alice", created["user"])
	require.Equal(t, "laptop", created["name"])
	require.Equal(t, "named", created["kind"])
	require.NotEmpty(t, created["token_id"])
	require.NotEmpty(t, created["expires_at"])
	require.Equal(t, []string{alice, created["token_id"]}, events[0].Data.EntityIds)

	rotated := metadataOf(events[1])
	require.Equal(t, created["token_id"], rotated["replaced_token_id"])
	require.Equal(t, "deleted", metadataOf(events[2])["reason"])

	issued := metadataOf(events[3])
	require.Equal(t, "users/alice/creds/runtime", issued["path"])
	require.Equal(t, "lease", issued["kind"])
	require.Equal(t, issued["token_id"], metadataOf(events[4])["token_id"])

	userWritten := metadataOf(events[5])
	require.Equal(t, "users/alice/provider-tokens/dwave", userWritten["path"])
	require.Equal(t, "dwave", userWritten["name"])
	require.Equal(t, alice, userWritten["entity_id"])
	orgWritten := metadataOf(events[7])
	require.Equal(t, "orgs/acme/provider-tokens/ibm-quantum", orgWritten["path"])
	require.Equal(t, "acme", orgWritten["org"])
	require.Equal(t, "", orgWritten["entity_id"])
	require.Nil(t, events[7].Data.EntityIds)
}

func TestNotify_remindersAreNotModifications(t *testing.T) {
	env := newTestEnv(t)
	record := &tokenRecord{TokenID: "t-1", Name: "ci", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	event := patEvent(eventPATExpiring, "entity-alice", "alice", record)
	event.Details["threshold"] = "1h0m0s"
	env.b.notify(context.Background(), env.storage, event)

	sent := env.events.sent()
	require.Len(t, sent, 1)
	require.Equal(t, "planqk/pat-expiring", sent[0].Type)
	metadata := metadataOf(sent[0])
	require.NotContains(t, metadata, "modified")
	require.Equal(t, "1h0m0s", metadata["threshold"])
	require.False(t, event.At.IsZero(), "notify stamps the time")
}

// An event sender that fails never fails the operation; Community Edition's
// missing sender is not even worth a log line.
func TestNotify_eventSenderFailuresNeverFailTheOperation(t *testing.T) {
	for _, c := range []struct {
		name    string
		sender  logical.EventSender
		logsErr bool
	}{
		{"no event sender", nil, false},
		{"sender fails", &recordingEventSender{err: errors.New("event bus unavailable")}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			config := logical.TestBackendConfig()
			config.StorageView = &logical.InmemStorage{}
			config.System = &testSystemView{entities: map[string]*logical.Entity{"entity-alice": {ID: "entity-alice", Name: "alice"}}, groups: map[string][]*logical.Group{}}
			config.Logger = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug})
			config.EventsSender = c.sender
			raw, err := Factory(context.Background(), config)
			require.NoError(t, err)
			b := raw.(*backend)
			t.Cleanup(func() { b.Cleanup(context.Background()) })

			resp, err := b.HandleRequest(context.Background(), &logical.Request{
				Operation: logical.UpdateOperation, Path: "users/alice/tokens/laptop", Storage: config.StorageView, EntityID: "entity-alice",
			})
			require.NoError(t, err)
			require.False(t, resp.IsError(), "%v", resp.Error())
			require.NotEmpty(t, resp.Data["token"])
			require.Equal(t, c.logsErr, strings.Contains(logs.String(), "sending a Vault event failed"), logs.String())
		})
	}
}

// Cost on the request path: without a webhook_url an event adds no storage
// round trip; with one it adds exactly one Put, the outbox entry - none
// when the event is over its owner's share.
func TestNotify_webhookCostsOnePutOnlyWhenConfigured(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	env.createToken("alice", alice, "warm", nil) // caches, owner registration, HMAC key
	// The worker is stopped so that its own storage reads are not counted.
	env.b.webhooks.stop()

	measure := func(name string) roundTrips {
		env.storage.reset()
		env.createToken("alice", alice, name, nil)
		return env.storage.counted()
	}
	off := measure("off")

	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": "http://127.0.0.1:9/hook"})
	measure("warm-again")
	on := measure("on")

	require.Equal(t, off.Puts+1, on.Puts, "with a webhook_url: off %+v, on %+v", off, on)
	require.Equal(t, off.Gets, on.Gets)
	require.Equal(t, off.Lists, on.Lists)
	require.Equal(t, off.Deletes, on.Deletes)
	require.Equal(t, 2, env.b.webhooks.outbox.pendingCount())

	// Past its owner's share an event is counted, not stored: no write.
	env.b.webhooks.outbox.share = 2
	over := measure("over-the-share")
	require.Equal(t, off.Puts, over.Puts, "a suppressed event: off %+v, over %+v", off, over)
	require.Equal(t, off.Gets, over.Gets)
	require.Equal(t, 2, env.b.webhooks.outbox.pendingCount())
}

// Community Edition drops plugin events (only Enterprise lets anyone
// subscribe), so the engine does not send them there; Enterprise, and a
// Vault that does not say, get every event.
func TestNotify_vaultEventsOnlyWhereSomeoneCanSubscribe(t *testing.T) {
	for _, c := range []struct {
		name string
		env  *logical.PluginEnvironment
		sent int
	}{
		{"community edition", &logical.PluginEnvironment{VaultVersion: "1.21.0"}, 0},
		{"enterprise", &logical.PluginEnvironment{VaultVersion: "1.21.0", VaultVersionMetadata: "ent"}, 1},
		{"enterprise with HSM", &logical.PluginEnvironment{VaultVersion: "1.21.0", VaultVersionMetadata: "ent.hsm"}, 1},
		{"unknown", nil, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := newTestEnv(t)
			env.sys.PluginEnvironment = c.env
			alice := env.addUser("alice")
			env.createToken("alice", alice, "laptop", nil)
			require.Len(t, env.events.sent(), c.sent)
		})
	}
}

// "With a webhook_url, an event costs one storage write": for every event
// type. Two engines take the same steps in lockstep, one without a
// webhook_url and one with; each step may write on the second exactly as
// many more times as it caused events, and every event type is caused by
// some step. (Reads are not compared: tidy is polled.)
func TestNotify_oneStorageWritePerEventOfEveryType(t *testing.T) {
	off, on := newTestEnv(t), newTestEnv(t)
	on.b.webhooks.stop() // its deliveries would write too
	on.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"webhook_url": "http://127.0.0.1:9/hook"})
	envs := []*testEnv{off, on}
	var leases [2]*logical.Secret
	steps := []struct {
		name  string
		do    func(i int, e *testEnv)
		types []string
	}{
		{"setup", func(_ int, e *testEnv) {
			e.addUser("alice")
			e.addUser("bob")
			e.setRole("entity-alice", "acme", "owner")
			e.ok(logical.UpdateOperation, "roles/runtime", "", map[string]interface{}{"ttl": "10m"})
			e.createToken("bob", "entity-bob", "warm", nil)
		}, []string{eventPATCreated}},
		{"create", func(_ int, e *testEnv) { e.createToken("alice", "entity-alice", "laptop", nil) }, []string{eventPATCreated}},
		{"rotate", func(_ int, e *testEnv) {
			e.ok(logical.UpdateOperation, "users/alice/tokens/laptop/rotate", "entity-alice", nil)
		}, []string{eventPATRotated}},
		{"delete", func(_ int, e *testEnv) {
			e.ok(logical.DeleteOperation, "users/alice/tokens/laptop", "entity-alice", nil)
		}, []string{eventPATRevoked}},
		{"lease", func(i int, e *testEnv) {
			leases[i] = e.ok(logical.ReadOperation, "users/alice/creds/runtime", "entity-alice", nil).Secret
		}, []string{eventLeaseIssued}},
		{"lease revoked", func(i int, e *testEnv) {
			_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.storage, Secret: leases[i]})
			require.NoError(t, err)
		}, []string{eventLeaseRevoked}},
		{"user provider token", func(_ int, e *testEnv) {
			e.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", "entity-alice", map[string]interface{}{"token": "alice-dwave-0001"})
		}, []string{eventProviderTokenWritten}},
		{"user provider token deleted", func(_ int, e *testEnv) {
			e.ok(logical.DeleteOperation, "users/alice/provider-tokens/dwave", "entity-alice", nil)
		}, []string{eventProviderTokenDeleted}},
		{"org provider token", func(_ int, e *testEnv) {
			e.ok(logical.UpdateOperation, "orgs/acme/provider-tokens/ionq", "entity-alice", map[string]interface{}{"api_key": "acme-ionq-0002"})
		}, []string{eventProviderTokenWritten}},
		{"org provider token deleted", func(_ int, e *testEnv) {
			e.ok(logical.DeleteOperation, "orgs/acme/provider-tokens/ionq", "entity-alice", nil)
		}, []string{eventProviderTokenDeleted}},
		{"soon expiring", func(_ int, e *testEnv) {
			e.createToken("alice", "entity-alice", "soon", map[string]interface{}{"ttl": "10h"})
		}, []string{eventPATCreated}},
		{"sweep: pat reminder", func(_ int, e *testEnv) { e.tidy(nil) }, []string{eventPATExpiring}},
		{"expiring provider token", func(_ int, e *testEnv) {
			e.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", "entity-alice", map[string]interface{}{
				"token": "alice-dwave-0003", "expires_at": time.Now().Add(10 * time.Hour).UTC().Format(time.RFC3339),
			})
		}, []string{eventProviderTokenWritten}},
		{"sweep: provider token reminder", func(_ int, e *testEnv) { e.tidy(nil) }, []string{eventProviderTokenExpiring}},
		{"expired", func(_ int, e *testEnv) {
			e.createToken("alice", "entity-alice", "brief", map[string]interface{}{"ttl": "1h"})
			e.ageNamedToken("entity-alice", "brief", 2*time.Hour)
		}, []string{eventPATCreated}},
		{"sweep: expired", func(_ int, e *testEnv) { e.tidy(nil) }, []string{eventPATExpired}},
		{"sweep: offboarding", func(_ int, e *testEnv) {
			e.deleteEntity("entity-bob")
			e.tidy(nil)
		}, []string{eventPATRevoked, eventUserOffboarded}},
	}
	covered := map[string]bool{}
	for _, step := range steps {
		var puts [2]int64
		for i, e := range envs {
			e.events.reset()
			e.storage.reset()
			step.do(i, e)
			puts[i] = e.storage.counted().Puts
		}
		var types []string
		for _, event := range on.events.sent() {
			types = append(types, strings.TrimPrefix(event.Type, vaultEventTypePrefix))
		}
		require.ElementsMatch(t, step.types, types, step.name)
		require.Equal(t, puts[0]+int64(len(types)), puts[1], "%s: %v cost %d writes without a webhook_url and %d with one", step.name, types, puts[0], puts[1])
		for _, eventType := range types {
			covered[eventType] = true
		}
	}
	for _, eventType := range []string{
		eventPATCreated, eventPATRotated, eventPATRevoked, eventPATExpiring, eventPATExpired, eventLeaseIssued, eventLeaseRevoked,
		eventProviderTokenWritten, eventProviderTokenDeleted, eventProviderTokenExpiring, eventUserOffboarded,
	} {
		require.True(t, covered[eventType], "no step caused %s", eventType)
	}
}
