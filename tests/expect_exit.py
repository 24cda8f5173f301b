#!/usr/bin/python3
"""expect_exit: run a command that must fail (or succeed) in one exact way.

    expect_exit.py CODE REGEX -- COMMAND [ARG...]

Passes (exit 0) only when COMMAND exits with exit code CODE (a signal, a sanitizer abort
included, never counts) and its output (stdout and stderr together) matches the Python regular
expression REGEX (re.search, MULTILINE), and the output has no sanitizer report. Used in place
of meson's should_fail, which counts any non-zero exit, a crash included, as the expected one.
"""
import re
import subprocess
import sys

SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


def main(argv):
    if len(argv) < 4 or argv[3] != "--":
        sys.exit("usage: expect_exit.py CODE REGEX -- COMMAND [ARG...]")
    code, pattern, cmd = int(argv[1]), argv[2], argv[4:]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace")
    out = r.stdout
    sys.stdout.write(out)
    problems = []
    if r.returncode < 0:
        problems.append("killed by signal %d (a crash is never the expected failure)" % -r.returncode)
    elif r.returncode != code:
        problems.append("exit code %d, expected %d" % (r.returncode, code))
    if not re.search(pattern, out, re.MULTILINE):
        problems.append("output does not match /%s/" % pattern)
    if SANITIZER.search(out):
        problems.append("sanitizer report in the output")
    for p in problems:
        print("expect_exit: FAIL: %s" % p)
    if not problems:
        print("expect_exit: ok: exit %d, output matches /%s/" % (code, pattern))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
