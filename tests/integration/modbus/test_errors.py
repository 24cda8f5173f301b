#!/usr/bin/python3
"""test_errors.py: error classes that tell the truth (issue 17).
 - A unit whose answers come back with a bad CRC two times in three (a proxy mangles them) still
   answers: it keeps its values, is never called "does not answer" nor backed off, and its CRC
   errors are counted as CRC errors, apart from timeouts.
 - A bus whose serial port does not exist is a bus fault: one log line, the bus's state says
   "fault", its devices are not charged with poll failures; when the port appears the bus
   opens it and its device is read.
 - pause_between_requests on the bus: the proxy sees at least that much silence before each
   request.
usage: test_errors.py AGENT"""
import json
import os
import subprocess
import sys

import harness as h


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "agentside")
    c, e = h.pty_pair(d, "devside")
    h.start_sim(["--rtu", e, "--units", "1,4"], os.path.join(d, "sim.log"))
    proxy = h.start([h.PY, os.path.join(h.HERE, "fault_proxy.py"), b, c, "4",
                     os.path.join(d, "proxy.json"), "crc,crc,ok"],
                    stdout=subprocess.PIPE, text=True)
    h.check("ready" in proxy.stdout.readline(), "proxy did not start")
    missing = os.path.join(d, "ttyUSB9")   # appears later
    out, stats = os.path.join(d, "out.jsonl"), os.path.join(d, "stats.json")
    cfg = os.path.join(d, "gateway.yaml")
    h.write_config(cfg, h.agent_section(out, stats) + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: 38400
      pause_between_requests: 15ms
      devices:
        - {{name: good, unit_id: 1, profile: alltypes, interval: 1s, timeout: 200ms, retries: 2}}
        - {{name: noisy, unit_id: 4, profile: alltypes, interval: 500ms, timeout: 400ms, retries: 2}}
    - name: gone
      type: rtu
      device: {missing}
      baud: 38400
      max_backoff: 1s
      devices:
        - {{name: late1, unit_id: 1, profile: alltypes, interval: 300ms, timeout: 100ms, retries: 2}}
        - {{name: late2, unit_id: 2, profile: alltypes, interval: 300ms, timeout: 100ms, retries: 2}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)

    def st():
        try:
            return json.load(open(stats))
        except (OSError, ValueError):
            return None

    def bus(s, name):
        return next(x for x in s["buses"] if x["name"] == name)

    # the noisy unit is polled at least 8 times while the other bus is down
    h.wait_for(lambda: st() and h.stats_dev(st(), "rtu1", "noisy")["polls"] >= 8, 20,
               "8 polls of the noisy unit")
    s = st()
    gone = bus(s, "gone")
    h.check(gone["state"] == "fault" and gone["faults"] == 1, f"missing port not a bus fault: {gone}")
    for dev in gone["devices"]:
        h.check(dev["poll_failures"] == 0 and dev["timeouts"] == 0,
                f"{dev['name']} charged with the bus's fault: {dev}")
    # the port appears, with a device simulator already serving behind it (a port that opens
    # before its device answers would rightly make late1 "not answer")
    f, g = h.pty_pair(d, "late")
    h.start_sim(["--rtu", g, "--units", "1"], os.path.join(d, "sim2.log"))
    os.symlink(f, missing)
    h.wait_for(lambda: any(m["payload"].get("device") == "late1" and m["payload"].get("quality") == "good"
                           for m in h.read_jsonl(out)), 15, "late1 read after the port appeared")
    h.wait_for(lambda: bus(st(), "gone")["state"] == "ok", 5, "bus state back to ok")
    h.stop_agent(p, log)
    proxy.terminate()
    proxy.wait(timeout=5)

    gap = json.load(open(os.path.join(d, "proxy.json")))
    h.check(gap["n"] > 10 and gap["min_gap_ms"] >= 15, f"pause_between_requests not kept: {gap}")
    text = open(log).read()
    msgs = h.read_jsonl(out)
    s = json.load(open(stats))
    noisy = h.stats_dev(s, "rtu1", "noisy")
    h.check_alltypes(msgs, "noisy")
    h.check(all(m["quality"] == "good" for m in h.points(msgs, "noisy", "u16")),
            f"noisy unit lost quality: {h.points(msgs, 'noisy', 'u16')}")
    h.check("noisy (unit 4) does not answer" not in text, "noisy unit called dead:\n" + text[-3000:])
    # (a timeout or two when the box is loaded and the proxy slow is not the point)
    h.check(noisy["poll_failures"] == 0 and noisy["crc_errors"] > 4 * noisy["timeouts"],
            f"noisy unit's errors not told apart: {noisy}")
    faults = [ln for ln in text.splitlines() if "bus gone: fault" in ln]
    h.check(len(faults) == 1, "want one fault line for bus gone, got:\n" + "\n".join(faults))
    h.check("late2 (unit 2) does not answer" in text, "late2 (no such unit) not found dead")
    h.check("late1 (unit 1) does not answer" not in text, "late1 blamed for the bus's fault")
    print(f"ok: smallest gap before a request {gap['min_gap_ms']:.1f} ms (pause 15 ms); noisy unit {noisy['polls']} polls, {noisy['crc_errors']} bad CRC, "
          f"{noisy['noisy_polls']} noisy polls, 0 failures; missing port: one fault line, "
          f"recovered")


if __name__ == "__main__":
    main(sys.argv[1])
