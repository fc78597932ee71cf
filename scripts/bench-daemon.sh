#!/usr/bin/env bash
# Daemon backlog benchmark: `dmarcd serve` with one IMAP source working
# through a backlog of N generated report mails (default 10,000) in a local
# Dovecot (scripts/dovecot.sh). Prints mails/s, records/s and the daemon's
# peak RSS; never fails on speed. BENCH_CONCURRENCY sets the source's
# concurrency (default: the daemon's default). Needs a ClickHouse: run it as
# `scripts/clickhouse.sh run -- scripts/bench-daemon.sh` (make bench-daemon).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DMARCD_TEST_CLICKHOUSE_ADDR:?run under scripts/clickhouse.sh run --}"
n=${BENCH_MAILS:-10000}
tmp=$(mktemp -d)
dov=$(mktemp -d) # passed to dovecot.sh itself, which opens it to Dovecot's users
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	scripts/dovecot.sh stop "$dov" >/dev/null 2>&1 || true
	rm -rf "$tmp" "$dov"
}
trap cleanup EXIT
go build -o "$tmp/dmarcd" ./cmd/dmarcd
go build -o "$tmp/dmarcd-gen" ./cmd/dmarcd-gen
go build -o "$tmp/imapappend" ./internal/tools/imapappend
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"

# The generator writes about 4 report mails a day of reports: enough days
# for n mails, then the first n of them.
mkdir -p "$tmp/gen" "$tmp/mails"
"$tmp/dmarcd-gen" -out "$tmp/gen" -days $((n / 3 + 10)) -seed 1 -domain bench-daemon.example >/dev/null
find "$tmp/gen" -name '*.eml' | sort >"$tmp/list"
head -n "$n" "$tmp/list" | xargs -d '\n' mv -t "$tmp/mails"
mails=$(find "$tmp/mails" -name '*.eml' | wc -l)

scripts/dovecot.sh start "$dov" >/dev/null
set -a
. "$dov/env"
set +a
start=$(date +%s%3N)
"$tmp/imapappend" -conns 4 "$tmp/mails" >/dev/null
awk -v n="$mails" -v ms="$(($(date +%s%3N) - start))" 'BEGIN { printf "APPEND %d mails: %.1f s\n", n, ms / 1000 }'

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/dmarcd.yaml" <<YAML
http: {listen: 127.0.0.1:$port}
clickhouse: {dsn: "clickhouse://$DMARCD_TEST_CLICKHOUSE_ADDR/bench_daemon_$(date +%s)"}
log: {level: warn}
owned_domains: [bench-daemon.example]
sources:
  - name: bench
    type: imap
    address: $DMARCD_TEST_IMAP_ADDR
    tls: none
    username: $DMARCD_TEST_IMAP_USER
    poll_interval: 1s
YAML
if [ -n "${BENCH_CONCURRENCY:-}" ]; then
	echo "    concurrency: $BENCH_CONCURRENCY" >>"$tmp/dmarcd.yaml"
fi
start=$(date +%s%3N)
env -u DMARCD_CLICKHOUSE_DSN DMARCD_SOURCES_BENCH_PASSWORD="$DMARCD_TEST_IMAP_PASSWORD" \
	DMARCD_PRIVACY_KEY=00112233445566778899aabbccddeeff \
	"$tmp/dmarcd" serve --config "$tmp/dmarcd.yaml" 2>"$tmp/serve.log" &
pid=$!
while :; do
	left=$("$tmp/imapappend" -count 2>/dev/null || echo -1)
	[ "$left" = 0 ] && break
	if ! kill -0 "$pid" 2>/dev/null; then
		echo "bench-daemon: dmarcd serve exited; its log:" >&2
		cat "$tmp/serve.log" >&2
		exit 1
	fi
	sleep 0.2
done
ms=$(($(date +%s%3N) - start))
rss_kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status")
curl -s "http://127.0.0.1:$port/metrics" >"$tmp/metrics"
records=$(awk '/^dmarcd_records_stored_total\{/ { s += $2 } END { printf "%d", s }' "$tmp/metrics")
# Where the time went: summed over the reports (in parallel at concurrency > 1).
awk '/^dmarcd_stage_duration_seconds_(sum|count)\{kind="aggregate"/ {
	split($1, a, "stage=\""); split(a[2], b, "\""); if ($1 ~ /_sum/) sum[b[1]] = $2; else n[b[1]] = $2 }
	END { for (st in sum) if (n[st] > 0) printf "  stage %-6s %8.1f ms per report (%d reports)\n", st, 1000 * sum[st] / n[st], n[st] }' "$tmp/metrics"
kill -TERM "$pid"
wait "$pid" || true
pid=
awk -v n="$mails" -v r="$records" -v ms="$ms" -v m="$rss_kb" -v c="${BENCH_CONCURRENCY:-default}" 'BEGIN { s = ms / 1000
	printf "serve backlog %d mails (%d records) over IMAP, concurrency %s: %6.2f s  %6.0f mails/s  %7.0f records/s  peak RSS %4.0f MB\n", n, r, c, s, n / s, r / s, m / 1024 }'
