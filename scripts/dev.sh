#!/usr/bin/env bash
# make dev: the PlanQK engine live in a Vault dev server on 127.0.0.1, with
# the bootstrap policies, a demo organization "acme" and demo users, and the
# self-service portal (bin/planqk-portal) next to it on PORTAL_PORT (8210).
# make dev-existing (--existing): the same in the Vault at VAULT_ADDR with
# VAULT_TOKEN, whose plugin directory is PLUGIN_DIR, without starting one.
set -euo pipefail

top="$(cd "$(dirname "$0")/.." && pwd)"
plugin=vault-plugin-secrets-planqk
# The version make builds into the plugin; Vault refuses a registration whose
# version differs from the one the binary reports.
version="${VERSION:-$(sed -n 's/^VERSION *?= *//p' "$top/Makefile")}"
mount="${MOUNT:-planqk}"
port="${DEV_PORT:-8200}"
portal_port="${PORTAL_PORT:-8210}"
vault="$("$top/scripts/ensure-vault.sh")"
bootstrap="$top/bin/planqk-bootstrap"

existing=false
[ "${1:-}" = "--existing" ] && existing=true

if $existing; then
	: "${VAULT_ADDR:?set VAULT_ADDR to the Vault to use}"
	: "${VAULT_TOKEN:?set VAULT_TOKEN to a token that may manage plugins, mounts, policies and identity}"
	: "${PLUGIN_DIR:?set PLUGIN_DIR to the plugin_directory of that Vault server}"
	plugin_dir="$PLUGIN_DIR"
else
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "Port $port on 127.0.0.1 is taken; run with DEV_PORT=<free port>." >&2
		exit 1
	fi
	if (exec 3<>"/dev/tcp/127.0.0.1/$portal_port") 2>/dev/null; then
		echo "Port $portal_port on 127.0.0.1 is taken; run with PORTAL_PORT=<free port>." >&2
		exit 1
	fi
	work="$(mktemp -d -t planqk-dev-XXXXXX)"
	plugin_dir="$work/plugins"
	mkdir -p "$plugin_dir"
	export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
fi
# Replaced by rename, since a running plugin's binary cannot be overwritten.
if ! cmp -s "$top/bin/$plugin" "$plugin_dir/$plugin"; then
	cp "$top/bin/$plugin" "$plugin_dir/.$plugin.new"
	mv -f "$plugin_dir/.$plugin.new" "$plugin_dir/$plugin"
fi
sha="$(sha256sum "$plugin_dir/$plugin" | cut -d' ' -f1)"

if ! $existing; then
	"$vault" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
		-dev-plugin-dir="$plugin_dir" >"$work/vault.log" 2>&1 &
	vault_pid=$!
	portal_pid=""
	stop() {
		echo
		if [ -n "$portal_pid" ]; then
			echo "Stopping the portal (pid $portal_pid)..."
			kill "$portal_pid" 2>/dev/null || true
			wait "$portal_pid" 2>/dev/null || true
		fi
		echo "Stopping Vault (pid $vault_pid)..."
		kill "$vault_pid" 2>/dev/null || true
		wait "$vault_pid" 2>/dev/null || true
		rm -rf "$work"
	}
	trap stop EXIT
	trap 'exit 0' INT TERM
	for _ in $(seq 1 100); do
		"$vault" status >/dev/null 2>&1 && break
		kill -0 "$vault_pid" 2>/dev/null || { cat "$work/vault.log" >&2; exit 1; }
		sleep 0.2
	done
	"$vault" status >/dev/null
fi

quiet() { "$@" >/dev/null; }

quiet "$vault" plugin register -sha256="$sha" -version="$version" -command="$plugin" secret "$plugin"
if ! "$vault" secrets list -format=json | grep -q "\"$mount/\""; then
	quiet "$vault" secrets enable -path="$mount" -plugin-version="$version" "$plugin"
fi

"$bootstrap" -mount="$mount" init
"$bootstrap" -mount="$mount" org acme
declare -A roles=([olivia]=owner [max]=maintainer [mia]=member [paul]="")
for user in olivia max mia paul; do
	# On standard input: a password argument would show in ps. An existing
	# demo login gets the demo password back only when asked explicitly.
	reset=()
	if "$vault" read "auth/userpass/users/$user" >/dev/null 2>&1; then reset=(-reset-password); fi
	printf '%s\n' "$user-password" | quiet "$bootstrap" -mount="$mount" user "${reset[@]}" "$user"
	if [ -n "${roles[$user]}" ]; then
		"$bootstrap" -mount="$mount" member add acme "$user" "${roles[$user]}"
	fi
