#!/usr/bin/python3
"""py_nets_torch.py - the standard networks (src/nn/nets.c) against PyTorch.

Run: /usr/bin/python3 tests/py_nets_torch.py BUILD_DIR [TEST]   (from the repo root; needs
BUILD_DIR/tests/tool_nets; TEST runs only the test functions whose name contains it)

Checks, each against PyTorch (Debian's python3-torch) running the reference definitions below
(copied from ../shared/peers/nb201_defs.py and fmnist_torch.py, unchanged in substance):
  - parameter and multiply-accumulate counts of NB201 (several cells, 1-channel 28x28 too),
    MobileNetV2 (widths 1.0 and 0.5) and the fmnist CNN, plus the published NB201 / MobileNetV2
    figures (1,531,546 / 220,119,680 and 2,236,682 / 87,976,448);
  - same weights (ours, exported by tool_nets, loaded by name into the PyTorch model) and same
    batch: loss and every parameter gradient, batch norm in training mode, within 1e-4 relative
    (per tensor, L2 norm of the difference over the norm of the reference, with a floor for
    tensors that are zero in exact arithmetic, see floor_of; where PyTorch's own float32 runs are
    further than 1e-4/3 from float64 -- an ill-conditioned tensor, see compare -- within 3x that);
  - 10 (or 3 or 1, see test_optim) steps of SGD-Nesterov (momentum 0.9, weight decay 5e-4) and of
    AdamW against torch.optim: every parameter and BN running statistic within 1e-4 relative;
  - same seed and thread count: bit-identical dumps; a graph rebuilt every step (the NAS use case)
    gives bit-identical results to one reused graph.
The reference runs in float64, so the differences measured are ours (float32) alone; PyTorch is also
run in float32 to measure how far float32 rounding alone moves each result (the conditioning).
Prints "RESULT py_nets_torch passed=P failed=F".
"""
import os, random, struct, subprocess, sys, tempfile, time

import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

from pycheck import Checks

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/release"
TOOL = os.path.join(BUILD, "tests", "tool_nets")
LONG = os.environ.get("NAS_TEST_LONG") == "1"
ASAN = os.environ.get("NAS_TEST_ASAN") == "1"
TOL = 1e-4

# ------------------------------------------------------------------ reference definitions
class ReLUConvBN(nn.Sequential):
    def __init__(self, cin, cout, k, stride, pad):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(cin, cout, k, stride, pad, bias=False),
                         nn.BatchNorm2d(cout))

class Zero(nn.Module):                       # NB201's 'none' op (x*0, as in the reference code)
    def forward(self, x): return x.mul(0.)

OPS = {
    "none":         lambda C: Zero(),
    "skip_connect": lambda C: nn.Identity(),
    "nor_conv_1x1": lambda C: ReLUConvBN(C, C, 1, 1, 0),
    "nor_conv_3x3": lambda C: ReLUConvBN(C, C, 3, 1, 1),
    "avg_pool_3x3": lambda C: nn.AvgPool2d(3, 1, 1, count_include_pad=False),
}
OP_CODE = {"none": 0, "skip_connect": 1, "nor_conv_1x1": 2, "nor_conv_3x3": 3, "avg_pool_3x3": 4}
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]

class Cell(nn.Module):
    def __init__(self, ops, C):
        super().__init__()
        self.ops = nn.ModuleList(OPS[o](C) for o in ops)
    def forward(self, x):
        nodes = [x]
        for i in (1, 2, 3):
            nodes.append(sum(op(nodes[j]) for (t, j), op in zip(EDGES, self.ops) if t == i))
        return nodes[3]

class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.a, self.b = ReLUConvBN(cin, cout, 3, 2, 1), ReLUConvBN(cout, cout, 3, 1, 1)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))
    def forward(self, x): return self.down(x) + self.b(self.a(x))

