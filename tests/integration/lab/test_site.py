#!/usr/bin/python3
"""The whole lab site (tests/lab/lab up without --dataplane-only), as the demo runs it: the
dataplane for the sensors, and the agent polling an RS-485 bus (socat pty, simulated devices
driven by the shipped profiles) and a Modbus TCP gateway, reporting to the stand-in cloud broker
(Mosquitto in the cloud namespace). Checks that every device reports to the cloud with good
quality, that a write command from the cloud lands and is read back, that a read-only point is
refused, and that the agent writes its stats file."""
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

CLOUD = "198.18.1.2"
DEVICES = {"main-meter", "pv-meter", "oven-tc", "hall2-meter"}


def enter_cloud(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)


def test():
    labtest.need_agent()
    with labtest.Lab("st", site=True) as lab:
        st = lab.run("status").stdout
        log(st.strip())
        for p in ("agent", "cloud", "devsim-rtu", "devsim-tcp", "rs485"):
            check("%s: running" % p in st, "%s is running" % p)
        enter_cloud(lab)
        seen, responses, other, lock = {}, [], [], threading.Lock()

        def on_message(c, u, msg):
            with lock:
                if msg.topic == "site/lab/cmd/response":
                    responses.append(json.loads(msg.payload))
                    return
                try:
                    m = json.loads(msg.payload)
                except ValueError:
                    other.append(msg.topic)
                    return
                if isinstance(m, dict) and "device" in m and "point" in m and "quality" in m:
                    seen.setdefault(m["device"], set()).add((m["point"], m["quality"]))
                else:
                    other.append(msg.topic)

        c = mqtt.Client(client_id="site-test", clean_session=True)
        c.on_message = on_message
        c.connect(CLOUD, 1883, keepalive=30)
        c.subscribe("site/lab/#", qos=1)
        c.loop_start()
        labtest.wait_for(lambda: DEVICES <= set(seen), 20)
        with lock:
            log("devices reporting: %s; other topics: %s" % ({d: len(p) for d, p in seen.items()},
                                                            sorted(set(other))[:5]))
            check(DEVICES <= set(seen), "all four devices report to the cloud (%s)" % sorted(seen))
            bad = [(d, p) for d, pts in seen.items() for p in pts if p[1] != "good"]
        check(not bad, "every reading has good quality (not: %s)" % bad[:3])
        c.publish("site/lab/cmd", json.dumps({"id": "w1", "device": "oven-tc", "point": "target_setpoint",
                                              "value": 185.5}), qos=1)
        c.publish("site/lab/cmd", json.dumps({"id": "w2", "device": "oven-tc", "point": "process_value",
                                              "value": 1}), qos=1)
        labtest.wait_for(lambda: len(responses) >= 2, 15)
        c.loop_stop()
        c.disconnect()
        by_id = {r.get("id"): r for r in responses}
        log("responses: %s" % responses)
        check(by_id.get("w1", {}).get("status") == "ok" and by_id["w1"].get("value") == 185.5,
              "a setpoint written from the cloud lands and reads back")
        check(by_id.get("w2", {}).get("status") == "error" and "read-only" in by_id["w2"].get("reason", ""),
              "a write to a read-only point is refused with its reason")
        stats = lab.runtime("agent-stats.json")
        labtest.wait_for(lambda: os.path.exists(stats), 10)
        check(os.path.exists(stats) and json.load(open(stats)), "the agent writes its stats file")
        check(lab.dataplane_alive(), "dataplane still running beside the agent")


if __name__ == "__main__":
    labtest.main(test)
