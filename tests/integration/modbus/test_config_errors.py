#!/usr/bin/python3
"""test_config_errors.py: `edgegw-agent --check` on the shipped example (must pass) and on broken
configs and profiles (must fail with file:line and the reason on stderr, exit 1).
usage: test_config_errors.py AGENT"""
import os
import shutil
import subprocess
import sys

import harness as h

REPO = os.path.abspath(os.path.join(h.HERE, "..", "..", ".."))

GOOD_PROFILE = "name: p\npoints:\n  - {name: x, function: holding, address: 0}\n"
BASE = """dataplane: {{workers: 1}}
agent:
  profiles_dir: {pdir}
  uplink: jsonl
  buses:
    - name: b1
      type: rtu
      device: /dev/null
      baud: {baud}
      devices:
        - {{name: d1, unit_id: 1, profile: {profile}}}
{extra}"""

# (what, config text args, profile text, expected file suffix:line, expected words)
CASES = [
    ("unknown agent key", dict(extra="  colour: red\n"), GOOD_PROFILE, "gateway.yaml:12:", "unknown key 'colour'"),
    ("unknown profile", dict(profile="nosuch"), GOOD_PROFILE, "gateway.yaml:11:", "no profile named 'nosuch'"),
    ("bad baud", dict(baud=12345), GOOD_PROFILE, "gateway.yaml:9:", "baud 12345"),
    ("duplicate device", dict(extra="        - {name: d1, unit_id: 2, profile: p}\n"), GOOD_PROFILE,
     "gateway.yaml:12:", "duplicate device name"),
    ("duplicate unit id", dict(extra="        - {name: d2, unit_id: 1, profile: p}\n"), GOOD_PROFILE,
     "gateway.yaml:12:", "unit_id 1 is used twice"),
    ("bad device name", dict(extra="        - {name: 'd\"2', unit_id: 2, profile: p}\n"), GOOD_PROFILE,
     "gateway.yaml:12:", "device name"),
    ("broadcast unit on RTU", dict(extra="        - {name: d0, unit_id: 0, profile: p}\n"), GOOD_PROFILE,
     "gateway.yaml:12:", "RTU devices are 1..247"),
    ("yaml syntax", dict(extra="  buses: [\n"), GOOD_PROFILE, "gateway.yaml:", ""),
    ("overlap", {}, "name: p\npoints:\n  - {name: x, function: holding, address: 0, type: f32}\n"
     "  - {name: y, function: holding, address: 1}\n", "p.yaml:4:", "overlaps point 'x'"),
    ("unknown type", {}, "name: p\npoints:\n  - {name: x, function: holding, address: 0, type: float}\n",
     "p.yaml:3:", "'float' is not one of"),
    ("bad byte order", {}, "name: p\npoints:\n  - {name: x, function: holding, address: 0,\n"
     "     type: u32, byte_order: middle}\n", "p.yaml:4:", "'middle' is not one of"),
    ("out of range", {}, "name: p\npoints:\n  - {name: x, function: input, address: 65534, type: f64}\n",
     "p.yaml:3:", "runs past address 65535"),
    ("bad topic var", {}, "name: p\ntopic: '{prefix}/{nope}'\npoints:\n  - {name: x, function: holding, address: 0}\n",
     "p.yaml:", "topic"),
]


def run(agent, cfg):
    return subprocess.run([agent, "-c", cfg, "--check"], capture_output=True, text=True, timeout=10)


def main(agent):
    r = run(agent, os.path.join(REPO, "configs", "agent", "example.yaml"))
    h.check(r.returncode == 0, "shipped example rejected: " + r.stderr)
    d = h.tmpdir()
    for what, args, profile, where, words in CASES:
        pdir = os.path.join(d, "profiles")
        shutil.rmtree(pdir, ignore_errors=True)
        os.mkdir(pdir)
        with open(os.path.join(pdir, "p.yaml"), "w") as f:
            f.write(profile)
        kw = dict(pdir=pdir, baud=9600, profile="p", extra="")
        kw.update(args)
        cfg = os.path.join(d, "gateway.yaml")
        with open(cfg, "w") as f:
            f.write(BASE.format(**kw))
        r = run(agent, cfg)
        h.check(r.returncode == 1, f"{what}: exit {r.returncode}, stderr {r.stderr!r}")
        h.check(where in r.stderr and words in r.stderr, f"{what}: want '{where}' and '{words}' in {r.stderr!r}")
        print(f"ok: {what}: {r.stderr.strip()}")

    # several errors in one file: every one reported, each at its own line (issue 18)
    with open(os.path.join(pdir, "p.yaml"), "w") as f:
        f.write(GOOD_PROFILE)
    kw = dict(pdir=pdir, baud=12345, profile="nosuch",
              extra="        - {name: d1, unit_id: 1, profile: p}\n  colour: red\n")
    with open(cfg, "w") as f:
        f.write(BASE.format(**kw))
    r = run(agent, cfg)
    want = ["gateway.yaml:9:", "baud 12345", "gateway.yaml:11:", "no profile named 'nosuch'",
            "gateway.yaml:12:", "duplicate device name", "gateway.yaml:13:", "unknown key 'colour'"]
    h.check(r.returncode == 1 and all(w in r.stderr for w in want),
            f"several errors: exit {r.returncode}, want {want} in {r.stderr!r}")
    print("ok: several errors, all reported:\n" + r.stderr.strip())


if __name__ == "__main__":
    main(sys.argv[1])
