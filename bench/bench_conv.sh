#!/usr/bin/env bash
# bench_conv.sh - nascent's conv2d against PyTorch's F.conv2d at NB201 / MobileNet shapes, in one
# run: builds bench/bench_conv.c against lib/libnascent.a, runs it and bench/bench_conv.py
# (channels_last, OPENBLAS_NUM_THREADS=1) with the same thread count and prints per shape
#   speedup conv_<shape>_infer X   and   speedup conv_<shape>_train X   (X = torch ms / ours)
# Wall-clock medians by default; with 1 thread the medians of process CPU time are used, which a
# busy machine (other jobs on the 2 cores) does not inflate.
# Usage: bench/bench_conv.sh [threads] [shape-filter]   (run from the repo root after `make`)
set -eu
threads=${1:-2}
filter=${2:-}
out=build/bench
mkdir -p "$out"
gcc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -fopenmp -Iinclude -Isrc bench/bench_conv.c \
    lib/libnascent.a -ldnnl -lopenblas -ljansson -lsqlite3 -lz -lpthread -lm -o "$out/bench_conv"
export OPENBLAS_NUM_THREADS=1
"$out/bench_conv" "$threads" $filter | tee "$out/conv_ours.txt"
/usr/bin/python3 bench/bench_conv.py "$threads" $filter | tee "$out/conv_torch.txt"
bench/bench_conv_ratio.sh "$threads" "$out/conv_torch.txt" "$out/conv_ours.txt"
