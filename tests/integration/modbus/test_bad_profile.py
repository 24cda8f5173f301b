#!/usr/bin/python3
"""test_bad_profile.py: a bad profile disables only the devices that use it (issue 17). One bus,
two units: gw1's profile is good, gw2's does not parse (type u24). The agent starts, gw1's
readings arrive, gw2 is reported disabled with the profile's file:line in the log, the stats
JSON, /metrics and `edgegwctl devices`; with --strict (and --check) the agent exits 1.
usage: test_bad_profile.py AGENT EDGEGWCTL"""
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request

import harness as h

BROKEN = "name: broken\npoints:\n  - {name: x, function: holding, address: 0, type: u24}\n"


def config(out, stats, pdir, mport, hport):
    return "\n" + h.agent_section(out, stats, profiles_dir=pdir, topic_prefix=None,
                                  more=f"  metrics: {{listen: 127.0.0.1:{hport}}}\n") + f"""\
    - name: plc
      type: tcp
      host: 127.0.0.1
      port: {mport}
      devices:
        - {{name: gw1, unit_id: 1, profile: alltypes, interval: 300ms, timeout: 200ms}}
        - {{name: gw2, unit_id: 2, profile: broken, interval: 300ms, timeout: 200ms}}
"""


def main(agent, ctl):
    d = h.tmpdir()
    mport, hport = h.free_port(), h.free_port()
    h.start_sim(["--tcp", str(mport), "--units", "1,2"], os.path.join(d, "sim.log"))
    pdir = os.path.join(d, "profiles")
    shutil.copytree(os.path.join(h.HERE, "profiles"), pdir)
    with open(os.path.join(pdir, "broken.yaml"), "w") as f:
        f.write(BROKEN)
    out, stats, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    h.write_config(cfg, config(out, stats, pdir, mport, hport))

    # all or nothing for CI of configs: --strict and --check exit 1 with the profile's file:line
    for opt in ("--strict", "--check"):
        r = subprocess.run([agent, "-c", cfg, opt], capture_output=True, text=True, timeout=10)
        h.check(r.returncode == 1 and "broken.yaml:3:" in r.stderr,
                f"{opt}: exit {r.returncode}, stderr {r.stderr!r}")

    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    h.wait_for(lambda: h.points(h.read_jsonl(out), "gw1", "u16"), 5, "gw1's first readings")
    h.check(not any(m["payload"].get("device") == "gw2" for m in h.read_jsonl(out)),
            "gw2 published although its profile is bad")
    text = open(log).read()
    h.check("profile 'broken' does not load" in text and "broken.yaml:3:" in text,
            "no log line for the bad profile:\n" + text)
    h.check("device gw2 (unit 2) disabled: profile 'broken' does not load" in text,
            "no log line for the disabled device:\n" + text)

    h.wait_for(lambda: os.path.exists(stats) and json.load(open(stats)).get("devices_disabled") == 1,
               5, "devices_disabled in the stats file")
    s = json.load(open(stats))
    off = s["disabled_devices"]
    h.check(len(off) == 1 and off[0]["name"] == "gw2" and off[0]["bus"] == "plc" and
            off[0]["state"].startswith("disabled: profile 'broken' does not load: ") and
            "broken.yaml:3:" in off[0]["state"], f"disabled_devices: {off}")
    h.check(h.stats_dev(s, "plc", "gw1")["responses"] > 0, "gw1 not polled")

    body = urllib.request.urlopen(f"http://127.0.0.1:{hport}/metrics", timeout=5).read().decode()
    h.check("edgegw_agent_devices_disabled 1\n" in body, "no devices_disabled gauge in /metrics")
    h.check('edgegw_agent_device_disabled{bus="plc",device="gw2",profile="broken"} 1' in body,
            "no device_disabled sample in /metrics")
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           text=True, timeout=10)
        h.check(r.returncode == 0, "promtool check metrics: " + r.stdout + r.stderr)

    r = subprocess.run([ctl, "-a", f"127.0.0.1:{hport}", "devices"], capture_output=True, text=True,
                       timeout=10)
    rows = {l.split()[1]: l for l in r.stdout.splitlines()[1:] if l.strip()}
    h.check(r.returncode == 0 and "gw1" in rows and "disabled: profile 'broken'" in rows.get("gw2", ""),
            f"edgegwctl devices: {r.stdout!r} {r.stderr!r}")
    r = subprocess.run([ctl, "-a", f"127.0.0.1:{hport}", "--json", "devices"], capture_output=True,
                       text=True, timeout=10)
    devs = {x["name"]: x for x in json.loads(r.stdout)} if r.returncode == 0 else {}
    h.check(devs.get("gw1", {}).get("disabled") is False and devs["gw1"].get("bus") == "plc" and
            devs.get("gw2", {}).get("disabled") is True and devs["gw2"].get("bus") == "plc" and
            devs["gw2"].get("reason", "").startswith("profile 'broken' does not load: "),
            f"edgegwctl --json devices lists the disabled device with its reason: {r.stdout!r}")
    r = subprocess.run([ctl, "-a", f"127.0.0.1:{hport}", "-t", os.path.join(d, "no-dataplane"),
                        "status"], capture_output=True, text=True, timeout=10)
    h.check("1 device(s) DISABLED" in r.stdout, f"edgegwctl status: {r.stdout!r} {r.stderr!r}")
    h.stop_agent(p, log)

    # --strict also on reload: a profile that breaks is refused whole, the running config stays
    os.unlink(os.path.join(pdir, "broken.yaml"))
    h.write_config(cfg, config(out, stats, pdir, mport, hport).replace("profile: broken", "profile: holes"))
    log2 = os.path.join(d, "agent-strict.log")
    p = h.start([agent, "-c", cfg, "--strict"], stdout=open(log2, "w"), stderr=subprocess.STDOUT)
    h.wait_for(lambda: "started:" in open(log2).read(), 5, "the strict agent started")
    with open(os.path.join(pdir, "holes.yaml"), "a") as f:
        f.write("colour: red\n")
    p.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "reload:" in open(log2).read(), 5, "the strict reload refused")
    text = open(log2).read()
    h.check("holes.yaml:" in text and "the running config stays" in text and "does not load" not in text,
            "strict reload:\n" + text)
    h.stop_agent(p, log2)
    print("ok: the bad profile's device is disabled, the good one polled; --strict and --check exit 1")
    print(rows["gw2"])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
