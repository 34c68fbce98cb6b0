"""bench_proxies_torch.py - PyTorch's per-architecture time of each zero-cost proxy (the peer of
bench/bench_proxies.sh): NB201 all-nor_conv_3x3 cell, C = 16, N = 5, CIFAR-10 shapes, a batch-64
synthetic minibatch, torch.set_num_threads(THREADS). The proxy definitions are the ones
tests/py_proxies_torch.py checks nascent against (zero-cost-nas style, fresh copy per proxy).
Prints one line per proxy: "torch_seconds NAME median_seconds".
Usage: /usr/bin/python3 bench/bench_proxies_torch.py [--repeat R] [--threads T] [NAME ...]"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import py_proxies_torch as P  # noqa: E402

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("names", nargs="*", default=["synflow", "snip", "grad_norm", "nwot", "jacob_cov", "grasp", "fisher"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, 32, 32)
    y = torch.randint(0, 10, (a.batch,))
    for name in a.names:
        fn = P.PROXIES[name]
        ts = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            net = P.nb.nb201(P.nb.parse_arch(ALL_CONV3), C=16, N=5, num_classes=10)  # build + init, as ours
            fn(net, x, y)
            ts.append(time.perf_counter() - t0)
        ts.sort()
        print(f"torch_seconds {name} {ts[len(ts) // 2]:.6f}", flush=True)


if __name__ == "__main__":
    main()
