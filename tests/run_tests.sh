#!/usr/bin/env bash
# Runs every test program (build/tests/test_*) and every Python reference test (tests/py_*.py),
# each printing "RESULT suite passed=P failed=F", and ends with the line "N passed, N failed".
# A program that crashes or prints no RESULT line counts as one failed test.
# Usage: tests/run_tests.sh [BUILD_DIR] [FILTER]
set -u
build=${1:-build}
filter=${2:-}
passed=0
failed=0
PY=/usr/bin/python3
export NAS_BIN="$PWD/bin/nascent"
# Threads sleep at barriers instead of spinning: tests run next to Python and other processes,
# and spinning threads then starve the ones doing work.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
run_one() {
    local name=$1; shift
    local log
    log=$(mktemp)
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local line
    line=$(grep -E '^RESULT ' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        cat "$log"
        echo "FAIL $name: exit $rc and no RESULT line"
        failed=$((failed + 1))
    else
        local p f
        p=$(echo "$line" | sed -E 's/.*passed=([0-9]+).*/\1/')
        f=$(echo "$line" | sed -E 's/.*failed=([0-9]+).*/\1/')
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        [ "$f" -ne 0 ] && cat "$log"
        passed=$((passed + p))
        failed=$((failed + f))
        echo "$name: $p passed, $f failed ($((SECONDS - start)) s)"
    fi
    rm -f "$log"
}
for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    case "$name" in *"$filter"*) ;; *) continue ;; esac
    run_one "$name" "$t"
done
for t in tests/py_*.py; do
    [ -f "$t" ] || continue
    name=$(basename "$t")
    case "$name" in *"$filter"*) ;; *) continue ;; esac
    run_one "$name" "$PY" "$t" "$build"
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
