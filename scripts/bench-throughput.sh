#!/usr/bin/env bash
# Throughput benchmarks of issue 19, each beside the physical limit measured
# in the same run: the same rows inserted by clickhouse-client from Native
# files into a copy database of identically shaped tables (one INSERT per
# table). Prints figures and never fails on speed. Needs a ClickHouse: run it
# as `scripts/clickhouse.sh run -- scripts/bench-throughput.sh`
# (make bench-throughput).
#
#   1. BENCH_SMALL_REPORTS (2000) generated reports of 10-500 records, one
#      file each (dmarcd-gen -large, sizes Pareto-distributed, mean about 30),
#      stored by `dmarcd ingest FOLDER`: reports/s, records/s, ClickHouse CPU,
#      parts created per 1,000 reports;
#   2. BENCH_IMAP_MAILS (2000) mails of a local Dovecot drained by
#      `dmarcd serve` (scripts/bench-daemon.sh): mails/s;
#   3. one BENCH_LARGE_RECORDS (1,000,000) record report by `dmarcd ingest`:
#      records/s with every rollup, peak RSS;
#   4. BENCH_KILLS (3) times each: a `dmarcd ingest` killed by SIGKILL in the
#      middle of a report's commit (DMARCD_FAILPOINT, store/rollup.go), then
#      the time from the kill to the commit of that report by a new process.
#
# ClickHouse CPU is the server process's user+system time (/proc/PID/stat)
# from the start of a run until no merge runs any more (at most
# BENCH_SETTLE seconds, default 120): the merges a run causes are its cost.
# Parts created are system.part_log's NewPart rows of the run's database.
# The machine's load average is printed at the start, before each part and
# at the end (shared machines).
#
# BENCH_PARTS (default "small imap large kill") selects the parts.
# BENCH_DMARCD names a dmarcd binary to measure instead of the tree's (a
# build of another commit, for before and after in the same hour); the imap
# part always measures the tree's, which scripts/bench-daemon.sh builds.
set -euo pipefail
cd "$(dirname "$0")/.."
prog=${0##*/}
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
: "${DMARCD_TEST_CLICKHOUSE_ADDR:?run under scripts/clickhouse.sh run --}"
: "${CLICKHOUSE_PID:?run under scripts/clickhouse.sh run --}"
small=${BENCH_SMALL_REPORTS:-2000}
mails=${BENCH_IMAP_MAILS:-2000}
large=${BENCH_LARGE_RECORDS:-1000000}
kills=${BENCH_KILLS:-3}
settle_secs=${BENCH_SETTLE:-120}
bench_parts=${BENCH_PARTS:-small imap large kill}
for p in $bench_parts; do
	case $p in small | imap | large | kill | s3) ;; *) die "BENCH_PARTS: no part $p (small imap large kill s3)" ;; esac
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

command -v clickhouse-client >/dev/null 2>&1 || apt_install clickhouse-client
[ -x /usr/bin/time ] || apt_install time "GNU time"
if [ -n "${BENCH_DMARCD:-}" ]; then
	cp "$BENCH_DMARCD" "$tmp/dmarcd"
else
	go build -o "$tmp/dmarcd" ./cmd/dmarcd
fi
go build -o "$tmp/dmarcd-gen" ./cmd/dmarcd-gen
tck=$(getconf CLK_TCK)

