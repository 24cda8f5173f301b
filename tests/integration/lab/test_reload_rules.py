#!/usr/bin/python3
"""Uplink rules changed live (issue 18, "Reload"), in the whole lab site: the running
gateway.yaml's plant/# rule is replaced by a valve/# one and both programs get SIGHUP. Neither
restarts (same pids), and:

(a) before: a sensor's plant/... message goes up to the cloud, a valve/... one does not; a cloud
    message on site/lab/cmd/plant/... reaches the sensor (the downlink rule), one on
    site/lab/cmd/valve/... does not;
(b) a message taken under the old rule and not yet acknowledged (the agent is stopped, SIGSTOP,
    so its durability answer waits) when the rule is removed keeps its promise: after both
    reloads its PUBACK comes and it reaches the cloud under the old rule's topic;
(c) after: valve/... goes up, plant/... no longer does (acknowledged at once, stays local); the
    downlink rule, replaced too, brings site/lab/cmd/valve/... down (the agent subscribed the new
    filter at the cloud without reconnecting, and unsubscribed the old one) and no longer
    site/lab/cmd/plant/...;
(d) a config with a bad rule is refused by both (the reason logged) and the running rules stay:
    valve/... still goes up.
Every QoS 1 message published gets its PUBACK; every one published under a rule that sends it up
reaches the cloud."""
import os
import signal
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

CLOUD = "198.18.1.2"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..")
PLANT_RULE = '- {match: "plant/#", topic: "site/{site}/{topic}", qos: keep, class: normal, durable: true}'
VALVE_RULE = '- {match: "valve/#", topic: "site/{site}/{topic}", qos: keep, class: normal, durable: true}'
DOWN_RULE = '- {match: "site/{site}/cmd/plant/#", strip: "site/{site}/", max_qos: 2}'
DOWN_RULE_NEW = '- {match: "site/{site}/cmd/valve/#", strip: "site/{site}/", max_qos: 2}'
BAD_RULE = '- {match: "valve/#/x", topic: "site/{site}/{topic}", class: urgent}'


def make_config(path):
    """The lab's config (plant/# goes up durably as site/lab/plant/#; the dataplane's channel to
    the agent on), with a short reconnect bound, from a copy in /tmp."""
    with open(os.path.join(ROOT, "configs/lab/gateway.yaml")) as f:
        text = f.read()
    check(PLANT_RULE in text, "configs/lab/gateway.yaml: the plant/# rule is there")
    check(DOWN_RULE in text, "configs/lab/gateway.yaml: the cmd/plant/# downlink rule is there")
    old = "channel: {path: /run/edgegw-lab/egw-/dpchan.sock}"
    check(old in text, "configs/lab/gateway.yaml: the channel to the agent is on")
    text = text.replace(old, old[:-1] + ", reconnect_max: 500ms}")
    with open(path, "w") as f:
        f.write(text)


def rewrite(lab, *pairs):
    """Change the running config (the lab's copy both programs read again on SIGHUP): each
    (old, new) of pairs."""
    path = lab.runtime("gateway.yaml")
    with open(path) as f:
        text = f.read()
    for old, new in pairs:
        check(old in text, "the running config holds %s" % old)
        text = text.replace(old, new)
    with open(path + ".new", "w") as f:
        f.write(text)
    os.rename(path + ".new", path)


