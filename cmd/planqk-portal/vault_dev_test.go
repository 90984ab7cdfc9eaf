//go:build portal

package main

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/api"

	"github.com/planqk/vault-plugin-secrets-planqk/scripts/vaultharness"
)

// startDevVault starts a `vault server -dev` on a free loopback port with
// the engine registered and mounted at planqk/, through the harness the
// end-to-end suites use (which retries when another process takes the
// picked port first).
func startDevVault(ctx context.Context, vaultBin, pluginBin, version, dir string) (*vaultharness.Server, error) {
	_, sha, err := vaultharness.InstallPlugin(pluginBin, dir)
	if err != nil {
		return nil, fmt.Errorf("installing the plugin: %w", err)
	}
	vault, err := vaultharness.StartDev(ctx, vaultBin, dir)
	if err != nil {
		return nil, err
	}
	if err := vault.RegisterPlugin(ctx, sha, version); err != nil {
		vault.Stop()
		return nil, fmt.Errorf("registering the plugin: %w", err)
	}
	if err := vault.Mount(ctx, "planqk", version); err != nil {
		vault.Stop()
		return nil, fmt.Errorf("mounting the plugin: %w", err)
	}
	return vault, nil
}

// vaultClient returns a client of the suite's Vault with token ("" for none).
func vaultClient(token string) *api.Client {
	client, err := suite.vault.Client(token)
	if err != nil {
		// Only a malformed address makes this fail, and the harness chose it.
		panic(err)
	}
	return client
}
