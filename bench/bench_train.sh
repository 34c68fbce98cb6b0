#!/usr/bin/env bash
# bench_train.sh - training speed against PyTorch, measured in the same run.
#
#   fmnist-cnn (20,490 params), 1 epoch of SGD lr 0.05 momentum 0.9 batch 128 on the full
#   Fashion-MNIST training set, 2 threads, seeds 0 1 2: median training seconds per epoch (the
#   step loop only, evaluation excluded, as the peer times it) and median test accuracy, for
#   nascent and for the tuned PyTorch peer (../shared/peers/fmnist_torch.py). Prints
#       speedup fmnist_cnn_epoch X        (X = PyTorch seconds / nascent seconds)
#   plus both accuracies. Target: X >= 2 at the same accuracy.
#
#   --nb201: NB201 cell 6111 on Fashion-MNIST (1-channel stem), SGD Nesterov lr 0.1 cosine,
#   wd 5e-4, batch 128: the reduced proxy (C=8, 1 cell per stage, full training set, 1 epoch) and
#   the full network (C=16, 5 cells per stage, 10% of the training set, 1 epoch), seconds per
#   epoch and test accuracy, each against the same PyTorch network in the same run
#   (bench_train_nb201_torch.py): `speedup nb201_fmnist_proxy_epoch X`,
#   `speedup nb201_fmnist_full_epoch X`. --long adds 5- and 20-epoch schedules of the proxy and
#   5- and 20-epoch schedules of the full network on all the data (nascent only, test accuracy
#   after every epoch). On the 2-core AVX2 machine of bench/RESULTS.md a full-network epoch of
#   this cell takes ~8.5 minutes plus ~0.5 minute of testing (the two full-network runs: ~3.8
#   hours of a quiet machine); on a 2-core AVX-512 machine ~3.2 minutes (~1.5 hours).
#
# Usage: bench/bench_train.sh [--nb201] [--long] [--seeds "0 1 2"]   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
NAS=${NAS_BIN:-bin/nascent}
PY=/usr/bin/python3
PEER=${PEER_DIR:-/work/shared/peers}/fmnist_torch.py
SEEDS="0 1 2"
NB201=0
LONG=0
while [ $# -gt 0 ]; do
    case "$1" in
        --nb201) NB201=1 ;;
        --long) LONG=1; NB201=1 ;;
        --seeds) SEEDS=$2; shift ;;
        *) echo "bench_train.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
work=$(mktemp -d /tmp/bench_train.XXXXXX)
trap 'rm -rf "$work"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

echo "# bench_train: $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# --- nascent: one run per seed; seconds = the epoch's training time from metrics.jsonl
ours_s=()
ours_acc=()
for s in $SEEDS; do
    out="$work/fmnist_$s"
    "$NAS" train --net fmnist-cnn --dataset fashion-mnist --epochs 1 --batch 128 \
        --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov 0 --weight-decay 0 \
        --schedule constant --valid-fraction 0 --augment 0 --seed "$s" --threads 2 \
        --out "$out" --json > "$work/ours_$s.log"
    sec=$($PY -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['seconds'])" "$out/metrics.jsonl")
    acc=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['test_accuracy'])" "$out/result.json")
    echo "nascent seed $s: train epoch $sec s, test acc $acc%"
    ours_s+=("$sec")
    ours_acc+=("$acc")
done
ours_med=$(printf '%s\n' "${ours_s[@]}" | median)
ours_acc_med=$(printf '%s\n' "${ours_acc[@]}" | median)

# --- PyTorch peer, same seeds, 2 threads, tuned environment (it re-executes itself)
# shellcheck disable=SC2086
$PY "$PEER" --threads 2 --seeds $SEEDS > "$work/torch.log" 2>&1
grep -E '^(#|seed)' "$work/torch.log" | sed 's/^/torch: /'
torch_med=$(sed -nE 's/^median: train epoch ([0-9.]+) s.*/\1/p' "$work/torch.log")
torch_acc=$(sed -nE 's/.*test acc ([0-9.]+)%$/\1/p' "$work/torch.log" | tail -n 1)
if [ -z "$torch_med" ]; then
    echo "bench_train.sh: the PyTorch peer failed:" >&2
    cat "$work/torch.log" >&2
    exit 1
fi

echo "fmnist_cnn_epoch: nascent $ours_med s (test acc $ours_acc_med%), pytorch $torch_med s (test acc $torch_acc%)"
echo "accuracy fmnist_cnn nascent $ours_acc_med pytorch $torch_acc"
echo "speedup fmnist_cnn_epoch $($PY -c "print(f'{$torch_med / $ours_med:.2f}')")"

[ "$NB201" = 1 ] || exit 0

# --- NB201 on Fashion-MNIST: seconds per epoch and test accuracy (decides make run's budget)
ARCH='|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|'
nb201_run() { # name channels_mult cells epochs data_fraction -> prints a line, sets NB_SEC
    local out="$work/nb201_$1_$4"
    "$NAS" train --space nb201 --arch "$ARCH" --dataset fashion-mnist --channels-mult "$2" \
        --cells "$3" --epochs "$4" --data-fraction "$5" --batch 128 --optimizer sgd --lr 0.1 \
        --momentum 0.9 --nesterov 1 --weight-decay 5e-4 --schedule cosine --valid-fraction 0 \
        --augment 0 --seed 0 --threads 2 --test-every-epoch --out "$out" --json > "$out.log"
    NB_SEC=$($PY - "$out" "$1" "$4" "$5" <<'EOF2'
import json, sys
out, name, epochs, frac = sys.argv[1:5]
rows = [json.loads(l) for l in open(out + "/metrics.jsonl")]
res = json.load(open(out + "/result.json"))
per = sum(r["seconds"] for r in rows) / len(rows)
curve = " ".join(f"{r['test_accuracy']:.2f}" for r in rows)
print(f"nb201 {name} ({res['params']} params) {epochs}-epoch schedule, data {frac}: "
      f"{per:.1f} s/epoch, test acc per epoch {curve}", file=sys.stderr)
print(f"{per:.3f}")
EOF2
)
}
torch_nb201() { # C N epochs data_fraction -> prints lines, sets TORCH_SEC (mean s/epoch)
    $PY bench/bench_train_nb201_torch.py "$1" "$2" "$3" "$4" > "$work/torch_nb201.log" 2>&1
    sed "s/^/torch nb201 C=$1 N=$2 data $4: /" "$work/torch_nb201.log" >&2
    TORCH_SEC=$(awk '/^epoch/ {s += $4; n++} END {if (n) printf "%.3f", s / n}' "$work/torch_nb201.log")
}
speedup() { $PY -c "print(f'speedup $1 {$2 / $3:.2f}')"; }

nb201_run proxy_C8_N1 0.5 1 1 1.0 2>&1
torch_nb201 8 1 1 1.0 2>&1
speedup nb201_fmnist_proxy_epoch "$TORCH_SEC" "$NB_SEC"
# the full network on 10% of the data (an epoch on all of it is ~10x this)
nb201_run full_C16_N5 1 5 1 0.1 2>&1
torch_nb201 16 5 1 0.1 2>&1
speedup nb201_fmnist_full_epoch "$TORCH_SEC" "$NB_SEC"
if [ "$LONG" = 1 ]; then
    nb201_run proxy_C8_N1 0.5 1 5 1.0 2>&1
    nb201_run proxy_C8_N1 0.5 1 20 1.0 2>&1
    nb201_run full_C16_N5 1 5 5 1.0 2>&1
    nb201_run full_C16_N5 1 5 20 1.0 2>&1
fi
