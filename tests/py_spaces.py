"""py_spaces.py - the search spaces' networks against PyTorch references built here, through
`nascent info --json` (NAS_BIN): DARTS NetworkCIFAR (operations.py / model.py of quark0/darts,
rewritten below) for DARTS_V2 and random genotypes, with and without the auxiliary head; the
Once-for-All MobileNetV3 layout (ofa_mbv3.py) for random mbnet / mbnet32 subnets. Params are
compared exactly; MACs (conv + linear multiply-accumulates, counted with forward hooks) too.
Also the CLI contract: exit code 2 and a caret under the bad token, the hash identical across
processes. Usage: /usr/bin/python3 tests/py_spaces.py BUILD_DIR (from the repo root)."""
import json
import os
import random
import subprocess
import sys

import torch
import torch.nn as nn

from pycheck import NAS as NAS_BIN, Checks  # noqa: E402
check = Checks()


def info(space, arch, *extra):
    r = subprocess.run([NAS_BIN, "info", "--space", space, "--arch", arch, "--json", *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("nascent info failed (%d): %s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)


def macs_of(model, shape):
    total = [0]

    def hook(m, inp, out):
        if isinstance(m, nn.Conv2d):
            total[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * \
                m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total[0] += m.in_features * m.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hs:
        h.remove()
    return total[0]


def n_params(model, skip=None):
    return sum(p.numel() for n, p in model.named_parameters() if skip is None or skip not in n)


# ------------------------------------------------------------------ DARTS (quark0/darts cnn/)

class ReLUConvBN(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(inplace=False),
                                nn.Conv2d(C_in, C_out, k, stride=stride, padding=padding,
                                          bias=False), nn.BatchNorm2d(C_out))

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding, dilation):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False), nn.BatchNorm2d(C_out))

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    def __init__(self, C_in, C_out, k, stride, padding):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, padding=0, bias=False), nn.BatchNorm2d(C_in),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, k, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, padding=0, bias=False), nn.BatchNorm2d(C_out))

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        return x[:, :, ::self.stride, ::self.stride].mul(0.)


class FactorizedReduce(nn.Module):
    def __init__(self, C_in, C_out):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(C_out)

    def forward(self, x):
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OPS = {
    'none': lambda C, s: Zero(s),
    'avg_pool_3x3': lambda C, s: nn.AvgPool2d(3, stride=s, padding=1, count_include_pad=False),
    'max_pool_3x3': lambda C, s: nn.MaxPool2d(3, stride=s, padding=1),
    'skip_connect': lambda C, s: nn.Identity() if s == 1 else FactorizedReduce(C, C),
    'sep_conv_3x3': lambda C, s: SepConv(C, C, 3, s, 1),
    'sep_conv_5x5': lambda C, s: SepConv(C, C, 5, s, 2),
    'dil_conv_3x3': lambda C, s: DilConv(C, C, 3, s, 2, 2),
    'dil_conv_5x5': lambda C, s: DilConv(C, C, 5, s, 4, 2),
}
PRIMITIVES = list(OPS)


class Cell(nn.Module):
    def __init__(self, genotype, C_pp, C_p, C, reduction, reduction_prev):
        super().__init__()
        self.preprocess0 = FactorizedReduce(C_pp, C) if reduction_prev else \
            ReLUConvBN(C_pp, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        edges = genotype["reduce"] if reduction else genotype["normal"]
        self._ops = nn.ModuleList()
        self._indices = []
        for name, index in edges:
            stride = 2 if reduction and index < 2 else 1
            self._ops.append(OPS[name](C, stride))
            self._indices.append(index)
        self.multiplier = 4

    def forward(self, s0, s1):
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(4):
            h1 = self._ops[2 * i](states[self._indices[2 * i]])
            h2 = self._ops[2 * i + 1](states[self._indices[2 * i + 1]])
            states.append(h1 + h2)
        return torch.cat(states[2:], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    def __init__(self, C, num_classes):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).view(x.size(0), -1))


