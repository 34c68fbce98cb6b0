"""py_spaces_fuzz.py - the short fuzz run of `make test`: builds the libFuzzer harnesses of the
search spaces' parsers (make fuzz-spaces-build, mk/spaces.mk) and runs each for a few seconds on
a temporary copy of its seed corpus (tests/fuzz/corpus). A crash, a leak, an abort from a failed
round trip, or a missing toolchain (clang + libclang-rt-14-dev) fails the test. The long run is
`make fuzz`. Usage: /usr/bin/python3 tests/py_spaces_fuzz.py BUILD_DIR (from the repo root)."""
import os
import shutil
import subprocess
import sys
import tempfile

from pycheck import Checks

SECONDS = int(os.environ.get("NAS_FUZZ_SECONDS", "3"))
TARGETS = ["nb201", "darts", "mbnet", "nasrl", "json"]


def main():
    check = Checks(echo_ok=True)
    if not check(shutil.which("clang") is not None,
                 "clang found (else install clang and libclang-rt-14-dev: tools/deps.sh)"):
        return check.report("py_spaces_fuzz")
    r = subprocess.run(["make", "-s", "fuzz-spaces-build"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
    if not check(r.returncode == 0, "building the fuzz harnesses"):
        return check.report("py_spaces_fuzz")
    with tempfile.TemporaryDirectory() as tmp:
        for t in TARGETS:
            corpus = os.path.join(tmp, t)
            shutil.copytree(os.path.join("tests", "fuzz", "corpus", t), corpus)
            env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
            r = subprocess.run([os.path.join("build", "fuzz", "fuzz_" + t),
                                "-max_total_time=%d" % SECONDS, "-max_len=8192", "-timeout=10",
                                "-rss_limit_mb=4096", "-artifact_prefix=" + tmp + "/crash-", corpus],
                               capture_output=True, text=True, env=env)
            runs = [ln for ln in r.stderr.splitlines() if ln.startswith("Done ")]
            if r.returncode != 0 or not runs:
                print(r.stderr[-4000:])
            check(r.returncode == 0 and runs,
                  "fuzz %s (exit %d): %s" % (t, r.returncode, runs[-1] if runs else "no run"))
    return check.report("py_spaces_fuzz")


if __name__ == "__main__":
    sys.exit(main())
