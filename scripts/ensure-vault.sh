#!/usr/bin/env bash
# Prints the path of a Vault binary of the supported version, building
# bin/vault from Vault's Go module (scripts/vault) when none is at hand.
# Vault is BUSL-licensed: it is built and run only as the local host for
# development and tests, never linked into the plugin or redistributed.
set -euo pipefail

want="${VAULT_VERSION:-1.21.}"
top="$(cd "$(dirname "$0")/.." && pwd)"

supported() {
	[ -x "$1" ] && "$1" version 2>/dev/null | grep -q "^Vault v${want}"
}

if [ -n "${VAULT_BIN:-}" ]; then
	if supported "$VAULT_BIN"; then echo "$VAULT_BIN"; exit 0; fi
	echo "VAULT_BIN=$VAULT_BIN is not Vault v${want}x" >&2
	exit 1
fi
if on_path="$(command -v vault 2>/dev/null)" && supported "$on_path"; then
	echo "$on_path"
	exit 0
fi
if supported "$top/bin/vault"; then
	echo "$top/bin/vault"
	exit 0
fi

echo "Building Vault v1.21.0 from its Go module into bin/vault (first time: about 1 GiB of modules and 5-10 minutes on 2 cores)..." >&2
mkdir -p "$top/bin"
(cd "$top/scripts/vault" && go build -trimpath -ldflags "-s -w" -o "$top/bin/vault.tmp" . >&2)
mv "$top/bin/vault.tmp" "$top/bin/vault"
echo "$top/bin/vault"