class Cloud:
    """A subscriber on the cloud broker: the payloads received under site/lab/{plant,valve}/#."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.c = mqtt.Client(client_id="rr-cloud", clean_session=True)
        self.c.on_message = self.on_message
        self.c.connect(CLOUD, 1883, keepalive=30)
        self.c.subscribe([("site/lab/plant/#", 1), ("site/lab/valve/#", 1)])
        self.c.loop_start()

    def on_message(self, c, u, msg):
        with self.lock:
            self.got[msg.payload.decode(errors="replace")] = msg.topic

    def topic(self, payload):
        with self.lock:
            return self.got.get(payload)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class Sensor:
    """The sensor on the dataplane's broker, subscribed to cmd/# (the downlink's local topics)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.subscribed = threading.Event()
        self.c = mqtt.Client(client_id="rr-sensor", clean_session=False, protocol=mqtt.MQTTv311)
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect(labtest.GW, 1883, keepalive=60)
        self.c.loop_start()
        self.c.subscribe("cmd/#", qos=1)

    def on_message(self, c, u, msg):
        with self.lock:
            self.got[msg.payload.decode(errors="replace")] = msg.topic

    def topic(self, payload):
        with self.lock:
            return self.got.get(payload)

    def publish(self, topic, payload, qos):
        return self.c.publish(topic, payload, qos=qos)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def down_through(cloud, sensor, sub, tag):
    """Cloud messages on site/lab/cmd/<sub>/x until one reaches the sensor (the agent's filter
    for it is subscribed at the cloud once one does): its local topic, None when none came."""
    n = [0]

    def one():
        n[0] += 1
        cloud.c.publish("site/lab/cmd/%s/x" % sub, "%s-%d" % (tag, n[0]), qos=1)
        return any(sensor.topic("%s-%d" % (tag, i)) for i in range(1, n[0] + 1))
    labtest.wait_for(one, 20, interval_s=0.5)
    return next((sensor.topic("%s-%d" % (tag, i)) for i in range(1, n[0] + 1)
                 if sensor.topic("%s-%d" % (tag, i))), None)


def pids(lab):
    with open(lab.runtime("agent.pid")) as f:
        return lab.dataplane_pid(), int(f.read())


def test():
    labtest.run_site("rr", run, make_config, on_fail=lambda lab: lab.dump_log())


def publish_all(sensor, msgs, what):
    """QoS 1 messages [(topic, payload)]; every PUBACK must come."""
    infos = [sensor.publish(t, p, qos=1) for t, p in msgs]
    labtest.wait_for(lambda: all(i.is_published() for i in infos), 30)
    check(all(i.is_published() for i in infos), "%s: every PUBACK came" % what)


def reach(cloud, payloads, what):
    labtest.wait_for(lambda: all(cloud.topic(p) for p in payloads), 30)
    missing = [p for p in payloads if not cloud.topic(p)]
    check(not missing, "%s: reached the cloud (missing %s)" % (what, missing[:5]))


