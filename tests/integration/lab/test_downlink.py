#!/usr/bin/python3
"""Downlink (issue 15), in the whole lab site: a cloud client publishes on site/lab/cmd/plant/...
at the lab's cloud Mosquitto; the agent (subscribed to the lab's downlink filter
site/{site}/cmd/plant/#) hands each message over the channel (lib/dpchan, a DOWN record) to the
dataplane, whose broker publishes it as cmd/plant/... to the sensor subscribed to cmd/plant/#.

Ready when a QoS 0 probe gets through (the agent has connected and subscribed); then 10 QoS 1 and
10 QoS 2 messages, each with an id: every one reaches the sensor at its QoS, each QoS 2 one
exactly once (checked after a QoS 1 marker published last has arrived).

Then either side restarting: while the cloud publishes a stream of QoS 1 and 2 messages, the
dataplane is SIGKILLed (lab kill dataplane), then the agent (lab kill agent); a sensor with a
persistent session (kept by the broker's state journal) gets every one, each QoS 2 one exactly
once: a DOWN record the dying dataplane had not answered is sent again to the next one, and the
cloud's resend of a QoS 2 message the killed agent had answered PUBREC is not delivered again
(its packet id was on disk).

Through the same kills, a stream of QoS 2 Modbus commands (setpoints for oven-tc on
site/lab/cmd): each is on disk in the agent's command spool before the cloud has its PUBREC, so
none acknowledged is lost with the killed agent (the next one runs what it left); every one is
answered on site/lab/cmd/response, but for at most one whose answer was in flight (responses
live in memory), and none more than twice (at least once on the bus only across the kill)."""
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
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..")


def make_config(path):
    """The lab's config as is (its downlink rule maps site/lab/cmd/plant/# to cmd/plant/#), with
    the profiles found from a copy in /tmp."""
    with open(os.path.join(ROOT, "configs/lab/gateway.yaml")) as f:
        text = f.read()
    check("site/{site}/cmd/plant/#" in text, "configs/lab/gateway.yaml has the downlink rule")
    text = text.replace("profiles_dir: ../profiles",
                        "profiles_dir: %s" % os.path.realpath(os.path.join(ROOT, "configs/profiles")))
    with open(path, "w") as f:
        f.write(text)


class Sensor:
    """A sensor on the dataplane's broker subscribed to cmd/plant/# at QoS 2: what it received,
    by (topic, payload), with the QoS of each delivery."""

    def __init__(self, client_id="dl-sensor", clean=True):
        self.lock = threading.Lock()
        self.got = {}
        self.subscribed = threading.Event()
        self.c = mqtt.Client(client_id=client_id, clean_session=clean, protocol=mqtt.MQTTv311)
        self.c.reconnect_delay_set(min_delay=1, max_delay=2)
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect(labtest.GW, 1883, keepalive=30)
        self.c.subscribe("cmd/plant/#", qos=2)
        self.c.loop_start()

    def on_message(self, c, u, msg):
        with self.lock:
            self.got.setdefault((msg.topic, msg.payload.decode(errors="replace")), []).append(msg.qos)

    def qos_of(self, topic, payload):
        with self.lock:
            return list(self.got.get((topic, payload), []))

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def test():
    labtest.run_site("dl", run, make_config)


def run(lab):
    lab.enter_sensors()
    sensor = Sensor()
    check(sensor.subscribed.wait(10), "the sensor subscribed to cmd/plant/# on the dataplane's broker")
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = mqtt.Client(client_id="dl-cloud", clean_session=True, protocol=mqtt.MQTTv311)
    cloud.connect(CLOUD, 1883, keepalive=30)
    cloud.loop_start()

    # ready: the agent is connected to the cloud and subscribed once a probe gets through
    probes = [0]

    def probe_through():
        probes[0] += 1
        cloud.publish("site/lab/cmd/plant/probe", "probe", qos=0)
        return sensor.qos_of("cmd/plant/probe", "probe")
    labtest.wait_for(probe_through, 30, interval_s=0.5)
    check(sensor.qos_of("cmd/plant/probe", "probe"),
          "a QoS 0 probe from the cloud reached the sensor (after %d tries)" % probes[0])

    sent = []
    for qos in (1, 2):
        for i in range(10):
            topic, payload = "site/lab/cmd/plant/valve%d" % (i % 3), "q%d-id-%d" % (qos, i)
            sent.append((topic[len("site/lab/"):], payload, qos))
            cloud.publish(topic, payload, qos=qos).wait_for_publish()
    marker = cloud.publish("site/lab/cmd/plant/marker", "last", qos=1)
    marker.wait_for_publish()
    labtest.wait_for(lambda: sensor.qos_of("cmd/plant/marker", "last") and
                     all(sensor.qos_of(t, p) for t, p, _ in sent), 15)
    for t, p, qos in sent:
        got = sensor.qos_of(t, p)
        check(got, "%s on %s (QoS %d) reached the sensor" % (p, t, qos))
        if qos == 2:
            check(got == [2], "%s arrived exactly once at QoS 2 (deliveries: %s)" % (p, got))
        else:
            check(got and min(got) >= 1, "%s arrived at QoS %s" % (p, got))
    c = labtest.dpstat.query("/edgegw/dpchan", lab.prefix)
    log("dataplane channel: DOWN_RX %d, DOWN_NO_SUBSCRIBER %d, DOWN_REFUSED %d" %
        (c["DOWN_RX"], c["DOWN_NO_SUBSCRIBER"], c["DOWN_REFUSED"]))
    check(c["DOWN_RX"] >= len(sent) + 2 and c["DOWN_REFUSED"] == 0,
          "the dataplane received them as DOWN records, none refused")
    restarts(lab, cloud)
    cloud.loop_stop()
    cloud.disconnect()
    labtest.setns_path(labtest.HOME_NETNS)
    sensor.stop()


