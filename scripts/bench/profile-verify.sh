#!/usr/bin/env bash
# Profiles verify under load, the way issue 13 asks: a Vault dev server
# with the engine, 16 vegeta workers POSTing verify for 16 s, and during
# 10 s of it a CPU profile of Vault (its sys/pprof endpoint) and of the
# plugin process (Linux perf, cpu-clock sampling: Debian's linux-perf).
# Prints the top of both; the profiles stay in the output directory.
#   scripts/bench/profile-verify.sh [outdir]      (after make build vault)
set -euo pipefail
top="$(cd "$(dirname "$0")/../.." && pwd)"
out="${1:-$(mktemp -d -t planqk-profile-XXXXXX)}"
port="${PROFILE_PORT:-8299}"
vault="$("$top/scripts/ensure-vault.sh")"
command -v perf >/dev/null || { echo "perf is missing: apt-get install -y linux-perf" >&2; exit 1; }
mkdir -p "$out/plugins"
version="${VERSION:-$(sed -n 's/^VERSION *?= *//p' "$top/Makefile")}"
cp "$top/bin/vault-plugin-secrets-planqk" "$out/plugins/"
"$vault" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" \
	-dev-plugin-dir="$out/plugins" >"$out/vault.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
export VAULT_ADDR="http://127.0.0.1:$port" VAULT_TOKEN=root
for _ in $(seq 100); do "$vault" status >/dev/null 2>&1 && break; sleep 0.2; done
sha="$(sha256sum "$out/plugins/vault-plugin-secrets-planqk" | cut -d' ' -f1)"
"$vault" plugin register -sha256="$sha" -version="$version" -command=vault-plugin-secrets-planqk secret vault-plugin-secrets-planqk >/dev/null
"$vault" secrets enable -path=planqk -plugin-version="$version" vault-plugin-secrets-planqk >/dev/null
"$top/bin/planqk-bootstrap" init >/dev/null
"$top/bin/planqk-bootstrap" org acme >/dev/null
printf 'profile-password\n' | "$top/bin/planqk-bootstrap" user mia >/dev/null
"$top/bin/planqk-bootstrap" member add acme mia member
mia="$("$vault" write -field=token auth/userpass/login/mia password=profile-password)"
pat="$(VAULT_TOKEN="$mia" "$vault" write -f -field=token planqk/users/mia/tokens/profile)"
verifier="$("$vault" token create -policy=planqk-verifier -no-default-policy -field=token)"
( umask 077; printf '{"token":"%s"}' "$pat" >"$out/body.json"
  printf 'POST %s/v1/planqk/verify\nX-Vault-Token: %s\n@%s\n' "$VAULT_ADDR" "$verifier" "$out/body.json" >"$out/targets.txt" )
# vegeta's command, outside this module (whose go.sum lists only the library's needs).
(cd "$out" && GOBIN="$out" GOFLAGS=-mod=mod go install github.com/tsenart/vegeta/v12@v12.13.0)
plugin="$(pgrep -f "$out/plugins/vault-plugin-secrets-planqk" | head -1)"
"$out/vegeta" attack -targets="$out/targets.txt" -rate=0 -workers=16 -max-workers=16 -duration=16s >"$out/results.bin" &
attack=$!
sleep 3
curl -sf -H "X-Vault-Token: root" "$VAULT_ADDR/v1/sys/pprof/profile?seconds=10" >"$out/vault.pprof" &
profile=$!
perf record -e cpu-clock -F 499 -g -p "$plugin" -o "$out/plugin.perf" -- sleep 10 2>/dev/null
wait "$attack" "$profile"
"$out/vegeta" report <"$out/results.bin" | head -6
echo "== Vault server (go tool pprof -top -cum), cumulative:"
(cd "$top" && go tool pprof -top -cum -nodecount=60 "$vault" "$out/vault.pprof" 2>/dev/null) |
	grep -E 'CheckToken|routeCommon|HandleExistenceCheck|backendGRPCPluginClient\).HandleRequest|http.request$|Total samples'
echo "== Plugin process (perf, children):"
perf report -i "$out/plugin.perf" --stdio --children --sort symbol 2>/dev/null |
	grep -E '^ +[0-9.]+% +[0-9.]+%' | awk '{print $1, $4}' |
	grep -E 'processUnaryRPC$|backend\)\.HandleRequest$|pathVerify$|GetHMAC|verifyResponseData|encoding/json.Marshal$|encoding/json.Unmarshal$|gcBgMarkWorker$|runtime.schedule$|HandleStreams$'
echo "profiles in $out"
