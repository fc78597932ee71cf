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
bin/dmarcd ingest "$dir/reports" | tail -n 5
echo
echo "== dmarcd summary --all"
bin/dmarcd summary --all
cat <<MSG

ClickHouse keeps running on ${DMARCD_TEST_CLICKHOUSE_ADDR} (data in $dir/clickhouse):
  export DMARCD_CLICKHOUSE_DSN=$DMARCD_CLICKHOUSE_DSN
  bin/dmarcd summary --all            # again
  clickhouse-client --port ${CLICKHOUSE_TCP_PORT} -d dmarc   # explore the tables
  make demo-stop                      # stop it
MSG
