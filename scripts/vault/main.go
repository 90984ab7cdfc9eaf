// Command vault builds the HashiCorp Vault server, CLI and Agent from Vault's
// Go module so that development and tests can run a real server on machines
// without prebuilt downloads. Vault is BUSL-licensed: this binary is only a
// local host for the plugin and is never linked into it or redistributed.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
