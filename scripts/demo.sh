#!/usr/bin/env bash
# make demo: start a local ClickHouse (installed with apt-get if missing),
# generate realistic reports for example.com (Amazon SES with a mail. MAIL FROM
# subdomain, Google Workspace, a misaligned ESP, a forwarder, spoofers; zipped
# and gzipped inside mails the way Google, Microsoft and Yahoo send them),
# ingest them, start the daemon on a spool folder, and end with the answer:
# `dmarcd readiness example.com`, its sources named from
# scripts/demo-known-sources.yaml. The README's walkthrough is this output.
# Log lines at INFO stay in the daemon's log, not between the sections.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.demo}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Every run starts from nothing, so that it prints the same figures as the
# README's walkthrough: the daemon and ClickHouse of a previous run are
# stopped and their data removed (the redaction key is kept).
if [ -f "$dir/dmarcd.pid" ]; then
	pid=$(cat "$dir/dmarcd.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$dir/dmarcd.pid"
fi
[ -d "$dir/clickhouse" ] && scripts/clickhouse.sh stop "$dir/clickhouse" >/dev/null
rm -rf "$dir/clickhouse" "$dir/spool" "$dir/reports"
scripts/clickhouse.sh start "$dir/clickhouse" >/dev/null
# shellcheck disable=SC1091
. "$dir/clickhouse/env"
export DMARCD_CLICKHOUSE_DSN
export DMARCD_LOG_LEVEL=warn                         # the commands below: warnings and errors only
export DMARCD_OWNED_DOMAINS=example.com,example.org  # the generated domains
known=$PWD/scripts/demo-known-sources.yaml

bin/dmarcd-gen -out "$dir/reports" -days 14 -seed 1 -domain example.com
mv "$dir/reports/MANIFEST.tsv" "$dir/reports.manifest.tsv"   # the truth, kept beside the reports
echo
echo "== dmarcd ingest $dir/reports"
bin/dmarcd ingest "$dir/reports" | tail -n 3
echo
echo "== dmarcd summary --all"
bin/dmarcd summary --all
# The daemon: a spool folder, metrics on 127.0.0.1:9797.
echo
echo "== dmarcd serve (spool folder $dir/spool)"
mkdir -p "$dir/spool"
cat >"$dir/dmarcd.yaml" <<YAML
# written by scripts/demo.sh
http: {listen: 127.0.0.1:9797}
privacy: {key_file: $dir/redaction.key}
owned_domains: [example.com, example.org]   # the generated domains; reports for others end invalid
attribution: {known_sources: $known}
sources:
  - name: demo
    type: spool
    path: $dir/spool
YAML
DMARCD_LOG_LEVEL=info bin/dmarcd serve --config "$dir/dmarcd.yaml" >"$dir/dmarcd.log" 2>&1 &
echo $! >"$dir/dmarcd.pid"
for _ in $(seq 1 100); do
	curl -fsS http://127.0.0.1:9797/readyz >/dev/null 2>&1 && break
	sleep 0.1
done
rm -rf "$dir/spool.gen"
bin/dmarcd-gen -out "$dir/spool.gen" -days 3 -seed 2 -domain example.org >/dev/null
rm -f "$dir/spool.gen/MANIFEST.tsv"
for f in "$dir/spool.gen"/*; do mv "$f" "$dir/spool/"; done   # rename in: the spool convention
rmdir "$dir/spool.gen"
# Wait until the daemon has moved every file out of the spool (at most 30s).
for _ in $(seq 1 300); do
	[ -z "$(find "$dir/spool" -maxdepth 1 -type f -print -quit)" ] && break
	sleep 0.1
done
echo "readyz: $(curl -sS http://127.0.0.1:9797/readyz 2>&1 || true)"
echo "processed: $(ls "$dir/spool/processed" | wc -l) files, invalid: $(ls "$dir/spool/invalid" | wc -l)"

cat <<MSG

Still running: ClickHouse on ${DMARCD_TEST_CLICKHOUSE_ADDR} (data in $dir/clickhouse), dmarcd serve
(pid $(cat "$dir/dmarcd.pid"), log $dir/dmarcd.log, config $dir/dmarcd.yaml, metrics on 127.0.0.1:9797).
  export DMARCD_CLICKHOUSE_DSN=$DMARCD_CLICKHOUSE_DSN
  clickhouse-client --port ${CLICKHOUSE_TCP_PORT} -d dmarc       # explore the tables
  curl -s 127.0.0.1:9797/metrics | grep dmarc               # the metrics
  cp report.xml.gz $dir/spool/.x && mv $dir/spool/.x $dir/spool/report.xml.gz   # drop a report
  make demo-stop                                            # stop both

== dmarcd readiness example.com --senders scripts/demo-known-sources.yaml
MSG
bin/dmarcd readiness example.com --senders "$known"