def nb201(ops, C=16, N=5, num_classes=10, in_c=3):
    layers = [nn.Conv2d(in_c, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)]
    for s, c in enumerate((C, 2 * C, 4 * C)):
        if s > 0: layers.append(ResBlock(c // 2, c))
        layers += [Cell(ops, c) for _ in range(N)]
    layers += [nn.BatchNorm2d(4 * C), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * C, num_classes)]
    return nn.Sequential(*layers)

def _div(v, d=8):
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n

class InvRes(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid, layers = cin * t, []
        if t != 1: layers += [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6()]
        layers += [nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(),
                   nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv, self.res = nn.Sequential(*layers), stride == 1 and cin == cout
    def forward(self, x): return x + self.conv(x) if self.res else self.conv(x)

MBV2_CFG = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

def mobilenet_v2(width=1.0, num_classes=10, in_c=3):
    cin, last = _div(32 * width), _div(1280 * max(1.0, width))
    layers = [nn.Conv2d(in_c, cin, 3, 1, 1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6()]
    for t, c, n, s in MBV2_CFG:
        cout = _div(c * width)
        for i in range(n):
            layers.append(InvRes(cin, cout, s if i == 0 else 1, t)); cin = cout
    layers += [nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(last, num_classes)]
    return nn.Sequential(*layers)

def fmnist_cnn(in_c=1, h=28, w=28, num_classes=10):
    return nn.Sequential(nn.Conv2d(in_c, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * (h // 4) * (w // 4), num_classes))

def count(model, in_shape):
    """Trainable params and MACs of Conv2d + Linear for one example (as peers/nb201_defs.py)."""
    macs, hooks = [0], []
    def hook(m, i, o):
        if isinstance(m, nn.Conv2d):
            macs[0] += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            macs[0] += o.numel() * m.in_features
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)): hooks.append(m.register_forward_hook(hook))
    model.eval()
    with torch.no_grad(): model(torch.zeros(1, *in_shape))
    for h in hooks: h.remove()
    model.train()
    return sum(p.numel() for p in model.parameters()), macs[0]

# ------------------------------------------------------------------ harness
check = Checks(echo_ok=True)


class Net:
    """One network configuration: the tool's arguments and the matching PyTorch model."""
    def __init__(self, kind, ops=None, C=16, N=5, width=1.0, in_shape=(3, 32, 32), classes=10):
        self.kind, self.ops, self.C, self.N, self.width = kind, ops, C, N, width
        self.in_shape, self.classes = in_shape, classes
    def args(self):
        a = ["--net", self.kind, "--in", ",".join(map(str, self.in_shape)), "--classes", str(self.classes)]
        if self.kind == "nb201":
            a += ["--ops", ",".join(str(OP_CODE[o]) for o in self.ops), "--C", str(self.C), "--N", str(self.N)]
        if self.kind == "mbv2":
            a += ["--width", str(self.width)]
        return a
    def torch_model(self):
        c = self.in_shape[0]
        if self.kind == "nb201":
            return nb201(self.ops, self.C, self.N, self.classes, c)
        if self.kind == "mbv2":
            return mobilenet_v2(self.width, self.classes, c)
        return fmnist_cnn(c, self.in_shape[1], self.in_shape[2], self.classes)
    def __str__(self):
        if self.kind == "nb201":
            return f"nb201[{','.join(self.ops)}] C={self.C} N={self.N} in={self.in_shape}"
        return f"{self.kind} w={self.width} in={self.in_shape}" if self.kind == "mbv2" else f"{self.kind} in={self.in_shape}"

def tool(cmd, net, extra=()):
    r = subprocess.run([TOOL, cmd] + net.args() + list(extra), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tool_nets {cmd} {net}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout

def read_dump(path):
    recs, data = {}, open(path, "rb").read()
    at = 0
    while at < len(data):
        (n,) = struct.unpack_from("<I", data, at); at += 4
        name = data[at:at + n].decode(); at += n
        (nd,) = struct.unpack_from("<I", data, at); at += 4
        dims = struct.unpack_from(f"<{nd}q", data, at); at += 8 * nd
        numel = int(np.prod(dims)) if nd else 1
        recs[name] = np.frombuffer(data, np.float32, numel, at).reshape(dims).copy(); at += 4 * numel
    return recs

def run_train(net, path, extra):
    tool("train", net, ["--out", path] + list(extra))
    return read_dump(path)

def rel(a, ref, floor=0.0):
    """L2 norm of the difference over max(norm of the reference, floor)."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return np.linalg.norm(a - ref) / max(np.linalg.norm(ref), floor, 1e-30)

def floor_of(tensors):
    """Tensors that are zero in exact arithmetic (the gradient of a BN bias feeding a train-mode BN
    through linear ops only, the running mean of such a BN) cannot be compared relatively: their
    float64 reference is ~1e-17 and any float32 result ~1e-9. Their norm is measured against 1e-2
    of the median tensor norm of the same dump instead."""
    return 1e-2 * float(np.median([np.linalg.norm(np.asarray(v, np.float64)) for v in tensors]))

def ulp_nudge(t, gen):
    """Each element scaled by 1 +- 2^-23 at random (computed in float64): one float32 ulp, the
    size of a float32 rounding, whatever t's own precision."""
    sign = torch.where(torch.rand(t.shape, generator=gen, dtype=torch.float64) < 0.5, -1.0, 1.0)
    return (t.double() * (1.0 + sign * 2.0 ** -23)).to(t.dtype)

def torch_replay(net, dump, steps, opt, lr, wd, dtype=torch.float64, nudge=None, nhwc=False, mkldnn=True):
    """Our initial weights and batches into the PyTorch model (float64 by default); returns losses,
    step-0 gradients and the final state (parameters and buffers) by our names. nudge (a seed):
    weights and every batch moved by one float32 ulp at random first (see ulp_nudge). nhwc:
    channels-last tensors, which PyTorch runs through other kernels (another summation order).
    mkldnn=False: PyTorch's own convolutions (im2col and BLAS) instead of oneDNN's."""
    with torch.backends.mkldnn.flags(enabled=mkldnn):
        return _replay(net, dump, steps, opt, lr, wd, dtype, nudge, nhwc)

def _replay(net, dump, steps, opt, lr, wd, dtype, nudge, nhwc):
    gen = torch.Generator().manual_seed(nudge) if nudge is not None else None
    m = net.torch_model().to(dtype).train()
    sd = m.state_dict()
    ours = {k[5:] for k in dump if k.startswith("init:")}
    theirs = {k for k in sd if not k.endswith("num_batches_tracked")}
    if ours != theirs:
        raise RuntimeError(f"{net}: names differ: only ours {sorted(ours - theirs)[:5]}, only torch {sorted(theirs - ours)[:5]}")
    with torch.no_grad():
        for k in sorted(theirs):  # a fixed order: the nudges are the same in every process
            src = dump["init:" + k]
            if tuple(src.shape) != tuple(sd[k].shape):
                raise RuntimeError(f"{net}: {k} shape {src.shape} vs torch {tuple(sd[k].shape)}")
            v = torch.from_numpy(src.astype(np.float64)).to(dtype)
            sd[k].copy_(ulp_nudge(v, gen) if gen is not None and v.is_floating_point() else v)
    if nhwc: m = m.to(memory_format=torch.channels_last)
    params = list(m.parameters())
    o = None
    if opt == "sgd":
        o = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    elif opt == "adamw":
        o = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    names = dict((id(p), n) for n, p in m.named_parameters())
    losses, grads = [], {}
    for k in range(steps):
        x = torch.from_numpy(dump[f"x:{k}"].astype(np.float64)).to(dtype)
        if gen is not None: x = ulp_nudge(x, gen)
        if nhwc and x.dim() == 4: x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(dump[f"y:{k}"].astype(np.int64))
        for p in params: p.grad = None
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        losses.append(loss.item())
        if k == 0:
            grads = {names[id(p)]: p.grad.double().numpy().copy() for p in params}
        if o is not None: o.step()
    final = {k: v.double().numpy().copy() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    return losses, grads, final

def float32_runs(net, dump, steps, opt, lr, wd):
    """How far float32 rounding alone can move each result: PyTorch in float32 as is,
    channels-last and through its own (not oneDNN's) convolutions (other kernels, other summation
    orders) and from two starts nudged by one ulp, and in float64 from two nudged starts (how much
    the exact computation amplifies rounding-sized errors). PyTorch's float32 results differ from
    process to process (its reductions split at memory alignment), so float32 runs alone can make
    a chaotic trajectory look quiet; the nudged float64 runs repeat and show it. The nudges are
    drawn in a fixed order, the same in every process: drawn in set order, one process in ~7 drew
    only mild ones and failed a gradient that other processes' nudges moved as far as ours. Ours
    is one more sample of the noise: a kernel that sums in another order (oneDNN's AVX-512 kernels
    against its AVX2 ones) can land 3x further out than one float32 sample on an ill-conditioned
    tensor."""
    return [torch_replay(net, dump, steps, opt, lr, wd, dtype, nudge, nhwc, mkldnn)
            for dtype, nudge, nhwc, mkldnn in (
                (torch.float32, None, False, True), (torch.float32, None, True, True),
                (torch.float32, None, False, False), (torch.float32, 1, False, True),
                (torch.float32, 2, True, True), (torch.float64, 1, False, True),
                (torch.float64, 2, False, True))]

def compare(net, tag, dump, ref_losses, ref_grads, ref_final, steps, skip=(), t32=None):
    """Losses per step, step-0 gradients and the final state against the float64 reference.

    Conditioning: deep stacks of train-mode BN make these gradients ill-conditioned (BN's backward
    subtracts the projection of dy on (1, x_hat); what is left can be small next to dy), so float32
    rounding alone can move them by 1e-2 for some weights and batches. PyTorch's own float32 runs
    (t32 = a list of (losses, gradients, final state), see float32_runs) measure that: a tensor
    passes when ours is within TOL of float64, or within 3x the farthest of PyTorch float32's runs
    from float64 where that is larger.
    The message counts the tensors judged by the second rule."""
    ok, worst = True, (0.0, "")
    n_cond = 0
    for k in range(steps):
        e = abs(float(dump[f"loss:{k}"][0]) - ref_losses[k]) / abs(ref_losses[k])
        tol = TOL
        if t32 is not None:
            e32 = max(abs(r[0][k] - ref_losses[k]) / abs(ref_losses[k]) for r in t32)
            if 3 * e32 > tol: tol, n_cond = 3 * e32, n_cond + 1
        if e > tol: ok = False
        worst = max(worst, (e, f"loss:{k}"))
    cond = f", {n_cond} by PyTorch float32's error" if n_cond else ""
    check(ok, f"{tag} {net}: loss over {steps} step(s) within {TOL}{cond} (worst {worst[0]:.2e} {worst[1]})")
    for idx, what, ref, prefix in ((1, "parameter gradients", ref_grads, "grad0:"),
                                   (2, f"parameters and BN buffers after {steps} step(s)", ref_final, "final:")):
        ok, worst, fl, n_cond = True, (0.0, ""), floor_of(ref.values()), 0
        names = [n for n in ref if n not in skip]
        for name in names:
            e = rel(dump[prefix + name], ref[name], fl)
            tol = TOL
            if t32 is not None:
                e32 = max(rel(r[idx][name], ref[name], fl) for r in t32)
                if 3 * e32 > tol: tol, n_cond = 3 * e32, n_cond + 1
            if not e <= tol:
                ok = False
                print(f"     {prefix}{name}: {e:.3e} (norms ours {np.linalg.norm(dump[prefix + name]):.3e}, "
                      f"reference {np.linalg.norm(ref[name]):.3e})")
            worst = max(worst, (e, name))
        note = (f", {len(skip)} excluded" if skip else "") + (f", {n_cond} by PyTorch float32's error" if n_cond else "")
        check(ok, f"{tag} {net}: {len(names)} {what} within {TOL}{note} (worst {worst[0]:.2e} {worst[1]})")

def exact_zero_grads(grads):
    """Names of parameters whose float64 gradient is zero up to roundoff (see floor_of)."""
    top = max(np.linalg.norm(g) for g in grads.values())
    return {n for n, g in grads.items() if np.linalg.norm(g) <= 1e-12 * top}

# ------------------------------------------------------------------ the checks
ALLCONV = ["nor_conv_3x3"] * 6
def randmix():                      # peers/torch_peer.py's random cell using each op at least once
    rng, mix = random.Random(201), []
    while len(set(mix)) < len(OPS):
        mix = [rng.choice(list(OPS)) for _ in EDGES]
    return mix
# node 1 is all zeros and feeds a conv edge (BN of zeros), node 2 reads node 1 through a pool
ZERONODE = ["none", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3"]
ALLNONE = ["none"] * 6

def test_counts():
    published = {"nb201_allconv": (1531546, 220119680), "mbv2_w1": (2236682, 87976448), "fmnist": (20490, None)}
    nets = [("nb201_allconv", Net("nb201", ALLCONV)), ("", Net("nb201", randmix())),
            ("", Net("nb201", ZERONODE, C=8, N=2)), ("", Net("nb201", ALLNONE, C=8, N=1)),
            ("", Net("nb201", randmix(), C=16, N=5, in_shape=(1, 28, 28))),
            ("mbv2_w1", Net("mbv2", width=1.0)), ("", Net("mbv2", width=0.5, classes=100)),
            ("fmnist", Net("fmnist-cnn", in_shape=(1, 28, 28))), ("", Net("fmnist-cnn", in_shape=(3, 32, 32)))]
    for key, net in nets:
        try:
            out = dict(l.split() for l in tool("count", net).strip().splitlines())
        except RuntimeError as e:
            check(False, str(e))
            continue
        ours = (int(out["params"]), int(out["macs"]))
        ref = count(net.torch_model(), net.in_shape)
        check(ours == ref, f"count {net}: ours params {ours[0]} MACs {ours[1]}, torch {ref[0]} {ref[1]}")
        if key:
            p, m = published[key]
            check(ours[0] == p and (m is None or ours[1] == m), f"count {net}: published params {p} MACs {m}")

def test_grads(tmp):
    # Batch 8 for NB201: at batch 2 its 8x8 last stage gives train-mode BN so few values per
    # channel that float32 rounding alone moves some gradients by 1e-2 (see compare()).
    nets = [Net("nb201", ALLCONV), Net("nb201", randmix()),
            Net("nb201", ZERONODE, C=8, N=1, in_shape=(1, 28, 28)),
            Net("mbv2", width=0.5), Net("fmnist-cnn", in_shape=(1, 28, 28))]
    if LONG:
        nets.append(Net("mbv2", width=1.0))
    for net in nets:
        t0 = time.time()
        batch = "8" if str(net).startswith("nb201") else "2"
        dump = run_train(net, f"{tmp}/g.bin", ["--batch", batch, "--steps", "1", "--opt", "none", "--seed", "3"])
        t1 = time.time()
        losses, grads, final = torch_replay(net, dump, 1, None, 0, 0)
        t32 = float32_runs(net, dump, 1, None, 0, 0)
        print(f"     ({net}: ours {t1 - t0:.2f} s, torch {time.time() - t1:.2f} s)")
        compare(net, "grad", dump, losses, grads, final, 1, t32=t32)

def test_optim(tmp):
    """Steps of each optimiser against torch.optim. A 10-step trajectory of a deep BN network at a
    tiny batch can be chaotic: float32 rounding alone (PyTorch float32 against float64) may move
    the result by 1e-2 or more for some seeds. The strict check is only meaningful on a
    well-conditioned trajectory, so the first (steps, seed) -- 10 steps, seeds 5..10, then 3, then
    1 -- on which the float32 noise (float32_runs) stays within TOL/3 of float64 is used, and ours
    must then be within TOL. Where none is (AdamW on the deep network of the long run), the
    best-conditioned one is judged as test_grads judges gradients: within 3x the farthest float32
    run (compare's second rule)."""
    # small steps: at SGD lr 0.05 / AdamW 1e-3 most 10-step trajectories of these batch-2 BN
    # networks were chaotic (1 ulp at the start moved the end by 1e-1)
    cfgs = [("sgd", 0.01), ("adamw", 1e-4)]
    nets = [Net("nb201", randmix(), C=8, N=1), Net("nb201", ALLCONV, C=8, N=1)]
    if LONG:
        nets.append(Net("nb201", randmix(), C=16, N=5))
    for net in nets:
        for opt, lr in cfgs:
            best = None                     # the best-conditioned (steps, seed) seen
            for steps, seed in [(st, sd) for st in (10, 3, 1) for sd in (5, 6, 7, 8, 9, 10)]:
                dump = run_train(net, f"{tmp}/o.bin", ["--batch", "2", "--steps", str(steps), "--opt", opt,
                                                       "--lr", str(lr), "--wd", "5e-4", "--seed", str(seed)])
                losses, grads, final = torch_replay(net, dump, steps, opt, lr, 5e-4)
                # AdamW turns a float32 gradient of ~1e-9 where the exact one is 0 into a step of
                # ~lr/10 (m / (sqrt(v) + eps)); PyTorch in float32 does the same. Those parameters
                # (BN biases in front of a train-mode BN: they cannot change the training loss) are
                # excluded for AdamW; SGD keeps them.
                skip = set()
                if opt == "adamw":      # ... and the running means those biases alone feed
                    top = max(np.linalg.norm(v) for v in final.values())
                    skip = exact_zero_grads(grads) | {n for n, v in final.items() if n.endswith(
                        "running_mean") and np.linalg.norm(v) <= 1e-9 * top}
                t32 = float32_runs(net, dump, steps, opt, lr, 5e-4)
                fl = floor_of(final.values())
                e32 = max(rel(r[2][n], v, fl) for r in t32 for n, v in final.items() if n not in skip)
                print(f"     ({opt} {net} seed {seed}: PyTorch float32 vs float64 after {steps} steps {e32:.1e})")
                if e32 <= TOL / 3:     # then compare() allows no more than TOL
                    compare(net, f"{opt} x{steps} seed {seed}", dump, losses, grads, final, steps, skip)
                    break
                if best is None or e32 < best[0]:
                    best = (e32, steps, seed, dump, losses, grads, final, skip, t32)
            else:   # all ill-conditioned (AdamW on deep nets): within 3x float32's own noise
                e32, steps, seed, dump, losses, grads, final, skip, t32 = best
                compare(net, f"{opt} x{steps} seed {seed} (float32 noise {e32:.1e})", dump, losses,
                        grads, final, steps, skip, t32=t32)

def test_determinism(tmp):
    net = Net("nb201", randmix(), C=8, N=2)
    args = ["--batch", "4", "--steps", "3", "--opt", "sgd", "--lr", "0.1", "--seed", "9", "--threads", "2"]
    a = run_train(net, f"{tmp}/d1.bin", args)
    raw1 = open(f"{tmp}/d1.bin", "rb").read()
    run_train(net, f"{tmp}/d2.bin", args)
    raw2 = open(f"{tmp}/d2.bin", "rb").read()
    check(raw1 == raw2, f"determinism {net}: same seed and threads give identical bytes")
    run_train(net, f"{tmp}/d3.bin", args + ["--rebuild"])
    raw3 = open(f"{tmp}/d3.bin", "rb").read()
    check(raw1 == raw3, f"determinism {net}: a graph rebuilt every step equals a reused one")
    run_train(net, f"{tmp}/d4.bin", args[:-2] + ["--threads", "1"])
    b = read_dump(f"{tmp}/d4.bin")
    fl = floor_of([v for k, v in a.items() if k.startswith("final:")])
    worst = max(rel(b[k], a[k], fl) for k in a if k.startswith("final:"))
    check(worst < TOL, f"determinism {net}: 1 thread vs 2 threads within {TOL} (worst {worst:.2e})")

def main():
    torch.set_num_threads(2)
    if not os.access(TOOL, os.X_OK):
        check(False, f"{TOOL} is missing (make build)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            only = sys.argv[2] if len(sys.argv) > 2 else ""      # run the tests whose name has this
            for t in (test_counts, test_grads, test_optim, test_determinism):
                if only not in t.__name__: continue
                try:
                    t(tmp) if t is not test_counts else t()
                except Exception as e:          # a crash of the tool is one failed check, named
                    check(False, f"{t.__name__}: {e}")
    return check.report("py_nets_torch")

if __name__ == "__main__":
    sys.exit(main())