def run(lab):
    dp_log, agent_log = lab.runtime("dataplane.log"), lab.runtime("agent.log")
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    sensor = Sensor()
    check(sensor.subscribed.wait(10), "the sensor subscribed to cmd/# on the dataplane's broker")
    before = pids(lab)

    # (a) before: plant/# goes up, valve/# stays local; the marker, sent last, arrives last
    n = 10
    publish_all(sensor, [m for i in range(n) for m in (("plant/r/%d" % i, "a-plant-%d" % i),
                                                       ("valve/r/%d" % i, "a-valve-%d" % i))]
                + [("plant/r/end", "a-end")], "(a)")
    reach(cloud, ["a-plant-%d" % i for i in range(n)] + ["a-end"], "(a) plant/...")
    check(cloud.topic("a-plant-0") == "site/lab/plant/r/0", "(a) under the plant rule's topic")
    check(not any(cloud.topic("a-valve-%d" % i) for i in range(n)),
          "(a) no valve/... message reached the cloud")
    cloud.c.publish("site/lab/cmd/valve/x", "a-down-valve", qos=1)
    check(down_through(cloud, sensor, "plant", "a-down-plant") == "cmd/plant/x",
          "(a) a cloud message on site/lab/cmd/plant/x reached the sensor as cmd/plant/x")
    check(not sensor.topic("a-down-valve"), "(a) site/lab/cmd/valve/x did not come down")

    # (b) a message waiting for its durability answer (the agent stopped) when its rule goes
    os.kill(before[1], signal.SIGSTOP)
    try:
        deferred = labtest.dpstat.query("/edgegw/broker", lab.prefix)["UPLINK_DEFERRED"]
        waiting = sensor.publish("plant/r/w", "b-waiting", qos=1)
        labtest.wait_for(lambda: labtest.dpstat.query("/edgegw/broker", lab.prefix)
                         ["UPLINK_DEFERRED"] > deferred, 10)
        check(not waiting.is_published(), "(b) no PUBACK while the agent is stopped")
        rewrite(lab, (PLANT_RULE, VALVE_RULE), (DOWN_RULE, DOWN_RULE_NEW))
        off_dp, off_agent = labtest.log_size(dp_log), labtest.log_size(agent_log)
        os.kill(before[0], signal.SIGHUP)
        line = labtest.wait_log(dp_log, "reload: uplink rules applied on every worker", off_dp)
        check(line is not None, "(b) the dataplane applied the new rules live")
        log("(b) dataplane: %s" % line.strip())
        os.kill(before[1], signal.SIGHUP)
    finally:
        os.kill(before[1], signal.SIGCONT)
    line = labtest.wait_log(agent_log, "reload: uplink rules applied", off_agent)
    check(line is not None, "(b) the agent applied the new rules live")
    log("(b) agent: %s" % line.strip())
    labtest.wait_for(waiting.is_published, 30)
    check(waiting.is_published(), "(b) the waiting message got its PUBACK after the rule went")
    reach(cloud, ["b-waiting"], "(b) the message taken under the removed rule")
    check(cloud.topic("b-waiting") == "site/lab/plant/r/w", "(b) under the old rule's topic")

    # (c) after: valve/# goes up, plant/# stays local
    publish_all(sensor, [m for i in range(n) for m in (("plant/r/%d" % i, "c-plant-%d" % i),
                                                       ("valve/r/%d" % i, "c-valve-%d" % i))]
                + [("valve/r/end", "c-end")], "(c)")
    reach(cloud, ["c-valve-%d" % i for i in range(n)] + ["c-end"], "(c) valve/...")
    check(cloud.topic("c-valve-0") == "site/lab/valve/r/0", "(c) under the valve rule's topic")
    check(not any(cloud.topic("c-plant-%d" % i) for i in range(n)),
          "(c) no plant/... message reached the cloud any more")
    check(down_through(cloud, sensor, "valve", "c-down-valve") == "cmd/valve/x",
          "(c) a cloud message on site/lab/cmd/valve/x reached the sensor as cmd/valve/x")
    cloud.c.publish("site/lab/cmd/plant/x", "c-down-plant", qos=1)
    check(down_through(cloud, sensor, "valve", "c-down-end") == "cmd/valve/x",
          "(c) a marker on site/lab/cmd/valve/x, sent after one on site/lab/cmd/plant/x, came down")
    check(not sensor.topic("c-down-plant"), "(c) site/lab/cmd/plant/x no longer comes down")
    check(labtest.wait_log(agent_log, "uplink: unsubscribing site/lab/cmd/plant/#") is not None,
          "(c) the agent unsubscribed the removed downlink filter at the cloud, live")

    # (d) a bad rule: refused by both, the running rules stay
    rewrite(lab, (VALVE_RULE, BAD_RULE))
    off_dp, off_agent = labtest.log_size(dp_log), labtest.log_size(agent_log)
    os.kill(before[0], signal.SIGHUP)
    os.kill(before[1], signal.SIGHUP)
    line = labtest.wait_log(dp_log, "config rejected, the running one stays", off_dp)
    check(line is not None, "(d) the dataplane refused the bad rule")
    log("(d) dataplane: %s" % line.strip()[:200])
    line = labtest.wait_log(agent_log, "the running config stays", off_agent)
    check(line is not None, "(d) the agent refused the bad rule")
    publish_all(sensor, [("plant/r/d", "d-plant"), ("valve/r/d", "d-valve")], "(d)")
    reach(cloud, ["d-valve"], "(d) valve/... under the running rules")
    check(not cloud.topic("d-plant"), "(d) plant/... still stays local")

    check(pids(lab) == before, "no restart: the same dataplane and agent pids %s" % (before,))
    c = labtest.dpstat.query("/edgegw/broker", lab.prefix)
    check(c.get("UPLINK_FAILED", 0) == 0, "no durability failed (UPLINK_FAILED %d)" %
          c.get("UPLINK_FAILED", 0))
    sensor.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


if __name__ == "__main__":
    labtest.main(test)