done
quiet "$vault" write "$mount/roles/runtime" ttl=15m max_ttl=2h description="job runtimes"
verifier="$("$vault" token create -policy=planqk-verifier -no-default-policy -ttl=24h -field=token)"
broker="$("$vault" token create -policy=planqk-broker -no-default-policy -ttl=24h -field=token)"

if ! $existing; then
	# The portal acts only as the people who sign in: it gets no token.
	env -u VAULT_TOKEN "$top/bin/planqk-portal" -listen="127.0.0.1:$portal_port" -vault-addr="$VAULT_ADDR" \
		-mount="$mount" >"$work/portal.log" 2>&1 &
	portal_pid=$!
	for _ in $(seq 1 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$portal_port") 2>/dev/null && break
		kill -0 "$portal_pid" 2>/dev/null || { cat "$work/portal.log" >&2; exit 1; }
		sleep 0.1
	done
fi

# An existing Vault's operator token is the caller's own: never echo it.
if $existing; then
	operator_token_line="Operator token: your VAULT_TOKEN"
	operator_login='export VAULT_TOKEN=<your operator token>'
else
	operator_token_line="Root token: $VAULT_TOKEN"
	operator_login='export VAULT_TOKEN=root'
fi

cat <<EOF

  PlanQK secrets engine $version is live at $VAULT_ADDR, mounted at $mount/.

  Demo organization acme: olivia (owner), max (maintainer), mia (member);
  paul belongs to no organization. Each user's password is <name>-password.
  $operator_token_line   Verifier token (planqk-verifier, for the PlanQK API): $verifier
  Broker token (planqk-broker, for the platform's job service): $broker
EOF
if ! $existing; then
	cat <<EOF

  Access Tokens portal: http://127.0.0.1:$portal_port
    sign in as  olivia / olivia-password   (owner of acme)
                max    / max-password      (maintainer of acme)
                mia    / mia-password      (member of acme)
                paul   / paul-password     (no organization)
EOF
else
	cat <<EOF

  The Access Tokens portal for this Vault (see the README):
    bin/planqk-portal -vault-addr=$VAULT_ADDR -mount=$mount -public-url=https://<its address> -tls-cert=<cert> -tls-key=<key>
EOF
fi
cat <<EOF

  Try, in another shell:
    export VAULT_ADDR=$VAULT_ADDR PATH="$(dirname "$vault"):\$PATH"
    vault login -method=userpass username=mia password=mia-password
    vault write $mount/users/mia/tokens/laptop ttl=24h description="my laptop"
    vault list $mount/users/mia/tokens
    VAULT_TOKEN=$verifier vault write $mount/verify token=<the token above>
    vault read $mount/users/mia/creds/runtime                     # a leased, short-lived PAT

    vault login -method=userpass username=max password=max-password
    vault write $mount/orgs/acme/provider-tokens/ibm-quantum token=<IBM token> instance=ibm-q/open/main
    vault login -method=userpass username=mia password=mia-password
    vault read $mount/orgs/acme/provider-tokens/ibm-quantum          # metadata only
    vault read $mount/resolve/ibm-quantum org=acme                   # what a runtime injects

    vault read $mount/users/mia/runtime/runtime org=acme              # a leased PAT and acme's provider tokens as env

    curl -s -H "X-Vault-Token: $verifier" -H "X-Auth-Token: <a PAT>" \$VAULT_ADDR/v1/$mount/verify      # as the SDKs send it
    curl -s -H "Authorization: Bearer $verifier" -d token=<a PAT> \$VAULT_ADDR/v1/$mount/introspect     # RFC 7662, for gateways
    curl -s -H "X-Vault-Token: $broker" -H "X-Auth-Token: <mia's PAT>" -H "X-OrganizationId: acme" \
         \$VAULT_ADDR/v1/$mount/exchange/ibm-quantum                                                      # a job of mia's, on acme's token

    $operator_login
    vault list -format=json $mount/inventory/tokens                 # every PAT of every user, never a secret
    vault read $mount/inventory

    vault path-help $mount/verify

EOF

if ! $existing; then
	echo "  Server log: $work/vault.log, portal log: $work/portal.log. Press Ctrl-C to stop."
	wait "$vault_pid"
fi
