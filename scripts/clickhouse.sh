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
    <!-- system.part_log: every part created and merged (scripts/bench-throughput.sh counts them). -->
    <part_log>
        <database>system</database>
        <table>part_log</table>
    </part_log>
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
	pid_running "$1/clickhouse.pid"
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
		if ping_clickhouse "$http" "$nonce"; then
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
	server=$(ensure_clickhouse) || exit $?
	mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
	for try in 1 2 3 4 5; do
		if [ "$try" = 1 ]; then
			tcp=$(free_port 19000)
			http=$(free_port 18123)
		else
			tcp=$(free_port)
			http=$(free_port)
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
		watch_owner "$dir" "$CLICKHOUSE_OWNER_PID" clickhouse.pid
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

cmd_stop() {
	local dir=${1:-}
	[ -n "$dir" ] || die "usage: $prog stop DIR"
	stop_pidfile "$dir" clickhouse.pid "clickhouse-server {pid}" 30
}

cmd_run() {
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "usage: $prog run -- CMD..."
	local rc=0
	start_temporary clickhouse
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
