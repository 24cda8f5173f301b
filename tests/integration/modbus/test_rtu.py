#!/usr/bin/python3
"""test_rtu.py: edgegw-agent polling a Modbus RTU bus (socat pty pair) served by pymodbus:
unit 1 and 4 hold every type and order, unit 2 has holes (illegal-address exceptions),
unit 3 is dead. Checks decoding, exception splitting, backoff of the dead unit without delaying
the others, deadband and heartbeat, and writes with read-back.  usage: test_rtu.py AGENT"""
import json
import os
import sys
import time

import harness as h

RUN_S = 7.0


def send(fifo, obj):
    with open(fifo, "w") as f:
        f.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "bus")
    h.start_sim(["--rtu", b, "--units", "1,2,4"], os.path.join(d, "sim.log"))
    out, fifo, stats = (os.path.join(d, n) for n in ("out.jsonl", "cmd.fifo", "stats.json"))
    os.mkfifo(fifo)
    cfg = os.path.join(d, "gateway.yaml")
    h.write_config(cfg, """
dataplane: {log_level: info}     # not the agent's: skipped
""" + h.agent_section(out, stats, "500ms", jsonl_extra=f", commands: {fifo}",
                      more="  commands: {topic: site/cmd}\n") + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: 19200
      parity: even
      rs485: {{mode: auto}}
      devices:
        - {{name: dev1, unit_id: 1, profile: alltypes, interval: 500ms, timeout: 200ms, retries: 1}}
        - {{name: dev2, unit_id: 2, profile: holes, interval: 500ms, timeout: 200ms, retries: 1}}
        - {{name: dev3, unit_id: 3, profile: alltypes, interval: 500ms, timeout: 200ms, retries: 1}}
        - {{name: dev4, unit_id: 4, profile: alltypes, interval: 1s, timeout: 200ms, retries: 1}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    t0 = time.time()
    h.wait_for(lambda: len(h.points(h.read_jsonl(out), "dev1", "setpoint")) > 0, 5, "first poll")
    send(fifo, {"id": "w1", "device": "dev1", "point": "setpoint", "value": 22.5})
    send(fifo, {"id": "w2", "device": "dev1", "point": "pump", "value": True})
    send(fifo, {"id": "w3", "device": "dev1", "point": "limit", "value": -7.25})
    send(fifo, {"id": "r1", "device": "dev1", "point": "temperature", "value": 1})
    send(fifo, {"id": "r2", "device": "dev1", "point": "setpoint", "value": 200})
    send(fifo, {"id": "r3", "device": "nosuch", "point": "x", "value": 1})
    send(fifo, '{"id": "r4", "device": "dev1", "point": "setpoint", "value": "hot"}')
    send(fifo, "garbage {{{")
    send(fifo, {"id": "r5", "device": "dev1", "point": "pump", "value": 7})
    time.sleep(max(0.0, RUN_S - (time.time() - t0)))
    p.send_signal(10)   # SIGUSR1: stats dump to the log
    time.sleep(0.3)
    h.stop_agent(p, log)
    msgs = h.read_jsonl(out)
    st = json.load(open(stats))
    elapsed = time.time() - t0

    # every type and order, on two units
    h.check_alltypes(msgs, "dev1")
    h.check_alltypes(msgs, "dev4")

    # holes: the coalesced read was split; points around the hole are good, the hole is stale
    for n, v in (("a", 100), ("b", 105), ("c", 120), ("d", 129)):
        got = h.points(msgs, "dev2", n)
        h.check(got and got[0]["quality"] == "good" and got[0]["value"] == v, f"dev2/{n}: {got[:1]}")
    for n in ("missing", "nothing"):
        got = h.points(msgs, "dev2", n)
        h.check(got and got[0]["quality"] == "stale", f"dev2/{n} should be stale: {got[:1]}")
    s2 = h.stats_dev(st, "rtu1", "dev2")
    h.check(s2["block_splits"] >= 1 and s2["exc_illegal_address"] >= 2, f"dev2 stats {s2}")
    h.check(s2["state"] == "ok" and s2["poll_failures"] == 0, f"dev2 is alive: {s2}")
    # hole-aware: the refused read was bisected, the refused register learnt and kept; the
    # plan made again reads around it (4 requests a poll: 0..5, the refused 15, 20..29 and the
    # refused input 7), not
    # one request per point
    h.check(s2["holes_learnt"] >= 1 and s2["replans"] >= 1, f"dev2 learnt nothing: {s2}")
    state = open(os.path.join(d, "state", "modbus", "rtu1.dev2.state")).read()
    h.check("hole holding 15 1" in state, f"dev2 state file: {state}")
    h.check(s2["requests"] <= 4 * s2["polls"] + 6, f"dev2 not planned around the hole: {s2}")

    # dead unit: comm-failure, backed off, and nobody else late
    got = h.points(msgs, "dev3", "u16")
    h.check(got and got[0]["quality"] == "comm-failure" and got[0]["value"] is None, f"dev3 {got[:1]}")
    s1, s3, s4 = (h.stats_dev(st, "rtu1", n) for n in ("dev1", "dev3", "dev4"))
    h.check(s3["state"] == "backoff" and s3["timeouts"] >= 2, f"dev3 stats {s3}")
    h.check(s3["polls"] <= 6, f"dead dev3 polled {s3['polls']} times in {elapsed:.1f}s: not backed off")
    for s, iv in ((s1, 500), (s4, 1000)):
        h.check(s["late_polls"] == 0 and s["lateness_ms_max"] < iv,
                f"{s['name']} late: {s['late_polls']} late polls, max {s['lateness_ms_max']} ms")
        h.check(s["timeouts"] == 0 and s["crc_errors"] == 0, f"{s['name']} errors {s}")
    h.check(s1["polls"] >= int(RUN_S / 0.5) - 2, f"dev1 polled only {s1['polls']} times")
    h.check(s1["requests"] <= s1["polls"] * 4 + 8, f"dev1 not coalesced: {s1['requests']} requests")

    # deadband: ramp steps by 1 each 150 ms (about 3.3 a poll); only moves of more than 4.5 are published
    ramp = [m for m in h.points(msgs, "dev1", "ramp") if m["quality"] == "good"]
    h.check(len(ramp) >= 4, f"ramp published {len(ramp)} times")
    steps = [y["value"] - x["value"] for x, y in zip(ramp, ramp[1:])]
    h.check(all(s >= 5 for s in steps), f"ramp deadband not honoured: steps {steps}")
    h.check(len(ramp) < s1["polls"], "ramp published on every poll")
    # heartbeat: constant never changes; published once and then every 1 s
    const = h.points(msgs, "dev1", "constant")
    gaps = [(y["ts_ms"] - x["ts_ms"]) / 1000 for x, y in zip(const, const[1:])]
    h.check(len(const) >= RUN_S - 2 and len(const) <= RUN_S + 2, f"constant published {len(const)}x")
    h.check(all(0.95 <= g <= 2.0 for g in gaps), f"heartbeat gaps {gaps}")
    # a point without heartbeat and without change is published once
    h.check(len(h.points(msgs, "dev1", "u16")) == 1, "u16 republished without change")

    # writes: land, read back, answered; rejections carry the reason
    resp = {m["payload"]["id"]: m["payload"] for m in msgs if m["topic"] == "site/cmd/response"}
    for i, v in (("w1", 22.5), ("w2", True), ("w3", -7.25)):
        h.check(i in resp and resp[i]["status"] == "ok" and resp[i]["value"] == v, f"write {i}: {resp.get(i)}")
    sp = h.points(msgs, "dev1", "setpoint")
    h.check(sp[-1]["value"] == 22.5, f"setpoint after write: {sp[-1]}")
    h.check(h.points(msgs, "dev1", "pump")[-1]["value"] is True, "pump after write")
    for i, why in (("r1", "read-only"), ("r2", "outside"), ("r3", "no device"), ("r4", "value"),
                   ("r5", "not a boolean")):
        h.check(i in resp and resp[i]["status"] == "error" and why in resp[i]["reason"], f"{i}: {resp.get(i)}")
    h.check(any(r["status"] == "error" and "bad JSON" in r["reason"] for r in resp.values()), "garbage cmd")
    h.check(s1["writes"] == 3 and s1["writes_failed"] == 0 and s1["writes_rejected"] >= 3, f"write stats {s1}")
    h.check("stats: bus rtu1" in open(log).read(), "no SIGUSR1 stats dump in the log")
    print(f"ok: {len(msgs)} messages; dev1 {s1['polls']} polls {s1['requests']} requests, "
          f"lateness max {s1['lateness_ms_max']} ms; dead dev3 {s3['polls']} polls; "
          f"bus utilisation {st['buses'][0]['utilisation']:.3f}")


if __name__ == "__main__":
    main(sys.argv[1])
