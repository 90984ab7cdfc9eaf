#!/usr/bin/env bash
# Prepares bin/vault-sdk: the github.com/hashicorp/vault/sdk that Vault
# v1.21.4 is built with. scripts/vault/go.mod replaces the sdk module with
# this directory.
#
# Why: Vault's own go.mod replaces the sdk with its ./sdk directory, which is
# a separate module and so not in the vault module's zip. On the 1.21.x
# branch that directory is no tagged sdk release: sdk v0.20.0 lacks what
# 1.21.4 calls (TryRecordObservationWithRequest, certutil's
# ValidateDefaultOrValue*), sdk v0.21.0 changed framework.Backend's
# ActivationFunc to take a third argument, and only sdk v0.24.0 has
# keysutil's RestorePolicy returning the restored key's name (transit), by
# which time the PKI certificate counter had been replaced. So: sdk v0.21.0,
# its ActivationFunc as on the 1.21.x branch (two arguments), and
# helper/keysutil/lock_manager.go as released in sdk v0.24.0 (it differs
# from v0.21.0's only in RestorePolicy). Both come from the Go module proxy
# (checksum-verified by go mod download); nothing is cloned.
#
# Idempotent: a stamp holding this script's checksum marks a finished
# directory; a changed script or a half-written directory is redone.
set -euo pipefail

top="$(cd "$(dirname "$0")/../.." && pwd)"
dest="$top/bin/vault-sdk"
base=v0.21.0
restore_from=v0.24.0

stamp="$(sha256sum "$0" | cut -d' ' -f1)"
if [ "$(cat "$dest/.prepared" 2>/dev/null)" = "$stamp" ]; then
	exit 0
fi

# module_dir VERSION prints the module cache directory of the sdk at VERSION,
# downloading it through the module proxy. Run outside any module so that the
# download neither needs nor changes a go.sum (the checksum database vouches).
module_dir() {
	(cd / && GO111MODULE=on GOFLAGS=-mod=mod go mod download -json "github.com/hashicorp/vault/sdk@$1") |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
base_dir="$(module_dir "$base")"
restore_dir="$(module_dir "$restore_from")"
if [ ! -d "$base_dir" ] || [ ! -d "$restore_dir" ]; then
	echo "prepare-sdk: could not download github.com/hashicorp/vault/sdk $base and $restore_from from the module proxy" >&2
	exit 1
fi

tmp="$dest.tmp.$$"
rm -rf "$tmp"
mkdir -p "$(dirname "$dest")"
cp -R "$base_dir" "$tmp"
chmod -R u+w "$tmp"

sed -i 's|^\tActivationFunc func(context.Context, \*logical.Request, string) error$|\tActivationFunc func(context.Context, *logical.Request) error|' \
	"$tmp/framework/backend.go"
cp "$restore_dir/helper/keysutil/lock_manager.go" "$tmp/helper/keysutil/lock_manager.go"

# Both changes must have taken; an sdk that changed under us fails loudly.
grep -q '^	ActivationFunc func(context.Context, \*logical.Request) error$' "$tmp/framework/backend.go" || {
	echo "prepare-sdk: ActivationFunc not found as expected in sdk $base framework/backend.go" >&2
	exit 1
}
grep -q 'RestorePolicy(ctx context.Context, storage logical.Storage, name, backup string, force bool) (string, error)' \
	"$tmp/helper/keysutil/lock_manager.go" || {
	echo "prepare-sdk: RestorePolicy not found as expected in sdk $restore_from helper/keysutil/lock_manager.go" >&2
	exit 1
}

echo "$stamp" >"$tmp/.prepared"
rm -rf "$dest"
mv "$tmp" "$dest"
