#!/usr/bin/python3
"""test_reload_keep.py: a reload restarts only the buses that changed (issue 18). Two TCP buses
on one simulator; a reload that changes one device of plc2 restarts plc2 and leaves plc1
polling: plc1's thread is not restarted (its uptime and poll counters carry on, it connects
once) and its points are not published again. A profile edit that changes nothing read
(a comment, a description) restarts nothing; one that changes a point restarts the bus using
that profile only.  usage: test_reload_keep.py AGENT"""
import json
import os
import shutil
import signal
import sys

import harness as h


def config(out, stats, pdir, mport, d2_interval):
    return "\n" + h.agent_section(out, stats, "100ms", profiles_dir=pdir, topic_prefix=None) + f"""\
    - name: plc1
      type: tcp
      host: 127.0.0.1
      port: {mport}
      devices:
        - {{name: d1, unit_id: 1, profile: alltypes, interval: 200ms, timeout: 200ms}}
    - name: plc2
      type: tcp
      host: 127.0.0.1
      port: {mport}
      devices:
        - {{name: d2, unit_id: 2, profile: holes, interval: {d2_interval}, timeout: 200ms}}
"""


def bus(stats, name):
    for b in stats["buses"]:
        if b["name"] == name:
            return b
    raise AssertionError(f"no bus {name} in the stats")


def reload(p, log, n):
    """SIGHUP, then wait for the n-th reload line and a stats file written after it."""
    p.send_signal(signal.SIGHUP)
    h.wait_for(lambda: open(log).read().count("reload: ") >= n, 5, f"reload {n} in the log")
    line = [l for l in open(log).read().splitlines() if "reload: " in l][n - 1]
    before = json.load(open(STATS))["ts_ms"]
    h.wait_for(lambda: json.load(open(STATS))["ts_ms"] > before + 150, 5, "stats after the reload")
    return line, json.load(open(STATS))


def main(agent):
    global STATS
    d = h.tmpdir()
    mport = h.free_port()
    h.start_sim(["--tcp", str(mport), "--units", "1,2"], os.path.join(d, "sim.log"))
    pdir = os.path.join(d, "profiles")
    shutil.copytree(os.path.join(h.HERE, "profiles"), pdir)
    out, STATS, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    h.write_config(cfg, config(out, STATS, pdir, mport, "300ms"))
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    h.wait_for(lambda: os.path.exists(STATS) and
               h.stats_dev(json.load(open(STATS)), "plc1", "d1")["polls"] >= 3 and
               h.stats_dev(json.load(open(STATS)), "plc2", "d2")["polls"] >= 3, 5, "both buses polling")
    s0 = json.load(open(STATS))
    published0 = len(h.points(h.read_jsonl(out), "d1", "u16"))

    # plc2's device changes: plc2 restarts, plc1 runs on
    h.write_config(cfg, config(out, STATS, pdir, mport, "400ms"))
    line, s1 = reload(p, log, 1)
    h.check("1 kept running, 1 restarted, 0 started, 0 stopped" in line, line)
    b1_0, b1_1, b2_0, b2_1 = bus(s0, "plc1"), bus(s1, "plc1"), bus(s0, "plc2"), bus(s1, "plc2")
    h.check(b1_1["uptime_ms"] > b1_0["uptime_ms"], f"plc1 restarted: uptime {b1_0['uptime_ms']} -> {b1_1['uptime_ms']}")
    h.check(b1_1["polls"] > b1_0["polls"], f"plc1's counters reset: polls {b1_0['polls']} -> {b1_1['polls']}")
    h.check(b2_1["uptime_ms"] < b1_1["uptime_ms"] and b2_1["polls"] < b2_0["polls"] + 2,
            f"plc2 not restarted: {b2_0} -> {b2_1}")
    h.check(h.stats_dev(s1, "plc2", "d2")["interval_ms"] == 400, "plc2's new interval not applied")
    text = open(log).read()
    h.check(text.count("bus plc1: connected") == 1 and text.count("bus plc2: connected") == 2,
            "connects:\n" + text)
    h.check(len(h.points(h.read_jsonl(out), "d1", "u16")) == published0,
            "plc1's points published again after a reload that did not touch it")

    # a profile edit that changes nothing read: nothing restarts
    with open(os.path.join(pdir, "alltypes.yaml"), "a") as f:
        f.write("# a comment\n")
    with open(os.path.join(pdir, "alltypes.yaml")) as f:
        text = f.read()
    with open(os.path.join(pdir, "alltypes.yaml"), "w") as f:
        f.write("description: a comment and a description change nothing read\n" + text)
    line, s2 = reload(p, log, 2)
    h.check("2 kept running, 0 restarted" in line, line)

    # a point of alltypes changes: plc1 (its user) restarts, plc2 runs on
    with open(os.path.join(pdir, "alltypes.yaml"), "w") as f:
        f.write(text.replace("heartbeat: 0 ", "heartbeat: 1h"))
    line, s3 = reload(p, log, 3)
    h.check("1 kept running, 1 restarted" in line, line)
    h.check(bus(s3, "plc2")["uptime_ms"] > bus(s2, "plc2")["uptime_ms"] and
            bus(s3, "plc1")["uptime_ms"] < bus(s3, "plc2")["uptime_ms"], f"{s2['buses']} -> {s3['buses']}")

    # plc2 removed: it stops, plc1 runs on
    h.write_config(cfg, config(out, STATS, pdir, mport, "400ms").split("    - name: plc2")[0])
    line, s4 = reload(p, log, 4)
    h.check("1 kept running, 0 restarted, 0 started, 1 stopped" in line, line)
    h.check([b["name"] for b in s4["buses"]] == ["plc1"], f"{s4['buses']}")
    h.stop_agent(p, log)
    print("ok: a reload restarts only the buses that changed")


if __name__ == "__main__":
    main(sys.argv[1])
