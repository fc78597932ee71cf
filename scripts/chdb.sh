#!/usr/bin/env bash
# chdb.sh installs the ClickHouse 26.x engine that the compatibility tests
# (internal/testkit/compat, internal/testkit/testenv.CHDB) run beside the 18.16 server:
# libchdb.so from the npm package @chdb/lib-linux-x64-gnu, ClickHouse as an
# in-process library in clickhouse-local mode (full SQL, MergeTree tables in
# a folder; no native-protocol server, no ZooKeeper).
#
#   scripts/chdb.sh ensure   install the pinned package into the cache folder
#                            unless it is there; prints CHDB_LIB=/path/libchdb.so
#   scripts/chdb.sh path     prints the library's path when it is installed,
#                            or fails (exit 3) without installing anything
#
# The package is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/dmarcd/chdb/$version
# (CHDB_LIB overrides the library's path). The first install downloads about
# 180 MB from the npm registry with npm, which must be on PATH.
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
package=@chdb/lib-linux-x64-gnu
version=${CHDB_VERSION:-26.7.3-stable.1}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dmarcd/chdb/$version

lib_path() {
	echo "${CHDB_LIB:-$cache/node_modules/$package/libchdb.so}"
}

cmd_path() {
	local lib
	lib=$(lib_path)
	[ -f "$lib" ] || {
		echo "$prog: $lib is not there; run: scripts/chdb.sh ensure" >&2
		exit 3
	}
	echo "$lib"
}

cmd_ensure() {
	local lib
	lib=$(lib_path)
	if [ -f "$lib" ]; then
		echo "CHDB_LIB=$lib"
		return
	fi
	[ -z "${CHDB_LIB:-}" ] || die "CHDB_LIB=$CHDB_LIB is not a file"
	command -v npm >/dev/null 2>&1 || {
		echo "$prog: npm is not on PATH: cannot install $package@$version (apt-get install npm)" >&2
		exit 3
	}
	mkdir -p "$cache"
	echo "$prog: installing $package@$version into $cache (first time only; about 180 MB)" >&2
	# A lock so that parallel runs install it once.
	(
		flock 9
		if [ ! -f "$lib" ]; then
			# --force: the package declares os/cpu; install it even where npm
			# guesses the platform differently. --ignore-scripts: a library
			# has nothing to build.
			npm install --prefix "$cache" --no-save --no-audit --no-fund \
				--ignore-scripts --force "$package@$version" >&2 ||
				{
					echo "$prog: npm install $package@$version failed" >&2
					exit 3
				}
		fi
	) 9>"$cache/.lock"
	[ -f "$lib" ] || {
		echo "$prog: $package@$version installed but $lib is not there:" >&2
		find "$cache/node_modules/$package" -maxdepth 2 >&2 || true
		exit 3
	}
	echo "CHDB_LIB=$lib"
}

case ${1:-} in
ensure) cmd_ensure ;;
path) cmd_path ;;
*)
	echo "usage: $prog ensure | path" >&2
	exit 2
	;;
esac