class NetworkCIFAR(nn.Module):
    def __init__(self, C, num_classes, layers, auxiliary, genotype):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        C_curr = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            if i in [layers // 3, 2 * layers // 3]:
                C_curr *= 2
                reduction = True
            else:
                reduction = False
            cell = Cell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            reduction_prev = reduction
            self.cells.append(cell)
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == 2 * layers // 3:
                C_aux = C_p
        if auxiliary:
            self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).view(s1.size(0), -1))


DARTS_V2 = {"normal": [('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0),
                       ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0),
                       ('skip_connect', 0), ('dil_conv_3x3', 2)],
            "reduce": [('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2),
                       ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2),
                       ('skip_connect', 2), ('max_pool_3x3', 1)]}


def genotype_text(g):
    return "Genotype(normal=%s, normal_concat=[2, 3, 4, 5], reduce=%s, reduce_concat=[2, 3, 4, 5])" \
        % (repr(g["normal"]), repr(g["reduce"]))


def random_genotype(rng):
    return {cell: [(rng.choice(PRIMITIVES), rng.randrange(k + 2)) for k in range(4) for _ in range(2)]
            for cell in ("normal", "reduce")}


def test_darts():
    rng = random.Random(5)
    cases = [(DARTS_V2, 36, 20, False), (DARTS_V2, 36, 20, True)]
    cases += [(random_genotype(rng), 16, 8, False) for _ in range(2)]
    cases += [(random_genotype(rng), 16, 8, True)]
    for g, C, layers, aux in cases:
        ref = NetworkCIFAR(C, 10, layers, aux, g)
        extra = ["--cells", str(layers)] + (["--aux"] if aux else [])
        if C == 16:
            extra += ["--search-net"]
        got = info("darts", genotype_text(g), *extra)
        want = n_params(ref)
        check(got["params"] == want, "darts %s C=%d L=%d aux=%d: params %d, PyTorch %d"
              % (genotype_text(g), C, layers, aux, got["params"], want))
        if g is DARTS_V2 and not aux:
            check(want == 3349342 and n_params(ref, "auxiliary") == 3349342,
                  "DARTS_V2 reference: %d (DARTS printout 3,349,342)" % want)
        if g is DARTS_V2 and aux:
            check(want - 3349342 == 476426, "auxiliary head adds %d" % (want - 3349342))
        # MACs are inference MACs: the reference runs its auxiliary head only in training mode
        m = macs_of(ref, (3, 32, 32))
        check(got["macs"] == m, "darts aux=%d MACs %d, PyTorch (eval mode) %d"
              % (aux, got["macs"], m))


# ------------------------------------------------------------- OFA MobileNetV3 (ofa_mbv3.py)

def make_divisible(v, divisor=8, min_val=None):
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Hswish(nn.Module):
    def forward(self, x):
        return x * nn.functional.relu6(x + 3.) / 6.


class Hsigmoid(nn.Module):
    def forward(self, x):
        return nn.functional.relu6(x + 3.) / 6.


def act(name):
    return nn.ReLU() if name == "relu" else Hswish()


class SE(nn.Module):
    def __init__(self, channel):
        super().__init__()
        mid = make_divisible(channel // 4, 8)
        self.fc = nn.Sequential(nn.Conv2d(channel, mid, 1, bias=True), nn.ReLU(),
                                nn.Conv2d(mid, channel, 1, bias=True), Hsigmoid())

    def forward(self, x):
        return x * self.fc(x.mean(3, keepdim=True).mean(2, keepdim=True))


class MBConv(nn.Module):
    def __init__(self, cin, cout, k, e, stride, a, se):
        super().__init__()
        mid = make_divisible(round(cin * e), 8) if e != 1 else cin
        layers = []
        if e != 1:
            layers += [nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), act(a)]
        layers += [nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False),
                   nn.BatchNorm2d(mid), act(a)]
        if se:
            layers += [SE(mid)]
        layers += [nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


def ofa_mbv3(cfg, classes, wid, stem_stride=2, strides=(2, 2, 2, 1, 2)):
    widths = [make_divisible(w * wid, 8) for w in (16, 16, 24, 40, 80, 112, 160, 960, 1280)]
    acts = ["relu", "relu", "hswish", "hswish", "hswish"]
    ses = [False, True, False, True, True]
    layers = [nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]),
              Hswish(), MBConv(widths[0], widths[1], 3, 1, 1, "relu", False)]
    cin = widths[1]
    for s in range(5):
        for i in range(cfg["d"][s]):
            layer = 4 * s + i
            layers.append(MBConv(cin, widths[2 + s], cfg["ks"][layer], cfg["e"][layer],
                                 strides[s] if i == 0 else 1, acts[s], ses[s]))
            cin = widths[2 + s]
    layers += [nn.Conv2d(cin, widths[7], 1, bias=False), nn.BatchNorm2d(widths[7]), Hswish(),
               nn.AdaptiveAvgPool2d(1), nn.Conv2d(widths[7], widths[8], 1, bias=False), Hswish(),
               nn.Flatten(), nn.Dropout(0.1), nn.Linear(widths[8], classes)]
    return nn.Sequential(*layers)


