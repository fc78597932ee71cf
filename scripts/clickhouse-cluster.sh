#!/usr/bin/env bash
# clickhouse-cluster.sh runs a throw-away ClickHouse cluster on loopback for
# tests of cluster mode: one ZooKeeper (scripts/zookeeper.sh) and two
# clickhouse-server instances with distinct ports, configured as the cluster
# `dmarcd` (remote_servers, macros {shard}/{replica}, zookeeper,
# distributed_ddl). Everything lives in one folder: DIR/zookeeper,
# DIR/node1, DIR/node2.
#
#   scripts/clickhouse-cluster.sh start DIR [LAYOUT]  start the cluster; prints
#                                   KEY=VALUE lines (also in DIR/env)
#   scripts/clickhouse-cluster.sh stop DIR            stop all of it
#   scripts/clickhouse-cluster.sh status DIR          exit 0 when all of it answers
#   scripts/clickhouse-cluster.sh stop-node DIR N     stop server N (1 or 2) only
#   scripts/clickhouse-cluster.sh start-node DIR N    start server N again (same
#                                   ports, same data)
#   scripts/clickhouse-cluster.sh run [LAYOUT] -- CMD...  start one in a temporary
#                                   folder, export its env, run CMD, stop it
#
# LAYOUT is 2x1 (default: 2 shards of 1 replica) or 1x2 (1 shard of 2
# replicas). The {shard} macro that Replicated table paths use is per server,
# so one pair of servers holds one layout: 2x1 shows sharding (a report's rows
# on the shard its key picks, reads fanned out by Distributed tables), 1x2
# shows replication (a replica stopped and restarted catches up). Both use
# internal_replication (dmarcd writes Replicated tables, which replicate
# themselves).
#
# Printed: DMARCD_CLICKHOUSE_CLUSTER=dmarcd, DMARCD_CLICKHOUSE_DSN (node 1),
# DMARCD_TEST_CLUSTER_ADDRS (host:port of both, comma-separated),
# DMARCD_TEST_CLUSTER_LAYOUT, ZOOKEEPER_PORT, NODEn_TCP_PORT, NODEn_HTTP_PORT.
#
# Environment: CLICKHOUSE_START_TIMEOUT (seconds, default 60);
# CLICKHOUSE_OWNER_PID: stop everything as soon as that process is gone (and
# remove DIR too when CLUSTER_REMOVE_DIR=1).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
start_timeout=${CLICKHOUSE_START_TIMEOUT:-60}
cluster=dmarcd

# free_ports prints N distinct free ports.
free_ports() {
	local n=$1 i p got=" "
	for i in $(seq 1 400); do
		p=$(random_port)
		case $got in *" $p "*) continue ;; esac
		port_busy "$p" && continue
		got="$got$p "
		echo "$p"
		n=$((n - 1))
		[ "$n" = 0 ] && return
	done
	die "no free ports found"
}

