#!/usr/bin/env bash
# repeat-flaky.sh runs each test that once failed on a loaded machine N times
# in a row (default 20), one `go test -count=1 -run '^TestX$'` per run, and
# stops at the first failure (printing its output). It prints each run's
# seconds and, at the end, each test's runs, min, median and max seconds.
#
#   scripts/repeat-flaky.sh [N]
#
# The tests need ClickHouse (and Dovecot or versitygw, which they start
# themselves): without DMARCD_TEST_CLICKHOUSE_ADDR the script runs itself
# under `scripts/clickhouse.sh run`, so that every run shares one server.
# CI=true is exported, so a missing server fails a run instead of skipping it.
# make test-repeat runs it; REPEAT=N there sets N.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-20}
case $n in
'' | *[!0-9]* | 0) echo "usage: ${0##*/} [N]  (N >= 1, default 20)" >&2; exit 2 ;;
esac

# package and test, one pair a line
tests="./store/ TestClaimReadRacingItsDropIsNotAnError
./store/ TestStaleClaimOfADeadWriterIsTakenOver
./cmd/dmarcd/ TestServeS3
./cmd/dmarcd/ TestServeKill9DuringBacklog
./cmd/dmarcd/ TestServeTwoInstancesShareBucket
./cmd/dmarcd/ TestServeTwoInstancesShareMailbox"

if [ -z "${DMARCD_TEST_CLICKHOUSE_ADDR:-}" ]; then
	exec scripts/clickhouse.sh run -- scripts/repeat-flaky.sh "$n"
fi
export CI=true

log=$(mktemp)
trap 'rm -f "$log"' EXIT
summary=""
while read -r pkg name <&3; do
	times=""
	for i in $(seq 1 "$n"); do
		start=$(date +%s.%N)
		rc=0
		go test -count=1 -run "^${name}\$" "$pkg" >"$log" 2>&1 || rc=$?
		secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
		printf '%s run %d/%d: %s %.1fs\n' "$name" "$i" "$n" "$([ "$rc" = 0 ] && echo ok || echo FAIL)" "$secs"
		if [ "$rc" != 0 ] || ! grep -q '^ok' "$log"; then
			cat "$log"
			echo "${0##*/}: $name failed in run $i of $n" >&2
			exit 1
		fi
		times="$times $secs"
	done
	stats=$(printf '%s\n' $times | sort -n | awk '{ a[NR] = $1 } END {
		printf "min %.1fs median %.1fs max %.1fs", a[1], a[int((NR + 1) / 2)], a[NR] }')
	summary="$summary$(printf '%-45s %d/%d passed, %s' "$name" "$n" "$n" "$stats")
"
done 3<<<"$tests"
echo "--- summary: every run passed"
printf '%s' "$summary"
