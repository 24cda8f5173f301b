#!/usr/bin/python3
"""test_faults.py: bad answers on the bus. A proxy between the agent and pymodbus mangles the
answers of unit 4 (bad CRC, garbage, short frames, wrong unit id, noise, slow answers); unit 1
on the same bus must keep its values and its schedule, the faults must be counted, and the
agent must keep running.  usage: test_faults.py AGENT"""
import json
import os
import subprocess
import sys
import time

import harness as h

RUN_S = 8.0


def main(agent):
    d = h.tmpdir()
    a, b = h.pty_pair(d, "agentside")
    c, e = h.pty_pair(d, "devside")
    h.start_sim(["--rtu", e, "--units", "1,4"], os.path.join(d, "sim.log"))
    pstats = os.path.join(d, "proxy.json")
    proxy = h.start([h.PY, os.path.join(h.HERE, "fault_proxy.py"), b, c, "4", pstats],
                    stdout=subprocess.PIPE, text=True)
    h.check("ready" in proxy.stdout.readline(), "proxy did not start")
    out, stats = os.path.join(d, "out.jsonl"), os.path.join(d, "stats.json")
    cfg = os.path.join(d, "gateway.yaml")
    h.write_config(cfg, h.agent_section(out, stats, "500ms") + f"""\
    - name: rtu1
      type: rtu
      device: {a}
      baud: 38400
      devices:
        - {{name: good, unit_id: 1, profile: alltypes, interval: 1s, timeout: 200ms, retries: 2}}
        - {{name: flaky, unit_id: 4, profile: alltypes, interval: 500ms, timeout: 200ms, retries: 2}}
""")
    log = os.path.join(d, "agent.log")
    p = h.start_agent(agent, cfg, log)
    time.sleep(RUN_S)
    h.check(p.poll() is None, "agent died under bad frames")
    h.stop_agent(p, log)
    proxy.terminate()
    proxy.wait(timeout=5)
    gap = json.load(open(pstats))
    msgs = h.read_jsonl(out)
    st = json.load(open(stats))
    good, flaky = h.stats_dev(st, "rtu1", "good"), h.stats_dev(st, "rtu1", "flaky")

    h.check_alltypes(msgs, "good")
    h.check(all(m["quality"] == "good" for m in h.points(msgs, "good", "u16")), f"good device lost quality: {good} {h.points(msgs, 'good', 'u16')}")
    h.check(good["poll_failures"] == 0 and good["lateness_ms_max"] < 1000,
            f"good device disturbed: {good}")
    h.check(good["polls"] >= RUN_S - 2, f"good device polled {good['polls']} times")
    for k in ("crc_errors", "bad_frames", "timeouts", "retries", "responses"):
        h.check(flaky[k] > 0, f"flaky: {k} not counted: {flaky}")
    # with retries the flaky device still delivers good readings
    h.check(any(m["quality"] == "good" for m in h.points(msgs, "flaky", "u16")), "flaky never read")
    # 38,400 baud: the RTU gap is 1.75 ms; libmodbus alone sends the next request sooner
    h.check(gap["n"] > 20 and gap["min_gap_ms"] >= 1.7, f"inter-frame gap not kept: {gap}")
    print(f"ok: smallest answer-to-request gap {gap['min_gap_ms']:.2f} ms over {gap['n']}; flaky crc {flaky['crc_errors']} bad frames {flaky['bad_frames']} timeouts "
          f"{flaky['timeouts']} retries {flaky['retries']} responses {flaky['responses']}; good "
          f"{good['polls']} polls, lateness max {good['lateness_ms_max']} ms, bad frames {good['bad_frames']}")


if __name__ == "__main__":
    main(sys.argv[1])
