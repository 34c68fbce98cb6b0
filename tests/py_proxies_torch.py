"""py_proxies_torch.py - every zero-cost proxy of `nascent proxies` against a PyTorch
implementation on the same small NB201 networks (C = 8 and 16, N = 1), the same weights and the same
minibatch (batch 8, 16): nascent exports its initial weights (weights.nas) and the minibatch, this
script loads them into the NB201 definition of tests/py_nets_torch.py and computes
each proxy as SamsungLabs/zero-cost-nas defines it (fresh copy of the network per proxy, training
mode, F.cross_entropy), then compares within 1e-4 relative.

Run: /usr/bin/python3 tests/py_proxies_torch.py BUILD_DIR   (bin/nascent, or $NAS_BIN)
Prints "RESULT py_proxies_torch passed=P failed=F" last."""
import copy
import json
import os
import struct
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import py_nets_torch as nets  # noqa: E402  the project's NB201 reference (tests/py_nets_torch.py)
from pycheck import NAS, Checks  # noqa: E402


def parse_arch(s):
    """'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' -> the six ops in nets.EDGES order."""
    ops = []
    for node, part in enumerate(s.split("+"), start=1):
        toks = [t for t in part.split("|") if t]
        assert len(toks) == node and all(t.split("~")[1] == str(j) for j, t in enumerate(toks)), s
        ops += [t.split("~")[0] for t in toks]
    assert all(o in nets.OPS for o in ops), s
    return ops


# what this test and bench/bench_proxies_torch.py need of an NB201 definition
nb = types.SimpleNamespace(nb201=nets.nb201, parse_arch=parse_arch,
                           count=lambda net: nets.count(net, (3, 32, 32)))
REL_TOL = 1e-4
# grasp's Hessian-gradient product is a float32 finite difference (src/evaluators/proxy_grasp.c):
# measured 2e-5 .. 1.5e-4 against PyTorch's double backward, so it gets a looser bound.
TOL = {"grasp": 5e-4}
check = Checks()


