#!/usr/bin/env bash
# bench_engine.sh - the engine against PyTorch on the standard networks, measured in one run:
# bench_engine (ours) and bench_engine_torch.py (PyTorch tuned as ../shared/peers/torch_peer.py),
# then "speedup NAME X" with X = PyTorch's median time / ours for nb201_train_b64, nb201_infer_b64,
# nb201_infer_b1 and mbv2_train_b64 ("info" lines give the rest: a reused graph, MobileNetV2
# inference, the cost of a new network).
# Usage: bench/bench_engine.sh [--long]   (run from anywhere; needs `make build`)
set -u
cd "$(dirname "$0")/.."
build=${NAS_BUILD:-build/release}
reps=10
[ "${1:-}" = "--long" ] && reps=30
bin="$build/bench/bench_engine"
if [ ! -x "$bin" ]; then
    echo "bench_engine.sh: $bin is missing (make build)" >&2
    exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "# ours: $bin --reps $reps"
"$bin" --reps "$reps" | tee -a "$log"
echo "# peer: bench/bench_engine_torch.py --reps $reps"
/usr/bin/python3 bench/bench_engine_torch.py --reps "$reps" | tee -a "$log"
awk '
    $1 == "ours" { ours[$2] = $3 }
    $1 == "torch" { torch[$2] = $3 }
    END {
        n = split("nb201_train_b64 nb201_infer_b64 nb201_infer_b1 mbv2_train_b64", main, " ")
        for (i = 1; i <= n; i++) {
            k = main[i]
            if ((k in ours) && (k in torch) && ours[k] > 0)
                printf "speedup %s %.2f\n", k, torch[k] / ours[k]
        }
        if (("nb201_train_b64_reuse" in ours) && ("nb201_train_b64" in torch))
            printf "info ratio nb201_train_b64 with a reused graph %.2f\n", torch["nb201_train_b64"] / ours["nb201_train_b64_reuse"]
        split("mbv2_infer_b64 mbv2_infer_b1", extra, " ")
        for (i = 1; i <= 2; i++) {
            k = extra[i]
            if ((k in ours) && (k in torch) && ours[k] > 0)
                printf "info ratio %s %.2f\n", k, torch[k] / ours[k]
        }
    }' "$log"
