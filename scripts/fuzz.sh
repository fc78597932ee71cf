#!/usr/bin/env bash
# Run every Go fuzz target in the module for the given time each (default 2m;
# make fuzz passes FUZZTIME).
#
# Memory limit per execution: each target's instrumented test binary is built
# first (go test -c -fuzz, outside the limit) and then fuzzes under
# `ulimit -v FUZZ_MEM_KB` (default 3000000 KB, 3 GB of address space: the Go
# runtime and the fuzzer's 100 MB mutation buffers need about 2 GB of it
# before any input is tried) for the coordinator and every worker it starts. An input that makes a parser allocate past it kills its
# worker with "out of memory"; the fuzzer reports that as a failure and saves
# the input under PKG/testdata/fuzz/TARGET, as it does a panic, so a memory
# blow-up is found and kept like a crash. (GOMEMLIMIT was not chosen: it is a
# soft goal for the GC, not a failure.) Workers: FUZZ_PARALLEL (default the
# number of cores).
#
# Seeds: each package's testdata/fuzz/TARGET (committed, so nothing is skipped
# when ../shared/corpus is absent) and its f.Add seeds; the shared corpus adds
# more when present. Exits non-zero when any target failed, after running all.
set -euo pipefail
t=${1:-2m}
mem=${FUZZ_MEM_KB:-3000000}
par=${FUZZ_PARALLEL:-$(nproc)}
cd "$(dirname "$0")/.."
cache="$(go env GOCACHE)/fuzz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=()
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' || true)
	[ -n "$targets" ] || continue
	for f in $targets; do
		bin="$tmp/${pkg//\//_}.$f.test"
		go test -c -fuzz "^$f\$" -o "$bin" "$pkg"
		seeds=$(find "$dir/testdata/fuzz/$f" -type f 2>/dev/null | wc -l)
		echo "== $pkg $f ($t, $seeds seed files, ${mem} KB address space per process, $par workers)"
		if ! (cd "$dir" && ulimit -v "$mem" &&
			"$bin" -test.run '^$' -test.fuzz "^$f\$" -test.fuzztime "$t" \
				-test.fuzzcachedir "$cache/$pkg" -test.parallel "$par"); then
			echo "FAIL $pkg $f: the input is saved under $dir/testdata/fuzz/$f"
			failed+=("$pkg.$f")
		fi
	done
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz targets that failed: ${failed[*]}"
	exit 1
fi
echo "every fuzz target ran $t without a failure"
