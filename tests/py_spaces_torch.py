"""py_spaces_torch.py - the spaces' networks against PyTorch with identical weights, through
BUILD_DIR/tests/tool_spaces (one batch through the trainer's loss graph, dumped):

  * the attention block of JSON spaces (x + MultiheadAttention(x as tokens), src/spaces/netlist.c),
    and synflow through it
    against torch.nn.MultiheadAttention(C, heads, batch_first=True): logits, loss and every
    parameter gradient, for heads 1, 2, 4, 8 on odd spatial sizes (5x3); params and MACs from
    `nascent info` against the torch model (MACs: conv and linear layers plus the attention
    products q k^T and attn v, 2 (HW)^2 C per block, counted by hand here);
  * the DARTS evaluation network (NetworkCIFAR of quark0/darts, the classes of py_spaces.py):
    DARTS_V2, C=8, 5 cells, 3x32x32, auxiliary head, batch norm in training mode (batch
    statistics): logits, auxiliary logits, loss = CE(logits) + 0.4 CE(aux) and every gradient;
    in evaluation mode the logits (running statistics) and no auxiliary output. A reference whose
    FactorizedReduce omits the one-pixel shift must NOT match (the check can fail). Also the
    synflow proxy of that network (its double pass now meets the shift's crop op).

The references run in float64; ours in float32. Tolerances: outputs 1e-4 relative to the largest
magnitude, gradients 1e-3 relative L2 per tensor. Usage: /usr/bin/python3 tests/py_spaces_torch.py
BUILD_DIR (from the repo root); prints "RESULT py_spaces_torch passed=P failed=F"."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import py_spaces  # noqa: E402  (the DARTS reference classes)

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build/release"
TOOL = os.path.join(BUILD, "tests", "tool_spaces")
from pycheck import NAS as NAS_BIN, Checks  # noqa: E402
OUT_TOL, GRAD_TOL = 1e-4, 1e-3
check = Checks()


def read_dump(path):
    recs = {}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        name = data[pos + 4:pos + 4 + n].decode()
        pos += 4 + n
        (nd,) = struct.unpack_from("<I", data, pos)
        dims = struct.unpack_from("<%dq" % nd, data, pos + 4)
        pos += 4 + 8 * nd
        cnt = int(np.prod(dims)) if nd else 1
        recs[name] = torch.tensor(np.frombuffer(data, "<f4", cnt, pos).reshape(dims).astype(np.float64))
        pos += 4 * cnt
    return recs


def run_tool(*args):
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "dump.bin")
        r = subprocess.run([TOOL, *args, "--out", out], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("tool_spaces %s failed: %s" % (" ".join(args), r.stderr))
        return read_dump(out)


def info(space, arch):
    r = subprocess.run([NAS_BIN, "info", "--space", space, "--arch", arch, "--json"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nascent info failed: %s" % r.stderr)
    return json.loads(r.stdout)


def out_err(got, ref):
    return float((got - ref).abs().max() / ref.abs().max().clamp(min=1e-3))


def grad_err(got, ref):
    return float((got - ref).norm() / ref.norm().clamp(min=1e-6))


def params_of(d, prefix):
    return [(k[len(prefix):], v) for k, v in d.items() if k.startswith(prefix)]


# ------------------------------------------------------------------------------- attention

class AttnRef(nn.Module):
    """conv 3x3 (bias, no BN, no act), attention blocks, global pool, linear: the JSON space
    below, written with torch.nn.MultiheadAttention."""

    def __init__(self, cin, C, heads, classes):
        super().__init__()
        self.conv = nn.Conv2d(cin, C, 3, padding=1, bias=True)
        self.mha = nn.ModuleList(nn.MultiheadAttention(C, h, batch_first=True) for h in heads)
        self.classifier = nn.Linear(C, classes)

    def forward(self, x):
        x = self.conv(x)
        for mha in self.mha:
            N, C, H, W = x.shape
            t = x.flatten(2).transpose(1, 2)                      # [N, HW, C]
            o, _ = mha(t, t, t, need_weights=False)
            x = x + o.transpose(1, 2).reshape(N, C, H, W)
        return self.classifier(x.mean((2, 3)))


def attn_space(cin, H, W, C, classes):
    return {"name": "attn_test", "input": [cin, H, W], "classes": classes,
            "decisions": [{"name": "h", "choices": [1, 2, 4, 8]}],
            "network": [{"block": "conv", "out": C, "kernel": 3, "bn": False, "bias": True,
                         "act": "none"},
                        {"block": "attention", "heads": "$h"},
                        {"block": "attention", "heads": 2}]}


def load_attn(ref, ours):
    """Our q/k/v/out projections into torch's in_proj (q; k; v stacked) and out_proj."""
    with torch.no_grad():
        ref.conv.weight.copy_(ours["layers.0.conv.weight"])
        ref.conv.bias.copy_(ours["layers.0.conv.bias"])
        for i, mha in enumerate(ref.mha):
            p = "layers.%d.attn." % (i + 1)
            mha.in_proj_weight.copy_(torch.cat([ours[p + s + "_proj.weight"] for s in "qkv"]))
            mha.in_proj_bias.copy_(torch.cat([ours[p + s + "_proj.bias"] for s in "qkv"]))
            mha.out_proj.weight.copy_(ours[p + "out_proj.weight"])
            mha.out_proj.bias.copy_(ours[p + "out_proj.bias"])
        ref.classifier.weight.copy_(ours["classifier.weight"])
        ref.classifier.bias.copy_(ours["classifier.bias"])


