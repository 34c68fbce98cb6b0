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

SECONDS = int(os.environ.get("NAS_FUZZ_SECONDS", "3"))
TARGETS = ["nb201", "darts", "mbnet", "nasrl", "json"]


def main():
    passed = failed = 0
    if shutil.which("clang") is None:
        print("FAIL clang not found: install clang and libclang-rt-14-dev (tools/deps.sh)")
        print("RESULT py_spaces_fuzz passed=0 failed=1")
        return 1
    r = subprocess.run(["make", "-s", "fuzz-spaces-build"], capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:])
        print("FAIL building the fuzz harnesses")
        print("RESULT py_spaces_fuzz passed=0 failed=1")
        return 1
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
            if r.returncode == 0 and runs:
                passed += 1
                print("ok   fuzz %s: %s" % (t, runs[-1]))
            else:
                failed += 1
                print(r.stderr[-4000:])
                print("FAIL fuzz %s (exit %d)" % (t, r.returncode))
    print("RESULT py_spaces_fuzz passed=%d failed=%d" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
