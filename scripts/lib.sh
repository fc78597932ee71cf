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

# port_busy succeeds when something listens on 127.0.0.1:$1.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