def ref_grads_attn(ref):
    g = {"layers.0.conv.weight": ref.conv.weight.grad, "layers.0.conv.bias": ref.conv.bias.grad,
         "classifier.weight": ref.classifier.weight.grad,
         "classifier.bias": ref.classifier.bias.grad}
    for i, mha in enumerate(ref.mha):
        p = "layers.%d.attn." % (i + 1)
        for j, s in enumerate("qkv"):
            C = mha.embed_dim
            g[p + s + "_proj.weight"] = mha.in_proj_weight.grad[j * C:(j + 1) * C]
            g[p + s + "_proj.bias"] = mha.in_proj_bias.grad[j * C:(j + 1) * C]
        g[p + "out_proj.weight"] = mha.out_proj.weight.grad
        g[p + "out_proj.bias"] = mha.out_proj.bias.grad
    return g


def attn_macs(cin, H, W, C, classes, n_blocks):
    L = H * W
    return L * C * cin * 9 + n_blocks * (4 * L * C * C + 2 * L * L * C) + C * classes


def test_attention():
    cin, H, W, C, K = 6, 5, 3, 8, 4
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "attn.json")
        with open(path, "w") as f:
            json.dump(attn_space(cin, H, W, C, K), f)
        for heads in (1, 2, 4, 8):
            arch = "h=%d" % heads
            dump = run_tool("--space", path, "--arch", arch, "--batch", "3", "--seed", str(heads))
            ours = dict(params_of(dump, "param:"))
            ref = AttnRef(cin, C, (heads, 2), K).double()
            load_attn(ref, ours)
            logits = ref(dump["x"])
            loss = F.cross_entropy(logits, dump["y"].long())
            loss.backward()
            e = out_err(dump["logits"], logits.detach())
            check(e < OUT_TOL, "attention heads=%d: logits error %.2e" % (heads, e))
            e = abs(float(dump["loss"][0]) - float(loss)) / max(1.0, abs(float(loss)))
            check(e < OUT_TOL, "attention heads=%d: loss %.6f, torch %.6f"
                  % (heads, float(dump["loss"][0]), float(loss)))
            rg = ref_grads_attn(ref)
            ours_g = dict(params_of(dump, "grad:"))
            check(set(rg) == set(ours_g), "attention: parameter names differ: %s"
                  % sorted(set(rg) ^ set(ours_g)))
            worst = max(grad_err(ours_g[k], rg[k]) for k in rg if k in ours_g)
            check(worst < GRAD_TOL, "attention heads=%d: worst gradient error %.2e" % (heads, worst))
            got = info(path, arch)
            want_p = sum(p.numel() for p in ref.parameters())
            check(got["params"] == want_p, "attention heads=%d: params %d, torch %d"
                  % (heads, got["params"], want_p))
            want_m = attn_macs(cin, H, W, C, K, 2)
            check(got["macs"] == want_m, "attention heads=%d: MACs %d, by hand %d"
                  % (heads, got["macs"], want_m))


