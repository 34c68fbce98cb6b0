#!/usr/bin/env bash
# make run: the main job, a real NAS run on the embedded default data.
#  1. Regularized evolution over the NAS-Bench-201 cell space on Fashion-MNIST, every candidate
#     trained at low fidelity (C=8, one cell per stage, 10% of the training split, 1 epoch):
#     about 3.5 s per candidate on 2 cores (repeats of a cell are not retrained), QUERIES of them.
#  2. The best cell trained longer (EPOCHS epochs on the full training split, same reduced
#     network) and its test accuracy reported.
# Trials are kept in runs/default/store.db: running `make run` again resumes the search (no
# finished trial is repeated) and the report lands in runs/default/report.html. A store that
# this version's strategy does not reproduce (exit code 4) is moved to runs/default/previous-*.
set -eu
cd "$(dirname "$0")/.."
QUERIES=${QUERIES:-150}
EPOCHS=${EPOCHS:-5}
SEED=${SEED:-0}
out=runs/default
mkdir -p "$out"
fidelity="--epochs 1 --data-fraction 0.1 --channels-mult 0.5 --cells 1"
resume=""
[ -f "$out/store.db" ] && resume="--resume"

echo "== nascent $(bin/nascent --version | cut -d' ' -f2): NB201 space, regularized evolution, Fashion-MNIST"
echo "== search: $QUERIES candidates at low fidelity ($fidelity)"
search() {
    bin/nascent search --space nb201 --strategy re --evaluator train:fashion-mnist \
        --queries "$QUERIES" --seed "$SEED" $fidelity --store "$out/store.db" $1 --out "$out"
}
rc=0
search "$resume" || rc=$?
if [ "$rc" = 4 ]; then
    # a store from another version of the strategy: keep it, next to a fresh search
    old="$out/previous-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$old"
    for f in store.db best.json report.html trials.csv final; do
        [ -e "$out/$f" ] && mv "$out/$f" "$old/"
    done
    echo "== the stored search was made by another version: moved to $old; starting afresh"
    rc=0
    search "" || rc=$?
fi
[ "$rc" = 0 ] || exit "$rc"
best=$(sed -n 's/.*"best_arch": *"\([^"]*\)".*/\1/p' "$out/best.json" | head -n 1)
if [ -z "$best" ]; then
    echo "make run: no best architecture in $out/best.json" >&2
    exit 1
fi
echo "== best cell: $best"
echo "== final training: $EPOCHS epochs on the full training split"
rm -rf "$out/final.tmp"
bin/nascent train --space nb201 --arch "$best" --dataset fashion-mnist --epochs "$EPOCHS" \
    --channels-mult 0.5 --cells 1 --seed "$SEED" --out "$out/final.tmp"
# keep an earlier final result until the new one is complete
rm -rf "$out/final" && mv "$out/final.tmp" "$out/final"
echo "== result: $(cat "$out/final/result.json")"
echo "== report: $out/report.html"