def read_weights(path):
    """The nascent weight file (src/nn/weights.c, version 1) -> {name: float32 array}."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89NAS\r\n\x1a\n", "not a nascent weight file"
    n_params, n_floats, n_extra, meta = struct.unpack_from("<QQQQ", b, 24)
    off, table = 64, []
    for _ in range(n_params):
        (ln,) = struct.unpack_from("<I", b, off); off += 4
        name = b[off:off + ln].decode(); off += ln
        (nd,) = struct.unpack_from("<I", b, off); off += 4
        dims = struct.unpack_from("<%dQ" % nd, b, off); off += 8 * nd
        table.append((name, dims))
    for _ in range(n_extra):
        (ln,) = struct.unpack_from("<I", b, off); off += 4 + ln + 8
    off += meta
    out = {}
    for name, dims in table:
        n = int(np.prod(dims))
        out[name] = np.frombuffer(b, dtype="<f4", count=n, offset=off).reshape(dims).copy()
        off += 4 * n
    return out


def conv_linear(net):
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ---------------------------------------------------------------- proxies, zero-cost-nas style
def grad_norm(net, x, y):
    net = copy.deepcopy(net).train()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return sum(m.weight.grad.norm().item() for m in conv_linear(net))


def snip(net, x, y):
    net = copy.deepcopy(net).train()
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    return sum((m.weight.grad * m.weight).abs().sum().item() for m in conv_linear(net))


def grasp(net, x, y):
    net = copy.deepcopy(net).train()
    ws = [m.weight for m in conv_linear(net)]
    net.zero_grad()
    gw = torch.autograd.grad(F.cross_entropy(net(x), y), ws, allow_unused=True)
    gf = torch.autograd.grad(F.cross_entropy(net(x), y), ws, create_graph=True, allow_unused=True)
    z = 0
    for a, b in zip(gw, gf):
        if a is not None:
            z = z + (a.data * b).sum()
    z.backward()
    return sum((-m.weight.data * m.weight.grad).sum().item() for m in conv_linear(net)
               if m.weight.grad is not None)


def fisher(net, x, y):
    net = copy.deepcopy(net).train()
    acts = []

    def hook(m, inp, out):
        out.retain_grad()
        acts.append((m, out))
    hs = [m.register_forward_hook(hook) for m in conv_linear(net)]
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()
    for h in hs:
        h.remove()
    total = 0.0
    for m, a in acts:
        g = a.grad
        g_nk = (a * g).sum([2, 3]) if a.dim() > 2 else a * g
        del_k = g_nk.pow(2).mean(0).mul(0.5)
        total += (del_k.abs() * float(np.prod(m.weight.shape[1:]))).sum().item()
    return total


def jacob_cov(net, x, y):
    net = copy.deepcopy(net).train()
    x = x.clone().requires_grad_(True)
    out = net(x)
    out.backward(torch.ones_like(out))
    j = x.grad.reshape(x.shape[0], -1).numpy().astype(np.float64)
    v, _ = np.linalg.eig(np.corrcoef(j))
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)).real)


def nwot(net, x, y):
    net = copy.deepcopy(net).train()
    B = x.shape[0]
    K = np.zeros((B, B))

    def hook(m, inp, out):
        c = (inp[0].reshape(B, -1) > 0).double().numpy()
        K[:] += c @ c.T + (1 - c) @ (1 - c).T
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return float(np.linalg.slogdet(K)[1])


def synflow(net, x, y):
    net = copy.deepcopy(net)
    for name, m in list(net.named_modules()):  # bn=False: batch norm removed
        for cname, c in list(m.named_children()):
            if isinstance(c, nn.BatchNorm2d):
                setattr(m, cname, nn.Identity())
    net = net.double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad()
    net(torch.ones(1, *x.shape[1:], dtype=torch.float64)).sum().backward()
    return sum((m.weight * m.weight.grad).abs().sum().item() for m in conv_linear(net))


def params(net, x, y):
    return float(sum(p.numel() for p in net.parameters()))


def macs(net, x, y):
    return float(nb.count(net)[1])


PROXIES = {"grad_norm": grad_norm, "snip": snip, "grasp": grasp, "fisher": fisher,
           "synflow": synflow, "jacob_cov": jacob_cov, "nwot": nwot, "params": params, "macs": macs}

ARCHS = [
    # every op kind, a 'none' edge
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    # all conv 3x3
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    # node 1 is zero and feeds conv edges (the ReLU of a zero input)
    "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
]


def main():
    # Seeds 3, 4, 5. (With seed 8 the all-conv cell has a ReLU input within float32 rounding of 0
    # that our float32 and PyTorch's round to opposite sides: fisher then differs by 2e-4 while
    # PyTorch float32 and float64 agree to 1e-8; such a flip is a property of float32, not of
    # the proxy.)
    torch.set_num_threads(2)
    tmp = tempfile.mkdtemp(prefix="nas_proxies_")
    # the all-conv cell (the slowest) only in the long run: NAS_TEST_LONG=1
    chosen = [0, 1, 2] if os.environ.get("NAS_TEST_LONG") == "1" else [0, 2]
    # (arch, C, batch): C = 16 as well, so the engine's blocked layouts are checked at both block
    # sizes oneDNN picks with AVX-512 (nChw16c needs C divisible by 16; C = 8 gets nChw8c), at
    # batch 16, where the 32- and 64-channel stages' training convolutions use Winograd
    cases = [(ai, 8, 8) for ai in chosen] + [(0, 16, 16)]
    for ai, C, batch in cases:
        arch = ARCHS[ai]
        d = os.path.join(tmp, f"{ai}_{C}")
        os.makedirs(d)
        cmd = [NAS, "proxies", "--space", "nb201", "--arch", arch, "--batch", str(batch), "--seed", str(3 + ai),
               "--channels-mult", str(C / 16), "--cells", "1", "--synthetic", "--export", d, "--json"]
        p = subprocess.run(cmd, capture_output=True, text=True)
        check(p.returncode == 0, f"{arch}: nascent rc {p.returncode}: {p.stderr}")
        if p.returncode != 0:
            continue
        ours = json.loads(p.stdout)
        net = nb.nb201(nb.parse_arch(arch), C=C, N=1, num_classes=10)
        w = read_weights(os.path.join(d, "weights.nas"))
        sd = {k: torch.from_numpy(v) for k, v in w.items()}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        check(not unexpected and all(k.endswith("num_batches_tracked") for k in missing),
              f"{arch}: state_dict mismatch: missing {missing} unexpected {unexpected}")
        x = torch.from_numpy(np.fromfile(os.path.join(d, "x.f32"), dtype="<f4").reshape(batch, 3, 32, 32).copy())
        y = torch.from_numpy(np.fromfile(os.path.join(d, "y.i32"), dtype="<i4").astype(np.int64))
        # the proxies that need no weight gradient, asked for alone (their backward then skips
        # every weight-gradient pass), must give the same scores
        p = subprocess.run(cmd[:-3] + ["--proxy", "fisher,jacob_cov,nwot", "--json"],
                           capture_output=True, text=True)
        check(p.returncode == 0,
              f"{arch}: nascent (no weight gradients) rc {p.returncode}: {p.stderr}")
        alone = json.loads(p.stdout) if p.returncode == 0 else {}
        for name, fn in PROXIES.items():
            want = fn(net, x, y)
            for how, scores in (("", ours), (" alone", alone)):
                if name not in scores:
                    continue
                got = scores[name]
                rel = abs(got - want) / max(abs(want), 1e-30)
                print(f"{ai} C={C:<2d} {name + how:16s} nascent {got:.10g} torch {want:.10g} rel {rel:.2e}")
                check(rel <= TOL.get(name, REL_TOL),
                      f"{arch}: {name}{how}: nascent {got!r} torch {want!r} rel {rel:.3g}")
    return check.report("py_proxies_torch")


if __name__ == "__main__":
    sys.exit(main())
