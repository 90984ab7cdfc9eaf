#!/usr/bin/env bash
# Prints the path of a working moto_server (moto's standalone stand-in of
# AWS's APIs, which the derived-credentials tests and the bench use as STS):
# MOTO_SERVER_BIN if set, else moto_server on PATH, else pyenv's shim. With
# none, it fails with the command that installs it: the tests never skip.
set -euo pipefail

works() {
	[ -n "$1" ] && [ -x "$1" ] && "$1" --help >/dev/null 2>&1
}

if [ -n "${MOTO_SERVER_BIN:-}" ]; then
	if works "$MOTO_SERVER_BIN"; then echo "$MOTO_SERVER_BIN"; exit 0; fi
	echo "MOTO_SERVER_BIN=$MOTO_SERVER_BIN does not run; unset it or point it at moto_server" >&2
	exit 1
fi
for candidate in "$(command -v moto_server 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}/shims/moto_server" /root/.pyenv/shims/moto_server; do
	if works "$candidate"; then echo "$candidate"; exit 0; fi
done
echo "no moto_server found: install it with  pip install 'moto[server]==5.2.1'  (or set MOTO_SERVER_BIN)" >&2
exit 1
