#!/usr/bin/python3
"""test_rtu_timing.py: hole-aware planning against a bus with real wire timing (issue 17).
tools/devsim/rtu_bus_sim.py answers as a 9,600-baud 8E1 line would (11 bits a character, the
3.5-character gap) and accounts every transaction's wire time. The site: unit 1 and unit 2 have
holes in their maps (not declared anywhere: the agent must learn them from exception 2), unit 2
also sends 10% of its answers with a bad CRC, unit 3 has readable gaps only, unit 7 is dead.
After the learning scans, over a window of scans measured by the simulator (not the agent):
 - bus time per scan of the live units <= 1.10 x the theoretical minimum: the fewest, cheapest
   reads that cover every point without touching a hole, with the planner's cost model
   (agent/modbus/planner.c mb_cost_read_us, no turnaround; as tests/bench/modbus); the retries
   the noise costs are counted in;
 - every published value equals the simulator's;
 - the noisy unit is never backed off nor called "does not answer";
 - the dead unit's requests are timeouts, and the live units' polls keep their interval;
 - the bus time the dead unit costs is one timeout per backoff period at most: the wire
   shows at most window / max_backoff + 1 requests to it, the agent's busy time for it is at
   most one timeout each (never a run of retries), and the live units' scans (wire time) plus
   that time fit in the window with room to spare.
usage: test_rtu_timing.py AGENT [--max-gap0] [--no-backoff]   (--max-gap0: profiles forbid
read-through, the ratio check must then fail; --no-backoff: max_backoff is the interval, so
the dead unit is asked every interval, and the dead unit's bus-time check must then fail:
both show the test can)"""
import json
import os
import subprocess
import sys
import time

import harness as h

BAUD = 9600
CHAR_US = 11 * 1e6 / BAUD
GAP_US = 3.5 * CHAR_US
INTERVAL_S = 1.5
WINDOW_POLLS = 6


def cost_us(count):   # one FC3/FC4 read of count registers, as mb_cost_read_us (turnaround 0)
    return (8 + 5 + 2 * count) * CHAR_US + 2 * GAP_US


# Register maps: address -> value; any address not listed is a hole (exception 2).
def served(ranges, seed):
    return {a: (seed * 1000 + a * 7) & 0xFFFF for lo, hi in ranges for a in range(lo, hi)}


UNITS = {
    # meter-like: holes of 4 and 3 registers between points, a far cluster
    1: {"holding": served([(0, 20), (24, 40), (43, 56), (80, 92)], 1)},
    2: {"holding": served([(0, 20), (24, 40), (43, 56), (80, 92)], 2), "noise": 0.10},
    # controller-like: input registers, readable gaps only
    3: {"input": served([(0, 60)], 3)},
    7: {"dead": True},
}
# points (name, table, address, type): u16 every other register, some u32
def points_for(unit):
    t = "input" if unit == 3 else "holding"
    if unit == 3:
        addrs = [(a, "u16") for a in range(0, 30, 3)] + [(40, "u32"), (44, "u32"), (58, "u16")]
    else:
        addrs = ([(a, "u16") for a in range(0, 20, 2)] + [(24, "u32"), (28, "u32"), (34, "u16"),
                 (38, "u16"), (43, "u16"), (47, "u16"), (54, "u32"), (80, "u16"), (86, "u16"),
                 (90, "u32")])
    return [("p%d" % a, t, a, ty) for a, ty in addrs]


DEAD_POINTS = [("p0", "holding", 0, "u16"), ("p10", "holding", 10, "u16")]
DEVS = [("m1", 1, "site_m1"), ("m2", 2, "site_m2"), ("c3", 3, "site_c3"), ("dead", 7, "site_dead")]
LIVE = ["m1", "m2", "c3"]


def regs_of(ty):
    return 2 if ty == "u32" else 1


def minimum_us(unit):
    """The cheapest cover of the unit's points by reads that touch no hole (dynamic programming
    over the points in address order, per table: reads never overlap usefully)."""
    m = UNITS[unit]
    total = 0.0
    for table in ("holding", "input"):
        pts = sorted((a, a + regs_of(ty)) for _, t, a, ty in points_for(unit) if t == table)
        if not pts:
            continue
        served_ = m[table]
        best = [0.0] + [float("inf")] * len(pts)
        for j in range(1, len(pts) + 1):
            for i in range(j, 0, -1):
                lo, hi = pts[i - 1][0], max(e for _, e in pts[i - 1:j])
                if hi - lo > 125 or any(a not in served_ for a in range(lo, hi)):
                    break
                best[j] = min(best[j], best[i - 1] + cost_us(hi - lo))
        total += best[-1]
    return total


