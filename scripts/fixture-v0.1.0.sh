#!/usr/bin/env bash
# Regenerates backend/testdata/v0.1.0/storage.json with the engine as
# released in v0.1.0 (commit efe7a95): the storage the migration test
# upgrades. Run from anywhere in the repository; needs its git history.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
release=efe7a95
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$top" archive "$release" | tar -x -C "$work"
cp "$top/backend/testdata/v0.1.0/fixture_gen_test.go" "$work/backend/zz_fixture_gen_test.go"
(cd "$work" && FIXTURE_OUT="$top/backend/testdata/v0.1.0/storage.json" go test -count=1 -run '^TestWriteFixture$' ./backend/)
echo "wrote backend/testdata/v0.1.0/storage.json from $release"
