"""py_proxies_stats.py - `nascent correlate` against scipy.stats (kendalltau, variant tau-b;
spearmanr; pearsonr) on random columns with many ties, plus the CSV error paths.

Run: /usr/bin/python3 tests/py_proxies_stats.py BUILD_DIR   (bin/nascent, or $NAS_BIN)
Prints "RESULT py_proxies_stats passed=P failed=F" last."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from scipy import stats

from pycheck import NAS, Checks  # noqa: E402
check = Checks()


def run(*args):
    p = subprocess.run([NAS, "correlate", *args], capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


def main():
    rng = np.random.default_rng(1234)
    tmp = tempfile.mkdtemp(prefix="nas_corr_")
    # random data with ties, against scipy
    for trial in range(12):
        n = int(rng.integers(5, 3000))
        levels = [3, 10, 1000, 10 ** 9][trial % 4]
        a = rng.integers(0, levels, n).astype(float)
        b = (a + rng.integers(0, levels, n)) if trial % 3 else rng.integers(0, levels, n).astype(float)
        b = b.astype(float) * 0.37
        path = os.path.join(tmp, f"r{trial}.csv")
        write_csv(path, ["key", "a", "b"], [(i, repr(x), repr(y)) for i, (x, y) in enumerate(zip(a, b))])
        rc, out, err = run("--a", f"{path}:a", "--b", f"{path}:b", "--json")
        check(rc == 0, f"trial {trial}: rc {rc} {err}")
        if rc != 0:
            continue
        got = json.loads(out)
        tau = stats.kendalltau(a, b).correlation  # tau-b
        rho = stats.spearmanr(a, b).correlation
        r = stats.pearsonr(a, b)[0]
        check(got["n"] == n, f"trial {trial}: n {got['n']} want {n}")
        check(abs(got["kendall_tau"] - tau) < 1e-8, f"trial {trial}: tau {got['kendall_tau']} scipy {tau}")
        check(abs(got["spearman_rho"] - rho) < 1e-8, f"trial {trial}: rho {got['spearman_rho']} scipy {rho}")
        check(abs(got["pearson_r"] - r) < 1e-8, f"trial {trial}: r {got['pearson_r']} scipy {r}")
        # precision at top-10% by an independent (numpy) computation, ties broken by index
        k = max(1, int(np.floor(0.10 * n + 0.5)))
        top_est = set(np.lexsort((np.arange(n), -a))[:k])
        top_true = set(np.lexsort((np.arange(n), -b))[:k])
        at10 = [x for x in got["at_k"] if x["k_pct"] == 10][0]
        check(at10["k"] == k, f"trial {trial}: k {at10['k']} want {k}")
        check(abs(at10["precision_top"] - len(top_est & top_true) / k) < 1e-12,
              f"trial {trial}: P@top10 {at10['precision_top']} want {len(top_est & top_true) / k}")

    # join on a key: file b shuffled, with one extra row and one missing value
    n = 200
    a = rng.normal(size=n)
    b = a + rng.normal(size=n)
    fa, fb = os.path.join(tmp, "ja.csv"), os.path.join(tmp, "jb.csv")
    write_csv(fa, ["arch", "score"], [(f"x{i}", repr(v)) for i, v in enumerate(a)])
    perm = rng.permutation(n)
    rows = [(f"x{i}", repr(b[i]) if i != 7 else "nan") for i in perm] + [("extra", "1.0")]
    write_csv(fb, ["acc", "arch"], [(v, k) for k, v in rows])
    rc, out, err = run("--a", f"{fa}:score", "--b", f"{fb}:acc", "--join", "arch", "--json")
    check(rc == 0, f"join: rc {rc} {err}")
    if rc == 0:
        got = json.loads(out)
        keep = np.arange(n) != 7
        check(got["n"] == n - 1 and got["dropped"] == 1 and got["unmatched"] == 1, f"join counts {got}")
        check(abs(got["spearman_rho"] - stats.spearmanr(a[keep], b[keep]).correlation) < 1e-10, "join rho")

    # errors name the file, line and column
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("a,b\n1,2\n2,3\n3,oops\n")
    rc, out, err = run("--a", f"{bad}:a", "--b", f"{bad}:b")
    check(rc == 2 and f"{bad}:4" in err and "'b'" in err and "oops" in err, f"bad number: rc {rc} {err!r}")
    rc, out, err = run("--a", f"{bad}:a", "--b", f"{bad}:nope")
    check(rc == 2 and "no column 'nope'" in err, f"missing column: rc {rc} {err!r}")
    short = os.path.join(tmp, "short.csv")
    with open(short, "w") as f:
        f.write("a,b\n1,2\n2\n")
    rc, out, err = run("--a", f"{short}:a", "--b", f"{short}:b")
    check(rc == 2 and f"{short}:3" in err, f"short row: rc {rc} {err!r}")
    rc, out, err = run("--a", f"{fa}:score", "--b", f"{fb}:acc")
    check(rc == 2 and "--join" in err, f"row count mismatch: rc {rc} {err!r}")
    rc, out, err = run("--a", os.path.join(tmp, "absent.csv") + ":a", "--b", f"{bad}:b")
    check(rc == 2 and "absent.csv" in err, f"absent file: rc {rc} {err!r}")
    dup = os.path.join(tmp, "dup.csv")
    write_csv(dup, ["arch", "acc"], [("x1", 1), ("x2", 2), ("x1", 3)])
    rc, out, err = run("--a", f"{fa}:score", "--b", f"{dup}:acc", "--join", "arch")
    check(rc == 2 and f"{dup}:4" in err and "x1" in err, f"duplicate key in b: rc {rc} {err!r}")
    # duplicates in a (a sample drawn with replacement) join many-to-one; KEY_A=KEY_B names
    rc, out, err = run("--a", f"{dup}:acc", "--b", f"{fa}:score", "--join", "arch=arch", "--json")
    check(rc == 0 and json.loads(out)["n"] == 3 and json.loads(out)["unmatched"] == n - 2,
          f"many-to-one join: rc {rc} {out} {err!r}")
    return check.report("py_proxies_stats")


if __name__ == "__main__":
    sys.exit(main())