chq() { clickhouse-client --host 127.0.0.1 --port "$CLICKHOUSE_TCP_PORT" "$@"; }
now_ms() { date +%s%3N; }
load() { echo "load ($1): $(uptime | sed 's/.*load average: //')"; }
# ch_cpu_ms prints the server's CPU time so far (user + system) in ms.
ch_cpu_ms() { awk -v t="$tck" '{ printf "%d", ($14 + $15) * 1000 / t }' "/proc/$CLICKHOUSE_PID/stat"; }
# settle waits until no merge runs (or settle_secs have passed).
settle() {
	local i
	for i in $(seq 1 $((settle_secs * 5))); do
		[ "$(chq -q 'SELECT count() FROM system.merges')" = 0 ] && return 0
		sleep 0.2
	done
	echo "  (merges still running after ${settle_secs}s)"
}
# parts DB prints "NEW MERGES": parts created by inserts and by merges in DB.
parts() {
	chq -q 'SYSTEM FLUSH LOGS'
	chq -q "SELECT countIf(toInt8(event_type) = 1), countIf(toInt8(event_type) = 2) FROM system.part_log WHERE database = '$1'" | tr '\t' ' '
}
# use_db DB points dmarcd at database DB and creates its tables.
use_db() {
	export DMARCD_CLICKHOUSE_DSN="clickhouse://$DMARCD_TEST_CLICKHOUSE_ADDR/$1"
	"$tmp/dmarcd" migrate >/dev/null 2>&1
}
# dmarcd_run LABEL UNITS UNIT ARGS... runs dmarcd ARGS under GNU time and
# prints wall time, UNITS/s, client CPU, peak RSS and the server's CPU until
# merges settled; it sets run_secs and run_ch_ms for the ratios.
dmarcd_run() {
	local label=$1 units=$2 unit=$3 c0 c1
	shift 3
	settle
	c0=$(ch_cpu_ms)
	/usr/bin/time -f '%e %U %S %M' -o "$tmp/time" "$tmp/dmarcd" "$@" >"$tmp/out.json" 2>"$tmp/err.log" ||
		{ echo "$prog: dmarcd $* failed:" >&2; tail -n 20 "$tmp/err.log" >&2; exit 1; }
	settle
	c1=$(ch_cpu_ms)
	read -r run_secs user sys rss <"$tmp/time"
	run_ch_ms=$((c1 - c0))
	awk -v l="$label" -v n="$units" -v u="$unit" -v s="$run_secs" \
		-v cpu="$(awk -v a="$user" -v b="$sys" 'BEGIN { print a + b }')" -v r="$rss" -v ch="$run_ch_ms" 'BEGIN {
		printf "%s: %.2f s  %.0f %s/s  client CPU %.1f s  peak RSS %.0f MB  ClickHouse CPU %.1f s\n", l, s, n / s, u, cpu, r / 1024, ch / 1000 }'
}
# raw_insert SRC DST RECORDS copies every non-empty table of database SRC
# (schema_migrations apart) into database DST through Native files, timing
# only the INSERTs (one clickhouse-client each, in a row; its --time, which
# leaves out the client's start, slow on a loaded machine), and prints the
# time of each table and in all, the server's CPU, the parts created, and the
# ratios of run_secs and run_ch_ms to them.
raw_insert() {
	local src=$1 dst=$2 records=$3 t rows ms c0 c1 total_ms=0 total_rows=0 line
	mkdir -p "$tmp/native"
	chq -q "CREATE DATABASE IF NOT EXISTS $dst"
	chq -q "SELECT table, sum(rows) FROM system.parts WHERE database = '$src' AND active AND table != 'schema_migrations'
		GROUP BY table HAVING sum(rows) > 0 ORDER BY table" >"$tmp/tables"
	while read -r t rows; do
		chq -q "SELECT * FROM $src.$t FORMAT Native" >"$tmp/native/$t"
		chq -q "SHOW CREATE TABLE $src.$t FORMAT TabSeparatedRaw" | sed "s/^CREATE TABLE $src\./CREATE TABLE $dst./" | chq
	done <"$tmp/tables"
	settle
	c0=$(ch_cpu_ms)
	line=""
	while read -r t rows; do
		chq --time -q "INSERT INTO $dst.$t FORMAT Native" <"$tmp/native/$t" 2>"$tmp/qtime"
		ms=$(awk '{ printf "%d", $1 * 1000 }' "$tmp/qtime")
		total_ms=$((total_ms + ms))
		total_rows=$((total_rows + rows))
		line="$line $t $rows rows $ms ms;"
	done <"$tmp/tables"
	settle
	c1=$(ch_cpu_ms)
	rm -rf "$tmp/native"
	echo "  raw Native insert, per table:${line%;}"
	read -r newparts merges <<<"$(parts "$dst")"
	awk -v ms="$total_ms" -v rows="$total_rows" -v ch=$((c1 - c0)) -v p="$newparts" -v m="$merges" \
		-v s="$run_secs" -v rch="$run_ch_ms" -v n="$records" 'BEGIN {
		printf "  raw Native insert of the same rows (%d rows): %.2f s  ClickHouse CPU %.2f s  %d parts created, %d merges\n", rows, ms / 1000, ch / 1000, p, m
		printf "  ratio dmarcd / raw: wall time %.1fx, ClickHouse CPU per record %.1fx (%.1f vs %.2f us per record)\n",
			s * 1000 / (ms > 0 ? ms : 1), rch / (ch > 0 ? ch : 10), rch * 1000 / n, ch * 1000 / n }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3), $(chq -q 'SELECT version()' | sed 's/^/ClickHouse /')"