def expected(unit, a, ty):
    m = UNITS[unit]["input" if unit == 3 else "holding"]
    return (m[a] << 16) | m[a + 1] if ty == "u32" else m[a]


DEAD_TIMEOUT_S = 0.3
MAX_BACKOFF_S = 3.0


def main(agent, max_gap0=False, no_backoff=False):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "bus")
    prof = os.path.join(d, "profiles")
    os.makedirs(prof)
    for name, unit, pname in DEVS:
        pts = DEAD_POINTS if unit == 7 else points_for(unit)
        with open(os.path.join(prof, pname + ".yaml"), "w") as f:
            f.write("name: %s\nheartbeat: 0\n%spoints:\n" % (pname, "max_gap: 0\n" if max_gap0 else ""))
            for pn, t, addr, ty in pts:
                f.write("  - {name: %s, function: %s, address: %d, type: %s}\n" % (pn, t, addr, ty))
    site = os.path.join(d, "site.json")
    json.dump({"units": {str(u): {k: ({str(x): y for x, y in v.items()} if isinstance(v, dict) else v)
                                  for k, v in m.items()} for u, m in UNITS.items()}}, open(site, "w"))
    wire = os.path.join(d, "wire.jsonl")
    sim = h.start([h.PY, os.path.join(h.HERE, "../../../tools/devsim/rtu_bus_sim.py"), "--pty", b,
                   "--site", site, "--log", wire, "--baud", str(BAUD), "--seed", "17"],
                  stdout=subprocess.PIPE, text=True)
    h.check("ready" in sim.stdout.readline(), "bus simulator did not start")
    out, stats, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    devlines = "".join(
        "        - {name: %s, unit_id: %d, profile: %s, interval: %dms, timeout: %s, retries: %d}\n"
        % (n, u, p, INTERVAL_S * 1000, "%dms" % (DEAD_TIMEOUT_S * 1000) if u == 7 else "1s",
           0 if u == 7 else 3)
        for n, u, p in DEVS)
    h.write_config(cfg, h.agent_section(out, stats, "100ms", profiles_dir=prof) + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: {BAUD}
      parity: even
      turnaround: 0ms
      max_backoff: {"%dms" % (INTERVAL_S * 1000) if no_backoff else "%ds" % MAX_BACKOFF_S}
      devices:
""" + devlines)
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)

    samples = []

    def st():
        try:
            s = json.load(open(stats))
        except (OSError, ValueError):
            return None
        samples.append(s)
        return s

    def polls_at_least(n):
        s = st()
        return s and all(h.stats_dev(s, "rtu1", dv)["polls"] >= n for dv in LIVE)

    # learning: a few scans (each learns what its refused reads taught, then plans again)
    h.wait_for(lambda: polls_at_least(5), 30, "5 polls of each live unit (learning)")
    s0 = st()
    t0 = time.monotonic()
    base = {dv: h.stats_dev(s0, "rtu1", dv)["polls"] for dv in LIVE}
    h.wait_for(lambda: polls_at_least(max(base.values()) + WINDOW_POLLS), 30,
               "%d more polls of each live unit" % WINDOW_POLLS)
    t1 = time.monotonic()
    s1 = st()
    h.stop_agent(p, log)
    sim.terminate()
    sim.wait(timeout=5)

    recs = [r for r in h.read_jsonl(wire) if "unit" in r]
    h.check(not [r for r in h.read_jsonl(wire) if r["outcome"] == "bad_request"], "requests with a bad CRC on the wire")
    win = [r for r in recs if t0 <= r["t"] < t1]
    per_scan, minimum, lines = 0.0, 0.0, []
    for name, unit, _ in DEVS[:3]:
        mine = [r for r in win if r["unit"] == unit]
        ok = [r for r in mine if r["outcome"] == "ok"]
        h.check(not [r for r in mine if r["outcome"].startswith("exc")],
                f"{name}: still refused reads after the learning scans: {[r for r in mine if r['outcome'] != 'ok'][:5]}")
        plan = {}
        for r in ok:
            plan.setdefault((r["fc"], r["start"], r["count"]), []).append(r)
        polls = min(len(v) for v in plan.values())
        plan_us = sum(v[0]["wire_us"] for v in plan.values())
        waste_us = sum(r["wire_us"] for r in mine if r["outcome"] != "ok")
        unit_us = plan_us + waste_us / polls
        mn = minimum_us(unit)
        per_scan += unit_us
        minimum += mn
        lines.append(f"{name}: {len(plan)} reads/scan {unit_us / 1000:.1f} ms (minimum {mn / 1000:.1f} ms), "
                     f"{polls} polls in the window, retry waste {waste_us / polls / 1000:.1f} ms/scan")
    ratio = per_scan / minimum
    print("\n".join(lines))
    print(f"bus time per scan {per_scan / 1000:.1f} ms, minimum {minimum / 1000:.1f} ms, ratio {ratio:.3f}")
    h.check(ratio <= 1.10, f"bus time per scan {ratio:.3f} x the minimum (> 1.10)")
    silences = [r["silence_us"] for r in recs if r["silence_us"] > 0 and r["silence_us"] < 1e6]
    # every value right
    msgs = h.read_jsonl(out)
    for name, unit, _ in DEVS[:3]:
        for pn, _, addr, ty in points_for(unit):
            got = h.points(msgs, name, pn)
            h.check(got, f"{name}/{pn}: never published")
            want = expected(unit, addr, ty)
            bad = [g for g in got if g["quality"] != "good" or g["value"] != want]
            h.check(not bad, f"{name}/{pn}: want {want}, got {bad[:2]}")
    # the noisy unit answers: never backed off, never called dead
    text = open(log).read()
    for s in samples:
        m2 = h.stats_dev(s, "rtu1", "m2")
        h.check(m2["state"] != "backoff" and m2["backoff_ms"] == 0, f"noisy unit backed off: {m2}")
    h.check("m2 (unit 2) does not answer" not in text, "noisy unit called dead")
    m2 = h.stats_dev(s1, "rtu1", "m2")
    h.check(m2["crc_errors"] > 0 and m2["poll_failures"] == 0, f"noise not seen, or polls failed: {m2}")
    dead = h.stats_dev(s1, "rtu1", "dead")
    h.check(dead["timeouts"] > 0 and dead["responses"] == 0, f"dead unit: {dead}")
    # the others keep their interval: no late polls, as many polls as the window allows
    win_s = t1 - t0
    for dv in LIVE:
        x = h.stats_dev(s1, "rtu1", dv)
        n = x["polls"] - base[dv]
        h.check(x["late_polls"] == 0, f"{dv}: late polls: {x}")
        h.check(n >= int(win_s / INTERVAL_S) - 1, f"{dv}: {n} polls in {win_s:.1f} s at {INTERVAL_S} s")
    late_max = max(h.stats_dev(s1, "rtu1", dv)["lateness_ms_max"] for dv in LIVE)
    # the bus time the dead unit costs: on the wire one request per backoff period at most, in
    # the agent one timeout per request at most, and room left for every live scan
    n_dead = len([r for r in win if r["unit"] == 7])
    max_dead = int(win_s / MAX_BACKOFF_S) + 1
    h.check(n_dead <= max_dead,
            f"dead unit asked {n_dead} times in {win_s:.1f} s: more than once per {MAX_BACKOFF_S} s backoff ({max_dead})")
    d0, d1 = h.stats_dev(s0, "rtu1", "dead"), h.stats_dev(s1, "rtu1", "dead")
    dead_s = (d1["busy_us"] - d0["busy_us"]) / 1e6
    n_agent = d1["requests"] - d0["requests"]
    h.check(dead_s <= n_agent * (DEAD_TIMEOUT_S + 0.1),
            f"the dead unit held the bus {dead_s:.2f} s for {n_agent} requests: more than a timeout each")
    live_s = per_scan / 1e6 * win_s / INTERVAL_S
    h.check(live_s + dead_s < 0.8 * win_s,
            f"live scans {live_s:.2f} s + dead unit {dead_s:.2f} s leave no room in {win_s:.1f} s")
    print(f"dead unit: {n_dead} requests on the wire in {win_s:.1f} s holding the bus {dead_s * 1000:.0f} ms "
          f"({100 * dead_s / win_s:.1f}% of the window; live scans {100 * live_s / win_s:.1f}%)")
    # the dead unit is backed off: polled less often than the live units
    dead_polls = len([r for r in win if r["unit"] == 7])
    h.check(dead_polls < WINDOW_POLLS, f"dead unit not backed off: {dead_polls} requests in the window")
    print(f"dead unit: {dead['timeouts']} timeouts, {dead_polls} requests in the window; live units' worst lateness {late_max} ms; "
          f"smallest silence before a request {min(silences) / 1000:.2f} ms (gap {GAP_US / 1000:.2f} ms); "
          f"noisy unit: {m2['crc_errors']} bad CRC, state always ok")
    print(f"ok: ratio {ratio:.3f} <= 1.10")


if __name__ == "__main__":
    main(sys.argv[1], "--max-gap0" in sys.argv[2:], "--no-backoff" in sys.argv[2:])
