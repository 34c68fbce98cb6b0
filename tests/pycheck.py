"""pycheck.py - what the Python tests (tests/py_*.py) share: the nascent binary under test and
the pass/fail count behind each test's last line, "RESULT name passed=P failed=F", which
tests/run_tests.sh adds up. Not a test itself (run_tests.sh runs tests/py_*.py)."""
import os
import sys

NAS = os.environ.get("NAS_BIN", os.path.join(os.getcwd(), "bin", "nascent"))


class Checks:
    """check(cond, msg) counts one check and prints "FAIL msg" when cond is false (and "ok msg"
    when it holds, with echo_ok); check.report(name) prints the RESULT line, returns the exit
    code."""

    def __init__(self, echo_ok=False):
        self.passed = self.failed = 0
        self.echo_ok = echo_ok

    def __call__(self, cond, msg):
        if cond:
            self.passed += 1
            if self.echo_ok:
                print(f"ok   {msg}")
        else:
            self.failed += 1
            print(f"FAIL {msg}")
        sys.stdout.flush()
        return bool(cond)

    def report(self, name):
        print(f"RESULT {name} passed={self.passed} failed={self.failed}")
        return 0 if self.failed == 0 else 1
