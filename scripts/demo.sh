#!/usr/bin/env bash
# make demo: start a local ClickHouse (installed with apt-get if missing),
# generate realistic reports for example.com (Amazon SES with a mail. MAIL FROM
# subdomain, Google Workspace, a misaligned ESP, a forwarder, spoofers; zipped
# and gzipped inside mails the way Google, Microsoft and Yahoo send them),
# ingest them and print the per-domain summary.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-.demo}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

scripts/clickhouse.sh start "$dir/clickhouse"
# shellcheck disable=SC1091
. "$dir/clickhouse/env"
export DMARCD_CLICKHOUSE_DSN

rm -rf "$dir/reports"
bin/dmarcd-gen -out "$dir/reports" -days 14 -seed 1 -domain example.com
mv "$dir/reports/MANIFEST.tsv" "$dir/reports.manifest.tsv"   # the truth, kept beside the reports
echo
echo "== dmarcd ingest $dir/reports"
DMARCD_OWNED_DOMAINS=example.com,example.org bin/dmarcd ingest "$dir/reports" | tail -n 5
echo
echo "== dmarcd summary --all"
bin/dmarcd summary --all
# The daemon: a spool folder, metrics on 127.0.0.1:9797.
echo
echo "== dmarcd serve (spool folder $dir/spool)"
if [ -f "$dir/dmarcd.pid" ] && kill -0 "$(cat "$dir/dmarcd.pid")" 2>/dev/null; then
	kill -TERM "$(cat "$dir/dmarcd.pid")" 2>/dev/null || true
	for _ in $(seq 1 100); do kill -0 "$(cat "$dir/dmarcd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
mkdir -p "$dir/spool"
cat >"$dir/dmarcd.yaml" <<YAML
# written by scripts/demo.sh
http: {listen: 127.0.0.1:9797}
privacy: {key_file: $dir/redaction.key}
owned_domains: [example.com, example.org]   # the generated domains; reports for others end invalid
sources:
  - name: demo
    type: spool
    path: $dir/spool
YAML
bin/dmarcd serve --config "$dir/dmarcd.yaml" >"$dir/dmarcd.log" 2>&1 &
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
sleep 3
echo "readyz: $(curl -sS http://127.0.0.1:9797/readyz 2>&1 || true)"
echo "processed: $(ls "$dir/spool/processed" | wc -l) files, invalid: $(ls "$dir/spool/invalid" | wc -l)"

cat <<MSG

ClickHouse keeps running on ${DMARCD_TEST_CLICKHOUSE_ADDR} (data in $dir/clickhouse):
  export DMARCD_CLICKHOUSE_DSN=$DMARCD_CLICKHOUSE_DSN
  bin/dmarcd summary --all            # again
  clickhouse-client --port ${CLICKHOUSE_TCP_PORT} -d dmarc   # explore the tables

dmarcd serve keeps running (pid $(cat "$dir/dmarcd.pid"), log $dir/dmarcd.log, config $dir/dmarcd.yaml):
  curl -s 127.0.0.1:9797/metrics | grep dmarc       # the metrics
  curl -s 127.0.0.1:9797/readyz                     # ClickHouse and the sources
  cp report.xml.gz $dir/spool/.x && mv $dir/spool/.x $dir/spool/report.xml.gz   # drop a report
  ls $dir/spool/processed $dir/spool/invalid
  make demo-stop                      # stop both
MSG
