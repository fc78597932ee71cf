#!/usr/bin/env bash
# dovecot.sh runs a throw-away Dovecot IMAP server on loopback for tests and
# local development. Everything it writes (config, passwords, mail, state,
# logs, pid) lives in one folder.
#
#   scripts/dovecot.sh start DIR   start a server whose state lives in DIR;
#                                  prints KEY=VALUE lines (also in DIR/env):
#                                  DMARCD_TEST_IMAP_ADDR=127.0.0.1:PORT,
#                                  DMARCD_TEST_IMAP_USER, DMARCD_TEST_IMAP_PASSWORD
#   scripts/dovecot.sh stop DIR    stop (kill) the server started in DIR
#
# start DIR after stop DIR restarts the same server: same port (when still
# free), same password, same mail.
#
# The server is Debian's dovecot-imapd. When it is missing and we are root it
# is installed with apt-get; otherwise the script says what to install and
# exits 3.
#
# Dovecot as an unprivileged test server (see docs/design.md): it refuses to
# run its login process as root, so as root the login and internal users are
# the packaged dovenull and dovecot, and mail is owned by the system user
# "mail" (uid 8, hence first_valid_uid lowered). Not as root, every process
# runs as the calling user. Plain IMAP (ssl = no) on 127.0.0.1 only, with a
# passwd-file passdb holding a {PLAIN} password made up at start.
#
# Environment: DOVECOT_START_TIMEOUT (seconds, default 20);
# DOVECOT_IMAP_CAPABILITY, when set, replaces the capability list announced
# after login (imap_capability), e.g. "IMAP4rev1 IDLE" to make a client
# believe the server lacks MOVE and UIDPLUS.
# DOVECOT_SSL_CERT and DOVECOT_SSL_KEY (PEM files), when set, turn TLS on:
# STARTTLS on the plain port (plaintext logins stay allowed) and implicit
# TLS on a second port, printed as DMARCD_TEST_IMAPS_ADDR=127.0.0.1:PORT.
# DOVECOT_OAUTH2_INTROSPECTION_URL, when set, adds an oauth2 passdb for the
# XOAUTH2 and OAUTHBEARER mechanisms that checks tokens by POSTing them to
# that URL (RFC 7662 introspection): a 200 answer with "active": true and
# "username" logs that user in, "active": false rejects the token, any
# other status is a temporary failure (NO [UNAVAILABLE]).
set -euo pipefail

prog=${0##*/}
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"
start_timeout=${DOVECOT_START_TIMEOUT:-20}

find_server() {
	local c
	for c in dovecot /usr/sbin/dovecot; do
		if command -v "$c" >/dev/null 2>&1 && [ -e /usr/lib/dovecot/imap ]; then
			command -v "$c"
			return
		fi
	done
}

# ensure_server installs dovecot-imapd with apt-get when it is missing and we
# are root, and prints the path of the dovecot binary.
ensure_server() {
	ensure_installed find_server dovecot-imapd dovecot
}

# greets succeeds when an IMAP server on port $1 sends its "* OK" greeting.
greets() {
	local reply
	reply=$(tcp_reply "$1" "" head -c 4) || return 1
	[ "$reply" = "* OK" ]
}

random_password() {
	od -An -N12 -tx1 /dev/urandom | tr -d ' \n'
}

# write_config writes DIR/dovecot.conf and DIR/passwd for the given port,
# mail uid/gid and process users.
write_config() {
	local dir=$1 port=$2 uid=$3 gid=$4 login_user=$5 internal_user=$6 user=$7 pass=$8 tls_port=${9:-0}
	local ssl="ssl = no" mechs="plain login" oauth_passdb=""
	if [ -n "${DOVECOT_SSL_CERT:-}" ]; then
		ssl="ssl = yes
ssl_cert = <$DOVECOT_SSL_CERT
ssl_key = <$DOVECOT_SSL_KEY"
	fi
	if [ -n "${DOVECOT_OAUTH2_INTROSPECTION_URL:-}" ]; then
		mechs="plain login xoauth2 oauthbearer"
		oauth_passdb="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/dovecot-oauth2.conf.ext
}"
		cat >"$dir/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $DOVECOT_OAUTH2_INTROSPECTION_URL
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
		chmod 0644 "$dir/dovecot-oauth2.conf.ext"
	fi
	cat >"$dir/dovecot.conf" <<EOF
# Written by scripts/dovecot.sh: a test IMAP server on loopback.
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/log/dovecot.log
info_log_path = $dir/log/dovecot.log
protocols = imap
listen = 127.0.0.1
$ssl
disable_plaintext_auth = no
auth_mechanisms = $mechs
auth_failure_delay = 0
default_login_user = $login_user
default_internal_user = $internal_user
first_valid_uid = $uid
first_valid_gid = $gid
mail_location = maildir:$dir/mail/%u
mail_fsync = never
mailbox_idle_check_interval = 1 secs
${DOVECOT_IMAP_CAPABILITY:+imap_capability = $DOVECOT_IMAP_CAPABILITY}
namespace inbox {
  inbox = yes
}
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $dir/passwd
}
$oauth_passdb
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $tls_port
    ssl = yes
  }
}
service stats {
  unix_listener stats-writer {
    mode = 0666
  }
}
EOF
	printf '%s:{PLAIN}%s\n' "$user" "$pass" >"$dir/passwd"
	chmod 0644 "$dir/passwd"
}

