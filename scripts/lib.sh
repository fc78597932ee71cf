# shellcheck shell=bash
# lib.sh: what the test-server scripts share. Source it after setting $prog.

# apt_install PKG WHAT installs Debian package PKG with apt-get when we are
# root (running `apt-get update` first when apt-cache does not know it);
# otherwise it says what to install and exits 3. WHAT names the need in
# messages ("clickhouse-server", "promtool").
apt_install() {
	local pkg=$1 what=${2:-$1}
	if [ "$(id -u)" != 0 ]; then
		echo "$prog: $what is not installed and we are not root;" \
			"install it with: sudo apt-get install $pkg" >&2
		exit 3
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "$prog: $what is not installed and apt-get is not available;" \
			"install $pkg by other means" >&2
		exit 3
	fi
	echo "$prog: installing $pkg with apt-get (for $what)" >&2
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-cache show "$pkg" >/dev/null 2>&1; then
		apt-get update -q >&2 || true
	fi
	apt-get install -y -q --no-install-recommends "$pkg" >&2 || {
		echo "$prog: apt-get install $pkg failed" >&2
		exit 3
	}
}

# tcp_reply PORT REQUEST [READER...] sends REQUEST (printf %b escapes; ""
# sends nothing) to 127.0.0.1:PORT and prints what READER (default: cat,
# until the server closes) reads of the answer within 2 seconds; it fails
# when nothing listens or the read does not end in time.
tcp_reply() {
	local port=$1 request=$2
	shift 2
	[ $# -gt 0 ] || set -- cat
	(
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
		[ -z "$request" ] || printf '%b' "$request" >&3
		timeout 2 "$@" <&3
	) 2>/dev/null
}

# port_busy succeeds when something listens on 127.0.0.1:$1.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# die says "$prog: ARGS..." on stderr and exits 1.
die() {
	echo "$prog: $*" >&2
	exit 1
}

# random_port prints a random port below the kernel's ephemeral range
# (ip_local_port_range). port_busy sees only listening sockets: a port in
# that range may be the local end of some outgoing connection (the tests
# open thousands), and a server that binds it fails with "Address already
# in use" (CI lost cluster nodes that way, at start and at restart).
random_port() {
	local low=32768 high
	read -r low high </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	[ "$low" -gt 12000 ] 2>/dev/null || low=32768
	echo $((10000 + RANDOM % (low - 10000)))
}

# free_port prints $1 when it is given and free, else a random free port
# (random_port).
free_port() {
	local p=${1:-} i
	if [ -n "$p" ] && ! port_busy "$p"; then
		echo "$p"
		return
	fi
	for i in $(seq 1 200); do
		p=$(random_port)
		if ! port_busy "$p"; then
			echo "$p"
			return
		fi
	done
	die "no free port found"
}

# ensure_installed FIND PKG BINARY runs function FIND, which prints the
# command that runs a server or nothing; when it prints nothing, PKG is
# installed with apt_install and FIND runs again. It prints what FIND printed,
# or exits 3 when that is still nothing (BINARY names what is missing).
ensure_installed() {
	local find=$1 pkg=$2 binary=$3 s
	s=$("$find")
	if [ -z "$s" ]; then
		apt_install "$pkg"
		s=$("$find")
		[ -n "$s" ] || {
			echo "$prog: $pkg installed but no $binary binary found" >&2
			exit 3
		}
	fi
	echo "$s"
}

# find_clickhouse prints the command that runs clickhouse-server, or nothing.
find_clickhouse() {
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

# ensure_clickhouse installs clickhouse-server with apt-get when it is missing
# and we are root, and prints the command that runs it.
ensure_clickhouse() {
	ensure_installed find_clickhouse clickhouse-server server
}

# ping_clickhouse succeeds when the HTTP interface on port $1 answers with the
# text $2, the start's nonce (http_server_default_response): a server that
# another test run started on the same port at the same moment does not count.
ping_clickhouse() {
	local reply
	reply=$(tcp_reply "$1" 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n') || return 1
	case $reply in *"$2"*) return 0 ;; esac
	return 1
}

# pid_running succeeds when file $1 holds the pid of a running process.
pid_running() {
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1")
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# watch_owner DIR OWNER FILE [REMOVE] watches, from a detached background
# shell, until process OWNER has exited or DIR/FILE (a file that stop removes)
# is gone; when the file is still there it stops the server of DIR with
# `bash $0 stop DIR` ($0 names the calling script). With REMOVE=1 it then
# removes DIR too.
watch_owner() {
	local dir=$1 owner=$2 file=$3 remove=${4:-0} self
	self=$(cd "$(dirname "$0")" && pwd -P)/${0##*/}
	setsid bash -c '
		while kill -0 "$2" 2>/dev/null && [ -f "$1/$4" ]; do sleep 1; done
		[ -f "$1/$4" ] && bash "$3" stop "$1"
		[ "$5" = 1 ] && rm -rf "$1"
	' watch "$dir" "$owner" "$self" "$file" "$remove" </dev/null >/dev/null 2>&1 &
}

# started_in PID DIR succeeds when process PID names DIR in its command line
# (the servers here take their config file from DIR), or when there is no
# /proc to tell. A pid file outlives a server that died, and the kernel
# hands its pid to a later process (pid_max is 32768 on many machines): a
# stop must not signal that process.
started_in() {
	local pid=$1 dir=$2 real cmd
	[ -r /proc/self/cmdline ] || return 0
	real=$(cd "$dir" 2>/dev/null && pwd -P) || real=$dir
	cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
	case $cmd in *"$dir/"* | *"$real/"*) return 0 ;; esac
	return 1
}

# stop_pidfile DIR FILE NAME SECONDS ends the process whose pid DIR/FILE holds
# with TERM, then with KILL when it is still there after SECONDS, and removes
# DIR/FILE. NAME names it in that message, {pid} standing for its pid. A
# process that does not name DIR in its command line (see started_in) is
# left alone.
stop_pidfile() {
	local file=$1/$2 name=$3 secs=$4 pid i
	[ -f "$file" ] || return 0
	pid=$(cat "$file")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && started_in "$pid" "$1"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 $((secs * 5))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$prog: ${name//"{pid}"/$pid} did not stop in ${secs}s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$file"
}

# start_temporary TAG [ARGS...] runs `cmd_start DIR ARGS...` (the calling
# script's) on a new folder DIR in $TMPDIR (dmarcd-TAG.XXXXXX) and exports the
# variables of DIR/env. When the script exits, cmd_stop DIR stops the server
# and DIR is removed.
start_temporary() {
	local tag=$1 dir
	shift
	dir=$(mktemp -d "${TMPDIR:-/tmp}/dmarcd-$tag.XXXXXX")
	# shellcheck disable=SC2064
	trap "cmd_stop '$dir'; rm -rf '$dir'" EXIT
	trap 'exit 130' INT TERM
	cmd_start "$dir" "$@" >/dev/null
	set -a
	# shellcheck disable=SC1091
	. "$dir/env"
	set +a
}
