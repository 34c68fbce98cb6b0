#!/usr/bin/python3
"""py_ops_torch.py - the ops of act.c, norm.c, pool.c, loss.c and lstm.c against PyTorch.

Runs BUILD_DIR/tests/tool_ops_dump (tests/tool_ops_dump.c), which writes seeded random inputs,
outputs and gradients of L = sum(r * y) (or of the scalar loss); recomputes each case with torch in
float64 from the same inputs and compares: forward values within 1e-5, gradients within 1e-4
(relative to max(1, |reference|)).
Usage: /usr/bin/python3 tests/py_ops_torch.py BUILD_DIR; prints RESULT ops_torch passed=P failed=F.
"""
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from pycheck import Checks

torch.set_default_dtype(torch.float64)
FWD_TOL, GRAD_TOL = 1e-5, 1e-4


def read_dump(path):
    cases = {}
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        case = data[pos:pos + 32].split(b"\0")[0].decode()
        name = data[pos + 32:pos + 64].split(b"\0")[0].decode()
        (ndim,) = struct.unpack_from("<i", data, pos + 64)
        pos += 68
        shape = struct.unpack_from("<%dq" % ndim, data, pos)
        pos += 8 * ndim
        n = int(np.prod(shape))
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=pos).reshape(shape)
        pos += 4 * n
        cases.setdefault(case, {})[name] = torch.tensor(arr.astype(np.float64))
    return cases


def rel_err(got, ref):
    got, ref = got.detach().reshape(-1), ref.detach().reshape(-1)
    if got.shape != ref.shape:
        return float("inf")
    return float(((got - ref).abs() / ref.abs().clamp(min=1.0)).max())


def check_case(ck, name, pairs):
    """One check per case: pairs of (label, got, ref, tol), all within tolerance."""
    bad = []
    for label, got, ref, tol in pairs:
        err = rel_err(got, ref)
        if os.environ.get("NAS_TEST_VERBOSE"):
            print("     %s %s: %.2e" % (name, label, err))
        if not err < tol:
            bad.append("%s err %.3g (tol %g)" % (label, err, tol))
    ck(not bad, "%s%s" % (name, ": " + "; ".join(bad) if bad else ""))


def leaf(t):
    return t.clone().requires_grad_(True)


def grads_of(y, r, leaves):
    (y * r).sum().backward()
    return [l.grad for l in leaves]


def check_bn(ck, name, d, training, affine):
    x = leaf(d["x"])
    gamma, beta = leaf(d["gamma"]), leaf(d["beta"])
    rm, rv = d["rm0"].clone(), d["rv0"].clone()
    y = F.batch_norm(x, rm, rv, gamma if affine else None, beta if affine else None,
                     training=training, momentum=0.1, eps=1e-5)
    (y * d["r"]).sum().backward()
    pairs = [("y", d["y"], y, FWD_TOL), ("dx", d["dx"], x.grad, GRAD_TOL),
             ("running_mean", d["rm1"], rm, FWD_TOL), ("running_var", d["rv1"], rv, FWD_TOL)]
    if affine:
        pairs += [("dgamma", d["dgamma"], gamma.grad, GRAD_TOL),
                  ("dbeta", d["dbeta"], beta.grad, GRAD_TOL)]
    check_case(ck, name, pairs)


def check_bn_cumulative(ck, d):
    bn = torch.nn.BatchNorm2d(6, affine=False, momentum=None)
    bn.running_mean.copy_(d["rm"] * 0 + 123.0)  # cumulative mode forgets these
    bn.reset_running_stats()
    bn.train()
    for k in range(3):
        bn(d["x%d" % k])
    check_case(ck, "bn_cumulative", [("running_mean", d["rm"], bn.running_mean, FWD_TOL),
                              ("running_var", d["rv"], bn.running_var, FWD_TOL)])


def check_pool(ck, name, d):
    x = leaf(d["x"])
    if name == "gap":
        y = x.mean(dim=(2, 3))
    else:
        kind, geo = name.split("_")[0], name.split("_")[1]
        k, s, p = int(geo[1]), int(geo[3]), int(geo[5])
        if kind == "max":
            y = F.max_pool2d(x, k, s, p)
        else:
            y = F.avg_pool2d(x, k, s, p, count_include_pad=name.endswith("_c1"))
    (y * d["r"]).sum().backward()
    check_case(ck, name, [("y", d["y"], y, FWD_TOL), ("dx", d["dx"], x.grad, GRAD_TOL)])