def restarts(lab, cloud):
    """The dataplane, then the agent, SIGKILLed while the cloud publishes."""
    labtest.setns_path("/run/netns/%ssensors" % lab.prefix)
    keeper = Sensor("dl-keeper", clean=False)
    check(keeper.subscribed.wait(10), "a sensor with a persistent session subscribed")
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    sent, done = [], threading.Event()

    def stream():
        i = 0
        while not done.is_set() or i < 20:
            qos = 1 + i % 2
            topic, payload = "site/lab/cmd/plant/k%d" % (i % 4), "k-q%d-id-%d" % (qos, i)
            cloud.publish(topic, payload, qos=qos).wait_for_publish()
            sent.append((topic[len("site/lab/"):], payload, qos))
            i += 1
            time.sleep(0.02)
    t = threading.Thread(target=stream)
    t.start()
    answers, alock, cmds = {}, threading.Lock(), []

    def on_message(c, u, msg):
        if msg.topic == "site/lab/cmd/response":
            r = json.loads(msg.payload)
            with alock:
                answers.setdefault(r.get("id"), []).append(r)
    cloud.on_message = on_message
    cloud.subscribe("site/lab/cmd/response", qos=1)

    def commands():
        i = 0
        while not done.is_set():
            cid = "k-cmd-%d" % i
            cloud.publish("site/lab/cmd", json.dumps({"id": cid, "device": "oven-tc",
                                                      "point": "target_setpoint",
                                                      "value": 100 + (i % 100) * 0.5}),
                          qos=2).wait_for_publish()
            cmds.append(cid)
            i += 1
            time.sleep(0.05)
    tc = threading.Thread(target=commands)
    tc.start()
    labtest.wait_for(lambda: len(sent) >= 20, 10)
    old = lab.dataplane_pid()
    lab.run("kill", "dataplane")
    check(lab.dataplane_pid() != old, "the supervisor restarted the dataplane")
    n_dp = len(sent)
    labtest.wait_for(lambda: len(sent) >= n_dp + 20, 20)
    lab.run("kill", "agent")  # returns once the new agent is connected
    n_agent = len(sent)
    labtest.wait_for(lambda: len(sent) >= n_agent + 20, 20)
    done.set()
    t.join(30)
    tc.join(30)
    marker = cloud.publish("site/lab/cmd/plant/k-marker", "last", qos=1)
    marker.wait_for_publish()
    labtest.wait_for(lambda: keeper.qos_of("cmd/plant/k-marker", "last") and
                     all(keeper.qos_of(t, p) for t, p, _ in sent), 60)
    log("restarts: %d messages (%d before the dataplane kill, %d before the agent kill)" %
        (len(sent), n_dp, n_agent))
    missing = [p for t, p, _ in sent if not keeper.qos_of(t, p)]
    check(not missing, "every message of the stream reached the sensor across both kills "
          "(%d of %d; missing: %s)" % (len(sent) - len(missing), len(sent), missing[:5]))
    twice = [(p, keeper.qos_of(t, p)) for t, p, qos in sent if qos == 2 and
             keeper.qos_of(t, p) != [2]]
    check(not twice, "every QoS 2 message arrived exactly once (not so: %s)" % twice[:5])
    labtest.wait_for(lambda: sum(1 for c in cmds if c not in answers) <= 1, 30)
    with alock:
        unanswered = [c for c in cmds if c not in answers]
        many = [(c, len(answers[c])) for c in cmds if len(answers.get(c, [])) > 2]
        twice_c = sum(1 for c in cmds if len(answers.get(c, [])) == 2)
        bad = [(c, a[-1].get("reason")) for c, a in answers.items() if a[-1].get("status") != "ok"]
    log("commands: %d QoS 2 setpoints through the kills, %d unanswered, %d answered twice" %
        (len(cmds), len(unanswered), twice_c))
    check(len(cmds) >= 20 and len(unanswered) <= 1,
          "every Modbus command through the agent kill was run and answered (unanswered: %s)" %
          unanswered[:5])
    check(not many, "no command answered more than twice (%s)" % many[:5])
    check(not bad, "every command answered ok (%s)" % bad[:5])
    keeper.stop()


if __name__ == "__main__":
    labtest.main(test)
