#!/usr/bin/python3
"""bench_engine_torch.py - the PyTorch peer of bench/bench_engine.c, tuned as ../shared/peers/torch_peer.py:
2 threads, OPENBLAS_NUM_THREADS=1, glibc malloc told to keep freed memory, channels_last where it
is faster (both layouts are timed, the faster counts), and at batch 1 the faster of 1 and 2 threads.

Run: /usr/bin/python3 bench/bench_engine_torch.py [--reps R] [--only NAME]
Prints "torch NAME MS" (medians, milliseconds) and "info ..." lines. Same cases as bench_engine.c:
nb201_train_b64 (NB201 all-nor_conv_3x3 C=16 N=5, SGD-Nesterov step), nb201_infer_b64,
nb201_infer_b1, mbv2_train_b64, mbv2_infer_b64, mbv2_infer_b1; plus building + initialising a new
NB201 network (the peer of our model construction).
"""
import os, sys
# Environment fix-ups of torch_peer.py, applied by re-executing before torch loads.
FIX = {"OPENBLAS_NUM_THREADS": "1",
       "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736"}
if "OPENBLAS_CORETYPE" in os.environ or any(k not in os.environ for k in FIX):
    os.environ.pop("OPENBLAS_CORETYPE", None)
    for k, v in FIX.items(): os.environ.setdefault(k, v)
    os.execv(sys.executable, [sys.executable] + sys.argv)

import argparse, statistics, time
import torch, torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from py_nets_torch import nb201, mobilenet_v2          # the reference definitions (tests/)

def bench(fn, reps, warmup=3):
    for _ in range(warmup): fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)

def make(net):
    return nb201(["nor_conv_3x3"] * 6) if net == "nb201" else mobilenet_v2(1.0)

def time_case(net, batch, train, reps, channels_last, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    m = make(net)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if train:
        opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4, nesterov=True)
        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(m(x), y).backward()
            opt.step()
        m.train()
        return bench(step, reps)
    m.eval()
    with torch.no_grad():
        if batch == 1:
            return bench(lambda: m(x), max(10 * reps, 100), warmup=20)
        return bench(lambda: m(x), reps)

CASES = [("nb201_train_b64", "nb201", 64, True), ("nb201_infer_b64", "nb201", 64, False),
         ("nb201_infer_b1", "nb201", 1, False), ("mbv2_train_b64", "mbv2", 64, True),
         ("mbv2_infer_b64", "mbv2", 64, False), ("mbv2_infer_b1", "mbv2", 1, False)]

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    print(f"info torch {torch.__version__} OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}", flush=True)
    for name, net, batch, train in CASES:
        if a.only and a.only not in name: continue
        res = {}
        for cl in (False, True):
            for th in ((1, 2) if batch == 1 else (2,)):
                res[("NHWC" if cl else "NCHW", th)] = time_case(net, batch, train, a.reps, cl, th) * 1e3
        best = min(res, key=res.get)
        detail = ", ".join(f"{k[0]} {k[1]}t {v:.3f} ms" for k, v in res.items())
        print(f"info {name} {detail}; best {best[0]} {best[1]} threads")
        print(f"torch {name} {res[best]:.4f}", flush=True)
    if not a.only or a.only in "overheads":
        torch.set_num_threads(2)
        t = bench(lambda: make("nb201"), a.reps)
        print(f"info torch_nb201_new_model_us {t * 1e6:.1f}")

if __name__ == "__main__":
    main()