UNARY = {
    "relu6": F.relu6,
    "hswish": F.hardswish,
    "hsigmoid": F.hardsigmoid,
    "sigmoid": torch.sigmoid,
    "swish": F.silu,
    "tanh": torch.tanh,
    "softmax": lambda x: F.softmax(x, dim=-1),
}


def check_unary(ck, name, d):
    x = leaf(d["x"])
    y = UNARY[name](x)
    (y * d["r"]).sum().backward()
    check_case(ck, name, [("y", d["y"], y, FWD_TOL), ("dx", d["dx"], x.grad, GRAD_TOL)])


def check_ce(ck, name, d):
    z = leaf(d["z"])
    loss = F.cross_entropy(z, d["labels"].long(), label_smoothing=float(d["eps"][0]))
    loss.backward()
    check_case(ck, name, [("loss", d["loss"], loss, FWD_TOL), ("dz", d["dz"], z.grad, GRAD_TOL)])


def check_kl(ck, name, d):
    s = leaf(d["s"])
    T = float(d["T"][0])
    loss = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(d["t"] / T, dim=1),
                    reduction="batchmean") * T * T
    loss.backward()
    check_case(ck, name, [("loss", d["loss"], loss, FWD_TOL), ("ds", d["ds"], s.grad, GRAD_TOL),
                   ("dt (teacher gets none)", d["dt"], torch.zeros_like(d["dt"]), 1e-12)])


def check_lstm(ck, d):
    cell = torch.nn.LSTMCell(5, 4)
    with torch.no_grad():
        cell.weight_ih.copy_(d["w_ih"])
        cell.weight_hh.copy_(d["w_hh"])
        cell.bias_ih.copy_(d["b"])
        cell.bias_hh.zero_()
    x, h, c = leaf(d["x"]), leaf(d["h"]), leaf(d["c"])
    h2, c2 = cell(x, (h, c))
    y = torch.cat([h2, c2], dim=1)
    (y * d["r"]).sum().backward()
    check_case(ck, "lstm_cell", [("y", d["y"], y, FWD_TOL), ("dx", d["dx"], x.grad, GRAD_TOL),
                          ("dh", d["dh"], h.grad, GRAD_TOL), ("dc", d["dc"], c.grad, GRAD_TOL),
                          ("dw_ih", d["dw_ih"], cell.weight_ih.grad, GRAD_TOL),
                          ("dw_hh", d["dw_hh"], cell.weight_hh.grad, GRAD_TOL),
                          ("db", d["db"], cell.bias_ih.grad, GRAD_TOL)])


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build/release"
    tool = os.path.join(build, "tests", "tool_ops_dump")
    ck = Checks(echo_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ops.bin")
        proc = subprocess.run([tool, path], capture_output=True, text=True)
        if proc.returncode != 0:
            ck(False, "tool_ops_dump exit %d: %s" % (proc.returncode, proc.stderr.strip()))
            return ck.report("ops_torch")
        cases = read_dump(path)
    expected = 0
    for name, d in sorted(cases.items()):
        expected += 1
        try:
            if name == "bn_train_affine":
                check_bn(ck, name, d, True, True)
            elif name == "bn_train_plain":
                check_bn(ck, name, d, True, False)
            elif name == "bn_eval":
                check_bn(ck, name, d, False, True)
            elif name == "bn_cumulative":
                check_bn_cumulative(ck, d)
            elif name.startswith(("max_", "avg_")) or name == "gap":
                check_pool(ck, name, d)
            elif name in UNARY:
                check_unary(ck, name, d)
            elif name.startswith("ce"):
                check_ce(ck, name, d)
            elif name.startswith("kl"):
                check_kl(ck, name, d)
            elif name == "lstm_cell":
                check_lstm(ck, d)
            else:
                ck(False, "%s: no reference for this case" % name)
        except Exception as e:  # a missing tensor or a torch error is a failed case
            ck(False, "%s: %s: %s" % (name, type(e).__name__, e))
    if expected < 24:
        ck(False, "only %d cases in the dump (24 expected)" % expected)
    return ck.report("ops_torch")


if __name__ == "__main__":
    sys.exit(main())
