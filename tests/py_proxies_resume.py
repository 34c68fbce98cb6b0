"""py_proxies_resume.py - `nascent proxies --sample N --out FILE.csv` keeps finished rows: a run
cut short (its last line half written) and run again ends with the same scores as one run; a
repeated run adds nothing; a file from another --seed or other --proxy columns is refused with
exit code 2 and left byte for byte as it was.

Run: /usr/bin/python3 tests/py_proxies_resume.py BUILD_DIR   (bin/nascent, or $NAS_BIN)
Prints "RESULT py_proxies_resume passed=P failed=F" last."""
import csv
import os
import subprocess
import sys
import tempfile

from pycheck import NAS, Checks  # noqa: E402
check = Checks()


def proxies(out, sample, seed="5", proxy="synflow,params,macs"):
    p = subprocess.run([NAS, "proxies", "--space", "nb201", "--sample", str(sample),
                        "--proxy", proxy, "--seed", seed, "--threads", "1",
                        "--channels-mult", "0.5", "--cells", "1", "--out", out],
                       capture_output=True, text=True)
    return p.returncode, p.stderr


def rows_without_seconds(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def main():
    tmp = tempfile.mkdtemp(prefix="nas_resume_")
    whole, part = os.path.join(tmp, "whole.csv"), os.path.join(tmp, "part.csv")
    rc, err = proxies(whole, 7)
    check(rc == 0, f"one run of 7: rc {rc} {err}")
    want = rows_without_seconds(whole)
    check(len(want) == 7 and all(float(r["synflow"]) > 0 for r in want), f"7 scored rows: {want}")

    open(part, "w").close()  # a run killed before it wrote the header
    rc, err = proxies(part, 3)
    check(rc == 0, f"first 3 into an empty file: rc {rc} {err}")
    with open(part, "a") as f:  # a run killed while writing row 3
        f.write("3,|nor_conv_3x3~0|+|no")
    rc, err = proxies(part, 7)
    check(rc == 0 and "3 rows already" in err, f"resumed run: rc {rc} {err}")
    check(rows_without_seconds(part) == want, "3 + resumed 4 rows equal one run of 7")

    before = open(whole, "rb").read()
    rc, err = proxies(whole, 7)
    check(rc == 0 and open(whole, "rb").read() == before,
          f"repeated run adds nothing: rc {rc} {err}")

    rc, err = proxies(whole, 7, seed="6")
    check(rc == 2 and "row 0" in err and "--seed" in err, f"another seed refused: rc {rc} {err}")
    check(open(whole, "rb").read() == before, "file untouched after another seed")

    rc, err = proxies(whole, 7, proxy="synflow")
    check(rc == 2 and "other columns" in err and whole in err,
          f"other columns refused: rc {rc} {err}")
    check(open(whole, "rb").read() == before, "file untouched after other columns")
    return check.report("py_proxies_resume")


if __name__ == "__main__":
    sys.exit(main())
