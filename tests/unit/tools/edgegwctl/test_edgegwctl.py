#!/usr/bin/python3
"""edgegwctl without a running gateway (tools/edgegwctl): version, usage errors, `config check`
on the shipped configs and on a broken one (both programs' errors with file:line:col, exit 1),
and status/stats saying which program does not answer, with exit 1. The lab test
tests/integration/lab/test_metrics.py checks its output against a running gateway."""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ["EDGEGW_BUILD"]
SRC = os.environ["EDGEGW_SRC"]
CTL = os.path.join(BUILD, "tools/edgegwctl/edgegwctl")
failures = []


def run(*args):
    return subprocess.run([CTL, *args], capture_output=True, text=True, timeout=60)


def check(cond, msg):
    print("%s: %s" % ("ok" if cond else "FAIL", msg))
    if not cond:
        failures.append(msg)


r = run("version")
check(r.returncode == 0 and r.stdout.startswith("edgegwctl "), "version: %r" % r.stdout)
check(run().returncode == 2, "no command: usage, exit 2")
check(run("frobnicate").returncode == 2, "unknown command: exit 2")
check(run("config", "check").returncode == 2, "config check without FILE: exit 2")

for cfg in ("configs/gateway.yaml", "configs/lab/gateway.yaml"):
    r = run("config", "check", os.path.join(SRC, cfg))
    check(r.returncode == 0 and "edgegw-dataplane: ok" in r.stdout and
          "edgegw-agent: ok" in r.stdout, "config check %s: both programs ok (%s)" %
          (cfg, (r.stdout + r.stderr).strip().replace("\n", " | ")))

with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("dataplane:\n  eal: [-l, \"0\"]\n  workers: 01\nagent:\n  profiles_dir: /nope\n")
    r = run("config", "check", bad)
    out = r.stdout + r.stderr
    check(r.returncode == 1, "config check of a broken file: exit 1 (%d)" % r.returncode)
    check("bad.yaml:3:12:" in out and "leading zero" in out,
          "the dataplane's error with file:line:col")
    check("bad.yaml:5:3:" in out, "the agent's error with file:line:col")
    check("edgegw-dataplane: errors above" in r.stdout and "edgegw-agent: errors above" in r.stdout,
          "each program's verdict")

    # nothing runs at these addresses
    opts = ["-a", "127.0.0.1:1", "-t", os.path.join(d, "none.sock")]
    r = run(*opts, "status")
    check(r.returncode == 1 and "dataplane: not answering" in r.stdout and
          "agent: not answering" in r.stdout, "status with nothing running: %r" % r.stdout)
    r = run(*opts, "--json", "status")
    check(r.returncode == 1 and '"dataplane": null' in r.stdout, "status --json: nulls")
    check(run(*opts, "devices").returncode == 1, "devices without an agent: exit 1")

if failures:
    print("FAIL: %d check(s)" % len(failures))
    sys.exit(1)
print("PASS")