def test_mbnet():
    rng = random.Random(9)
    for space, n, classes, res_choices, stem, strides in (
            ("mbnet", 2, 1000, [128, 160, 224], 2, (2, 2, 2, 1, 2)),
            ("mbnet32", 2, 10, [32], 1, (1, 2, 2, 1, 2))):
        for _ in range(n):
            cfg = {"ks": [rng.choice([3, 5, 7]) for _ in range(20)],
                   "e": [rng.choice([3, 4, 6]) for _ in range(20)],
                   "d": [rng.choice([2, 3, 4]) for _ in range(5)],
                   "wid": rng.choice([1.0, 1.2]), "image_size": rng.choice(res_choices)}
            text = json.dumps(cfg)
            got = info(space, text)
            ref = ofa_mbv3(cfg, classes, cfg["wid"], stem, strides)
            want = n_params(ref)
            check(got["params"] == want, "%s %s: params %d, PyTorch %d"
                  % (space, text, got["params"], want))
            r = cfg["image_size"]
            m = macs_of(ref, (3, r, r))
            check(got["macs"] == m, "%s %s: MACs %d, PyTorch %d" % (space, text, got["macs"], m))
            check(got["input"] == [3, r, r] and got["classes"] == classes, "shape %s" % got)


# ------------------------------------------------------------------------------------ CLI

def test_cli():
    bad = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_cnv_3x3~1|+|none~0|none~1|none~2|"
    r = subprocess.run([NAS_BIN, "info", "--space", "nb201", "--arch", bad, "--json"],
                       capture_output=True, text=True)
    check(r.returncode == 2, "bad arch exit code %d" % r.returncode)
    lines = r.stderr.splitlines()
    caret = [ln for ln in lines if ln.strip() == "^"]
    check(len(caret) == 1 and caret[0].index("^") - 2 == bad.index("nor_cnv"),
          "caret under the bad token: %r" % r.stderr)
    a = info("nb201", "default")
    b = info("nb201", "default", "--classes", "100")
    check(a["hash"] == b["hash"] and len(a["hash"]) == 16, "hash stable across processes")
    check(a["params"] == 1531546 and b["params"] == 1531546 + 65 * 90,
          "classes option: %d %d" % (a["params"], b["params"]))
    for key in ("params", "macs", "activation_bytes_peak", "canonical", "hash"):
        check(key in a, "info has %s" % key)
    c = info("nb201", "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    d = info("nb201", "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    check(c["hash"] == d["hash"] and c["canonical"] == d["canonical"], "isomorphic cells")
    check(c["hash"] != a["hash"], "different cells")
    r = subprocess.run([NAS_BIN, "info", "--space", "examples/spaces/minimal.json", "--arch",
                        "default", "--input", "3x64x64", "--json"], capture_output=True, text=True)
    check(r.returncode == 0 and json.loads(r.stdout)["input"] == [3, 64, 64], "--input")


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for t in (test_cli, test_darts, test_mbnet):
        try:
            t()
        except Exception as e:  # a crash counts as a failure, the rest still runs
            check(False, "%s raised %r" % (t.__name__, e))
    return check.report("py_spaces")


if __name__ == "__main__":
    sys.exit(main())