# write_config DIR NODE: the config of server NODE (1 or 2) from DIR/ports.
write_config() {
	local top=$1 n=$2 dir=$1/node$2 shard replica shards
	# shellcheck disable=SC1091
	. "$top/ports"
	local tcp http inter nonce
	eval "tcp=\$NODE${n}_TCP_PORT http=\$NODE${n}_HTTP_PORT inter=\$NODE${n}_INTERSERVER_PORT"
	nonce="dmarcd-test-clickhouse-$$-$RANDOM$RANDOM"
	echo "$nonce" >"$dir/nonce"
	if [ "$LAYOUT" = 1x2 ]; then
		shard=01
		replica=r$n
		shards="<shard><internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$NODE1_TCP_PORT</port></replica>
                <replica><host>127.0.0.1</host><port>$NODE2_TCP_PORT</port></replica>
            </shard>"
	else
		shard=0$n
		replica=r1
		shards="<shard><internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$NODE1_TCP_PORT</port></replica>
            </shard>
            <shard><internal_replication>true</internal_replication>
                <replica><host>127.0.0.1</host><port>$NODE2_TCP_PORT</port></replica>
            </shard>"
	fi
	cat >"$dir/config.xml" <<EOF
<?xml version="1.0"?>
<!-- Written by scripts/clickhouse-cluster.sh: node $n of a test cluster ($LAYOUT) on loopback. -->
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
    <interserver_http_port>$inter</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
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
    <mark_cache_size>134217728</mark_cache_size>
    <uncompressed_cache_size>134217728</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <$cluster>
            $shards
        </$cluster>
    </remote_servers>
    <macros>
        <shard>$shard</shard>
        <replica>$replica</replica>
    </macros>
    <zookeeper>
        <node><host>127.0.0.1</host><port>$ZOOKEEPER_PORT</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
EOF
	cat >"$dir/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <!-- Distributed reads and writes prefer the first replica in
                 remote_servers order; IN/JOIN subqueries over Distributed
                 tables run as GLOBAL ones (see docs/cluster.md). -->
            <load_balancing>in_order</load_balancing>
            <distributed_product_mode>global</distributed_product_mode>
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

node_running() {
	pid_running "$1/node$2/clickhouse.pid"
}

# start_node DIR N starts server N from its config; status 2 when it died
# during the start (a port taken meanwhile).
start_node() {
	local top=$1 n=$2 dir=$1/node$2 server pid i http nonce
	server=$(ensure_clickhouse) || exit $?
	# shellcheck disable=SC1091
	. "$top/ports"
	eval "http=\$NODE${n}_HTTP_PORT"
	nonce=$(cat "$dir/nonce")
	mkdir -p "$dir/data" "$dir/tmp" "$dir/log" "$dir/user_files" "$dir/format_schemas"
	# shellcheck disable=SC2086
	setsid $server --config-file="$dir/config.xml" >"$dir/log/stdout.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/clickhouse.pid"
	for i in $(seq 1 $((start_timeout * 5))); do
		kill -0 "$pid" 2>/dev/null || return 2
		if ping_clickhouse "$http" "$nonce"; then
			sleep 0.2
			kill -0 "$pid" 2>/dev/null && return 0
			return 2
		fi
		sleep 0.2
	done
	kill "$pid" 2>/dev/null || true
	echo "$prog: node $n did not answer within ${start_timeout}s; see $dir/log/" >&2
	tail -n 20 "$dir/log/clickhouse-server.err.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
	exit 1
}

stop_node() {
	stop_pidfile "$1/node$2" clickhouse.pid "node $2 ({pid})" 30
}

write_env() {
	local top=$1
	# shellcheck disable=SC1091
	. "$top/ports"
	cat >"$top/env" <<EOF
DMARCD_CLICKHOUSE_CLUSTER=$cluster
DMARCD_CLICKHOUSE_DSN=clickhouse://127.0.0.1:$NODE1_TCP_PORT/dmarc
DMARCD_TEST_CLUSTER_ADDRS=127.0.0.1:$NODE1_TCP_PORT,127.0.0.1:$NODE2_TCP_PORT
DMARCD_TEST_CLUSTER_LAYOUT=$LAYOUT
ZOOKEEPER_PORT=$ZOOKEEPER_PORT
NODE1_TCP_PORT=$NODE1_TCP_PORT
NODE1_HTTP_PORT=$NODE1_HTTP_PORT
NODE2_TCP_PORT=$NODE2_TCP_PORT
NODE2_HTTP_PORT=$NODE2_HTTP_PORT
EOF
}

cmd_start() {
	local top=${1:-} layout=${2:-2x1}
	[ -n "$top" ] || die "usage: $prog start DIR [2x1|1x2]"
	case $layout in 2x1 | 1x2) ;; *) die "layout $layout: want 2x1 (2 shards) or 1x2 (2 replicas)" ;; esac
	mkdir -p "$top"
	top=$(cd "$top" && pwd -P)
	if node_running "$top" 1 && node_running "$top" 2 && [ -f "$top/env" ]; then
		cat "$top/env"
		return 0
	fi
	ensure_clickhouse >/dev/null
	local zkenv try rc n
	zkenv=$(ZOOKEEPER_OWNER_PID=${CLICKHOUSE_OWNER_PID:-} bash "$here/zookeeper.sh" start "$top/zookeeper") ||
		die "starting zookeeper failed"
	mkdir -p "$top/node1" "$top/node2"
	for try in 1 2 3 4 5; do
		local p
		p=$(free_ports 6 | tr '\n' ' ')
		# shellcheck disable=SC2086
		set -- $p
		{
			echo "LAYOUT=$layout"
			echo "$zkenv" | grep '^ZOOKEEPER_PORT='
			echo "NODE1_TCP_PORT=$1"
			echo "NODE1_HTTP_PORT=$2"
			echo "NODE1_INTERSERVER_PORT=$3"
			echo "NODE2_TCP_PORT=$4"
			echo "NODE2_HTTP_PORT=$5"
			echo "NODE2_INTERSERVER_PORT=$6"
		} >"$top/ports"
		rc=0
		for n in 1 2; do
			write_config "$top" "$n"
			start_node "$top" "$n" || { rc=$?; break; }
		done
		[ "$rc" = 0 ] && break
		stop_node "$top" 1
		stop_node "$top" 2
	done
	if [ "$rc" != 0 ]; then
		echo "$prog: a clickhouse-server exited during start; last log lines:" >&2
		tail -n 20 "$top"/node*/log/clickhouse-server.err.log >&2 2>/dev/null || true
		bash "$here/zookeeper.sh" stop "$top/zookeeper"
		exit 1
	fi
	if [ -n "${CLICKHOUSE_OWNER_PID:-}" ]; then
		watch_owner "$top" "$CLICKHOUSE_OWNER_PID" ports "${CLUSTER_REMOVE_DIR:-0}"
	fi
	LAYOUT=$layout write_env "$top"
	cat "$top/env"
}

