#!/usr/bin/python3
"""test_bad_input.py: the "Bad input" of issue 17 against tools/devsim/rtu_bus_sim.py (an RTU
bus with wire timing), one unit per kind of bad input, and a healthy one beside them:
 - moved (unit 1): register 2 is a hole; after a "firmware update" (the simulator's control
   file) 2 reads fine and 5 is the hole. The new hole is learnt from its refusal, the old one
   is forgotten when a probe reads through it; the state file ends with 5 and without 2;
 - refuses (unit 2): exception 2 to every read. It converges: every point a hole of its own,
   one read per point per poll, no more splits or replans;
 - fc3only (unit 3): answers FC3 and refuses FC4 (exception 1). The input table is learnt
   unsupported once, its points say "unsupported", FC4 is asked for only by rare probes;
 - wrongid (unit 4): every answer carries unit id 9. Counted as wrong-unit polls (not
   timeouts, not exceptions), backed off, nothing learnt from it (no holes, no splits);
 - good (unit 5): every value right, no failed poll.
After the learning, over a window of polls: no replans and no splits beyond the probes, and
the log says what was learnt, once each.
usage: test_bad_input.py AGENT"""
import json
import os
import subprocess
import sys

import harness as h

BAUD = 19200
INTERVAL_MS = 400


def served(addrs, seed):
    return {str(a): (seed * 1000 + a * 7) & 0xFFFF for a in addrs}


PAIRS = [0, 1, 3, 4, 6, 7]
UNITS = {
    1: {"holding": served([0, 1, 3, 4, 5, 6, 7], 1),
        "later": {"holding": served([0, 1, 2, 3, 4, 6, 7], 1)}},
    2: {"holding": served(range(0, 4), 2), "exception": 2},
    3: {"holding": served(range(0, 4), 3), "input": served(range(0, 4), 3), "functions": [3]},
    4: {"holding": served(range(0, 4), 4), "answer_as": 9},
    5: {"holding": served(range(0, 10), 5)},
}
DEVS = [("moved", 1), ("refuses", 2), ("fc3only", 3), ("wrongid", 4), ("good", 5)]


def points_for(unit):
    if unit == 1:
        return [("p%d" % a, "holding", a) for a in PAIRS]
    if unit == 3:
        return [("h%d" % a, "holding", a) for a in range(4)] + [("i%d" % a, "input", a) for a in range(4)]
    if unit == 5:
        return [("p%d" % a, "holding", a) for a in range(0, 10, 3)]
    return [("p%d" % a, "holding", a) for a in range(4)]