def test_attention_synflow():
    """synflow through attention blocks (matmul, permute, softmax in our double pass, which
    forms the weight gradients there: a softmax can give them either sign) against the
    reference definition in float64: |params|, ones input, R = sum(logits), sum |W dR/dW| over
    the conv and linear weights, the q/k/v projections (torch's in_proj_weight) counted as the
    linear layers they are."""
    cin, H, W, C, K = 3, 4, 5, 8, 4
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "attn.json")
        with open(path, "w") as f:
            json.dump(attn_space(cin, H, W, C, K), f)
        for heads in (1, 4):
            dump = run_tool("--space", path, "--arch", "h=%d" % heads, "--seed", str(10 + heads),
                            "--synflow")
            ref = AttnRef(cin, C, (heads, 2), K).double()
            load_attn(ref, dict(params_of(dump, "param:")))
            with torch.no_grad():
                for prm in ref.parameters():
                    prm.abs_()
            ref(torch.ones(1, cin, H, W, dtype=torch.float64)).sum().backward()
            weights = [ref.conv.weight, ref.classifier.weight]
            for mha in ref.mha:
                weights += [mha.in_proj_weight, mha.out_proj.weight]
            want = float(sum((w * w.grad).abs().sum() for w in weights))
            got = float(dump["synflow"][0])
            check(abs(got - want) < 1e-5 * want, "attention heads=%d: synflow %.9g, torch %.9g"
                  % (heads, got, want))