load start

# 1. Small reports from files.
part_small() {
	echo
	load "small reports"
	mkdir -p "$tmp/small"
	# Sizes: Pareto with shape 1.4 from 10, capped at 500 (most reports are
	# small, a few large), mean about 30 records.
	awk -v n="$small" 'BEGIN { srand(1); for (i = 1; i <= n; i++) { r = int(10 / (1 - rand()) ^ (1 / 1.4)); print i, (r > 500 ? 500 : r) } }' >"$tmp/sizes"
	while read -r i r; do
		"$tmp/dmarcd-gen" -large "$r" -seed "$i" -out "$tmp/small/$(printf %05d "$i").xml"
	done <"$tmp/sizes"
	recs=$(awk '{ s += $2 } END { print s }' "$tmp/sizes")
	use_db bench_small
	dmarcd_run "small reports: dmarcd ingest of $small files, $recs records" "$recs" records ingest --json "$tmp/small"
	stored=$(grep -c '"status":"stored"' "$tmp/out.json" || true)
	read -r newparts merges <<<"$(parts bench_small)"
	awk -v n="$small" -v st="$stored" -v s="$run_secs" -v p="$newparts" -v m="$merges" 'BEGIN {
		printf "  %.1f reports/s (%d stored); %d parts created (%.0f per 1,000 reports), %d merges\n", n / s, st, p, p * 1000 / n, m }'
	raw_insert bench_small raw_small "$recs"
	rm -rf "$tmp/small"
}

# 2. IMAP backlog drained by dmarcd serve (scripts/bench-daemon.sh).
part_imap() {
	echo
	load "IMAP backlog"
	settle
	c0=$(ch_cpu_ms)
	BENCH_MAILS=$mails scripts/bench-daemon.sh >"$tmp/daemon.out"
	grep -v '^machine:' "$tmp/daemon.out"
	settle
	c1=$(ch_cpu_ms)
	db=$(chq -q "SELECT name FROM system.databases WHERE name LIKE 'bench_daemon_%' ORDER BY name DESC LIMIT 1")
	recs=$(chq -q "SELECT count() FROM $db.aggregate_records")
	read -r newparts merges <<<"$(parts "$db")"
	run_ch_ms=$((c1 - c0))
	run_secs=$(sed -n 's/^serve backlog .*: *\([0-9.]*\) s .*/\1/p' "$tmp/daemon.out")
	awk -v ch="$run_ch_ms" -v p="$newparts" -v m="$merges" -v n="$mails" -v r="$recs" 'BEGIN {
		printf "  ClickHouse CPU %.1f s (%.0f us per record, %d records); %d parts created (%.0f per 1,000 mails), %d merges\n", ch / 1000, ch * 1000 / r, r, p, p * 1000 / n, m }'
	raw_insert "$db" raw_daemon "$recs"
}

# 3. One large report.
part_large() {
	echo
	load "large report"
	"$tmp/dmarcd-gen" -large "$large" -seed 1 -out "$tmp/large.xml"
	use_db bench_large
	dmarcd_run "large report: dmarcd ingest of $large records ($(($(stat -c %s "$tmp/large.xml") / 1000000)) MB XML)" "$large" records ingest --json "$tmp/large.xml"
	rm -f "$tmp/large.xml"
	read -r newparts merges <<<"$(parts bench_large)"
	echo "  $newparts parts created, $merges merges"
	raw_insert bench_large raw_large "$large"
}

