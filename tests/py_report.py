"""py_report.py - the search report's estimator diagnostics and costs against independent sources.

Runs `nascent search` on nb201 with cheap estimators (the table's 12-epoch validation column, the
params proxy, the table itself) and checks, from the report's trials.csv:
  - the ground truth of every trial equals the published CSV (data/nasbench201/nb201_accuracy.csv,
    cifar10_test_200ep, joined on the cell string);
  - the diagnostics in best.json and in the --json output equal scipy.stats (kendalltau tau-b,
    spearmanr, pearsonr) and a plain Python precision at top/bottom K% and best/worst rank, over
    the distinct architectures;
  - each trial's stored latency equals the device column of data/nb201_latency/nb201_latency_ms.csv;
  - best.json's pareto_front is the set of non-dominated trials (lower latency, higher reward);
  - report.html has the diagnostics section, its scatter plot and the latency Pareto plot.

Run: /usr/bin/python3 tests/py_report.py BUILD_DIR   (bin/nascent, or $NAS_BIN)
Prints "RESULT py_report passed=P failed=F" last."""
import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile

from scipy import stats

from pycheck import NAS, Checks  # noqa: E402
check = Checks()


def close(a, b, tol=1e-9):
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) and math.isnan(b):
        return True
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def published(path, key, col):
    with open(path) as f:
        return {r[key]: float(r[col]) for r in csv.DictReader(f)}


def num(s):
    return float(s) if s != "" else math.nan


