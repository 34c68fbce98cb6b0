#!/usr/bin/env bash
# ab_proxies.sh - interleaved A/B timing of one zero-cost proxy on the NB201 all-conv3x3 cell
# (batch 64, 2 threads) for two or more nascent commands, on a shared, noisy host: the commands
# run in turn ROUNDS times, each a `--repeat 5` median; printed per command: the minimum and the
# median of those medians. A command may set the environment (e.g. "env NAS_CONV_WINOGRAD=0
# bin/nascent") to compare settings of one binary.
#
#   bench/ab_proxies.sh PROXY ROUNDS COMMAND [COMMAND...]
#   bench/ab_proxies.sh snip 6 /tmp/before/bin/nascent bin/nascent
set -u
if [ $# -lt 3 ]; then
    echo "usage: $0 PROXY ROUNDS COMMAND [COMMAND...]" >&2
    exit 2
fi
proxy=$1
rounds=$2
shift 2
arch='|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|'
declare -a times
for ((r = 0; r < rounds; r++)); do
    for ((i = 1; i <= $#; i++)); do
        cmd=${!i}
        t=$($cmd proxies --space nb201 --arch "$arch" --proxy "$proxy" --batch 64 --synthetic \
            --threads 2 --repeat 5 --json | sed -E 's/.*"seconds": ([0-9.eE+-]+).*/\1/')
        times[i]="${times[i]:-} $t"
    done
done
for ((i = 1; i <= $#; i++)); do
    echo "${times[i]}" | tr ' ' '\n' | grep -v '^$' | sort -g |
        awk -v p="$proxy" -v c="${!i}" '{a[NR] = $1}
            END {printf "%s %s: min %.4f s, median %.4f s (%d rounds)\n", p, c, a[1], a[int((NR + 1) / 2)], NR}'
done
