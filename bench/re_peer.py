"""Peer for `speedup tabular_re` (bench/bench_search.sh): regularized evolution (population 10,
sample 3) and random search on the NAS-Bench-201 table in plain Python, written the way
NASLib/AutoDL-style code does it (dict lookups, random.choice), modelled on
/work/shared/peers/re_peer.py. Reward = cifar10valid_val_200ep_nwotsrc, reported =
cifar10_test_200ep. Prints the mean/std of the found architecture's test accuracy at 150 queries
and runs per second, and a final machine-readable line `peer_re_runs_per_second X`.
Usage: re_peer.py [CSV] [SEEDS]"""
import csv
import os
import random
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "data", "nasbench201",
                                                          "nb201_accuracy.csv")
n_seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
val, test = {}, {}
for r in csv.DictReader(open(path)):
    key = tuple(int(r["op%d" % i]) for i in range(6))
    val[key] = float(r["cifar10valid_val_200ep_nwotsrc"])
    test[key] = float(r["cifar10_test_200ep"])


def rand_arch(rng):
    return tuple(rng.randrange(5) for _ in range(6))


def mutate(a, rng):
    i = rng.randrange(6)
    c = rng.choice([o for o in range(5) if o != a[i]])
    return a[:i] + (c,) + a[i + 1:]


def re_search(seed, queries=150, P=10, S=3):
    rng = random.Random(seed)
    pop = []
    best = None
    for q in range(queries):
        if q < P:
            a = rand_arch(rng)
        else:
            parent = max(rng.sample(pop, S), key=lambda x: x[1])[0]
            a = mutate(parent, rng)
        v = val[a]
        pop.append((a, v))
        if len(pop) > P:
            pop.pop(0)
        if best is None or v > best[1]:
            best = (a, v)
    return test[best[0]]


def random_search(seed, queries=150):
    rng = random.Random(seed)
    return test[max((rand_arch(rng) for _ in range(queries)), key=lambda a: val[a])]


rates = {}
for name, fn in (("random", random_search), ("re", re_search)):
    t = time.perf_counter()
    res = [fn(s) for s in range(n_seeds)]
    dt = time.perf_counter() - t
    rates[name] = n_seeds / dt
    print(f"{name}: 150 queries, {n_seeds} seeds: test {statistics.mean(res):.2f} ± "
          f"{statistics.stdev(res):.2f}, {n_seeds / dt:.0f} runs/s")
print(f"peer_re_runs_per_second {rates['re']:.1f}")
