package backend

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

func TestOffboarding_deletedEntityIsRemovedByTheNextSweep(t *testing.T) {
	env := newTestEnv(t)
	alice := env.addUser("alice")
	bob := env.addUser("bob")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	pat := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave"})
	bobs := env.createToken("bob", bob, "laptop", nil)["token"].(string)

	env.deleteEntity(alice)
	require.Equal(t, false, env.verify(pat)["active"], "at once, before any sweep")

	got := env.tidy(nil)
	require.Equal(t, 1, got["entities_offboarded"])
	require.NotContains(t, env.storageSnapshot(), ownerNamePath("alice"))
	require.Equal(t, false, env.verify(lease)["active"])
	require.Equal(t, true, env.verify(bobs)["active"])
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"])
	env.requireNothingLeftOf(alice)
}

// Within disabled_grace a disabled entity keeps everything, and its
// tokens verify again once it is enabled; after the grace it is offboarded.
func TestOffboarding_graceKeepsADisabledUsersTokens(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"disabled_grace": "72h"})
	pat := env.createToken("alice", alice, "laptop", nil)["token"].(string)

	env.disableEntity(alice)
	require.Equal(t, false, env.verify(pat)["active"])
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"])
	owner, err := getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	require.False(t, owner.InactiveSince.IsZero())

	env.enableEntity(alice)
	require.Equal(t, true, env.verify(pat)["active"], "back within the grace")
	env.tidy(nil)
	owner, err = getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	require.True(t, owner.InactiveSince.IsZero(), "the grace starts again next time")

	env.disableEntity(alice)
	env.tidy(nil)
	owner, err = getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	owner.InactiveSince = owner.InactiveSince.Add(-73 * time.Hour)
	require.NoError(t, putOwner(ctx, env.storage, owner))
	require.Equal(t, 1, env.tidy(nil)["entities_offboarded"])
	env.enableEntity(alice)
	require.Equal(t, false, env.verify(pat)["active"], "offboarded tokens do not come back")
}

// Disabling is not deleting: with the default configuration (and
// offboarding_grace 0) a disabled entity's tokens stop at once, survive
// every sweep for weeks, and work again when it is enabled.
func TestOffboarding_disablingKeepsEverythingByDefault(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.CreateOperation, "roles/runtime", "", nil)
	require.Equal(t, int64(30*24*3600), env.ok(logical.ReadOperation, "config", "", nil).Data["disabled_grace"])
	pat := env.createToken("alice", alice, "laptop", nil)["token"].(string)
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil).Data["token"].(string)
	env.ok(logical.UpdateOperation, "users/alice/provider-tokens/dwave", alice, map[string]interface{}{"token": "alice-dwave"})

	env.disableEntity(alice)
	require.Equal(t, false, env.verify(pat)["active"], "a disabled entity's PAT stops at once")
	require.Equal(t, false, env.verify(lease)["active"])
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"])
	owner, err := getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	require.Equal(t, inactiveDisabled, owner.InactiveReason)
	// Disabled for 29 days: still kept.
	owner.InactiveSince = owner.InactiveSince.Add(-29 * 24 * time.Hour)
	require.NoError(t, putOwner(ctx, env.storage, owner))
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"])

	env.enableEntity(alice)
	require.Equal(t, true, env.verify(pat)["active"], "back after re-enabling")
	require.Equal(t, true, env.verify(lease)["active"])
	require.Equal(t, "alice-dwave", env.ok(logical.ReadOperation, "resolve/dwave", alice, nil).Data["token"])
	env.tidy(nil)
	owner, err = getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	require.True(t, owner.InactiveSince.IsZero())
	require.Empty(t, owner.InactiveReason)
}

// disabled_grace 0 keeps a disabled entity's data while the entity exists;
// once it is deleted, offboarding_grace counts from the deletion.
func TestOffboarding_aDisabledEntityIsRemovedOnlyOnceDeleted(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"disabled_grace": 0, "offboarding_grace": "24h"})
	pat := env.createToken("alice", alice, "laptop", nil)["token"].(string)

	env.disableEntity(alice)
	env.tidy(nil)
	owner, err := getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	owner.InactiveSince = owner.InactiveSince.Add(-10 * 365 * 24 * time.Hour)
	require.NoError(t, putOwner(ctx, env.storage, owner))
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"], "disabled_grace 0: never removed while disabled")

	env.deleteEntity(alice)
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"], "the deletion grace starts at the deletion, not at the disablement")
	owner, err = getOwner(ctx, env.storage, alice)
	require.NoError(t, err)
	require.Equal(t, inactiveDeleted, owner.InactiveReason)
	require.WithinDuration(t, time.Now(), owner.InactiveSince, time.Minute)
	owner.InactiveSince = owner.InactiveSince.Add(-25 * time.Hour)
	require.NoError(t, putOwner(ctx, env.storage, owner))
	require.Equal(t, 1, env.tidy(nil)["entities_offboarded"])
	require.Equal(t, false, env.verify(pat)["active"])
	env.requireNothingLeftOf(alice)
}

func TestConfig_disabledGraceMustNotBeNegative(t *testing.T) {
	env := newTestEnv(t)
	require.Contains(t, env.userError(logical.UpdateOperation, "config", "", map[string]interface{}{"disabled_grace": -1}), "disabled_grace")
}

// requireNothingLeftOf fails if anything of the entity is stored once the
// due entries its offboarding left (expiries ahead) came due: sweeps then
// drop them without remembering the entity again.
func (e *testEnv) requireNothingLeftOf(entityID string) {
	e.t.Helper()
	for key := range e.storageSnapshot() {
		if !strings.HasPrefix(key, duePrefix) {
			require.False(e.t, strings.Contains(key, entityID), "offboarding left %s", key)
		}
	}
	e.sweepAt(time.Now().Add(40 * 24 * time.Hour))
	for key := range e.storageSnapshot() {
		require.False(e.t, strings.Contains(key, entityID), "left %s once its due entries came due", key)
	}
}
