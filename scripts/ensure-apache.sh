#!/usr/bin/env bash
# Makes sure Apache httpd and mod_auth_openidc are installed for the
# gateway end-to-end test (scripts/e2e/gateway_test.go), installing the
# missing Debian packages with apt-get. Needs root when something is missing.
# Prints the path of the apache2 binary.
set -euo pipefail

packages=(apache2 libapache2-mod-auth-openidc)
module=/usr/lib/apache2/modules/mod_auth_openidc.so

installed() {
	[ -x /usr/sbin/apache2 ] && [ -f "$module" ]
}

if ! installed; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "apache2 or mod_auth_openidc is missing: run 'sudo apt-get install -y ${packages[*]}'" >&2
		exit 1
	fi
	echo "Installing ${packages[*]} with apt-get..." >&2
	export DEBIAN_FRONTEND=noninteractive
	# The test starts its own Apache with its own configuration on a free
	# port; the package's system service (port 80) is not used.
	apt-get install -y --no-install-recommends "${packages[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${packages[@]}" >&2; }
fi
installed || { echo "apache2 or $module still missing after apt-get" >&2; exit 1; }
echo /usr/sbin/apache2
