#!/usr/bin/env bash
# Prints the path of a Vault binary of exactly the version scripts/vault pins
# (its go.mod's github.com/hashicorp/vault requirement), building bin/vault
# from Vault's Go module (scripts/vault) when none is at hand: VAULT_BIN if
# set (it must be that version), else a vault on PATH of that version, else
# bin/vault, built if missing or of another version.
# Vault is BUSL-licensed: it is built and run only as the local host for
# development and tests, never linked into the plugin or redistributed.
set -euo pipefail

top="$(cd "$(dirname "$0")/.." && pwd)"
want="$(sed -n 's|^require github.com/hashicorp/vault v\([0-9.]*\)$|\1|p' "$top/scripts/vault/go.mod")"
if [ -z "$want" ]; then
	echo "scripts/vault/go.mod: no 'require github.com/hashicorp/vault vX.Y.Z' line" >&2
	exit 1
fi

supported() {
	[ -x "$1" ] && "$1" version 2>/dev/null | grep -q "^Vault v${want}[, ]"
}

if [ -n "${VAULT_BIN:-}" ]; then
	if supported "$VAULT_BIN"; then echo "$VAULT_BIN"; exit 0; fi
	echo "VAULT_BIN=$VAULT_BIN is not Vault v${want} (the version scripts/vault pins); unset VAULT_BIN to build bin/vault" >&2
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

echo "Building Vault v${want} from its Go module into bin/vault (first time: about 1 GiB of modules and up to 15 minutes on 2 cores)..." >&2
mkdir -p "$top/bin"
"$top/scripts/vault/prepare-sdk.sh"
(cd "$top/scripts/vault" && go build -trimpath -ldflags "-s -w" -o "$top/bin/vault.tmp" . >&2)
mv "$top/bin/vault.tmp" "$top/bin/vault"
supported "$top/bin/vault" || {
	echo "bin/vault was built but does not report Vault v${want}: $("$top/bin/vault" version 2>&1)" >&2
	exit 1
}
echo "$top/bin/vault"
