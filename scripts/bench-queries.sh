#!/usr/bin/env bash
# Query benchmark (make bench-queries): loads 100,000,000 generated aggregate
# records into a dedicated database and prints p50 and p95 of every dashboard
# query (dashboards/grafana, macros expanded as dashboards/dashboards_test.go
# does) and every gauge query (store/gauges.go) over 30 days, for one domain
# and for all domains. Prints figures; never fails on speed. See
# docs/benchmarks.md.
#
#   scripts/clickhouse.sh run -- scripts/bench-queries.sh   a throw-away server (make bench-queries)
#   BENCH_QUERIES_DSN=clickhouse://127.0.0.1:9000/bench scripts/bench-queries.sh
#                                                           a server of your own: the database is
#                                                           loaded once and kept for the next run
#
# BENCH_RECORDS (default 100000000), BENCH_RUNS (measured runs per query,
# default 10), BENCH_BUDGET (time per query before it stops early, default
# 60s), BENCH_RUN (regular expression: only matching queries), BENCH_MD=1
# (a Markdown table).
set -euo pipefail
cd "$(dirname "$0")/.."
records=${BENCH_RECORDS:-100000000}
dsn=${BENCH_QUERIES_DSN:-}
if [ -z "$dsn" ]; then
	: "${DMARCD_TEST_CLICKHOUSE_ADDR:?run under scripts/clickhouse.sh run -- or set BENCH_QUERIES_DSN}"
	dsn="clickhouse://${DMARCD_TEST_CLICKHOUSE_ADDR}/bench_queries_${records}"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/benchqueries" ./internal/tools/benchqueries
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(go version | cut -d' ' -f3)"
start=$(date +%s)
"$tmp/benchqueries" -dsn "$dsn" -load -records "$records"
echo "data set ready in $(($(date +%s) - start)) s"
md=()
[ -n "${BENCH_MD:-}" ] && md=(-md)
"$tmp/benchqueries" -dsn "$dsn" -runs "${BENCH_RUNS:-10}" -budget "${BENCH_BUDGET:-60s}" -run "${BENCH_RUN:-}" "${md[@]}"
