#!/usr/bin/env bash
# zookeeper.sh runs a throw-away standalone ZooKeeper on loopback for tests of
# ClickHouse cluster mode (Replicated tables and ON CLUSTER DDL need it on
# ClickHouse 18.16). Everything it writes (zoo.cfg, data, logs, pid) lives in
# one folder; the zookeeperd system service is not used.
#
#   scripts/zookeeper.sh start DIR       start a server whose state lives in DIR;
#                                        prints KEY=VALUE lines (also in DIR/env)
#   scripts/zookeeper.sh stop DIR        stop the server started in DIR
#   scripts/zookeeper.sh status DIR      exit 0 when it runs and answers
#   scripts/zookeeper.sh run -- CMD...   start one in a temporary folder, export
#                                        ZOOKEEPER_PORT, run CMD, stop it
#
# The server is Debian's `zookeeper` package (3.8 on Debian 12), run as
# `java org.apache.zookeeper.server.ZooKeeperServerMain DIR/zoo.cfg`. When it
# is missing and we are root it is installed with apt-get; otherwise the
# script says what to install and exits 3.
#
# Port: 12181 when free, another free port otherwise. The admin server
# (Jetty, port 8080) is disabled. Environment: ZOOKEEPER_START_TIMEOUT
# (seconds, default 60); ZOOKEEPER_OWNER_PID: with start, stop the server as
# soon as that process is gone.
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
start_timeout=${ZOOKEEPER_START_TIMEOUT:-60}
jar=/usr/share/java/zookeeper.jar

ensure_server() {
	if [ ! -f "$jar" ]; then
		apt_install zookeeper
		[ -f "$jar" ] || {
			echo "$prog: zookeeper installed but $jar is missing" >&2
			exit 3
		}
	fi
	command -v java >/dev/null 2>&1 || apt_install default-jre-headless "java for zookeeper"
}

# ruok succeeds when the server on port $1 answers the "ruok" command.
ruok() {
	local reply
	reply=$(tcp_reply "$1" ruok) || return 1
	[ "$reply" = imok ]
}

is_running() {
	pid_running "$1/zookeeper.pid"
}

write_config() {
	local dir=$1 port=$2
	cat >"$dir/zoo.cfg" <<EOF
# Written by scripts/zookeeper.sh: a standalone test server on loopback.
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=200
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr,mntr
autopurge.purgeInterval=0
EOF
	cat >"$dir/log4j.properties" <<EOF
log4j.rootLogger=WARN, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File=$dir/log/zookeeper.log
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{ISO8601} %-5p [%t] %c{1}: %m%n
EOF
}

# start_once tries one start on the given port; status 2 when the server died
# early (e.g. another test run took the port at the same moment).
start_once() {
	local dir=$1 port=$2 pid i
	write_config "$dir" "$port"
	# Own session: a test runner's signals to our process group do not reach
	# it; stop DIR ends it by pid. log4j 1.2 and its slf4j binding come from
	# Debian's liblog4j1.2-java and libslf4j-java (dependencies of zookeeper).
	setsid java -Xmx256m -XX:+UseSerialGC \
		-Dlog4j.configuration="file:$dir/log4j.properties" \
		-Dzookeeper.admin.enableServer=false \
		-cp "$dir:$jar:/usr/share/java/log4j-1.2.jar:/usr/share/java/slf4j-log4j12.jar" \
		org.apache.zookeeper.server.ZooKeeperServerMain "$dir/zoo.cfg" \
		>"$dir/log/stdout.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/zookeeper.pid"
	for i in $(seq 1 $((start_timeout * 5))); do
		kill -0 "$pid" 2>/dev/null || return 2
		if ruok "$port"; then
			# ruok from another server on this port would also say imok:
			# make sure ours bound it (it exits when the bind fails).
			sleep 0.3
			kill -0 "$pid" 2>/dev/null && return 0
			return 2
		fi
		sleep 0.2
	done
	kill "$pid" 2>/dev/null || true
	echo "$prog: zookeeper did not answer within ${start_timeout}s; see $dir/log/" >&2
	tail -n 20 "$dir/log/zookeeper.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
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
	ensure_server
	mkdir -p "$dir/data" "$dir/log"
	local port try rc=0
	for try in 1 2 3 4 5; do
		if [ "$try" = 1 ]; then
			port=$(free_port 12181)
		else
			port=$(free_port)
		fi
		rc=0
		start_once "$dir" "$port" || rc=$?
		[ "$rc" = 0 ] && break
	done
	if [ "$rc" != 0 ]; then
		echo "$prog: zookeeper exited during start; last log lines:" >&2
		tail -n 20 "$dir/log/zookeeper.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
		exit 1
	fi
	if [ -n "${ZOOKEEPER_OWNER_PID:-}" ]; then
		watch_owner "$dir" "$ZOOKEEPER_OWNER_PID" zookeeper.pid
	fi
	cat >"$dir/env" <<EOF
ZOOKEEPER_PORT=$port
ZOOKEEPER_PID=$(cat "$dir/zookeeper.pid")
EOF
	cat "$dir/env"
}

cmd_stop() {
	local dir=${1:-}
	[ -n "$dir" ] || die "usage: $prog stop DIR"
	stop_pidfile "$dir" zookeeper.pid "zookeeper {pid}" 20
}

cmd_status() {
	local dir=${1:-} port
	[ -n "$dir" ] || die "usage: $prog status DIR"
	is_running "$dir" || { echo "$prog: not running in $dir" >&2; return 1; }
	port=$(sed -n 's/^ZOOKEEPER_PORT=//p' "$dir/env")
	ruok "$port" || { echo "$prog: pid runs but port $port does not answer ruok" >&2; return 1; }
	echo "zookeeper running on 127.0.0.1:$port (pid $(cat "$dir/zookeeper.pid"))"
}

cmd_run() {
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "usage: $prog run -- CMD..."
	local rc=0
	start_temporary zookeeper
	echo "$prog: zookeeper on 127.0.0.1:$ZOOKEEPER_PORT" >&2
	"$@" || rc=$?
	return "$rc"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
run) shift; cmd_run "$@" ;;
*)
	echo "usage: $prog start DIR | stop DIR | status DIR | run -- CMD..." >&2
	exit 2
	;;
esac
