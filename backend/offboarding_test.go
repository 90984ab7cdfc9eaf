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
	for key := range env.storageSnapshot() {
		require.False(t, strings.Contains(key, alice), "offboarding left %s", key)
	}
	require.NotContains(t, env.storageSnapshot(), ownerNamePath("alice"))
	require.Equal(t, false, env.verify(lease)["active"])
	require.Equal(t, true, env.verify(bobs)["active"])
	require.Equal(t, 0, env.tidy(nil)["entities_offboarded"])
}

// Within offboarding_grace a disabled entity keeps everything, and its
// tokens verify again once it is enabled; after the grace it is offboarded.
func TestOffboarding_graceKeepsADisabledUsersTokens(t *testing.T) {
	env := newTestEnv(t)
	ctx := context.Background()
	alice := env.addUser("alice")
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"offboarding_grace": "72h"})
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
