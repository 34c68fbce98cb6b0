#!/usr/bin/env bash
# bench_hardware.sh - error of nascent's latency estimates on this machine (SPEC 6, issue 8):
#   * per-layer lookup tables (LUT) against measured latency, MAPE and Spearman, on random
#     architectures of nb201 and mbnet (200 with --long, 40 otherwise);
#   * learned latency predictors (linear and MLP) trained on 900 rows of every device column
#     of data/nb201_latency/nb201_latency_ms.csv, Spearman on the other 14,725 rows, against the
#     BRP-NAS row (900 samples) of the HELP paper's Table 3 where it has the device (linear on
#     every column; the MLP on Table 3's six devices with --long).
# Lines "metric NAME VALUE" summarise; these are accuracy figures, not speedups.
# Usage: bench/bench_hardware.sh [--long]
set -u
cd "$(dirname "$0")/.."
NAS=${NAS_BIN:-bin/nascent}
mode=${1:-}
samples=40
archs=30
if [ "$mode" = "--long" ]; then
    samples=200
    archs=80
fi
out=build/bench_hardware
mkdir -p "$out"
threads=${NAS_BENCH_THREADS:-1}

echo "-- LUT vs measured latency (batch 1, $threads thread(s), $samples architectures)"
for space in nb201 mbnet; do
    "$NAS" latency --build-lut --space "$space" --out "$out/lut_$space.json" --archs "$archs" \
        --repeats 5 --threads "$threads" || { echo "LUT build failed for $space"; continue; }
    line=$("$NAS" latency --eval-lut "$out/lut_$space.json" --space "$space" --samples "$samples" \
        --repeats 10 --threads "$threads" --seed 7 --json) || { echo "LUT eval failed"; continue; }
    echo "$space: $line"
    /usr/bin/python3 - "$space" "$line" <<'PY'
import json, sys
d = json.loads(sys.argv[2])
print(f"metric lut_mape_{sys.argv[1]} {d['mape']:.2f}")
print(f"metric lut_spearman_{sys.argv[1]} {d['spearman']:.4f}")
print(f"metric lut_uncovered_{sys.argv[1]} {d.get('n_uncovered', 0)}")
PY
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
