#!/usr/bin/env bash
# clickhouse.sh runs a throw-away ClickHouse server on loopback for tests and
# local development. Everything it writes (config, data, tmp, logs, pid) lives
# in one folder.
#
#   scripts/clickhouse.sh start DIR       start a server whose state lives in DIR;
#                                         prints KEY=VALUE lines (also in DIR/env)
#   scripts/clickhouse.sh stop DIR        stop the server started in DIR
#   scripts/clickhouse.sh run -- CMD...   start a server in a temporary folder,
#                                         export DMARCD_TEST_CLICKHOUSE_ADDR and
#                                         DMARCD_CLICKHOUSE_DSN, run CMD, stop the
#                                         server; exits with CMD's status
#
# The server is Debian's clickhouse-server (18.16 on Debian 12/13). When it is
# missing and we are root it is installed with apt-get; otherwise the script
# says what to install and exits 3.
#
# Ports: native TCP 19000 and HTTP 18123 when free, other free ports otherwise.
# Environment: CLICKHOUSE_START_TIMEOUT (seconds, default 60);
# CLICKHOUSE_OWNER_PID: with start, stop the server as soon as that process
# is gone (a test binary that panicked or timed out leaves no server behind).
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
start_timeout=${CLICKHOUSE_START_TIMEOUT:-60}

die() {
	echo "$prog: $*" >&2
	exit 1
}

# find_server prints the command that runs the server, or nothing.
find_server() {
	local c
	for c in clickhouse-server /usr/sbin/clickhouse-server /usr/bin/clickhouse-server; do
		if command -v "$c" >/dev/null 2>&1; then
			command -v "$c"
			return
		fi
	done
	for c in clickhouse /usr/bin/clickhouse; do
		if command -v "$c" >/dev/null 2>&1; then
			echo "$(command -v "$c") server"
			return
		fi
	done
}

# ensure_server installs clickhouse-server with apt-get when it is missing and
# we are root, and prints the command that runs it.
ensure_server() {
	local s
	s=$(find_server)
	if [ -z "$s" ]; then
		apt_install clickhouse-server
		s=$(find_server)
		[ -n "$s" ] || {
			echo "$prog: clickhouse-server installed but no server binary found" >&2
			exit 3
		}
	fi
	echo "$s"
}

# free_port prints $1 when it is free, else a random free port.
free_port() {
	local p=$1 i
	if ! port_busy "$p"; then
		echo "$p"
		return
	fi
	for i in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		if ! port_busy "$p"; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# ping succeeds when the HTTP interface on port $1 answers with the text $2,
# this start's nonce (http_server_default_response): a server that another
# test run started on the same port at the same moment does not count.
ping() {
	local reply
	reply=$( (
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
		timeout 2 cat <&3
	) 2>/dev/null) || return 1
	case $reply in *"$2"*) return 0 ;; esac
	return 1
}

write_config() {
	local dir=$1 tcp=$2 http=$3 nonce=$4
	cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse.sh: a test server on loopback. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>$dir/log/clickhouse-server.log</log>
        <errorlog>$dir/log/clickhouse-server.err.log</errorlog>
        <size>50M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>$tcp</tcp_port>
    <http_port>$http</http_port>
    <http_server_default_response>$nonce</http_server_default_response>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
</yandex>
EOF
	cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
EOF
}