def test_attention_example():
    """examples/spaces/attention_32.json's default against the same network in torch."""
    def cbr(cin, cout, s):
        return [nn.Conv2d(cin, cout, 3, s, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    convs = nn.Sequential(*cbr(3, 32, 1), *cbr(32, 32, 2), *cbr(32, 128, 2))
    mhas = [nn.MultiheadAttention(32, 4), nn.MultiheadAttention(128, 8)]
    fc = nn.Linear(128, 10)
    want_p = sum(p.numel() for m in [convs, fc, *mhas] for p in m.parameters())
    want_m = 32 * 32 * 32 * 3 * 9 + 16 * 16 * 32 * 32 * 9 + 8 * 8 * 128 * 32 * 9 + 128 * 10 + \
        (4 * 256 * 32 * 32 + 2 * 256 * 256 * 32) + (4 * 64 * 128 * 128 + 2 * 64 * 64 * 128)
    got = info("examples/spaces/attention_32.json", "default")
    check(got["params"] == want_p and got["macs"] == want_m,
          "attention_32 default: %d params %d MACs, torch %d / %d"
          % (got["params"], got["macs"], want_p, want_m))


# ----------------------------------------------------------------------------------- DARTS

def darts_forward(net, x):
    """NetworkCIFAR.forward of the DARTS code, returning (logits, logits_aux)."""
    s0 = s1 = net.stem(x)
    aux = None
    for i, cell in enumerate(net.cells):
        s0, s1 = s1, cell(s0, s1)
        if i == 2 * net._layers // 3 and net._auxiliary and net.training:
            aux = net.auxiliary_head(s1)
    return net.classifier(net.global_pooling(s1).view(s1.size(0), -1)), aux


def darts_ref(dump, C, layers, aux):
    ref = py_spaces.NetworkCIFAR(C, 10, layers, aux, py_spaces.DARTS_V2).double()
    for m in ref.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    trainable = [k for k in dump if k.startswith("grad:")] or None
    ours = params_of(dump, "param:")
    ours_w = [(k, v) for k, v in ours if not k.endswith(("running_mean", "running_var"))]
    ours_b = [(k, v) for k, v in ours if k.endswith(("running_mean", "running_var"))]
    refs_w = list(ref.named_parameters())
    refs_b = [(k, b) for k, b in ref.named_buffers() if not k.endswith("num_batches_tracked")]
    ok = len(ours_w) == len(refs_w) and len(ours_b) == len(refs_b) and all(
        a[1].shape == b[1].shape for a, b in zip(ours_w + ours_b, refs_w + refs_b))
    check(ok, "DARTS: our %d parameters / %d buffers line up with the reference's %d / %d"
          % (len(ours_w), len(ours_b), len(refs_w), len(refs_b)))
    check(trainable is None or len(trainable) == len(refs_w), "DARTS: a gradient per parameter")
    if ok:
        with torch.no_grad():
            for (_, v), (_, p) in zip(ours_w + ours_b, refs_w + refs_b):
                p.copy_(v)
    return ref, [k for k, _ in ours_w], [p for _, p in refs_w]


def test_darts():
    C, layers = 8, 5
    args = ["--space", "darts", "--search-net", "--mult", "0.5", "--cells", str(layers),
            "--batch", "4"]
    dump = run_tool(*args, "--aux")
    ref, names, ref_params = darts_ref(dump, C, layers, True)
    ref.train()
    logits, aux = darts_forward(ref, dump["x"])
    y = dump["y"].long()
    loss = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    loss.backward()
    e = out_err(dump["logits"], logits.detach())
    check(e < OUT_TOL, "DARTS train mode: logits error %.2e" % e)
    check("aux" in dump, "DARTS train mode: auxiliary logits recorded")
    if "aux" in dump:
        e = out_err(dump["aux"], aux.detach())
        check(e < OUT_TOL, "DARTS train mode: auxiliary logits error %.2e" % e)
    e = abs(float(dump["loss"][0]) - float(loss)) / max(1.0, abs(float(loss)))
    check(e < OUT_TOL, "DARTS loss %.6f, torch CE + 0.4 CE_aux %.6f" % (float(dump["loss"][0]),
                                                                       float(loss)))
    errs = [(grad_err(dump["grad:" + n], p.grad), n) for n, p in zip(names, ref_params)
            if "grad:" + n in dump]
    worst = max(errs)
    check(len(errs) == len(names) and worst[0] < GRAD_TOL,
          "DARTS: worst gradient error %.2e (%s) over %d tensors" % (worst[0], worst[1], len(errs)))
    aux_grads = [float(dump[k].abs().max()) for k in dump if k.startswith("grad:auxiliary_head")]
    check(len(aux_grads) == 8 and min(aux_grads) > 0, "DARTS: gradients reach all 8 auxiliary "
          "head tensors: %s" % aux_grads)

    # the one-pixel shift matters: a reference without it must not match
    fr = py_spaces.FactorizedReduce.forward
    py_spaces.FactorizedReduce.forward = \
        lambda self, x: self.bn(torch.cat([self.conv_1(self.relu(x)), self.conv_2(self.relu(x))], 1))
    try:
        with torch.no_grad():
            unshifted, _ = darts_forward(ref, dump["x"])
    finally:
        py_spaces.FactorizedReduce.forward = fr
    e = out_err(dump["logits"], unshifted)
    check(e > 100 * OUT_TOL, "DARTS without the shift differs (error %.2e): the check can fail" % e)

    dump = run_tool(*args, "--aux", "--eval")
    ref, _, _ = darts_ref(dump, C, layers, True)
    ref.eval()
    with torch.no_grad():
        logits, aux = darts_forward(ref, dump["x"])
    e = out_err(dump["logits"], logits)
    check(e < OUT_TOL, "DARTS eval mode: logits error %.2e" % e)
    check("aux" not in dump and aux is None, "DARTS eval mode: no auxiliary logits")
    e = abs(float(dump["loss"][0]) - float(F.cross_entropy(logits, dump["y"].long())))
    check(e < OUT_TOL, "DARTS eval mode: the loss is CE(logits) alone (error %.2e)" % e)


def test_darts_synflow():
    """synflow (zero-cost-nas measures/synflow.py, bn=False) of the DARTS network: our double
    pass (src/evaluators/proxy_synflow.c, crops included) against the reference in float64."""
    dump = run_tool("--space", "darts", "--search-net", "--mult", "0.5", "--cells", "5",
                    "--synflow", "--eval")
    ref, _, _ = darts_ref(dump, 8, 5, False)
    for module in list(ref.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    with torch.no_grad():
        for p in ref.parameters():
            p.abs_()
    logits, _ = darts_forward(ref, torch.ones(1, 3, 32, 32, dtype=torch.float64))
    logits.sum().backward()
    want = float(sum((m.weight * m.weight.grad).abs().sum() for m in ref.modules()
                     if isinstance(m, (nn.Conv2d, nn.Linear))))
    got = float(dump["synflow"][0])
    check(abs(got - want) < 1e-5 * want, "DARTS synflow %.9g, torch %.9g" % (got, want))


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for t in (test_attention, test_attention_synflow, test_attention_example, test_darts,
              test_darts_synflow):
        try:
            t()
        except Exception as e:  # a crash counts as a failure, the rest still runs
            check(False, "%s raised %r" % (t.__name__, e))
    return check.report("py_spaces_torch")


if __name__ == "__main__":
    sys.exit(main())
