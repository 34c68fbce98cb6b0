#!/usr/bin/env bash
# make bench / make bench-long: every benchmark against its peer measured in the same run.
# Each script prints lines "speedup NAME X" (X = peer time / nascent time) among its details.
# Usage: bench/run_bench.sh [--long]
set -u
cd "$(dirname "$0")/.."
mode=${1:-}
for script in bench/bench_*.sh; do
    [ -f "$script" ] || continue
    echo "== $script $mode"
    bash "$script" $mode
done 2>&1 | tee build/bench.log
echo "== summary"
grep -E '^speedup ' build/bench.log || true
