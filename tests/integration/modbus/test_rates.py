#!/usr/bin/python3
"""test_rates.py: several poll rates on one device (issue 17). A 200 ms group, the device's 1 s
interval and a 2 s point: the device is polled at the fastest rate, and the slower points are
read in those same polls when they are due (no polls of their own); every value is right.
usage: test_rates.py AGENT"""
import json
import os
import sys

import harness as h


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "bus")
    h.start_sim(["--rtu", b, "--units", "1"], os.path.join(d, "sim.log"))
    out, stats, cfg = (os.path.join(d, n) for n in ("out.jsonl", "stats.json", "gateway.yaml"))
    h.write_config(cfg, h.agent_section(out, stats) + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: 38400
      devices:
        - {{name: r1, unit_id: 1, profile: rates, interval: 1s, timeout: 200ms, retries: 1}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)

    def dev():
        try:
            return h.stats_dev(json.load(open(stats)), "rtu1", "r1")
        except (OSError, ValueError, AssertionError):
            return None
    h.wait_for(lambda: dev() and dev()["polls"] >= 30, 20, "30 polls")
    h.stop_agent(p, log)
    s = h.stats_dev(json.load(open(stats)), "rtu1", "r1")
    msgs = h.read_jsonl(out)
    for name, want in (("u16", 12345), ("i16", -1234), ("serial", "EDGEGW01"), ("temperature", 21.5)):
        got = h.points(msgs, "r1", name)
        h.check(got and got[0]["quality"] == "good" and got[0]["value"] == want, f"r1/{name}: {got[:1]}")
    polls, reqs = s["polls"], s["requests"]
    # each poll reads the fast group (1 request); every 5th the 1 s string too, every 10th the
    # 2 s input: about polls * 1.3 requests, and no polls of their own for the slow points
    h.check(reqs >= polls + polls // 5 - 2, f"slow points not read: {polls} polls, {reqs} requests")
    h.check(reqs <= polls + polls // 5 + polls // 10 + 4, f"slow points read too often: {polls} polls, {reqs} requests")
    h.check(s["poll_failures"] == 0 and s["timeouts"] == 0, f"errors: {s}")
    print(f"ok: {polls} polls, {reqs} requests (fast group every poll, 1 s and 2 s points coalesced into them)")


if __name__ == "__main__":
    main(sys.argv[1])
