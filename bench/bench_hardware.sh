#!/usr/bin/env bash
# bench_hardware.sh - error of nascent's latency estimates on this machine (SPEC 6, issue 8):
#   * per-layer lookup tables (LUT) against measured latency, MAPE and Spearman, on 200 random
#     architectures of nb201 (CIFAR-10 network, 32x32) and of mbnet (the OFA MobileNetV3 space
#     at its own 128-224 px resolutions, 1000 classes); batch 1, one thread. The LUT times only
#     sampled networks that bring a layer it lacks, until 200 samples in a row bring none (or
#     LUT_ARCHS are timed). Measured under load (load average 6-9): mbnet's LUT built in 4.5-7
#     min (2,969 layers), 10 architectures evaluated in 9 s, so 200 take about 3 min;
#   * learned latency predictors (linear and MLP) fitted on the latency measured here of 200
#     distinct random architectures of nb201 and mbnet, scored on 100 more (NAS_BENCH_HW_PRED_MEASURE
#     sets the total, two thirds train);
#   * learned latency predictors (linear and MLP) trained on 900 rows of every device column
#     of data/nb201_latency/nb201_latency_ms.csv, Spearman on the other 14,725 rows, against the
#     BRP-NAS row (900 samples) of the HELP paper's Table 3 where it has the device (linear on
#     every column; the MLP on Table 3's six devices with --long).
# Lines "metric NAME VALUE" summarise; these are accuracy figures, not speedups.
# Usage: bench/bench_hardware.sh [--long]
#   NAS_BENCH_HW_SAMPLES=N   architectures measured per space for the LUT error (default 200)
#   NAS_BENCH_HW_LUT_ARCHS=N most networks timed to build each LUT (default 400)
#   NAS_BENCH_HW_SPACES="..." spaces for the LUT error (default "nb201 mbnet"; "mbnet32" is the
#                            CPU-scale layout of mbnet at 24-32 px)
#   NAS_BENCH_THREADS=T      threads (default 1)
# Quick check of the script (~7 min): NAS_BENCH_HW_SAMPLES=10 bash bench/bench_hardware.sh
# (a much smaller NAS_BENCH_HW_LUT_ARCHS leaves mbnet layers uncovered and the LUT eval fails)
set -u
cd "$(dirname "$0")/.."
NAS=${NAS_BIN:-bin/nascent}
mode=${1:-}
samples=${NAS_BENCH_HW_SAMPLES:-200}
archs=${NAS_BENCH_HW_LUT_ARCHS:-400}
out=build/bench_hardware
mkdir -p "$out"
threads=${NAS_BENCH_THREADS:-1}

echo "-- LUT vs measured latency (batch 1, $threads thread(s), $samples architectures per space)"
for space in ${NAS_BENCH_HW_SPACES:-nb201 mbnet}; do
    t0=$(date +%s)
    "$NAS" latency --build-lut --space "$space" --out "$out/lut_$space.json" --archs "$archs" \
        --patience 200 --repeats 5 --threads "$threads" || { echo "LUT build failed for $space"; continue; }
    t1=$(date +%s)
    line=$("$NAS" latency --eval-lut "$out/lut_$space.json" --space "$space" --samples "$samples" \
        --repeats 10 --threads "$threads" --seed 7 --json) || { echo "LUT eval failed"; continue; }
    t2=$(date +%s)
    echo "$space: $line (LUT built in $((t1 - t0)) s, evaluated in $((t2 - t1)) s)"
    /usr/bin/python3 - "$space" "$line" <<'PY'
import json, sys
d = json.loads(sys.argv[2])
print(f"metric lut_mape_{sys.argv[1]} {d['mape']:.2f}")
print(f"metric lut_spearman_{sys.argv[1]} {d['spearman']:.4f}")
print(f"metric lut_archs_{sys.argv[1]} {d['n_test']}")
print(f"metric lut_uncovered_{sys.argv[1]} {d.get('n_uncovered', 0)}")
PY
done

pred_n=${NAS_BENCH_HW_PRED_MEASURE:-300}
pred_train=$((pred_n * 2 / 3))
echo "-- latency predictors on latency measured here ($pred_n distinct architectures per space, batch 1,"
echo "   $threads thread(s): fitted on $pred_train, scored on the other $((pred_n - pred_train)))"
for space in ${NAS_BENCH_HW_SPACES:-nb201 mbnet}; do
    for kind in linear mlp; do
        line=$("$NAS" latency --fit-predictor "$kind" --space "$space" --measure "$pred_n" \
            --train "$pred_train" --repeats 5 --threads "$threads" --seed 11 --json) ||
            { echo "measured predictor failed for $space"; continue; }
        echo "$space $kind: $line"
        /usr/bin/python3 - "$space" "$kind" "$line" <<'PY'
import json, sys
d = json.loads(sys.argv[3])
print(f"metric latpred_measured_{sys.argv[2]}_spearman_{sys.argv[1]} {d['spearman']:.4f}")
print(f"metric latpred_measured_{sys.argv[2]}_mape_{sys.argv[1]} {d['mape']:.2f}")
PY
    done
done

echo "-- latency predictors, 900 training samples, NB201 device columns (HELP Table 3: BRP-NAS)"
table=data/nb201_latency/nb201_latency_ms.csv
cols=$(head -1 "$table" | tr -d '\r' | cut -d, -f3-)
mlp_cols="titan_rtx_256 gold_6226 pixel2 raspi4 eyeriss fpga"
for kind in linear mlp; do
    list=${cols//,/ }
    if [ "$kind" = mlp ]; then
        [ "$mode" = "--long" ] || continue  # ~30 s of training per column
        list=$mlp_cols
    fi
    for col in $list; do
        line=$("$NAS" latency --fit-predictor "$kind" --space nb201 --table "$col" --train 900 --threads "$threads" \
            --seed 1 --json) || { echo "fit failed for $col"; continue; }
        /usr/bin/python3 - "$kind" "$col" "$line" <<'PY'
import json, sys
brp = {"titan_rtx_256": 0.814, "gold_6226": 0.796, "pixel2": 0.666, "raspi4": 0.847,
       "eyeriss": 0.811, "fpga": 0.801}
kind, col, d = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
ref = brp.get(col)
cmp = "" if ref is None else f"  BRP-NAS {ref:.3f} {'above' if d['spearman'] > ref else 'BELOW'}"
print(f"{kind:6s} {col:15s} spearman {d['spearman']:.4f}  MAPE {d['mape']:7.2f}%{cmp}")
print(f"metric latpred_{kind}_spearman_{col} {d['spearman']:.4f}")
PY
    done
done
