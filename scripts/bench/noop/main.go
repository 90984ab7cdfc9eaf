// Command noop is the benchmark's reference plugin: the cheapest operation
// any external secrets plugin can serve, read and write, behind the same
// gRPC hop as the engine (ServeMultiplex).
//
// It is deliberately cheaper than a plugin written with framework
// Operations: its path uses the legacy Callbacks, for which the framework
// does not ask Vault for the node's replication state (a gRPC round trip
// per request that the engine answers from memory). It declares the "token"
// field the engine's verify and introspect take, so a write carrying a PAT
// in a JSON or form body draws no "unrecognized parameters" warning, and it
// never reads the body, a header or storage.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/sdk/plugin"
)

func main() {
	meta := &api.PluginAPIClientMeta{}
	if err := meta.FlagSet().Parse(os.Args[1:]); err != nil {
		os.Exit(1)
	}
	err := plugin.ServeMultiplex(&plugin.ServeOpts{
		BackendFactoryFunc: factory,
		TLSProviderFunc:    api.VaultPluginTLSProvider(meta.GetTLSConfig()),
	})
	if err != nil {
		os.Exit(1)
	}
}

func noop(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]interface{}{"ok": true}}, nil
}

// answer returns, without any work, a response of the shape and size of
// the engine's answer for an active token: it measures what carrying that
// answer through the plugin's gRPC hop and Vault's JSON costs, so that the
// engine can be compared with a plugin that tells a gateway as much.
func answer(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return &logical.Response{Data: map[string]interface{}{
		"active":        true,
		"token_id":      "0f8fad5b-d9cb-469f-a165-70867728950e",
		"kind":          "named",
		"name":          "bench-3",
		"user":          "bench-user-042",
		"entity_id":     "7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"role":          "",
		"scopes":        []string{"api", "quantum_tokens"},
		"created_at":    "2026-11-28T12:00:00Z",
		"expires_at":    "2026-12-28T12:00:00Z",
		"organizations": []map[string]interface{}{{"name": "acme", "role": "member"}},
	}}, nil
}

func factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := &framework.Backend{
		BackendType: logical.TypeLogical,
		Paths: []*framework.Path{{
			Pattern: "noop$",
			Fields: map[string]*framework.FieldSchema{
				"token": {Type: framework.TypeString, Description: "Ignored: what the engine's verify and introspect receive."},
			},
			Callbacks: map[logical.Operation]framework.OperationFunc{
				logical.ReadOperation:   noop,
				logical.UpdateOperation: noop,
			},
		}, {
			Pattern: "answer$",
			Fields: map[string]*framework.FieldSchema{
				"token": {Type: framework.TypeString, Description: "Ignored: what the engine's verify receives."},
			},
			Callbacks: map[logical.Operation]framework.OperationFunc{
				logical.UpdateOperation: answer,
			},
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
