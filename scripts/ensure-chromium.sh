#!/usr/bin/env bash
# Prints the path of a Chromium for the portal's browser tests, installing
# Debian's chromium package when none is at hand (CI runs as root on a clean
# Debian machine with apt working). CHROMIUM_BIN overrides the search.
set -euo pipefail

works() {
	[ -x "$1" ] && "$1" --version >/dev/null 2>&1
}

if [ -n "${CHROMIUM_BIN:-}" ]; then
	if works "$CHROMIUM_BIN"; then echo "$CHROMIUM_BIN"; exit 0; fi
	echo "CHROMIUM_BIN=$CHROMIUM_BIN does not run" >&2
	exit 1
fi
for candidate in chromium chromium-browser google-chrome; do
	if found="$(command -v "$candidate" 2>/dev/null)" && works "$found"; then
		echo "$found"
		exit 0
	fi
done

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "No Chromium found: install Debian's chromium package (apt-get install chromium) or set CHROMIUM_BIN." >&2
	exit 1
fi
echo "Installing Debian's chromium package for the browser tests..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
works /usr/bin/chromium || { echo "chromium was installed but does not run" >&2; exit 1; }
echo /usr/bin/chromium