is_running() {
	local dir=$1 pid
	[ -f "$dir/clickhouse.pid" ] || return 1
	pid=$(cat "$dir/clickhouse.pid")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# start_once tries one start on the given ports; it fails with status 2 when
# the server died early (e.g. a port race with another test binary).
start_once() {
	local dir=$1 server=$2 tcp=$3 http=$4 pid i nonce
	nonce="dmarcd-test-clickhouse-$$-$RANDOM$RANDOM"
	write_config "$dir" "$tcp" "$http" "$nonce"
	# The server runs in its own session so that a test runner's signals to
	# our process group do not reach it; stop DIR ends it by pid.
	# shellcheck disable=SC2086
	setsid $server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/clickhouse.pid"
	for i in $(seq 1 $((start_timeout * 5))); do
		if ! kill -0 "$pid" 2>/dev/null; then
			return 2
		fi
		if ping "$http" "$nonce"; then
			# Our server answers, so it bound both ports (it exits when a
			# bind fails); make sure it is still there.
			sleep 0.2
			kill -0 "$pid" 2>/dev/null && return 0
			return 2
		fi
		sleep 0.2
	done
	kill "$pid" 2>/dev/null || true
	echo "$prog: clickhouse-server did not answer within ${start_timeout}s; see $dir/log/" >&2
	tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
	exit 1
}

cmd_start() {
	local dir=${1:-}
	[ -n "$dir" ] || die "usage: $prog start DIR"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd -P)
	if is_running "$dir"; then
		[ -f "$dir/env" ] && cat "$dir/env"
		return 0
	fi
	local server tcp http try rc=0
	server=$(ensure_server) || exit $?
	mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
	for try in 1 2 3 4 5; do
		if [ "$try" = 1 ]; then
			tcp=$(free_port 19000)
			http=$(free_port 18123)
		else
			tcp=$(free_port $((20000 + RANDOM % 40000)))
			http=$(free_port $((20000 + RANDOM % 40000)))
		fi
		[ "$tcp" != "$http" ] || continue
		rc=0
		start_once "$dir" "$server" "$tcp" "$http" || rc=$?
		[ "$rc" = 0 ] && break
	done
	if [ "$rc" != 0 ]; then
		echo "$prog: clickhouse-server exited during start; last log lines:" >&2
		tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
		exit 1
	fi
	if [ -n "${CLICKHOUSE_OWNER_PID:-}" ]; then
		watch_owner "$dir" "$CLICKHOUSE_OWNER_PID"
	fi
	cat >"$dir/env" <<EOF
DMARCD_CLICKHOUSE_DSN=clickhouse://127.0.0.1:$tcp/dmarc
DMARCD_TEST_CLICKHOUSE_ADDR=127.0.0.1:$tcp
CLICKHOUSE_TCP_PORT=$tcp
CLICKHOUSE_HTTP_PORT=$http
CLICKHOUSE_PID=$(cat "$dir/clickhouse.pid")
EOF
	cat "$dir/env"
}

# watch_owner stops the server of $1 once process $2 has exited, from a
# detached background shell.
watch_owner() {
	local dir=$1 owner=$2 self
	self=$(cd "$(dirname "$0")" && pwd -P)/${0##*/}
	setsid bash -c '
		while kill -0 "$2" 2>/dev/null && [ -f "$1/clickhouse.pid" ]; do sleep 1; done
		[ -f "$1/clickhouse.pid" ] && bash "$3" stop "$1"
	' watch "$dir" "$owner" "$self" </dev/null >/dev/null 2>&1 &
}

cmd_stop() {
	local dir=${1:-} pid i
	[ -n "$dir" ] || die "usage: $prog stop DIR"
	[ -f "$dir/clickhouse.pid" ] || return 0
	pid=$(cat "$dir/clickhouse.pid")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 150); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$prog: clickhouse-server $pid did not stop in 30s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$dir/clickhouse.pid"
}

cmd_run() {
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "usage: $prog run -- CMD..."
	local dir rc=0
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dmarcd-clickhouse.XXXXXX")
	# shellcheck disable=SC2064
	trap "cmd_stop '$dir'; rm -rf '$dir'" EXIT
	trap 'exit 130' INT TERM
	cmd_start "$dir" >/dev/null
	set -a
	# shellcheck disable=SC1091
	. "$dir/env"
	set +a
	echo "$prog: clickhouse-server on $DMARCD_TEST_CLICKHOUSE_ADDR" >&2
	"$@" || rc=$?
	return "$rc"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
run) shift; cmd_run "$@" ;;
*)
	echo "usage: $prog start DIR | stop DIR | run -- CMD..." >&2
	exit 2
	;;
esac
