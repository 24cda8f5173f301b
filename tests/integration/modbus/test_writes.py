#!/usr/bin/python3
"""test_writes.py: the full write set (issue 17) through a proxy that records the function codes
on the wire: FC15 for a coil and FC16 for one register where the profile says write_single:
multiple, FC6 where it does not; a bit of a register by read-modify-write (FC3, then the
register) or FC22 mask write; a string point. Every write is read back and answered, and the
other bits of the register keep their values. Addresses in the profiles are Modicon references
(writes.yaml) and 1-based (writes_mask.yaml).  usage: test_writes.py AGENT"""
import json
import os
import subprocess
import sys

import harness as h


def send(fifo, obj):
    with open(fifo, "w") as f:
        f.write(json.dumps(obj) + "\n")


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "agentside")
    c, e = h.pty_pair(d, "devside")
    h.start_sim(["--rtu", e, "--units", "1,4"], os.path.join(d, "sim.log"))
    pstats = os.path.join(d, "proxy.json")
    proxy = h.start([h.PY, os.path.join(h.HERE, "fault_proxy.py"), b, c, "9", pstats, "ok"],
                    stdout=subprocess.PIPE, text=True)
    h.check("ready" in proxy.stdout.readline(), "proxy did not start")
    out, fifo, stats = (os.path.join(d, n) for n in ("out.jsonl", "cmd.fifo", "stats.json"))
    os.mkfifo(fifo)
    cfg = os.path.join(d, "gateway.yaml")
    h.write_config(cfg, h.agent_section(out, stats, jsonl_extra=f", commands: {fifo}",
                                        more="  commands: {topic: site/cmd}\n") + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: 38400
      devices:
        - {{name: w1, unit_id: 1, profile: writes, interval: 300ms, timeout: 200ms, retries: 1}}
        - {{name: w4, unit_id: 4, profile: writes_mask, interval: 300ms, timeout: 200ms, retries: 1}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    h.wait_for(lambda: h.points(h.read_jsonl(out), "w4", "setpoint"), 10, "first polls")
    cmds = [("a", "w1", "pump", True), ("b", "w1", "setpoint", 23.5), ("c", "w1", "alarm_b", True),
            ("d", "w1", "serial", "NEW-01"), ("e", "w4", "alarm_c", False),
            ("f", "w4", "setpoint", -4.5)]
    for i, dev, pt, v in cmds:
        send(fifo, {"id": i, "device": dev, "point": pt, "value": v})

    def responses():
        return {m["payload"]["id"]: m["payload"] for m in h.read_jsonl(out)
                if m["topic"] == "site/cmd/response"}
    h.wait_for(lambda: len(responses()) == len(cmds), 10, "all write responses")
    h.wait_for(lambda: h.points(h.read_jsonl(out), "w4", "alarm_c")[-1]["value"] is False, 5,
               "alarm_c published after the write")
    h.stop_agent(p, log)
    proxy.terminate()
    proxy.wait(timeout=5)
    resp = responses()
    for i, dev, pt, v in cmds:
        h.check(resp[i]["status"] == "ok" and resp[i]["value"] == v, f"write {i} {pt}: {resp[i]}")
    msgs = h.read_jsonl(out)
    for dev, pt, v in (("w1", "alarm_a", True), ("w4", "alarm_a", True), ("w1", "alarm_b", True),
                       ("w1", "serial", "NEW-01"), ("w4", "alarm_c", False)):
        got = h.points(msgs, dev, pt)
        h.check(got and got[-1]["value"] == v, f"{dev}/{pt} after the writes: {got[-1:]}")
    fn = json.load(open(pstats))["functions"]
    h.check({1, 3, 15, 16} <= set(fn["1"]) and not {5, 6} & set(fn["1"]),
            f"unit 1 (write_single: multiple) function codes: {fn['1']}")
    h.check({6, 22} <= set(fn["4"]) and 16 not in fn["4"], f"unit 4 (bit_write: mask) function codes: {fn['4']}")
    print(f"ok: 6 writes read back; function codes on the wire: unit 1 {fn['1']}, unit 4 {fn['4']}")


if __name__ == "__main__":
    main(sys.argv[1])
