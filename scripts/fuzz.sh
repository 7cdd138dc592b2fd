#!/usr/bin/env bash
# Every Go fuzz target (a `func FuzzX` in a *_test.go file), one after
# another, for FUZZTIME each (called by `make fuzz`). Stops at the first
# failure and prints go test's output for it; the failing input stays in
# <package>/testdata/fuzz/FuzzX/ and is a regression test from then on.
# Prints one line per target: name, package, wall time, executions, result.
#
# Environment:
#   FUZZTIME           -fuzztime per target (default 2m; RELIABILITY.md records 10m runs)
#   FUZZ_PARALLEL      fuzzing workers per target, -parallel (default 1: leave the machine usable)
#   FUZZ_MINIMIZETIME  -fuzzminimizetime (default 5s; go's 60s default spends most of a
#                      short run minimizing each new interesting input instead of fuzzing)
#   FUZZ_MATCH         run only the targets whose name matches this extended regexp
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-2m}
FUZZ_PARALLEL=${FUZZ_PARALLEL:-1}
FUZZ_MINIMIZETIME=${FUZZ_MINIMIZETIME:-5s}
FUZZ_MATCH=${FUZZ_MATCH:-.}
export PATH="$PATH:/usr/local/go/bin"

die() { echo "fuzz.sh: $*" >&2; exit 1; }

# "<package dir> <target>" for every fuzz target, in a stable order.
targets=$(grep -rEo --include='*_test.go' --exclude-dir=testdata --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]+\(' . |
	while IFS=: read -r file decl; do
		name=${decl#func }
		echo "$(dirname "$file") ${name%(}"
	done | sort -u)
[ -n "$targets" ] || die "no fuzz targets found"

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

ran=0
while read -r dir name; do
	grep -qE -- "$FUZZ_MATCH" <<<"$name" || continue
	log="$logs/$name.log"
	start=$(date +%s)
	result=ok
	# -timeout 0: go test's default 10m timeout would end a 10m run as a
	# failure ("context deadline exceeded") just as its fuzz time runs out.
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZ_MINIMIZETIME" -timeout 0 \
		-parallel "$FUZZ_PARALLEL" "$dir" >"$log" 2>&1 || result=FAIL
	elapsed=$(($(date +%s) - start))
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2 || true)
	printf '%-22s %-14s %5ss  execs %-10s %s\n' "$name" "$dir" "$elapsed" "${execs:-?}" "$result"
	if [ "$result" != ok ]; then
		echo "--- go test output for $name:" >&2
		cat "$log" >&2
		die "$name failed; its failing input is kept under $dir/testdata/fuzz/$name/"
	fi
	ran=$((ran + 1))
done <<<"$targets"
[ "$ran" -gt 0 ] || die "no fuzz target matches FUZZ_MATCH=$FUZZ_MATCH"
echo "fuzz.sh: $ran targets passed, $FUZZTIME each"
