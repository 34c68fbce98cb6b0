#!/usr/bin/python3
"""py_train.py - `nascent train` / `nascent eval` against PyTorch and the command line's contract.

1. Training equals PyTorch: fmnist-cnn on 256 Fashion-MNIST images written here as IDX files, one
   full batch per epoch (so the order inside the batch cannot matter), 6 steps of SGD (lr 0.05,
   momentum 0.9). The initial weights come from a run with lr 0 (its checkpoint); PyTorch
   (torch.optim.SGD, F.cross_entropy) starts from them. Compared: the loss of every step
   (metrics.jsonl) and the final weights (checkpoint.bin, read with the documented format of
   src/nn/weights.c), and the test accuracy on 512 other images (result.json and `nascent eval`).
2. The command line: --json lines, exit code 3 and a clear message when the loss diverges, exit
   code 2 naming the file and byte offset for a truncated data file, exit code 2 for an
   architecture the space cannot decode, result.json fields.
Run: /usr/bin/python3 tests/py_train.py BUILD_DIR  (NAS_BIN = the nascent binary)."""
import gzip, json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pycheck import NAS, Checks  # noqa: E402
SRC = "/usr/share/datasets/fashion-mnist"
check = Checks(echo_ok=True)


def idx_bytes(arr, labels=False):
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return head + arr.tobytes()


