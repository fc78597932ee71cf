#!/usr/bin/env bash
# Hostile-input benchmark: every attack of internal/testkit/hostile at its bench size
# (inputs up to limits.max_message_bytes, 64 MiB, expanding to gigabytes) through
# `dmarcd ingest --json` at the default limits, four at once, while a fifth
# worker keeps ingesting good reports. Prints per attack the outcome, wall
# time, CPU (user+sys) and peak RSS, then how the good reports fared. The
# target (issue 15): no attack over 200 MB RSS or 10 s of CPU, every good
# report stored. Never fails on speed or memory. Needs a ClickHouse:
#
#   scripts/clickhouse.sh run -- scripts/bench-hostile.sh            # this checkout (make bench-hostile)
#   BENCH_HOSTILE_REV=71dcaa7 scripts/clickhouse.sh run -- scripts/bench-hostile.sh   # another commit
#
# Each dmarcd run gets `ulimit -v BENCH_HOSTILE_CAP_KB` (default 3000000, 3 GB of
# address space) and `ulimit -t BENCH_HOSTILE_CPU_CAP` (default 60 s), so that
# a binary without the limits is "killed at cap" instead of taking the
# machine. BENCH_HOSTILE_ONLY=name,name runs some attacks only;
# BENCH_HOSTILE_JOBS (default 4) sets the concurrency.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DMARCD_TEST_CLICKHOUSE_ADDR:?run under scripts/clickhouse.sh run --}"
cap_kb=${BENCH_HOSTILE_CAP_KB:-3000000}
cpu_cap=${BENCH_HOSTILE_CPU_CAP:-60}
jobs=${BENCH_HOSTILE_JOBS:-4}
tmp=$(mktemp -d)
trap 'touch "$tmp/done"; wait; rm -rf "$tmp"' EXIT
if ! [ -x /usr/bin/time ] && [ "$(id -u)" = 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi

rev=${BENCH_HOSTILE_REV:-}
if [ -n "$rev" ]; then
	mkdir "$tmp/src"
	git archive "$rev" | tar -x -C "$tmp/src"
	(cd "$tmp/src" && go build -o "$tmp/dmarcd" ./cmd/dmarcd)
	label="$(git rev-parse --short "$rev")"
else
	go build -o "$tmp/dmarcd" ./cmd/dmarcd
	label="$(git describe --tags --always --dirty 2>/dev/null || echo checkout)"
fi
go build -o "$tmp/hostilegen" ./internal/tools/hostilegen
mkdir "$tmp/attacks" "$tmp/res" "$tmp/good"
"$tmp/hostilegen" -size bench ${BENCH_HOSTILE_ONLY:+-only "$BENCH_HOSTILE_ONLY"} "$tmp/attacks"

export DMARCD_CLICKHOUSE_DSN="clickhouse://${DMARCD_TEST_CLICKHOUSE_ADDR}/bench_hostile_$$"
export DMARCD_PRIVACY_KEY=00112233445566778899aabbccddeeff DMARCD_REPORT_AUTH_ENABLED=false
unset DMARCD_LIMITS_MAX_MEMBER_BYTES DMARCD_LIMITS_MAX_TOTAL_BYTES DMARCD_OWNED_DOMAINS
"$tmp/dmarcd" migrate >/dev/null 2>&1
echo "binary: $label; machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $jobs at once; caps ${cap_kb} KB address space, ${cpu_cap} s CPU"

# run NAME INPUT: one dmarcd ingest under the caps; writes res/NAME as
# "name|input bytes|outcome|wall|cpu|rss MB".
run() {
	local name=$1 input=$2 size out
	(
		ulimit -v "$cap_kb"
		ulimit -t "$cpu_cap"
		if [ "$input" = - ]; then
			"$tmp/hostilegen" -size bench -stdin "$name" 2>/dev/null |
				/usr/bin/time -f '%e %U %S %M' -o "$tmp/res/$name.time" "$tmp/dmarcd" ingest --json - >"$tmp/res/$name.json" 2>"$tmp/res/$name.err"
		else
			/usr/bin/time -f '%e %U %S %M' -o "$tmp/res/$name.time" "$tmp/dmarcd" ingest --json "$input" >"$tmp/res/$name.json" 2>"$tmp/res/$name.err"
		fi
	) || true
	size=endless
	[ "$input" = - ] || size=$(stat -c %s "$input")
	out=$(sed -n 's/.*"status":"\([a-z]*\)".*"reason_code":"\([a-z_]*\)".*/\1 \2/p; t; s/.*"status":"\([a-z]*\)".*/\1/p' "$tmp/res/$name.json" | head -1)
	if [ -z "$out" ]; then
		if grep -q 'signal' "$tmp/res/$name.time" 2>/dev/null; then
			out="killed at CPU cap ($(grep -o 'signal [0-9]*' "$tmp/res/$name.time"))"
		elif grep -qi 'out of memory\|cannot allocate' "$tmp/res/$name.err"; then
			out="killed at memory cap"
		else
			out="no outcome: $(head -c 80 "$tmp/res/$name.err" | tr '\n' ' ')"
		fi
	fi
	tail -1 "$tmp/res/$name.time" | awk -v n="$name" -v s="$size" -v o="$out" '{
		printf "%s|%s|%s|%.2f|%.2f|%.0f\n", n, s, o, $1, $2 + $3, $4 / 1024 }' >"$tmp/res/$name.row"
}
export -f run
export tmp cap_kb cpu_cap

# Good reports, one after another, for as long as the attacks run.
good() {
	local i=0 start end st
	while ! [ -e "$tmp/done" ]; do
		i=$((i + 1))
		"$tmp/hostilegen" -good "good-bench-$i" >"$tmp/good/r.xml"
		start=$(date +%s.%N)
		st=$( (ulimit -v "$cap_kb"; "$tmp/dmarcd" ingest --json "$tmp/good/r.xml" 2>/dev/null) | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p')
		end=$(date +%s.%N)
		awk -v st="${st:-none}" -v a="$start" -v b="$end" 'BEGIN { printf "%s %.3f\n", st, b - a }' >>"$tmp/good/log"
	done
}
good &
goodpid=$!

start=$(date +%s)
{
	for f in "$tmp"/attacks/*; do
		n=$(basename "$f")
		echo "${n%%.*} $f"
	done
	if [ -z "${BENCH_HOSTILE_ONLY:-}" ] || [[ ",$BENCH_HOSTILE_ONLY," == *",stdin-endless,"* ]]; then
		echo "stdin-endless -"
	fi
} | xargs -P "$jobs" -L 1 bash -c 'run "$1" "$2"' _
touch "$tmp/done"
wait "$goodpid" || true
took=$(($(date +%s) - start))

printf '\n| attack | input bytes | outcome | wall s | CPU s | peak RSS MB |\n|---|---:|---|---:|---:|---:|\n'
cat "$tmp"/res/*.row | sort | awk -F'|' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }'
awk -v t="$took" '{ n++; if ($1 == "stored") ok++; if ($2 > max) max = $2; sum += $2 }
	END { printf "\ngood reports ingested beside the attacks (%d s): %d, %d stored, latency mean %.2f s, max %.2f s\n", t, n, ok, (n ? sum / n : 0), max }' "$tmp/good/log"
