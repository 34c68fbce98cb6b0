#!/usr/bin/env bash
# bench_proxies.sh - zero-cost proxies: speed against PyTorch and rank correlation with NB201.
#
#   bench/bench_proxies.sh [--long]
#
# Always: per-architecture time of each proxy on the NB201 all-nor_conv_3x3 cell (C = 16, N = 5,
# CIFAR-10 shapes, batch 64, 2 threads; build + init + score, median of 5, alternating rounds:
# see below) for nascent and for
# PyTorch (bench/bench_proxies_torch.py) in the same run, printed as `speedup proxy_NAME X`
# (X = PyTorch time / ours; target >= 3), and `ceiling proxy_NAME Y`, the speedup the machine's
# FMA peak allows direct convolutions (see below).
# --long adds: synflow (+ params, macs) over all 15,625 NB201 cells and its Spearman rho with
# cifar10_test_200ep (published |rho| = 0.737, target >= 0.73), and the batch-64 proxies on a
# Fashion-MNIST minibatch (zero-padded to 32x32, channels repeated) over a 1,000-cell sample,
# each proxy's Spearman rho with cifar10_test_200ep next to params and macs.
# Results go to bench/out/proxies_* (CSV) and stdout.
set -u
cd "$(dirname "$0")/.."
NAS=${NAS_BIN:-bin/nascent}
PY=/usr/bin/python3
OUT=bench/out
mkdir -p "$OUT"
ACC=data/nasbench201/nb201_accuracy.csv
[ -f "$ACC" ] || ACC=/work/shared/data/nasbench201/nb201_accuracy.csv
ALL_CONV3='|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'
# OpenMP's wait policy is left as the user's environment has it (libgomp's default: spin briefly,
# then sleep) for both programs; tests/run_tests.sh sets passive, which slows the many small
# parallel regions of a batch-1 pass (synflow 0.09 s -> 0.11 s).
long=0
[ "${1:-}" = "--long" ] && long=1

json_field() { sed -E "s/.*\"$1\": ([-0-9.eE+]+|null).*/\1/"; }

# The ceiling: a proxy's convolution arithmetic alone at the machine's FP32 FMA peak (2 cores:
# 444 GFLOP/s with AVX-512, 222 with AVX2 only, ../shared/PERF_NOTES.md; NAS_FMA_PEAK_GFLOPS
# overrides) bounds the speedup direct (or GEMM) convolutions can reach against the PyTorch time
# of the same run. With AVX-512 the cells' 3x3 convs run Winograd (src/ops/conv_wino.c), ~1/4
# of the multiplies that count assumes, so a proxy can pass this ceiling. Passes of the batch:
# forward 1; snip and grad_norm add the data and weight gradients (3); jacob_cov and fisher the
# data gradient only (2); grasp is the loss gradient plus four perturbed forward+backward passes
# (15). synflow (batch 1, double) has none.
if [ -n "${NAS_FMA_PEAK_GFLOPS:-}" ]; then peak=$NAS_FMA_PEAK_GFLOPS
elif grep -q avx512f /proc/cpuinfo; then peak=444
else peak=222; fi
macs=$("$NAS" proxies --space nb201 --arch "$ALL_CONV3" --proxy macs --json | json_field macs)
passes() { case "$1" in snip|grad_norm) echo 3 ;; jacob_cov|fisher) echo 2 ;; nwot) echo 1 ;;
           grasp) echo 15 ;; *) echo 0 ;; esac; }

# The host is shared and its speed swings by up to 1.5x over seconds to minutes; our five runs
# take ~0.6 s against PyTorch's ~2 s, so one slow spell could fall on one side only. The two
# therefore alternate, ROUNDS times (NAS_BENCH_ROUNDS, default 3), each a median of 5, and the
# speedup is the ratio of the medians over rounds: both sides sample the same spells.
rounds=${NAS_BENCH_ROUNDS:-3}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
echo "== proxies: per-architecture time, NB201 all-conv3x3 C=16 N=5, batch 64, 2 threads, $rounds rounds"
for p in synflow snip grad_norm nwot jacob_cov grasp fisher; do
    ours_all="" torch_all=""
    for ((r = 0; r < rounds; r++)); do
        ours_all="$ours_all $("$NAS" proxies --space nb201 --arch "$ALL_CONV3" --proxy "$p" --batch 64 \
                   --synthetic --threads 2 --repeat 5 --json | json_field seconds)"
        torch_all="$torch_all $("$PY" bench/bench_proxies_torch.py --repeat 5 --threads 2 "$p" | awk '{print $3}')"
    done
    ours=$(echo "$ours_all" | median)
    torch=$(echo "$torch_all" | median)
    echo "proxy_$p nascent ${ours}s torch ${torch}s (rounds: nascent$ours_all; torch$torch_all)"
    awk -v t="$torch" -v o="$ours" -v p="$p" 'BEGIN { if (o > 0) printf "speedup proxy_%s %.2f\n", p, t / o }'
    awk -v t="$torch" -v m="$macs" -v k="$(passes "$p")" -v pk="$peak" -v p="$p" 'BEGIN {
        gf = 2 * m * 64 * k / 1e9
        if (gf > 0) printf "ceiling proxy_%s %.2f (%.1f GFLOP of convolutions at the %g GFLOP/s FMA peak: %.3fs)\n",
                           p, t / (gf / pk), gf, pk, gf / pk }'
done

corr() { # corr FILE COLUMN -> Spearman rho with cifar10_test_200ep, joined on the arch string
    "$NAS" correlate --a "$1:$2" --b "$ACC:cifar10_test_200ep" --join arch=arch_str --json |
        json_field spearman_rho
}

if [ "$long" = 1 ]; then
    echo "== synflow over all 15,625 NB201 cells (CIFAR-10 shapes)"
    start=$SECONDS
    "$NAS" proxies --space nb201 --all --proxy synflow,params,macs --out "$OUT/proxies_synflow_all.csv" || exit 1
    echo "synflow_all_seconds $((SECONDS - start))"
    for c in synflow params macs; do
        echo "spearman_all $c $(corr "$OUT/proxies_synflow_all.csv" $c) (published synflow |rho| 0.737, target >= 0.73)"
    done
    echo "== batch-64 proxies on Fashion-MNIST, 1,000-cell NB201 sample, vs CIFAR-10 test accuracy"
    "$NAS" proxies --space nb201 --sample 1000 --dataset fashion-mnist --batch 64 --proxy all \
        --out "$OUT/proxies_fmnist_sample.csv" || exit 1
    for c in grad_norm snip grasp fisher synflow jacob_cov nwot params macs; do
        echo "spearman_fmnist_sample $c $(corr "$OUT/proxies_fmnist_sample.csv" $c)"
    done
fi
