#!/usr/bin/python3
"""10,000 concurrent MQTT sessions on the dataplane's broker (issue 3), from edgegw-sensorsim in
the lab's sensors namespace: all connect (the simulator counts any failure), each publishes
QoS 1 at a low rate while all are held, one QoS 1 subscriber receives every message, and the
broker's counters agree (10,000+ connected, nothing dropped on a limit)."""
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import dpstat  # noqa: E402
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

SESSIONS = int(os.environ.get("EGW_SESSIONS", 10000))


def sensorsim():
    return os.path.join(os.path.dirname(labtest.dataplane_binary()), "../tools/sensorsim/edgegw-sensorsim")


def test():
    if not os.path.exists(sensorsim()):
        log("SKIP: no edgegw-sensorsim in this build")
        sys.exit(77)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SESSIONS + 1000
    if hard != resource.RLIM_INFINITY and hard < want:
        log("SKIP: the open-files limit (%d) is below %d sessions" % (hard, SESSIONS))
        sys.exit(77)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    with labtest.Lab("tk") as lab:
        b0 = dpstat.query("/edgegw/broker", lab.prefix)
        r = lab.sensors(sensorsim(), "--host", labtest.GW, "--port", "1883", "--json", "--quiet",
                        "--sessions", str(SESSIONS), "--rate", "0.1", "--qos", "1", "--payload", "16",
                        "--subscribers", "1", "--sub-filter", "site/#", "--sub-qos", "1",
                        "--duration", "5", "--drain", "20", "--connect-timeout", "60", "--keepalive", "120",
                        capture_output=True, text=True, timeout=150)
        check(r.returncode == 0 and r.stdout.strip(), "sensorsim ran (rc %d): %s" % (r.returncode, r.stderr[-500:]))
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        log("connected %d in %.2fs (%d/s), published %s acked %s delivered %s, errors %s"
            % (rep["connected"], rep["connect_s"], rep["connects_per_s"], rep["published"],
               rep["acked"], rep["delivered"], rep["errors"]))
        check(rep["connected"] == SESSIONS + 1 and rep["connect_failures"] == 0,
              "all %d sessions (and the subscriber) connected at once" % SESSIONS)
        check(rep["errors_total"] == 0, "no client-side error")
        check(rep["published"][1] > SESSIONS / 2, "the sessions published while all were held")
        check(rep["acked"][1] == rep["published"][1], "every QoS 1 publish was acknowledged")
        check(rep["delivered"][1] == rep["published"][1], "the subscriber got every message")
        b1 = dpstat.query("/edgegw/broker", lab.prefix)
        delta = {k: b1[k] - b0.get(k, 0) for k in b1}
        check(delta["CONNECTED"] >= SESSIONS + 1, "the broker counted %d connects" % delta["CONNECTED"])
        limits = {k: v for k, v in delta.items() if k.startswith("LIMIT_") and v}
        check(not limits, "no broker limit hit (%s)" % limits)
        check(lab.dataplane_alive(), "dataplane still running")


if __name__ == "__main__":
    labtest.main(test)
