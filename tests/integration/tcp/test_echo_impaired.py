#!/usr/bin/python3
"""Echo through an impaired path: what the sensors send crosses the relay with 20 ms delay,
3% loss, 1% duplication and 2% reordering (netem on the sensors' egress, in effect). A transfer
both ways must arrive whole (SHA-256), and the relay must show it did impair the traffic.
Then a smaller transfer with both directions impaired. Sizes: docs/lab.md. (issue 2)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

SENSORS_EGRESS = "delay=20ms,loss=3%,dup=1%,reorder=2%"
SIZE = int(os.environ.get("EGW_IMPAIRED_BYTES", 4 * 1000 * 1000))
SIZE_BOTH = SIZE // 4


def echo(tag, size):
    r = labtest.transfer(7, size, echo=True, timeout_s=90)
    log("%s: %d bytes each way in %.2fs: %.2f MB/s each way" % (tag, size, r["seconds"], r["mb_per_s"]))
    check(r["received"] == size and r["recv_sha"] == r["sent_sha"],
          "%s: all %d bytes echoed, same SHA-256" % (tag, size))


def test():
    with labtest.Lab("ei", impair=SENSORS_EGRESS) as lab:
        r = lab.sensors("ping", "-q", "-c", "20", "-i", "0.05", labtest.GW, capture_output=True, text=True)
        rtt = r.stdout.strip().splitlines()[-1]
        log(rtt)
        check("min/avg" in rtt and float(rtt.split("=")[1].split("/")[0]) >= 20.0,
              "ping RTT includes the 20 ms delay")
        lab.enter_sensors()
        c0 = lab.counters()
        echo("sensors-side impairment", SIZE)
        st = lab.relay_stats()["a2b"]
        log("relay a2b: %s" % st)
        check(st["lost"] > 0 and st["dup"] > 0 and st["reordered"] > 0,
              "the relay lost, duplicated and reordered frames")
        check(0.01 < st["lost"] / st["rx"] < 0.06, "loss rate near 3%% (%.2f%%)" % (100 * st["lost"] / st["rx"]))
        c1 = lab.counters()
        log("dataplane tcp counters: %s" % {k: c1[k] - c0.get(k, 0) for k in c1 if k.startswith("tcp_") and c1[k] != c0.get(k, 0)})
        labtest.check_echo_works("after the impaired transfer")
        check(lab.wait_flows(0, 30) == 0, "the dataplane holds no flow once the connections closed")

    with labtest.Lab("eI", impair=SENSORS_EGRESS, impair_back=SENSORS_EGRESS) as lab:
        lab.enter_sensors()
        echo("both directions impaired", SIZE_BOTH)
        st = lab.relay_stats()["b2a"]
        check(st["lost"] > 0, "the relay also impaired the gateway's frames (b2a lost %d)" % st["lost"])


labtest.main(test)
