#!/usr/bin/env bash
# bench_search.sh - tabular search speed and quality (make bench runs it):
#   1. the plain-Python regularized evolution peer (bench/re_peer.py) on the NB201 table,
#   2. `nascent benchmark` RE on the same table and protocol (150 queries, population 10,
#      sample 3, repeats allowed as in the peer: dedupe=0; nascent's default population 20,
#      sample 10 and canonical de-duplication are tuned for quality, not this comparison),
#      measured right after it in the same run,
# and prints `speedup tabular_re X` = nascent RE runs/s / Python RE runs/s (nascent uses all
# cores: runs are independent seeds). With --long it also runs the full strategy comparison
# (random, re, reinforce, ls, bo; 100 seeds, 150 queries) and prints its table.
set -eu
cd "$(dirname "$0")/.."
NAS=${NAS_BIN:-bin/nascent}
PY=/usr/bin/python3
peer_seeds=1000
our_seeds=50000
peer_out=$($PY bench/re_peer.py data/nasbench201/nb201_accuracy.csv $peer_seeds)
echo "$peer_out"
peer=$(echo "$peer_out" | awk '/^peer_re_runs_per_second/ {print $2}')
ours_json=$($NAS benchmark --space nb201 --evaluator table:cifar10 --strategies re --params population=10,sample=3,dedupe=0 \
    --queries 150 --seeds $our_seeds --json)
ours=$(echo "$ours_json" | $PY -c 'import json,sys; r=json.load(sys.stdin); print([x for x in r if x["queries"]==150][0]["runs_per_second"])')
mean=$(echo "$ours_json" | $PY -c 'import json,sys; r=json.load(sys.stdin); x=[x for x in r if x["queries"]==150][0]; print("%.2f +- %.2f" % (x["mean_test"], x["std_test"]))')
echo "nascent re: 150 queries, $our_seeds seeds: test $mean, $(printf '%.0f' "$ours") runs/s"
echo "speedup tabular_re $($PY -c "print('%.1f' % ($ours / $peer))")"
if [ "${1:-}" = "--long" ]; then
    $NAS benchmark --space nb201 --evaluator table:cifar10 \
        --strategies random,re,reinforce,ls,bo --queries 150 --seeds 100
fi
