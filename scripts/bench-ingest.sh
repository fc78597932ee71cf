#!/usr/bin/env bash
# End-to-end ingest benchmark: a generated aggregate report of N records
# (default 100,000 and 1,000,000) from file to committed ClickHouse rows.
# Prints records/s and peak RSS; never fails on speed. Needs a ClickHouse:
# run it as `scripts/clickhouse.sh run -- scripts/bench-ingest.sh` (make bench).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${DMARCD_TEST_CLICKHOUSE_ADDR:?run under scripts/clickhouse.sh run --}"
sizes=${BENCH_SIZES:-100000 1000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/dmarcd" ./cmd/dmarcd
go build -o "$tmp/dmarcd-gen" ./cmd/dmarcd-gen
if ! [ -x /usr/bin/time ] && [ "$(id -u)" = 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
for n in $sizes; do
	f="$tmp/report-$n.xml"
	"$tmp/dmarcd-gen" -large "$n" -seed 1 -out "$f"
	db="bench_$n"
	export DMARCD_CLICKHOUSE_DSN="clickhouse://${DMARCD_TEST_CLICKHOUSE_ADDR}/$db"
	"$tmp/dmarcd" migrate >/dev/null
	/usr/bin/time -f '%e %M' -o "$tmp/time" "$tmp/dmarcd" ingest --json "$f" >"$tmp/out.json"
	read -r secs rss_kb <"$tmp/time"
	status=$(sed -n 's/.*"status":"\([a-z]*\)".*/\1/p' "$tmp/out.json")
	size_mb=$(($(stat -c %s "$f") / 1000000))
	awk -v n="$n" -v s="$secs" -v r="$rss_kb" -v mb="$size_mb" -v st="$status" 'BEGIN {
		printf "ingest %8d records (%4d MB XML): %6.2f s  %9.0f records/s  peak RSS %4.0f MB  status %s\n", n, mb, s, n / s, r / 1024, st }'
	rm -f "$f"
done