# 4. SIGKILL in the middle of a write, then a new process.
# kill_restart LABEL RECORDS POINT SEED writes a report of RECORDS records,
# has `dmarcd ingest` kill itself with SIGKILL at failpoint POINT while
# storing it, then stores it with a new process and prints the milliseconds
# from the kill to that commit.
kill_restart() {
	local label=$1 records=$2 point=$3 seed=$4 rc=0 t0 t1
	"$tmp/dmarcd-gen" -large "$records" -seed "$seed" -out "$tmp/kill.xml"
	DMARCD_FAILPOINT=$point "$tmp/dmarcd" ingest --json "$tmp/kill.xml" >/dev/null 2>&1 || rc=$?
	t0=$(now_ms)
	[ "$rc" = 137 ] || { echo "$prog: $label: dmarcd ingest with DMARCD_FAILPOINT=$point exited $rc, not by SIGKILL" >&2; exit 1; }
	"$tmp/dmarcd" ingest --json "$tmp/kill.xml" >"$tmp/out.json" 2>"$tmp/err.log"
	t1=$(now_ms)
	grep -q '"status":"stored"' "$tmp/out.json" || { echo "$prog: $label: the restarted process did not store the report:" >&2; cat "$tmp/out.json" "$tmp/err.log" >&2; exit 1; }
	echo "$((t1 - t0))"
}

part_kill() {
	echo
	load "restart after SIGKILL"
	use_db bench_kill
	# A distinct seed for every report: the same seed writes the same report ID.
	seed=1000
	for spec in "1000 after-records" "20000 after-staging"; do
		read -r records point <<<"$spec"
		times=""
		for k in $(seq 1 "$kills"); do
			seed=$((seed + 1))
			times="$times $(kill_restart "$records records at $point" "$records" "$point" "$seed")"
		done
		echo "$times" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk -v r="$records" -v p="$point" '{ t[NR] = $1 } END {
			printf "restart after SIGKILL (report of %d records, killed %s): kill to committed report %.2f s median (%.2f-%.2f, %d runs)\n", r, p, t[int((NR + 1) / 2)] / 1000, t[1] / 1000, t[NR] / 1000, NR }'
	done
}

# 5. An S3 backlog (BENCH_PARTS=s3): BENCH_S3_OBJECTS (2000) small reports
# generated as in part 1, one object each, in a versitygw bucket
# (scripts/versitygw.sh), drained by `dmarcd ingest s3://bench/incoming/`:
# objects/s, ClickHouse CPU, parts created per 1,000 objects. The objects
# are written into the server's posix folder with their ETag (MD5) in its
# metadata sidecar, as a PutObject leaves them, which takes seconds rather
# than minutes.
part_s3() {
	local n=${BENCH_S3_OBJECTS:-2000} d=$tmp/versitygw data meta i r f e
	echo
	load "S3 backlog"
	mkdir -p "$d"
	VERSITYGW_OWNER_PID=$$ scripts/versitygw.sh start "$d" >/dev/null
	data=$d/data/bench/incoming
	meta=$d/meta/bench/incoming
	mkdir -p "$data"
	awk -v n="$n" 'BEGIN { srand(1); for (i = 1; i <= n; i++) { r = int(10 / (1 - rand()) ^ (1 / 1.4)); print i, (r > 500 ? 500 : r) } }' >"$tmp/sizes"
	while read -r i r; do
		f=$(printf %05d "$i").xml
		"$tmp/dmarcd-gen" -large "$r" -seed "$i" -out "$data/$f"
		mkdir -p "$meta/$f/meta"
		e=$(md5sum "$data/$f" | cut -d' ' -f1)
		printf '"%s"' "$e" >"$meta/$f/meta/etag"
	done <"$tmp/sizes"
	recs=$(awk '{ s += $2 } END { print s }' "$tmp/sizes")
	use_db bench_s3
	set -a
	# shellcheck disable=SC1091
	. "$d/env"
	set +a
	export DMARCD_S3_ENDPOINT=$DMARCD_TEST_S3_ENDPOINT DMARCD_S3_PATH_STYLE=1
	dmarcd_run "S3 backlog: dmarcd ingest of $n objects, $recs records" "$recs" records ingest --json s3://bench/incoming/
	unset DMARCD_S3_ENDPOINT DMARCD_S3_PATH_STYLE
	stored=$(grep -c '"status":"stored"' "$tmp/out.json" || true)
	read -r newparts merges <<<"$(parts bench_s3)"
	awk -v n="$n" -v st="$stored" -v s="$run_secs" -v p="$newparts" -v m="$merges" 'BEGIN {
		printf "  %.1f objects/s (%d stored); %d parts created (%.0f per 1,000 objects), %d merges\n", n / s, st, p, p * 1000 / n, m }'
	scripts/versitygw.sh stop "$d"
	raw_insert bench_s3 raw_s3 "$recs"
}

for p in $bench_parts; do
	"part_$p"
done
echo
load end
