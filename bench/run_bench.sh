#!/usr/bin/env bash
# make bench / make bench-long: every benchmark against its peer measured in the same run.
# Each script prints lines "speedup NAME X" (X = peer time / nascent time) among its details;
# the summary at the end collects them. Results are recorded in bench/RESULTS.md.
# Usage: bench/run_bench.sh [--long]
set -u
cd "$(dirname "$0")/.."
mode=${1:-}
mkdir -p build
log=build/bench${mode:+-long}.log
{
    for script in bench_engine.sh bench_conv.sh bench_train.sh bench_proxies.sh bench_search.sh \
                  bench_hardware.sh; do
        echo "== bench/$script $mode"
        case $script in
            bench_conv.sh) bash "bench/$script" 2 ;;
            *) bash "bench/$script" $mode ;;
        esac
    done
    echo "== bench/bench_ops.py"
    /usr/bin/python3 bench/bench_ops.py build/release 30
} 2>&1 | tee "$log"
echo "== summary ($log)"
grep -E '^speedup ' "$log" || true
