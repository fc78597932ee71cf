#!/usr/bin/env bash
# promtool.sh prints the path of promtool, installing Debian's `prometheus`
# package (which ships it) with apt-get when it is missing and we are root.
# It runs `apt-get update` first when apt-cache does not know the package.
# Otherwise it says what to install and exits 3.
#
#   scripts/promtool.sh            print the path of promtool (installing it if needed)
#   scripts/promtool.sh ARGS...    run promtool ARGS...
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

find_promtool() {
	local c
	for c in promtool /usr/bin/promtool /usr/local/bin/promtool; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return
		fi
	done
}

p=$(find_promtool || true)
if [ -z "$p" ]; then
	apt_install prometheus promtool
	p=$(find_promtool || true)
	if [ -z "$p" ]; then
		echo "$prog: prometheus installed but promtool not found" >&2
		exit 3
	fi
fi
if [ $# -eq 0 ]; then
	echo "$p"
	exit 0
fi
exec "$p" "$@"
