#!/usr/bin/env bash
# bench_conv_ratio.sh THREADS TORCH.txt OURS.txt - the "speedup" lines of bench_conv.sh from the
# two programs' "time conv_<name> infer <ms> train <ms> ... cpu ms <ms> / <ms>)" lines; ours may add
# "time conv_<name>_wino ..." lines (our Winograd kernels alone), compared with PyTorch's <name>.
threads=$1
awk -v cpu="$([ "$threads" = 1 ] && echo 1 || echo 0)" '
function grab(line, v,   m) {   # v[1], v[2] = infer, train (CPU ms when cpu == 1)
    if (cpu && match(line, /cpu ms [0-9.]+ \/ [0-9.]+/)) {
        split(substr(line, RSTART + 7, RLENGTH - 7), m, " / ")
        v[1] = m[1]; v[2] = m[2]
    } else { v[1] = $4; v[2] = $6 }
}
FNR == NR { grab($0, t); ti[$2] = t[1]; tt[$2] = t[2]; next }
{ key = $2; sub(/_wino$/, "", key) }  # our Winograd kernels alone: against the same PyTorch conv
(key in ti) { grab($0, o); printf "speedup %s_infer %.2f\nspeedup %s_train %.2f\n", $2, ti[key] / o[1], $2, tt[key] / o[2] }' "$2" "$3"