def value(unit, addr):
    return (unit * 1000 + addr * 7) & 0xFFFF


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "bus")
    prof = os.path.join(d, "profiles")
    os.makedirs(prof)
    for name, unit in DEVS:
        with open(os.path.join(prof, "bad_%s.yaml" % name), "w") as f:
            f.write("name: bad_%s\nheartbeat: 0\npoints:\n" % name)
            for pn, t, addr in points_for(unit):
                f.write("  - {name: %s, function: %s, address: %d, type: u16}\n" % (pn, t, addr))
    site = os.path.join(d, "site.json")
    json.dump({"units": {str(u): m for u, m in UNITS.items()}}, open(site, "w"))
    wire, control = os.path.join(d, "wire.jsonl"), os.path.join(d, "control")
    sim = h.start([h.PY, os.path.join(h.HERE, "../../../tools/devsim/rtu_bus_sim.py"), "--pty", b,
                   "--site", site, "--log", wire, "--baud", str(BAUD), "--control", control],
                  stdout=subprocess.PIPE, text=True)
    h.check("ready" in sim.stdout.readline(), "bus simulator did not start")
    out, stats, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    devlines = "".join(
        "        - {name: %s, unit_id: %d, profile: bad_%s, interval: %dms, timeout: 200ms, retries: 1}\n"
        % (n, u, n, INTERVAL_MS) for n, u in DEVS)
    h.write_config(cfg, h.agent_section(out, stats, "100ms", profiles_dir=prof) + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: {BAUD}
      parity: even
      turnaround: 0ms
      max_backoff: 2s
      devices:
""" + devlines)
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)

    def st():
        try:
            return json.load(open(stats))
        except (OSError, ValueError):
            return None

    def dev(s, name):
        return h.stats_dev(s, "rtu1", name)

    def learnt_first():
        s = st()
        return s and (dev(s, "moved")["holes_learnt"] >= 1 and dev(s, "refuses")["polls"] >= 5
                      and dev(s, "fc3only")["functions_unsupported"] >= 1
                      and dev(s, "wrongid")["wrong_unit_polls"] >= 1)

    h.wait_for(learnt_first, 30, "the first things learnt")
    with open(control, "w") as f:
        f.write("update\n")

    def moved():
        s = st()
        return s and dev(s, "moved")["holes_learnt"] >= 2 and dev(s, "moved")["holes_forgotten"] >= 1

    h.wait_for(moved, 60, "the moved hole learnt and the old one forgotten")
    # the replan follows its poll's counters: start the window two polls later
    n = dev(st(), "moved")["polls"] + 2
    h.wait_for(lambda: (lambda s: s and dev(s, "moved")["polls"] >= n)(st()), 20, "two more polls")
    s0 = st()
    h.wait_for(lambda: (lambda s: s and dev(s, "good")["polls"] >= dev(s0, "good")["polls"] + 12)(st()),
               40, "12 more polls")
    s1 = st()
    h.stop_agent(p, log)
    sim.terminate()
    sim.wait(timeout=5)
    text = open(log).read()
    msgs = h.read_jsonl(out)
    recs = [r for r in h.read_jsonl(wire) if "unit" in r]

    def delta(name, k):
        return dev(s1, name)[k] - dev(s0, name)[k]

    # moved: the state file keeps the new hole only
    state = open(os.path.join(d, "state", "modbus", "rtu1.moved.state")).read()
    h.check("hole holding 5 1\n" in state and "hole holding 2 " not in state, f"moved: state file: {state!r}")
    h.check(delta("moved", "replans") == 0, f"moved: replans in the window: {delta('moved', 'replans')}")
    h.check("device moved: learnt 1 hole" in text and "forgot 1 learnt hole" in text,
            "moved: the log does not say what was learnt and forgotten")
    for pn, _, addr in points_for(1):
        got = h.points(msgs, "moved", pn)
        h.check(got and got[-1]["quality"] == "good" and got[-1]["value"] == value(1, addr),
                f"moved/{pn}: {got[-1:]}")
    # refuses: one read per point per poll, nothing more to learn
    polls = delta("refuses", "polls")
    h.check(polls >= 5, f"refuses: {polls} polls in the window")
    h.check(delta("refuses", "requests") <= 4 * (polls + 1), f"refuses: {delta('refuses', 'requests')} requests in {polls} polls")
    h.check(delta("refuses", "replans") == 0 and delta("refuses", "block_splits") == 0,
            f"refuses: still splitting: {dev(s1, 'refuses')}")
    h.check(all(g["quality"] == "stale" for pn, _, _ in points_for(2) for g in h.points(msgs, "refuses", pn)),
            "refuses: a point not stale")
    # fc3only: the input table learnt unsupported once; FC4 only in probes
    f3 = dev(s1, "fc3only")
    h.check(f3["functions_unsupported"] == 1 and f3["functions_forgotten"] == 0, f"fc3only: {f3}")
    fc4 = [r for r in recs if r["unit"] == 3 and r["fc"] == 4]
    h.check(len(fc4) <= 1 + f3["probes"], f"fc3only: FC4 asked {len(fc4)} times, {f3['probes']} probes")
    h.check(text.count("device fc3only: input reads refused with exception 1") == 1,
            "fc3only: the unsupported table not logged exactly once")
    for pn, t, addr in points_for(3):
        got = h.points(msgs, "fc3only", pn)
        want = "unsupported" if t == "input" else "good"
        h.check(got and got[-1]["quality"] == want, f"fc3only/{pn}: want {want}, got {got[-1:]}")
    # wrongid: its own class, backed off, nothing learnt
    w = dev(s1, "wrongid")
    h.check(w["wrong_unit_polls"] >= 1 and w["wrong_unit"] >= 2 and w["timeouts"] == 0
            and w["exceptions"] == 0 and w["holes_learnt"] == 0 and w["block_splits"] == 0
            and w["poll_failures"] == 0, f"wrongid: {w}")
    h.check(w["state"] == "backoff", f"wrongid not backed off: {w}")
    h.check(w["requests"] <= 2 * w["polls"], f"wrongid: {w['requests']} requests in {w['polls']} polls")
    h.check("device wrongid (unit 4) answers only as another unit id" in text, "wrongid: not logged")
    h.check("device wrongid (unit 4) does not answer" not in text, "wrongid called silent")
    # good: right values (its lateness is printed: a loaded box makes it, not the others)
    g = dev(s1, "good")
    h.check(g["poll_failures"] == 0 and g["wrong_unit"] == 0 and g["exceptions"] == 0, f"good: {g}")
    for pn, _, addr in points_for(5):
        got = h.points(msgs, "good", pn)
        h.check(got and all(x["quality"] == "good" and x["value"] == value(5, addr) for x in got), f"good/{pn}: {got[:2]}")
    print(f"moved: {dev(s1, 'moved')['holes_learnt']} holes learnt, {dev(s1, 'moved')['holes_forgotten']} forgotten, "
          f"{dev(s1, 'moved')['probes']} probes; refuses: {delta('refuses', 'requests')} requests in {polls} polls; "
          f"fc3only: FC4 asked {len(fc4)} times; wrongid: {w['wrong_unit_polls']} wrong-unit polls, "
          f"{w['requests']} requests; good: {g['late_polls']} late polls, worst {g['lateness_ms_max']} ms")
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1])
