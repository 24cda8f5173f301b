#!/usr/bin/python3
"""The MQTT client checks of test_broker_clients.py against the dataplane itself: the broker
core on the dataplane's own TCP (dataplane/mqtt/mqtt_tcp.c), 198.18.0.1:1883 from the lab's
sensors namespace. Skipped (77) while edgegw-dataplane is built without the MQTT service."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

PORT = 1883


def has_mqtt_service():
    try:
        with open(labtest.dataplane_binary(), "rb") as f:
            return b"mqtt_service_listen" in f.read()
    except OSError:
        return False


def test():
    if not has_mqtt_service():
        log("SKIP: %s has no MQTT service linked in yet" % labtest.dataplane_binary())
        sys.exit(77)
    with labtest.Lab("mq") as lab:
        r = lab.sensors("/usr/bin/python3", os.path.join(HERE, "test_broker_clients.py"),
                        "--target", "%s:%d" % (labtest.GW, PORT),
                        capture_output=True, text=True, timeout=150)
        for line in r.stdout.splitlines():
            log(line)
        if r.returncode != 0:
            log(r.stderr[-2000:])
        check(r.returncode == 0, "every MQTT client check passed against the dataplane")
        check(lab.dataplane_alive(), "dataplane still running")


labtest.main(test)