def write_dataset(d, n_train, n_test, truncate_train=False):
    os.makedirs(d, exist_ok=True)
    with gzip.open(f"{SRC}/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{SRC}/train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    parts = {"train": (x[:n_train], y[:n_train]), "t10k": (x[n_train:n_train + n_test], y[n_train:n_train + n_test])}
    for kind, (xi, yi) in parts.items():
        img = idx_bytes(xi)
        if truncate_train and kind == "train":
            img = img[:len(img) - 1000]
        with gzip.open(f"{d}/{kind}-images-idx3-ubyte.gz", "wb") as f:
            f.write(img)
        with gzip.open(f"{d}/{kind}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(idx_bytes(yi))
    return parts


def read_checkpoint(path):
    """Parameters of a nascent weight/checkpoint file (src/nn/weights.c, version 1)."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89NAS\r\n\x1a\n"
    n_params, n_floats, n_extra, meta_bytes = struct.unpack_from("<QQQQ", b, 24)
    at, table = 64, []
    for _ in range(n_params):
        (ln,) = struct.unpack_from("<I", b, at); at += 4
        name = b[at:at + ln].decode(); at += ln
        (nd,) = struct.unpack_from("<I", b, at); at += 4
        dims = struct.unpack_from(f"<{nd}Q", b, at); at += 8 * nd
        table.append((name, dims))
    for _ in range(n_extra):
        (ln,) = struct.unpack_from("<I", b, at); at += 4 + ln + 8
    at += meta_bytes
    out = {}
    for name, dims in table:
        n = int(np.prod(dims))
        out[name] = np.frombuffer(b, "<f4", count=n, offset=at).reshape(dims).copy()
        at += 4 * n
    return out


def run(args, **kw):
    return subprocess.run([NAS] + args, capture_output=True, text=True, **kw)


def train_args(data, out, lr, epochs, extra=()):
    return ["train", "--net", "fmnist-cnn", "--dataset", "fashion-mnist", "--data-dir", data,
            "--epochs", str(epochs), "--batch", "256", "--optimizer", "sgd", "--lr", str(lr),
            "--momentum", "0.9", "--nesterov", "0", "--weight-decay", "0", "--schedule",
            "constant", "--valid-fraction", "0", "--augment", "0", "--seed", "3", "--threads",
            "2", "--out", out, "--eval-batch", "100"] + list(extra)


def torch_net():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def test_against_torch(tmp):
    data = f"{tmp}/fm"
    parts = write_dataset(data, 256, 512)
    r0 = run(train_args(data, f"{tmp}/init", 0, 1))
    check(r0.returncode == 0, f"lr-0 run exits 0 ({r0.stderr.strip()[-200:]})")
    steps = 6
    r1 = run(train_args(data, f"{tmp}/run", 0.05, steps, ["--json"]))
    check(r1.returncode == 0, f"training run exits 0 ({r1.stderr.strip()[-200:]})")
    if r0.returncode or r1.returncode:
        return
    lines = [json.loads(l) for l in r1.stdout.splitlines() if l.strip()]
    check([l["event"] for l in lines] == ["epoch"] * steps + ["result"], "--json prints one line per epoch and a result")
    init = read_checkpoint(f"{tmp}/init/checkpoint.bin")
    final = read_checkpoint(f"{tmp}/run/checkpoint.bin")
    check(sorted(init) == ["0.bias", "0.weight", "3.bias", "3.weight", "7.bias", "7.weight"], f"parameter names {sorted(init)}")

    torch.set_num_threads(1)
    net = torch_net()
    with torch.no_grad():
        for name, p in net.named_parameters():
            p.copy_(torch.from_numpy(init[name]))
    x = (torch.from_numpy(parts["train"][0].astype(np.float32)).unsqueeze(1) / 255. - 0.2860) / 0.3530
    y = torch.from_numpy(parts["train"][1].astype(np.int64))
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    ours = [json.loads(l)["train_loss"] for l in open(f"{tmp}/run/metrics.jsonl")]
    worst = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(ours, losses))
    check(len(ours) == steps and worst < 1e-4, f"loss per step equals torch's (worst rel. diff {worst:.2e}; ours {ours[-1]:.6f} torch {losses[-1]:.6f})")
    wdiff = max(float(np.max(np.abs(final[n] - p.detach().numpy()))) for n, p in net.named_parameters())
    check(wdiff < 2e-4, f"weights after {steps} steps equal torch's (max abs diff {wdiff:.2e})")

    xt = (torch.from_numpy(parts["t10k"][0].astype(np.float32)).unsqueeze(1) / 255. - 0.2860) / 0.3530
    yt = torch.from_numpy(parts["t10k"][1].astype(np.int64))
    with torch.no_grad():
        for name, p in net.named_parameters():   # our weights, so only the evaluation differs
            p.copy_(torch.from_numpy(final[name]))
        acc = 100.0 * (net(xt).argmax(1) == yt).float().mean().item()
    res = json.load(open(f"{tmp}/run/result.json"))
    for k in ("test_accuracy", "valid_accuracy", "epochs", "seconds", "params"):
        check(k in res, f"result.json has {k}")
    check(res["params"] == 20490 and res["epochs"] == steps, "result.json params and epochs")
    check(abs(res["test_accuracy"] - acc) < 1e-6 * 100 + 100.0 / 512 * 0.5, f"test accuracy {res['test_accuracy']} equals torch's {acc:.4f} on the same weights")
    ev = run(["eval", "--checkpoint", f"{tmp}/run/checkpoint.bin", "--dataset", "fashion-mnist", "--data-dir", data, "--split", "test", "--json"])
    check(ev.returncode == 0, f"eval exits 0 ({ev.stderr.strip()})")
    if ev.returncode == 0:
        e = json.loads(ev.stdout)
        check(abs(e["accuracy"] - res["test_accuracy"]) < 1e-6 and e["examples"] == 512, f"eval accuracy {e['accuracy']} = result's {res['test_accuracy']}")


def test_cli_errors(tmp):
    data = f"{tmp}/fm2"
    write_dataset(data, 256, 128)
    r = run(train_args(data, f"{tmp}/nan", 1e30, 2))
    check(r.returncode == 3 and "diverged" in r.stderr, f"a diverging loss exits 3 with a message ({r.returncode}: {r.stderr.strip()})")
    check(not os.path.exists(f"{tmp}/nan/result.json"), "no result.json after divergence")
    bad = f"{tmp}/fm_trunc"
    write_dataset(bad, 256, 128, truncate_train=True)
    r = run(train_args(bad, f"{tmp}/trunc", 0.05, 1))
    check(r.returncode == 2 and "train-images-idx3-ubyte.gz" in r.stderr and "byte offset" in r.stderr,
          f"a truncated file exits 2 naming file and offset ({r.returncode}: {r.stderr.strip()})")
    r = run(["train", "--space", "nb201", "--arch", "|bogus~0|+|x~0|y~1|+|a~0|b~1|c~2|", "--dataset", "fashion-mnist",
             "--data-dir", data, "--out", f"{tmp}/bogus"])
    check(r.returncode == 2 and "bogus" in r.stderr, f"an undecodable architecture exits 2 ({r.returncode}: {r.stderr.strip()})")
    r = run(["train", "--net", "fmnist-cnn", "--dataset", "fashion-mnist", "--data-dir", data, "--out", f"{tmp}/res",
             "--resolution", "2"])
    check(r.returncode == 2 and "2x2" in r.stderr, f"a net that cannot be built for 2x2 inputs exits 2 ({r.returncode}: {r.stderr.strip()})")
    r = run(["train", "--net", "fmnist-cnn", "--dataset", "fashion-mnist", "--epochs", "x", "--out", f"{tmp}/x"])
    check(r.returncode == 2 and "--epochs" in r.stderr, "a bad option value exits 2")
    r = run(["eval", "--checkpoint", f"{tmp}/missing.bin"])
    check(r.returncode == 2 and "missing.bin" in r.stderr, "eval of a missing checkpoint exits 2 naming it")


def test_aux_head(tmp):
    """--aux: a DARTS network trains with its auxiliary head (32x32 so the head sees 8x8), the
    checkpoint records it and holds the head's weights, eval reads it back; elsewhere it is an
    error."""
    data = f"{tmp}/fm_aux"
    write_dataset(data, 128, 64)
    out = f"{tmp}/aux"
    r = run(["train", "--space", "darts", "--arch", "default", "--dataset", "fashion-mnist", "--data-dir", data,
             "--resolution", "32", "--channels-mult", "0.25", "--cells", "3", "--epochs", "1", "--batch", "32",
             "--valid-fraction", "0", "--augment", "0", "--threads", "2", "--aux", "--out", out])
    check(r.returncode == 0, f"darts --aux trains ({r.returncode}: {r.stderr.strip()[-300:]})")
    if r.returncode == 0:
        res = json.load(open(f"{out}/result.json"))
        check(res.get("model", {}).get("aux_head") == 1, f"result.json records aux_head: {res.get('model')}")
        check(res["model"].get("arch", "").startswith("Genotype("), f"--arch default is recorded as its text: {res['model'].get('arch')}")
        w = read_checkpoint(f"{out}/checkpoint.bin")
        heads = [k for k in w if k.startswith("auxiliary_head")]
        check(len(heads) >= 4 and all(np.isfinite(w[k]).all() for k in heads),
              f"the checkpoint holds the auxiliary head's weights ({heads})")
        # its batch-norm statistics move only if training ran the head
        check(any(np.abs(w[k]).max() > 0 for k in heads if k.endswith("running_mean")),
              "the auxiliary head ran in training (running means moved)")
        e = run(["eval", "--checkpoint", f"{out}/checkpoint.bin", "--data-dir", data, "--split", "test"])
        check(e.returncode == 0, f"eval reads an aux-head checkpoint ({e.returncode}: {e.stderr.strip()})")
    r = run(["train", "--space", "nb201", "--arch", "default", "--dataset", "fashion-mnist", "--data-dir", data,
             "--aux", "--out", f"{tmp}/aux_nb201"])
    check(r.returncode == 2 and "auxiliary head" in r.stderr, f"--aux on nb201 exits 2 ({r.returncode}: {r.stderr.strip()})")


def main():
    if not os.path.exists(f"{SRC}/train-images-idx3-ubyte.gz"):
        print("skip: Fashion-MNIST missing")
        print(f"RESULT py_train passed=0 failed=1")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        test_against_torch(tmp)
        test_cli_errors(tmp)
        test_aux_head(tmp)
    return check.report("py_train")


if __name__ == "__main__":
    sys.exit(main())
