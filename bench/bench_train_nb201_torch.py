#!/usr/bin/python3
"""bench_train_nb201_torch.py - the PyTorch side of bench_train.sh --nb201: one NB201 network on
Fashion-MNIST (1-channel stem) trained with the recipe of ../shared/peers/nb201_fmnist_torch.py
(SGD Nesterov lr 0.1 cosine over all steps, wd 5e-4, batch 128, 2 threads, tuned environment).
Prints one line per epoch: `epoch E seconds S test_acc A` (S = the step loop only).
Usage: bench_train_nb201_torch.py C N EPOCHS [DATA_FRACTION]"""
import gzip, os, sys, time
if os.environ.get("_NB_TUNED") != "1":
    env = dict(os.environ, _NB_TUNED="1", OPENBLAS_NUM_THREADS="1",
               GLIBC_TUNABLES="glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736")
    env.pop("OPENBLAS_CORETYPE", None)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
sys.path.insert(0, os.environ.get("PEER_DIR", "/work/shared/peers"))
import nb201_defs as D

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def load(kind):
    d = "/usr/share/datasets/fashion-mnist"
    x = np.frombuffer(gzip.open(f"{d}/{kind}-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    y = np.frombuffer(gzip.open(f"{d}/{kind}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    return torch.tensor((x / 255.0 - 0.2860) / 0.3530, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def main():
    C, N, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    frac = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    torch.set_num_threads(2)
    torch.manual_seed(0)
    xtr, ytr = load("train")
    xte, yte = load("t10k")
    net = D.nb201(D.parse_arch(ARCH), C=C, N=N, num_classes=10)
    net[0] = nn.Conv2d(1, C, 3, 1, 1, bias=False)
    net = net.to(memory_format=torch.channels_last)
    batch = 128
    n = int(len(xtr) * frac)
    steps = (n + batch - 1) // batch
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sch = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps)
    for ep in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr))[:n]
        t = time.perf_counter()
        for i in range(steps):
            idx = perm[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(net(xtr[idx].contiguous(memory_format=torch.channels_last)), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sch.step()
        dt = time.perf_counter() - t
        net.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(xte), 500):
                xb = xte[i:i + 500].contiguous(memory_format=torch.channels_last)
                correct += (net(xb).argmax(1) == yte[i:i + 500]).sum().item()
        print(f"epoch {ep + 1} seconds {dt:.3f} test_acc {100.0 * correct / len(xte):.2f}", flush=True)


if __name__ == "__main__":
    main()
