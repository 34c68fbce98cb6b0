#!/usr/bin/python3
"""bench_ops.py - the non-conv hot ops of an NB201 training step (batch 64): BN in training mode,
avg_pool_3x3 (count_include_pad=False), ReLU, global average pool, and the 3x3 max/avg pools of
DARTS search cells (stride 1 and 2), forward + backward, nascent
(tests/tool_ops_bench.c) against PyTorch (2 threads) in the same run, both best of REPS.
Prints "speedup ops_<op>_<shape> X" with X = PyTorch time / nascent time, and a geometric mean
line "speedup ops_nb201_eltwise X".
Usage: /usr/bin/python3 bench/bench_ops.py [BUILD_DIR] [REPS] [cpu]"""
import math
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 30
# "cpu": one thread each, timed by process CPU time (usable when the machine is loaded)
cpu = len(sys.argv) > 3 and sys.argv[3] == "cpu"
threads = 1 if cpu else 2
clock = time.process_time if cpu else time.perf_counter
torch.set_num_threads(threads)

out = subprocess.run([build + "/tests/tool_ops_bench", str(reps), str(threads)] + (["cpu"] if cpu else []), capture_output=True,
                     text=True, check=True).stdout
ours = {}
for line in out.splitlines():
    _, name, shape, ms = line.split()
    ours[(name, shape)] = float(ms)


def torch_time(name, N, C, H):
    x = torch.randn(N, C, H, H).add_(0.5).requires_grad_(True)
    g = torch.rand(C).add_(0.5).requires_grad_(True)
    b = torch.rand(C).requires_grad_(True)
    rm, rv = torch.zeros(C), torch.ones(C)
    fn = {
        "bn_train": lambda: F.batch_norm(x, rm, rv, g, b, training=True, momentum=0.1, eps=1e-5),
        "avg3x3": lambda: F.avg_pool2d(x, 3, 1, 1, count_include_pad=False),
        "relu": lambda: F.relu(x),
        "gap": lambda: x.mean(dim=(2, 3)),
        "max3x3": lambda: F.max_pool2d(x, 3, 1, 1),
        "avg3x3s2": lambda: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
        "max3x3s2": lambda: F.max_pool2d(x, 3, 2, 1),
    }[name]
    seed = torch.rand_like(fn().detach())
    best = 1e30
    for _ in range(reps):
        x.grad = None
        t0 = clock()
        fn().backward(seed)
        best = min(best, clock() - t0)
    return best * 1e3


logs = []
for (name, shape), ms in ours.items():
    N, C, H, _ = (int(v) for v in shape.split("x"))
    tms = torch_time(name, N, C, H)
    print("# %s %s: nascent %.3f ms, torch %.3f ms" % (name, shape, ms, tms))
    print("speedup ops_%s_%s %.2f" % (name, shape, tms / ms))
    logs.append(math.log(tms / ms))
print("speedup ops_nb201_eltwise %.2f" % math.exp(sum(logs) / len(logs)))
