#!/usr/bin/env bash
# versitygw.sh runs a throw-away S3 server (Versity S3 Gateway, Apache-2.0,
# posix backend) on loopback for tests and local development. Everything it
# writes (objects, metadata sidecar, log, pid) lives in one folder.
#
#   scripts/versitygw.sh ensure      build versitygw $VERSITYGW_VERSION with
#                                    `go install` into the cache folder unless
#                                    it is there; prints the binary's path
#   scripts/versitygw.sh start DIR   start a server whose objects live in
#                                    DIR/data; prints KEY=VALUE lines (also in
#                                    DIR/env): DMARCD_TEST_S3_ENDPOINT,
#                                    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
#                                    AWS_REGION, VERSITYGW_PID
#   scripts/versitygw.sh stop DIR    stop (kill) the server started in DIR
#
# The binary is cached in ${XDG_CACHE_HOME:-$HOME/.cache}/dmarcd/versitygw/bin
# (VERSITYGW_BIN overrides the path). The first build downloads the module
# through the Go module proxy and takes a few minutes.
#
# Environment: VERSITYGW_START_TIMEOUT (seconds, default 20);
# VERSITYGW_OWNER_PID: with start, stop the server as soon as that process is
# gone (a test binary that panicked or timed out leaves no server behind);
# VERSITYGW_EVENT_WEBHOOK_URL: send bucket event notifications there.
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
version=${VERSITYGW_VERSION:-v1.8.0}
start_timeout=${VERSITYGW_START_TIMEOUT:-20}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/dmarcd/versitygw/bin

bin_path() {
	echo "${VERSITYGW_BIN:-$cache/versitygw}"
}

cmd_ensure() {
	local bin
	bin=$(bin_path)
	if [ -x "$bin" ]; then
		echo "$bin"
		return
	fi
	[ -z "${VERSITYGW_BIN:-}" ] || die "VERSITYGW_BIN=$VERSITYGW_BIN is not an executable"
	command -v go >/dev/null 2>&1 || {
		echo "$prog: go is not on PATH: cannot build versitygw" >&2
		exit 3
	}
	mkdir -p "$cache"
	echo "$prog: building versitygw $version into $cache (first time only; takes minutes)" >&2
	# A lock so that parallel test binaries build it once.
	(
		flock 9
		if [ ! -x "$bin" ]; then
			GOBIN=$cache GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$version" >&2 ||
				{
					echo "$prog: go install github.com/versity/versitygw/cmd/versitygw@$version failed" >&2
					exit 3
				}
		fi
	) 9>"$cache/.lock"
	[ -x "$bin" ] || exit 3
	echo "$bin"
}

random_hex() {
	od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'
}

alive() {
	kill -0 "$1" 2>/dev/null
}

# answers succeeds when an HTTP server answers on port $1 (any status: an
# unsigned request gets 403 from S3).
answers() {
	local reply
	reply=$(tcp_reply "$1" 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' head -c 8) || return 1
	[[ $reply == HTTP/1.* ]]
}

cmd_start() {
	local dir=${1:-} bin port access secret pid i
	[ -n "$dir" ] || die "usage: $prog start DIR"
	bin=$(cmd_ensure)
	mkdir -p "$dir/data" "$dir/meta"
	dir=$(cd "$dir" && pwd -P)
	if pid_running "$dir/versitygw.pid"; then
		cat "$dir/env"
		return
	fi
	access=dmarcd$(random_hex 6)
	secret=$(random_hex 20)
	# A free port may be taken by another test's server between the check
	# and the bind: try again on another port a few times.
	local try started=
	for try in 1 2 3 4 5; do
		port=$(free_port)
		local args=(--access "$access" --secret "$secret" --region us-east-1 --port "127.0.0.1:$port" --quiet)
		if [ -n "${VERSITYGW_EVENT_WEBHOOK_URL:-}" ]; then
			args+=(--event-webhook-url "$VERSITYGW_EVENT_WEBHOOK_URL")
		fi
		# The metadata sidecar folder works where the file system lacks
		# extended attributes (some overlay and tmpfs mounts).
		setsid "$bin" "${args[@]}" posix --sidecar "$dir/meta" "$dir/data" \
			</dev/null >"$dir/versitygw.log" 2>&1 &
		pid=$!
		echo "$pid" >"$dir/versitygw.pid"
		for i in $(seq 1 $((start_timeout * 10))); do
			alive "$pid" || break
			answers "$port" && break
			sleep 0.1
		done
		if alive "$pid" && answers "$port"; then
			started=1
			break
		fi
		if grep -q "address already in use" "$dir/versitygw.log" 2>/dev/null; then
			cmd_stop "$dir"
			continue
		fi
		break
	done
	if [ -z "$started" ]; then
		if ! alive "$pid"; then
			rm -f "$dir/versitygw.pid"
			echo "$prog: versitygw exited at start:" >&2
			tail -n 20 "$dir/versitygw.log" >&2 || true
			exit 1
		fi
		cmd_stop "$dir"
		die "versitygw did not answer on 127.0.0.1:$port within ${start_timeout}s (log: $dir/versitygw.log)"
	fi
	if [ -n "${VERSITYGW_OWNER_PID:-}" ]; then
		watch_owner "$dir" "$VERSITYGW_OWNER_PID" versitygw.pid
	fi
	cat >"$dir/env" <<EOF
DMARCD_TEST_S3_ENDPOINT=http://127.0.0.1:$port
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_REGION=us-east-1
VERSITYGW_PID=$pid
EOF
	cat "$dir/env"
}

# cmd_stop kills the server at once: it is a throw-away test server.
cmd_stop() {
	local dir=${1:-} pid i
	[ -n "$dir" ] || die "usage: $prog stop DIR"
	[ -f "$dir/versitygw.pid" ] || return 0
	pid=$(cat "$dir/versitygw.pid")
	if [ -n "$pid" ] && alive "$pid" && started_in "$pid" "$dir"; then
		kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 50); do
			alive "$pid" || break
			sleep 0.1
		done
	fi
	rm -f "$dir/versitygw.pid"
}

case ${1:-} in
ensure) cmd_ensure ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*)
	echo "usage: $prog ensure | start DIR | stop DIR" >&2
	exit 2
	;;
esac
