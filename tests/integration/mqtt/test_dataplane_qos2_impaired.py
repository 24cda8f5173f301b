#!/usr/bin/python3
"""QoS 2 exactly once through the dataplane's broker on an impaired link (issue 3): paho-mqtt
publishers (3.1.1 and 5.0) and a QoS 2 subscriber in the lab's sensors namespace, with the
sensors' side of the link delayed, lossy, duplicating and reordering (the impairment relay:
this kernel has no netem) and some loss back. Every message must arrive exactly once."""
import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

PORT = 1883
PER_PUBLISHER = int(os.environ.get("EGW_QOS2_MSGS", 1000))
SENSORS_EGRESS = "delay=20ms,loss=3%,dup=1%,reorder=2%"
GATEWAY_EGRESS = "loss=2%,dup=1%,reorder=2%"


def client(cid, protocol):
    if protocol == mqtt.MQTTv5:
        return mqtt.Client(client_id=cid, protocol=protocol)
    return mqtt.Client(client_id=cid, clean_session=True, protocol=protocol)


def test():
    with labtest.Lab("q2", impair=SENSORS_EGRESS, impair_back=GATEWAY_EGRESS) as lab:
        lab.enter_sensors()
        got = collections.Counter()
        lock = threading.Lock()
        subscribed = threading.Event()

        def on_message(c, u, msg):
            with lock:
                got[(msg.topic, msg.payload)] += 1

        sub = client("q2-sub", mqtt.MQTTv311)
        sub.on_message = on_message
        sub.on_subscribe = lambda *a: subscribed.set()
        sub.connect(labtest.GW, PORT, keepalive=30)
        sub.loop_start()
        sub.subscribe("q2/#", qos=2)
        check(subscribed.wait(30), "subscriber got its SUBACK through the impaired link")

        pubs, infos, want = [], [], collections.Counter()
        for name, proto in (("a", mqtt.MQTTv311), ("b", mqtt.MQTTv5)):
            p = client("q2-pub-" + name, proto)
            p.max_inflight_messages_set(20)
            p.connect(labtest.GW, PORT, keepalive=30)
            p.loop_start()
            pubs.append((name, p))
        t0 = time.time()
        for i in range(PER_PUBLISHER):
            for name, p in pubs:
                topic, payload = "q2/%s" % name, ("%s:%06d" % (name, i)).encode()
                want[(topic, payload)] += 1
                infos.append(p.publish(topic, payload, qos=2))
        for info in infos:
            info.wait_for_publish(timeout=max(1.0, 120 - (time.time() - t0)))
        completed = sum(1 for i in infos if i.is_published())
        check(completed == len(infos), "every QoS 2 publish completed its PUBREC/PUBREL/PUBCOMP "
              "flow (%d of %d)" % (completed, len(infos)))
        labtest.wait_for(lambda: sum(got.values()) >= len(want), 60)
        time.sleep(1.0)  # a late duplicate would show up now
        elapsed = time.time() - t0
        with lock:
            missing = [k for k in want if got[k] == 0]
            dups = [k for k, n in got.items() if n > 1]
            extra = [k for k in got if k not in want]
        log("%d messages in %.1fs; missing %d, duplicated %d, unexpected %d"
            % (len(want), elapsed, len(missing), len(dups), len(extra)))
        check(not missing, "no message lost (first missing: %s)" % (missing[:3],))
        check(not dups, "no message delivered twice (first: %s)" % (dups[:3],))
        check(not extra, "nothing delivered that was not published")
        for _, p in pubs:
            p.disconnect()
            p.loop_stop()
        sub.disconnect()
        sub.loop_stop()
        a2b, b2a = lab.relay_stats()["a2b"], lab.relay_stats()["b2a"]
        log("relay a2b %s; b2a %s" % (a2b, b2a))
        check(a2b["lost"] > 0 and b2a["lost"] > 0, "the relay did lose frames both ways")
        check(lab.dataplane_alive(), "dataplane still running")


if __name__ == "__main__":
    labtest.main(test)
