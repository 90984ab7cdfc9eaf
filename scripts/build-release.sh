#!/usr/bin/env bash
# Builds the plugin as released at a commit of this repository:
#   scripts/build-release.sh <version> <commit> <output binary>
# The end-to-end suite upgrades a mount from it to the current build.
set -euo pipefail
version="$1" commit="$2" out="$3"
top="$(cd "$(dirname "$0")/.." && pwd)"
if ! git -C "$top" cat-file -e "$commit^{commit}" 2>/dev/null; then
	echo "build-release: commit $commit ($version) is not in this clone's history; the upgrade test needs it (clone without --depth)" >&2
	exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$top" archive "$commit" | tar -x -C "$work"
mkdir -p "$(dirname "$out")"
(cd "$work" && go build -trimpath \
	-ldflags "-X github.com/planqk/vault-plugin-secrets-planqk/backend.Version=$version" \
	-o "$top/$out.tmp" ./cmd/vault-plugin-secrets-planqk)
mv "$top/$out.tmp" "$top/$out"
