#!/usr/bin/python3
"""The MQTT client checks of test_broker_clients.py against the dataplane itself: the broker
core on the dataplane's own TCP (dataplane/svc/mqtt_tcp.c), 198.18.0.1:1883 from the lab's
sensors namespace; then again with two workers, where sessions, subscriptions and shared
groups cross lcores (--multi-lcore: sessions resume on the other lcore, session present 1)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

PORT = 1883


def run_clients(lab, tag, *extra):
    r = lab.sensors("/usr/bin/python3", os.path.join(HERE, "test_broker_clients.py"),
                    "--target", "%s:%d" % (labtest.GW, PORT), *extra,
                    capture_output=True, text=True, timeout=150)
    for line in r.stdout.splitlines():
        log("%s: %s" % (tag, line))
    if r.returncode != 0:
        log(r.stderr[-2000:])
    check(r.returncode == 0, "%s: every MQTT client check passed against the dataplane" % tag)
    check(lab.dataplane_alive(), "%s: dataplane still running" % tag)


def check_resumed_across(lab):
    """The reconnect rounds did resume sessions on the other lcore, whole (before the
    CONNACK), and no claim had to wait for its timeout."""
    c = labtest.dpstat.query("/edgegw/broker", lab.prefix)
    log("two workers: sessions moved %d, restored %d, merged late %d, claim waits %d, "
        "claim timeouts %d" % (c["XLCORE_SESSION_MOVED"], c["XLCORE_SESSION_RESTORED"],
                               c["XLCORE_SESSION_MERGED"], c["XLCORE_CLAIM_WAIT"],
                               c["XLCORE_CLAIM_TIMEOUT"]))
    log("two workers: posted %d, skipped (no interest) %d, interest summaries %d"
        % (c["XLCORE_TX"], c["XLCORE_SKIPPED"], c["XLCORE_INTEREST_TX"]))
    check(c["XLCORE_SESSION_RESTORED"] > 0, "two workers: sessions resumed on the other lcore")
    check(c["XLCORE_SESSION_RESTORED"] == c["XLCORE_SESSION_MOVED"],
          "two workers: every moved session was restored before its CONNACK")
    check(c["XLCORE_CLAIM_TIMEOUT"] == 0 and c["XLCORE_SESSION_LOST"] == 0,
          "two workers: no claim timed out, no moved session lost")


def test():
    with labtest.Lab("mq") as lab:
        run_clients(lab, "one worker")
    cfg = labtest.two_worker_config()
    try:
        with labtest.Lab("m2", config=cfg) as lab:
            run_clients(lab, "two workers", "--multi-lcore")
            check_resumed_across(lab)
    finally:
        os.unlink(cfg)


labtest.main(test)