cmd_stop() {
	local top=${1:-}
	[ -n "$top" ] || die "usage: $prog stop DIR"
	[ -d "$top" ] || return 0
	stop_node "$top" 1 &
	stop_node "$top" 2 &
	wait
	bash "$here/zookeeper.sh" stop "$top/zookeeper"
	rm -f "$top/ports"
}

cmd_status() {
	local top=${1:-} n http ok=0
	[ -n "$top" ] || die "usage: $prog status DIR"
	[ -f "$top/ports" ] || { echo "$prog: no cluster in $top" >&2; return 1; }
	# shellcheck disable=SC1091
	. "$top/ports"
	bash "$here/zookeeper.sh" status "$top/zookeeper" || ok=1
	for n in 1 2; do
		eval "http=\$NODE${n}_HTTP_PORT"
		if node_running "$top" "$n" && ping_clickhouse "$http" "$(cat "$top/node$n/nonce")"; then
			echo "node $n running ($LAYOUT), http 127.0.0.1:$http"
		else
			echo "node $n not running" >&2
			ok=1
		fi
	done
	return $ok
}

cmd_node() {
	local what=$1 top=${2:-} n=${3:-}
	[ -n "$top" ] && [ -n "$n" ] || die "usage: $prog $what DIR 1|2"
	case $n in 1 | 2) ;; *) die "node $n: want 1 or 2" ;; esac
	[ -f "$top/ports" ] || die "no cluster in $top"
	top=$(cd "$top" && pwd -P)
	if [ "$what" = stop-node ]; then
		stop_node "$top" "$n"
		return
	fi
	node_running "$top" "$n" && return 0
	# Same ports, same data: the ports may have been taken meanwhile, then
	# the start fails and says so.
	# A server stopped a moment ago may still hold its port or files for a
	# moment: try a few times, then show why it would not start.
	local try
	for try in 1 2 3 4 5; do
		start_node "$top" "$n" && return 0
		sleep "$try"
	done
	tail -n 30 "$top/node$n/log/clickhouse-server.err.log" "$top/node$n/log/stdout.log" >&2 2>/dev/null || true
	die "node $n exited during start (5 tries); see $top/node$n/log/"
}

cmd_run() {
	local layout=2x1
	case ${1:-} in 2x1 | 1x2) layout=$1; shift ;; esac
	[ "${1:-}" = "--" ] && shift
	[ $# -gt 0 ] || die "usage: $prog run [2x1|1x2] -- CMD..."
	local rc=0
	start_temporary cluster "$layout"
	echo "$prog: cluster $DMARCD_CLICKHOUSE_CLUSTER ($layout) on $DMARCD_TEST_CLUSTER_ADDRS" >&2
	"$@" || rc=$?
	return "$rc"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
status) shift; cmd_status "$@" ;;
stop-node | start-node) cmd_node "$@" ;;
run) shift; cmd_run "$@" ;;
*)
	echo "usage: $prog start DIR [2x1|1x2] | stop DIR | status DIR | stop-node DIR N | start-node DIR N | run [2x1|1x2] -- CMD..." >&2
	exit 2
	;;
esac