def read_trials(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def at_k(est, tru, frac):
    """Ning et al.'s K% figures as documented in nascent.h (ties: lower index first)."""
    m = len(est)
    k = max(1, min(m, int(math.floor(frac * m + 0.5))))
    by_est = sorted(range(m), key=lambda i: (-est[i], i))
    by_true = sorted(range(m), key=lambda i: (-tru[i], i))
    rank = {i: r for r, i in enumerate(by_true)}
    top = len(set(by_est[:k]) & set(by_true[:k])) / k
    bottom = len(set(by_est[m - k:]) & set(by_true[m - k:])) / k
    ranks = [rank[i] for i in by_est[:k]]
    scale = 1.0 / (m - 1) if m > 1 else 0.0
    return k, top, bottom, min(ranks) * scale, max(ranks) * scale


def search(out, *args):
    cmd = [NAS, "search", "--space", "nb201", "--out", out, "--json", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    check(p.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr[-500:]))
    for line in p.stdout.splitlines():
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if "best_arch" in o:
            return o
    check(False, "no JSON result: %r" % p.stdout[-300:])
    return {}


def check_diagnostics(tag, rows, diag, truth_table):
    # ground truth per trial against the published CSV
    bad = [r["trial"] for r in rows if not close(num(r["truth"]), truth_table[r["arch"]], 1e-6)]
    check(not bad, "%s: truth differs from the published table for trials %s" % (tag, bad[:5]))
    # distinct architectures: the evaluated (not cached) trials, failed ones dropped
    pairs = [(num(r["reward"]) if r["state"] == "complete" else math.nan, num(r["truth"]))
             for r in rows if r["cached"] == "0"]
    pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
    est = [a for a, _ in pairs]
    tru = [b for _, b in pairs]
    check(diag.get("n") == len(pairs), "%s: n %s, expected %d" % (tag, diag.get("n"), len(pairs)))
    tau = stats.kendalltau(est, tru).correlation
    rho = stats.spearmanr(est, tru).correlation
    r = stats.pearsonr(est, tru)[0]
    check(close(diag.get("kendall_tau"), tau), "%s: kendall %s vs scipy %r" %
          (tag, diag.get("kendall_tau"), tau))
    check(close(diag.get("spearman_rho"), rho), "%s: spearman %s vs scipy %r" %
          (tag, diag.get("spearman_rho"), rho))
    check(close(diag.get("pearson_r"), r, 1e-8), "%s: pearson %s vs scipy %r" %
          (tag, diag.get("pearson_r"), r))
    ks = diag.get("at_k", [])
    check(len(ks) == 4, "%s: %d K levels" % (tag, len(ks)))
    for e in ks:
        k, top, bottom, best, worst = at_k(est, tru, e["k_frac"])
        check(e["k"] == k and close(e["precision_top"], top) and
              close(e["precision_bottom"], bottom) and close(e["best_rank"], best) and
              close(e["worst_rank"], worst),
              "%s: K=%g: %r vs python %r" % (tag, e["k_frac"], e, (k, top, bottom, best, worst)))
    return rho


def main():
    acc = published("data/nasbench201/nb201_accuracy.csv", "arch_str", "cifar10_test_200ep")
    lat = published("data/nb201_latency/nb201_latency_ms.csv", "arch_str", "gold_6226")
    tmp = tempfile.mkdtemp(prefix="nas_py_report_")

    # 1. low fidelity (the table's 12-epoch validation), with table latency
    out = os.path.join(tmp, "lowfi")
    res = search(out, "--strategy", "random", "--evaluator", "table:cifar10:12", "--queries", "300",
                 "--seed", "5", "--latency-source", "table:gold_6226")
    best = json.load(open(os.path.join(out, "best.json")))
    rows = read_trials(os.path.join(out, "trials.csv"))
    check(len(rows) == 300, "lowfi: %d rows" % len(rows))
    diag = best.get("diagnostics", {})
    check("12-epoch" in diag.get("note", "") and "cifar10 test" in (diag.get("truth") or ""),
          "lowfi: labels %r" % diag)
    rho = check_diagnostics("lowfi", rows, diag, acc)
    check(0.5 < rho < 0.99, "lowfi: implausible Spearman %g" % rho)
    check(res.get("diagnostics") == diag, "lowfi: --json diagnostics differ from best.json")
    bad = [r["trial"] for r in rows if not close(num(r["latency_ms"]), lat[r["arch"]], 1e-12)]
    check(not bad, "lowfi: stored latency differs from the CSV for trials %s" % bad[:5])
    # Pareto front: non-dominated (latency down, reward up); among equal points the first
    pts = sorted(((num(r["latency_ms"]), -num(r["reward"]), int(r["trial"])) for r in rows
                  if r["state"] == "complete"))
    front, bestv = [], -math.inf
    for c, nv, i in pts:
        if -nv > bestv:
            front.append(i)
            bestv = -nv
    got = [e["trial"] for e in best.get("pareto_front", {}).get("trials", [])]
    check(best.get("pareto_front", {}).get("cost") == "latency_ms" and got == front,
          "lowfi: pareto front %r, expected %r" % (got, front))
    html = open(os.path.join(out, "report.html")).read()
    for s in ("Estimator diagnostics", "Pareto front: reward vs latency", "table:gold_6226",
              "Estimator against ground truth", "Spearman"):
        check(s in html, "lowfi: report.html lacks %r" % s)

    # 2. a zero-cost proxy (params: data-free and fast); costs from the built networks
    out = os.path.join(tmp, "proxy")
    res = search(out, "--strategy", "random", "--evaluator", "proxy:params", "--queries", "14",
                 "--seed", "2")
    best = json.load(open(os.path.join(out, "best.json")))
    rows = read_trials(os.path.join(out, "trials.csv"))
    diag = best.get("diagnostics", {})
    check(diag.get("estimator") == "proxy:params", "proxy: estimator %r" % diag.get("estimator"))
    check_diagnostics("proxy", rows, diag, acc)
    check(res.get("diagnostics") == diag, "proxy: --json diagnostics differ from best.json")
    check(all(num(r["reward"]) == num(r["params"]) for r in rows),
          "proxy: the params proxy differs from the stored parameter count")
    check(all(num(r["memory"]) > 0 and num(r["macs"]) > 0 for r in rows),
          "proxy: memory and MACs not stored for every trial")
    check(all(r["latency_ms"] == "" for r in rows), "proxy: latency without a source")
    html = open(os.path.join(out, "report.html")).read()
    check("Pareto front: reward vs MACs" in html and "Estimator diagnostics" in html,
          "proxy: report lacks the MACs front or the diagnostics")

    # 2b. the proxy evaluator scores as `nascent proxies` does (same seed, synthetic batch)
    out = os.path.join(tmp, "synflow")
    search(out, "--strategy", "random", "--evaluator", "proxy:synflow", "--queries", "2",
           "--seed", "7")
    for r in read_trials(os.path.join(out, "trials.csv")):
        p = subprocess.run([NAS, "proxies", "--space", "nb201", "--arch", r["arch"], "--proxy",
                            "synflow", "--seed", "7", "--json"], capture_output=True, text=True)
        try:
            want = json.loads(p.stdout)["synflow"]
        except (ValueError, KeyError):
            want = None
        check(want is not None and close(num(r["reward"]), want, 1e-12),
              "proxy:synflow reward %s, nascent proxies %r" % (r["reward"], want))

    # 3. the table itself: its validation column against its test column
    out = os.path.join(tmp, "table")
    res = search(out, "--strategy", "re", "--evaluator", "table:cifar10", "--queries", "200",
                 "--seed", "4")
    rows = read_trials(os.path.join(out, "trials.csv"))
    diag = res.get("diagnostics", {})
    check("the table itself" in diag.get("note", ""), "table: note %r" % diag.get("note"))
    check_diagnostics("table", rows, diag, acc)

    # 4. final training of the top architectures as truth (tiny networks, 1-2% of the data)
    if os.path.exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"):
        out = os.path.join(tmp, "final")
        store = os.path.join(tmp, "final.db")
        final_args = ["--strategy", "random", "--evaluator", "train:fashion-mnist",
                      "--epochs", "1", "--data-fraction", "0.01", "--channels-mult", "0.25",
                      "--cells", "1", "--queries", "5", "--seed", "1", "--final-top", "3",
                      "--final-epochs", "1", "--final-data-fraction", "0.02", "--store", store]
        res = search(out, *final_args)
        rows = read_trials(os.path.join(out, "trials.csv"))
        diag = res.get("diagnostics", {})
        top = sorted(rows, key=lambda r: (-num(r["reward"]), int(r["trial"])))[:3]
        check(sorted(r["trial"] for r in rows if r["truth"] != "") ==
              sorted(r["trial"] for r in top), "final: truth is not on the 3 best trials")
        check("final training" in (diag.get("truth") or "") and diag.get("n") == 3,
              "final: diagnostics %r" % diag)
        est = [num(r["reward"]) for r in top]
        tru = [num(r["truth"]) for r in top]
        check(close(diag.get("spearman_rho"), stats.spearmanr(est, tru).correlation),
              "final: spearman differs from scipy")
        # the final results are stored: a resumed run reads them back (altered here, so a
        # retraining would show) instead of training again
        with sqlite3.connect(store) as db:
            n_final = db.execute("SELECT COUNT(*) FROM finals").fetchone()[0]
            db.execute("UPDATE finals SET test = 10.0 + (hash % 7)")
            want = {int(h): t for (h, t) in db.execute("SELECT hash, test FROM finals")}
        check(n_final == 3, "final: %d stored final results, want 3" % n_final)
        res = search(out, *final_args, "--resume")
        rows = read_trials(os.path.join(out, "trials.csv"))
        got = sorted(num(r["truth"]) for r in rows if r["truth"] != "")
        check(got == sorted(want.values()), "final: resumed truth %r, stored %r" % (got, want))

    subprocess.run(["rm", "-rf", tmp])
    return check.report("py_report")


if __name__ == "__main__":
    sys.exit(main())
