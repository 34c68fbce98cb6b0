"""bench_conv.py - PyTorch's F.conv2d at the shapes of bench_conv.c (same names), tuned as well
as it can be on a CPU: channels_last, oneDNN, torch threads as given (batch 1 takes the faster of
1 and the given count). Prints "time conv_<name> infer <ms> train <ms>" (medians).
Usage: /usr/bin/python3 bench/bench_conv.py [threads] [filter]"""
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [  # name, N, C, O, H, K, stride, groups (keep in step with bench_conv.c)
    ("nb201_16_32x32_k3_b64", 64, 16, 16, 32, 3, 1, 1),
    ("nb201_32_16x16_k3_b64", 64, 32, 32, 16, 3, 1, 1),
    ("nb201_64_8x8_k3_b64", 64, 64, 64, 8, 3, 1, 1),
    ("nb201_16_32x32_k1_b64", 64, 16, 16, 32, 1, 1, 1),
    ("nb201_32_16x16_k1_b64", 64, 32, 32, 16, 1, 1, 1),
    ("nb201_64_8x8_k1_b64", 64, 64, 64, 8, 1, 1, 1),
    ("nb201_16_32x32_k3_b1", 1, 16, 16, 32, 3, 1, 1),
    ("nb201_32_16x16_k3_b1", 1, 32, 32, 16, 3, 1, 1),
    ("nb201_64_8x8_k3_b1", 1, 64, 64, 8, 3, 1, 1),
    ("nb201_16_32x32_k1_b1", 1, 16, 16, 32, 1, 1, 1),
    ("nb201_64_8x8_k1_b1", 1, 64, 64, 8, 1, 1, 1),
    ("dw_96_16x16_k3_b64", 64, 96, 96, 16, 3, 1, 96),
    ("dw_144_16x16_k5_s2_b64", 64, 144, 144, 16, 5, 2, 144),
    ("dw_240_8x8_k7_b64", 64, 240, 240, 8, 7, 1, 240),
    ("dw_480_4x4_k3_b64", 64, 480, 480, 4, 3, 1, 480),
    ("dw_960_4x4_k5_b1", 1, 960, 960, 4, 5, 1, 960),
    ("dw_96_32x32_k3_b1", 1, 96, 96, 32, 3, 1, 96),
    ("pw_96_24_16x16_b64", 64, 96, 24, 16, 1, 1, 1),
    ("grp_64_8x8_k3_g4_b64", 64, 64, 64, 8, 3, 1, 4),
]


CPU = {}  # name -> (infer, train) median process-CPU ms (meaningful with 1 thread)


def median_ms(fn, reps, cpu_out):
    for _ in range(3):
        fn()
    t, tc = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        t.append(time.perf_counter() - t0)
        tc.append(time.process_time() - c0)
    t.sort()
    tc.sort()
    cpu_out.append(tc[len(tc) // 2] * 1e3)
    return t[len(t) // 2] * 1e3


def bench(shape, threads):
    name, N, C, O, H, K, s, g = shape
    torch.set_num_threads(threads)
    x = torch.randn(N, C, H, H).contiguous(memory_format=torch.channels_last)
    w = (0.1 * torch.randn(O, C // g, K, K)).contiguous(memory_format=torch.channels_last)
    flops = 2.0 * N * O * (H // s) ** 2 * (C // g) * K * K
    reps = 15 if flops > 1e8 else 50 if flops > 1e7 else 200

    def infer():
        with torch.no_grad():
            F.conv2d(x, w, None, s, K // 2, 1, g)

    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)
    dy = torch.randn(N, O, (H + 2 * (K // 2) - K) // s + 1, (H + 2 * (K // 2) - K) // s + 1)
    dy = dy.contiguous(memory_format=torch.channels_last)

    def train():
        xg.grad = None
        wg.grad = None
        y = F.conv2d(xg, wg, None, s, K // 2, 1, g)
        y.backward(dy)

    cpu = []
    res = median_ms(infer, reps, cpu), median_ms(train, reps, cpu)
    CPU[name] = tuple(cpu)
    return res


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    only = sys.argv[2] if len(sys.argv) > 2 else None
    for shape in SHAPES:
        if only and only not in shape[0]:
            continue
        inf, tr = bench(shape, threads)
        if shape[1] == 1 and threads > 1:  # batch 1: the faster of 1 and `threads` threads
            inf1, tr1 = bench(shape, 1)
            inf, tr = min(inf, inf1), min(tr, tr1)
        ci, ct = CPU[shape[0]]
        print(f"time conv_{shape[0]} infer {inf:.4f} train {tr:.4f}  (cpu ms {ci:.4f} / {ct:.4f})",
              flush=True)


if __name__ == "__main__":
    main()
