#!/usr/bin/python3
"""The broker's state across a SIGKILL of the dataplane (issue 15, broker state across restarts):
in the lab (its config keeps the broker's state in the lab's run folder), a persistent session
with a subscription goes offline, a publisher gets PUBACKs for QoS 1 messages queued for it and
sets a retained message; `lab kill dataplane` SIGKILLs the dataplane and its supervisor starts it
again. The session's client then reconnects with clean session 0: session present 1, the queued
messages arrive, each once, and its subscription still matches new messages; a new subscriber
gets the retained message. Run with one worker, then with two (the session may come back on the
other lcore, which claims it from the one that recovered it)."""
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../lab"))
import labtest  # noqa: E402
from labtest import check, log, wait_for  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

# Not under plant/#: the lab's uplink rules send that up (held with no agent in this lab).
TOPIC = "local/state"


class Client:
    def __init__(self, cid, clean):
        self.got, self.present, self.lock = [], None, threading.Lock()
        self.connected = threading.Event()
        self.c = mqtt.Client(client_id=cid, clean_session=clean, protocol=mqtt.MQTTv311)
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message

    def _on_connect(self, c, u, flags, rc):
        self.present = flags.get("session present")
        if rc == 0:
            self.connected.set()

    def _on_message(self, c, u, m):
        with self.lock:
            self.got.append((m.topic, m.payload.decode(), m.retain))

    def start(self):
        self.c.connect(labtest.GW, 1883, keepalive=60)
        self.c.loop_start()
        check(self.connected.wait(15), "connected")
        return self

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def round_trip(lab, workers):
    lab.enter_sensors()
    sub = Client("state-sub", False).start()
    r = sub.c.subscribe(TOPIC + "/#", qos=1)
    check(r[0] == 0, "subscribed")
    check(wait_for(lambda: broker_sum(lab, "SESSION_CREATED") >= 1, 10), "session created")
    sub.stop()
    pub = Client("state-pub", True).start()
    msgs = [pub.c.publish(TOPIC + "/q", "id-%d" % i, qos=1) for i in range(5)]
    ret = pub.c.publish(TOPIC + "/retained", "kept", qos=1, retain=True)
    check(wait_for(lambda: all(m.is_published() for m in msgs + [ret]), 15),
          "the publisher has its PUBACKs")
    pub.stop()
    old = lab.dataplane_pid()
    lab.run("kill", "dataplane", timeout=120)
    check(lab.dataplane_pid() != old, "the supervisor started a new dataplane")
    rec = broker_sum(lab, "PERSIST_RECOVERED")
    log("%d workers: %d state records recovered" % (workers, rec))
    check(rec > 0, "the new dataplane recovered the broker's state")
    sub = Client("state-sub", False).start()
    check(sub.present == 1, "session present 1 after the SIGKILL (got %r)" % sub.present)
    want = [(TOPIC + "/q", "id-%d" % i, False) for i in range(5)]
    want.append((TOPIC + "/retained", "kept", False))
    check(wait_for(lambda: len(sub.got) >= len(want), 15),
          "the queued messages arrive (%r)" % sub.got)
    check(sorted(sub.got) == sorted(want), "each once (%r)" % sub.got)
    pub = Client("state-pub2", True).start()
    m = pub.c.publish(TOPIC + "/after", "new", qos=1)
    check(wait_for(lambda: (TOPIC + "/after", "new", False) in sub.got, 10),
          "the recovered subscription matches a new message")
    # the delivery to the subscriber and the PUBACK to the publisher leave together; the
    # publisher's client may read its PUBACK after the subscriber's read its message
    check(wait_for(m.is_published, 10), "PUBACK for it")
    fresh = Client("state-fresh", True).start()
    fresh.c.subscribe(TOPIC + "/retained", qos=1)
    check(wait_for(lambda: (TOPIC + "/retained", "kept", True) in fresh.got, 10),
          "a new subscriber gets the retained message set before the SIGKILL")
    for c in (sub, pub, fresh):
        c.stop()
    check(lab.dataplane_alive(), "dataplane still running")


def broker_sum(lab, name):
    return labtest.dpstat.query("/edgegw/broker", lab.prefix)[name]


def test():
    with labtest.Lab("bs") as lab:
        round_trip(lab, 1)
    cfg = labtest.two_worker_config()
    try:
        with labtest.Lab("b2", config=cfg) as lab:
            round_trip(lab, 2)
    finally:
        os.unlink(cfg)


labtest.main(test)
