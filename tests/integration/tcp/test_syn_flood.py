#!/usr/bin/python3
"""SYN flood: hping3 sends bounded bursts of SYNs to echo from a spoofed sensor-segment address
that never answers (198.18.0.77, source port incrementing), far more than the dataplane's
half-open limit. Meanwhile a legitimate client keeps connecting and exchanging data; the
dataplane must fall back to SYN cookies (cookie counters rise) and stay responsive. (issue 2)"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, counter_delta, counters_matching, log  # noqa: E402

FLOOD = int(os.environ.get("EGW_FLOOD_SYNS", 30000))
SPOOFED = ["198.18.0.77", "198.18.0.78"]   # on the segment, owned by nobody: no RST comes back


def test():
    with labtest.Lab("sf") as lab:
        c0 = lab.counters()
        floods = [lab.sensors_popen("hping3", "-q", "-S", "-p", "7", "-a", src, "-c", str(FLOOD // len(SPOOFED)),
                              "-i", "u100", labtest.GW, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                  for src in SPOOFED]
        lab.enter_sensors()
        # the flood has reached the dataplane (its counters say so), not "half a second later"
        deadline = time.monotonic() + 30
        while counter_delta(c0, lab.counters(), "tcp_rx_segs") < 100:
            check(time.monotonic() < deadline, "the flood reaches the dataplane")
            time.sleep(0.05)
        ok = fail = 0
        t0 = time.monotonic()
        while any(p.poll() is None for p in floods) and time.monotonic() - t0 < 60:
            try:
                msg = os.urandom(200)
                with labtest.connect(7, timeout_s=5) as s:
                    if labtest.echo_once(s, msg) != msg:
                        raise labtest.CheckFailed("echo mismatch")
                ok += 1
            except (OSError, labtest.CheckFailed) as e:
                log("legitimate client failed: %r" % e)
                fail += 1
            time.sleep(0.05)
        for p in floods:
            p.wait(30)
        log("flood of %d SYNs over %.1fs; legitimate exchanges: %d ok, %d failed" % (FLOOD, time.monotonic() - t0, ok, fail))
        c1 = lab.counters()
        cookies = counters_matching(c1, "cookie") - counters_matching(c0, "cookie")
        log("cookie counters: %s" % {k: v - c0.get(k, 0) for k, v in c1.items() if "cookie" in k})
        check(counter_delta(c0, c1, "tcp_rx_segs") >= FLOOD // 2, "the dataplane received the flood (tcp_rx_segs +%d)" % counter_delta(c0, c1, "tcp_rx_segs"))
        check(cookies > 0, "SYN cookies were used (cookie counters +%d)" % cookies)
        check("tcp_cookie_valid" in c1, "the dataplane exports tcp_cookie_valid")
        # legitimate handshakes during the flood must complete from cookies (was checked only
        # when the counter happened to be exported)
        check(counter_delta(c0, c1, "tcp_cookie_valid") >= 1,
              "legitimate handshakes completed from cookies (tcp_cookie_valid +%d)" % counter_delta(c0, c1, "tcp_cookie_valid"))
        check(ok >= 3 and fail <= ok // 10, "the legitimate client kept connecting during the flood (%d ok, %d failed)" % (ok, fail))
        labtest.check_echo_works("after the flood")
        check(lab.dataplane_alive(), "dataplane still running")


labtest.main(test)