# alive succeeds when process $1 runs (a zombie that init has not reaped yet
# does not count).
alive() {
	local st
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		st=$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
		[ "$st" != Z ] || return 1
	fi
}

master_pid() {
	local dir=$1
	[ -f "$dir/run/master.pid" ] && cat "$dir/run/master.pid"
}

# is_running DIR succeeds when the dovecot of DIR runs: its pid file names a
# live process that was started from DIR (started_in; a pid file outlives a
# master that died, and its pid may be another process's by now).
is_running() {
	local pid
	pid=$(master_pid "$1") || return 1
	[ -n "$pid" ] && alive "$pid" && started_in "$pid" "$1"
}

# start_once tries one start on the given port; it fails with status 2 when
# the server died early (e.g. a port race with another test binary).
start_once() {
	local dir=$1 server=$2 port=$3 i pid
	# Runs in its own session so that a test runner's signals to our process
	# group do not reach it; stop DIR ends it by pid. The master daemonizes.
	if ! setsid "$server" -c "$dir/dovecot.conf" >"$dir/log/stdout.log" 2>&1 </dev/null; then
		if grep -q "in use" "$dir/log/stdout.log" "$dir/log/dovecot.log" 2>/dev/null; then
			return 2 # port taken meanwhile: try another
		fi
		echo "$prog: dovecot -c $dir/dovecot.conf failed:" >&2
		cat "$dir/log/stdout.log" >&2
		tail -n 20 "$dir/log/dovecot.log" >&2 2>/dev/null || true
		exit 1
	fi
	for i in $(seq 1 $((start_timeout * 10))); do
		pid=$(master_pid "$dir" || true)
		if [ -n "$pid" ] && ! alive "$pid"; then
			return 2
		fi
		if greets "$port"; then
			return 0
		fi
		sleep 0.1
	done
	echo "$prog: dovecot did not answer on 127.0.0.1:$port within ${start_timeout}s; see $dir/log/" >&2
	tail -n 20 "$dir/log/dovecot.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
	cmd_stop "$dir"
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
	# A pid file left by a master that died: dovecot refuses to start while
	# the pid it names is alive, whatever process has it now.
	rm -f "$dir/run/master.pid"
	local server uid gid login_user internal_user user=dmarc pass port try rc=0
	server=$(ensure_server) || exit $?
	if [ "$(id -u)" = 0 ]; then
		# Mail belongs to the system user "mail"; the login and internal
		# processes run as Dovecot's own unprivileged users.
		uid=$(id -u mail) || die "no system user \"mail\" to own the test mail"
		gid=$(id -g mail)
		login_user=dovenull
		internal_user=dovecot
		id dovenull >/dev/null 2>&1 && id dovecot >/dev/null 2>&1 ||
			die "users dovenull and dovecot are missing (dovecot-core creates them)"
	else
		uid=$(id -u)
		gid=$(id -g)
		login_user=$(id -un)
		internal_user=$login_user
	fi
	local old_port="" old_tls_port="" tls_port=0
	pass=""
	if [ -f "$dir/env" ]; then # a restart: keep the password, try the port
		pass=$(sed -n 's/^DMARCD_TEST_IMAP_PASSWORD=//p' "$dir/env")
		old_port=$(sed -n 's/^DMARCD_TEST_IMAP_ADDR=127.0.0.1://p' "$dir/env")
		old_tls_port=$(sed -n 's/^DMARCD_TEST_IMAPS_ADDR=127.0.0.1://p' "$dir/env")
	fi
	[ -n "$pass" ] || pass=$(random_password)
	mkdir -p "$dir/run" "$dir/state" "$dir/log" "$dir/mail" "$dir/home"
	# The mail user must reach DIR/mail and DIR/home through DIR.
	chmod 0711 "$dir"
	chmod 0755 "$dir/run" "$dir/state" "$dir/log"
	if [ "$(id -u)" = 0 ]; then
		chown "$uid:$gid" "$dir/mail" "$dir/home"
	fi
	for try in 1 2 3 4 5; do
		if [ "$try" = 1 ] && [ -n "$old_port" ] && ! port_busy "$old_port"; then
			port=$old_port
		else
			port=$(free_port)
		fi
		if [ -n "${DOVECOT_SSL_CERT:-}" ]; then
			if [ "$try" = 1 ] && [ -n "$old_tls_port" ] && ! port_busy "$old_tls_port"; then
				tls_port=$old_tls_port
			else
				tls_port=$(free_port)
				[ "$tls_port" != "$port" ] || tls_port=$(free_port)
			fi
		fi
		write_config "$dir" "$port" "$uid" "$gid" "$login_user" "$internal_user" "$user" "$pass" "$tls_port"
		rc=0
		start_once "$dir" "$server" "$port" || rc=$?
		[ "$rc" = 0 ] && break
		cmd_stop "$dir"
	done
	if [ "$rc" != 0 ]; then
		echo "$prog: dovecot exited during start; last log lines:" >&2
		tail -n 20 "$dir/log/dovecot.log" "$dir/log/stdout.log" >&2 2>/dev/null || true
		exit 1
	fi
	cat >"$dir/env" <<EOF
DMARCD_TEST_IMAP_ADDR=127.0.0.1:$port
DMARCD_TEST_IMAP_USER=$user
DMARCD_TEST_IMAP_PASSWORD=$pass
${DOVECOT_SSL_CERT:+DMARCD_TEST_IMAPS_ADDR=127.0.0.1:$tls_port
}DOVECOT_CONF=$dir/dovecot.conf
DOVECOT_PID=$(master_pid "$dir")
EOF
	chmod 0600 "$dir/env"
	cat "$dir/env"
}

# cmd_stop kills the server at once: it is a throw-away test server, and
# Dovecot's own shutdown (SIGTERM) takes about two seconds. The master leads
# its own process group (setsid), so the group is every Dovecot process.
cmd_stop() {
	local dir=${1:-} pid i
	[ -n "$dir" ] || die "usage: $prog stop DIR"
	pid=$(master_pid "$dir" || true)
	if [ -n "$pid" ] && alive "$pid" && started_in "$pid" "$dir"; then
		if [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ]; then
			kill -KILL -- "-$pid" 2>/dev/null || true
		else
			kill -KILL "$pid" 2>/dev/null || true
		fi
		for i in $(seq 1 100); do
			alive "$pid" || break
			sleep 0.05
		done
	fi
	rm -f "$dir/run/master.pid"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*)
	echo "usage: $prog start DIR | stop DIR" >&2
	exit 2
	;;
esac
