#!/usr/bin/python3
"""test_reload.py: SIGHUP reloads the agent's config. A broken config is refused with file:line
and changes nothing; a bad profile only disables the device naming it (issue 17); a good one
replaces the buses (a device added, an interval changed) while the uplink keeps running.
usage: test_reload.py AGENT"""
import json
import os
import shutil
import signal
import sys
import time

import harness as h


def config(out, stats, pdir, mport, devices, jsonl_extra="", extra=""):
    return "\n" + h.agent_section(out, stats, profiles_dir=pdir, jsonl_extra=jsonl_extra,
                                  more=extra) + f"""\
    - name: plc
      type: tcp
      host: 127.0.0.1
      port: {mport}
      devices:
{devices}"""


def main(agent):
    d = h.tmpdir()
    mport = h.free_port()
    h.start_sim(["--tcp", str(mport), "--units", "1,2"], os.path.join(d, "sim.log"))
    pdir = os.path.join(d, "profiles")
    shutil.copytree(os.path.join(h.HERE, "profiles"), pdir)
    out, stats, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    gw1 = "        - {name: gw1, unit_id: 1, profile: alltypes, interval: 500ms, timeout: 200ms}\n"
    gw2 = "        - {name: gw2, unit_id: 2, profile: holes, interval: 300ms, timeout: 200ms}\n"
    h.write_config(cfg, config(out, stats, pdir, mport, gw1))
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    h.wait_for(lambda: h.points(h.read_jsonl(out), "gw1", "u16"), 5, "first poll")

    # a broken config: refused, nothing changes
    h.write_config(cfg, config(out, stats, pdir, mport, gw1 + gw2, extra="  colour: red\n"))
    p.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "reload:" in open(log).read(), 5, "reload refusal in the log")
    text = open(log).read()
    h.check("gateway.yaml:3:" in text and "the running config stays" in text, "refusal without file:line:\n" + text)
    time.sleep(0.5)
    h.check(p.poll() is None, "agent died on a bad reload")
    h.check(not h.points(h.read_jsonl(out), "gw2", "a"), "bad reload was applied")

    # a broken profile named by a new device: that device is disabled, the reload applies
    with open(os.path.join(pdir, "broken.yaml"), "w") as f:
        f.write("name: broken\npoints:\n  - {name: x, function: holding, address: 0, type: u24}\n")
    gw3 = "        - {name: gw3, unit_id: 3, profile: broken}\n"
    h.write_config(cfg, config(out, stats, pdir, mport, gw1 + gw3))
    p.send_signal(signal.SIGHUP)
    h.wait_for(lambda: "device gw3 (unit 3) disabled" in open(log).read(), 5, "gw3 disabled in the log")
    h.check("broken.yaml:3:" in open(log).read(), "bad profile without file:line")
    h.wait_for(lambda: json.load(open(stats)).get("devices_disabled") == 1, 3, "devices_disabled 1")

    # fixed: gw2 comes in; a changed uplink setting is kept until a restart
    os.unlink(os.path.join(pdir, "broken.yaml"))
    h.write_config(cfg, config(out, stats, pdir, mport, gw1 + gw2, jsonl_extra=", commands: /nonexistent"))
    p.send_signal(signal.SIGHUP)
    h.wait_for(lambda: h.points(h.read_jsonl(out), "gw2", "a"), 5, "gw2 after reload")
    h.wait_for(lambda: any(b["name"] == "plc" and len(b["devices"]) == 2
                           for b in json.load(open(stats))["buses"]), 3, "stats after reload")
    text = open(log).read()
    nprof = len([f for f in os.listdir(pdir) if f.endswith(".yaml")])
    h.check(f"reload: 1 buses, {nprof} profiles" in text and "apply at the next restart" in text, text)
    # the reload that only added a disabled gw3 kept the bus (nothing published again); the one
    # adding gw2 restarted it: gw1 published twice in all
    h.check(len(h.points(h.read_jsonl(out), "gw1", "u16")) == 2, "gw1 not republished after reload")
    h.stop_agent(p, log)
    print("ok: bad reload refused with file:line, good reload applied")


if __name__ == "__main__":
    main(sys.argv[1])
