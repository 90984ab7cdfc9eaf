package backend

// This file is not part of the engine: scripts/fixture-v0.1.0.sh copies it
// into a checkout of v0.1.0 (commit efe7a95) and runs it there, so that
// backend/testdata/v0.1.0/storage.json is what v0.1.0 itself wrote. The
// migration test (backend/migrate_test.go) loads that storage into today's
// engine and checks that every PAT, lease and provider token survives, each
// with its rightful owner entity.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/stretchr/testify/require"
)

type fixtureLease struct {
	User         string                 `json:"user"`
	Role         string                 `json:"role"`
	Token        string                 `json:"token"`
	InternalData map[string]interface{} `json:"internal_data"`
	TTL          time.Duration          `json:"ttl"`
	MaxTTL       time.Duration          `json:"max_ttl"`
}

type fixture struct {
	Version  string                       `json:"version"`
	Storage  map[string]string            `json:"storage"` // key -> base64 value
	Entities map[string]*logical.Entity   `json:"entities"`
	Groups   map[string][]*logical.Group  `json:"groups"`
	Tokens   map[string]map[string]string `json:"tokens"` // entity id -> token name -> plaintext
	Leases   []fixtureLease               `json:"leases"`
	// ProviderTokens maps "<owner>/<provider>" to the value of one secret
	// field as written, owner being an entity id, "org:<org>" or
	// "unclaimed:<name>" for a token no entity can be proven to own.
	ProviderTokens map[string]string `json:"provider_tokens"`
}

func TestWriteFixture(t *testing.T) {
	out := os.Getenv("FIXTURE_OUT")
	require.NotEmpty(t, out, "FIXTURE_OUT names the file to write")
	env := newTestEnv(t)
	ctx := context.Background()
	fx := &fixture{Version: "v0.1.0", Tokens: map[string]map[string]string{}, ProviderTokens: map[string]string{}}

	// Lifetimes of a century, so that the fixture's tokens do not expire
	// under the test that loads it.
	const century = "876000h"
	env.ok(logical.UpdateOperation, "config", "", map[string]interface{}{"max_ttl": "0", "default_ttl": century})

	alice := env.addUser("alice")
	bob := env.addUser("bob")
	carol := env.addUser("carol")
	dave := env.addUser("dave")
	maxID := env.addUser("max")
	admin := env.addUser("admin")
	erinOld := env.addUser("erin")
	env.setRole(alice, "acme", "owner")
	env.setRole(maxID, "acme", "maintainer")
	env.setRole(admin, "*", "admin")

	pat := func(user, entity, name string) {
		data := env.createToken(user, entity, name, map[string]interface{}{"description": "fixture " + name})
		if fx.Tokens[entity] == nil {
			fx.Tokens[entity] = map[string]string{}
		}
		fx.Tokens[entity][name] = data["token"].(string)
	}
	provider := func(path, entity, owner, field, value string, data map[string]interface{}) {
		env.ok(logical.UpdateOperation, path, entity, data)
		fx.ProviderTokens[owner] = value
		_ = field
	}

	// alice: two PATs, a lease, her own provider token, and the org's.
	pat("alice", alice, "laptop")
	pat("alice", alice, "ci")
	env.ok(logical.CreateOperation, "roles/runtime", "", map[string]interface{}{"ttl": century, "max_ttl": century})
	lease := env.ok(logical.ReadOperation, "users/alice/creds/runtime", alice, nil)
	fx.Leases = append(fx.Leases, fixtureLease{User: alice, Role: "runtime", Token: lease.Data["token"].(string),
		InternalData: lease.Secret.InternalData, TTL: lease.Secret.TTL, MaxTTL: lease.Secret.MaxTTL})
	provider("users/alice/provider-tokens/ibm-quantum", alice, alice+"/ibm-quantum", "token", "alice-ibm-secret-0001",
		map[string]interface{}{"token": "alice-ibm-secret-0001", "instance": "ibm-q/open/main"})
	provider("orgs/acme/provider-tokens/aws-braket", maxID, "org:acme/aws-braket", "secret_access_key", "acme-aws-secret-0002",
		map[string]interface{}{"access_key_id": "AKIAACME", "secret_access_key": "acme-aws-secret-0002", "region": "eu-west-2"})

	// bob: a PAT, and a provider token an operator wrote for him (no entity).
	pat("bob", bob, "laptop")
	provider("users/bob/provider-tokens/dwave", "", bob+"/dwave", "token", "bob-dwave-secret-0003",
		map[string]interface{}{"token": "bob-dwave-secret-0003"})

	// carol: only a provider token, written by herself.
	provider("users/carol/provider-tokens/ionq", carol, carol+"/ionq", "api_key", "carol-ionq-secret-0004",
		map[string]interface{}{"api_key": "carol-ionq-secret-0004"})

	// dave: a provider token a platform admin wrote for him, and nothing
	// else: no record proves which entity "dave" was.
	provider("users/dave/provider-tokens/ionq", admin, "unclaimed:dave/ionq", "api_key", "dave-ionq-secret-0005",
		map[string]interface{}{"api_key": "dave-ionq-secret-0005"})
	_ = dave

	// erin: the rename the security review reproduced. Entity erinOld
	// creates a PAT and a provider token as "erin", is renamed "erin-old",
	// and a new entity takes the name "erin" and creates a PAT of its own:
	// v0.1.0 keeps both entities' PATs in one index, token-index/erin.
	pat("erin", erinOld, "old")
	provider("users/erin/provider-tokens/dwave", erinOld, erinOld+"/dwave", "token", "erin-old-dwave-secret-0006",
		map[string]interface{}{"token": "erin-old-dwave-secret-0006"})
	env.sys.mu.Lock()
	env.sys.entities[erinOld].Name = "erin-old"
	env.sys.mu.Unlock()
	env.b.identities.Purge()
	erinNew := "entity-erin-2"
	env.sys.mu.Lock()
	env.sys.entities[erinNew] = &logical.Entity{ID: erinNew, Name: "erin"}
	env.sys.mu.Unlock()
	pat("erin", erinNew, "new")

	fx.Storage = map[string]string{}
	for key, value := range env.storageSnapshot() {
		fx.Storage[key] = base64.StdEncoding.EncodeToString([]byte(value))
	}
	_ = ctx
	env.sys.mu.Lock()
	fx.Entities = env.sys.entities
	fx.Groups = env.sys.groups
	env.sys.mu.Unlock()

	encoded, err := json.MarshalIndent(fx, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(out, append(encoded, '\n'), 0o644))
}
