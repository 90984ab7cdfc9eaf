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
		}},
	}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
