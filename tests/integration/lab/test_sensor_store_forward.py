#!/usr/bin/python3
"""Store and forward of sensor messages (issue 15), in the whole lab site: a sensor's QoS 1
PUBLISH on plant/... goes from the dataplane's broker over the channel (lib/dpchan) into the
agent's store (spool on disk) and up to the lab's cloud Mosquitto under site/lab/plant/...
(the lab's uplink rules); its PUBACK comes only once the agent has it on disk.

(a) 20 messages: each PUBACK comes, and the cloud subscriber gets every id.
(b) The agent is stopped (SIGSTOP): a message sent meanwhile reaches the channel but gets no
    PUBACK; the stopped agent is then SIGKILLed (lab kill agent: the supervisor restarts it), the
    dataplane reconnects and sends the record again, the new agent stores it, the PUBACK comes
    and the message reaches the cloud.
(c) QoS 2 exactly once through a SIGKILL of the agent mid-stream: a sensor streams 300 QoS 2
    messages, the agent is killed after about a third got their PUBCOMP; every PUBCOMP comes, and
    the cloud subscriber (QoS 2) gets every id exactly once: records the dead agent had on disk
    and the dataplane sends again are not stored twice (their origin is kept in the spool), and
    the uplink's QoS 2 exchanges resume under their packet ids. The window this guards (a record
    on disk whose DURABLE answer had not left) is narrow, so a kill does not always hit it: the
    unit test agent_dpchan_store hits it every time."""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

CLOUD = "198.18.1.2"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..")
TOPIC = "plant/line1/temp"


def make_config(path):
    """The lab's config (its rules send plant/# up as site/lab/plant/#, durable; its dataplane
    has the channel to the agent on), with a short reconnect bound, from a copy in /tmp."""
    with open(os.path.join(ROOT, "configs/lab/gateway.yaml")) as f:
        text = f.read()
    old = "channel: {path: /run/edgegw-lab/egw-/dpchan.sock}"
    check(old in text, "configs/lab/gateway.yaml: the channel to the agent is on")
    text = text.replace(old, old[:-1] + ", reconnect_max: 500ms}")
    text = text.replace("profiles_dir: ../profiles",
                        "profiles_dir: %s" % os.path.realpath(os.path.join(ROOT, "configs/profiles")))
    with open(path, "w") as f:
        f.write(text)


class Cloud:
    """A subscriber on the cloud broker: the payloads received under site/lab/plant/#."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.c = mqtt.Client(client_id="ssf-cloud", clean_session=True)
        self.c.on_message = self.on_message
        self.c.connect(CLOUD, 1883, keepalive=30)
        self.c.subscribe("site/lab/plant/#", qos=2)
        self.c.loop_start()

    def on_message(self, c, u, msg):
        with self.lock:
            key = (msg.topic, msg.payload.decode(errors="replace"))
            self.got[key] = self.got.get(key, 0) + 1

    def has(self, payload):
        with self.lock:
            return ("site/lab/" + TOPIC, payload) in self.got

    def times(self, payload):
        with self.lock:
            return self.got.get(("site/lab/" + TOPIC, payload), 0)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def dpchan(lab):
    return labtest.dpstat.query("/edgegw/dpchan", lab.prefix)


def agent_store(lab):
    return labtest.agent_stats(lab, "store")


def stats_mtime(lab):
    try:
        return os.stat(lab.runtime("agent-stats.json")).st_mtime
    except OSError:
        return 0


def known_line(lab):
    """The restarted agent's line on the dataplane's records it found in its spool."""
    try:
        with open(lab.runtime("agent.log")) as f:
            lines = [x.strip() for x in f if "records of the dataplane found in the spool" in x]
    except OSError:
        return "(no agent.log)"
    return lines[-1] if lines else "(no records of the dataplane in the spool at restart)"


def test():
    labtest.run_site("ss", run, make_config)


def run(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    sensor = mqtt.Client(client_id="ssf-sensor", clean_session=False, protocol=mqtt.MQTTv311)
    sensor.connect(labtest.GW, 1883, keepalive=60)
    sensor.loop_start()

    # (a) every message acknowledged once durable, and at the cloud
    msgs = [sensor.publish(TOPIC, "id-%d" % i, qos=1) for i in range(1, 21)]
    labtest.wait_for(lambda: all(m.is_published() for m in msgs), 30)
    check(all(m.is_published() for m in msgs), "(a) every PUBACK came (the agent made each durable)")
    labtest.wait_for(lambda: all(cloud.has("id-%d" % i) for i in range(1, 21)), 30)
    check(all(cloud.has("id-%d" % i) for i in range(1, 21)),
          "(a) the cloud got all 20 under site/lab/%s" % TOPIC)
    c = labtest.dpstat.query("/edgegw/broker", lab.prefix)
    check(c["UPLINK_DEFERRED"] >= 20 and c["UPLINK_ACKED"] >= 20,
          "(a) the PUBACKs were deferred until durable (deferred %d, acked %d)" %
          (c["UPLINK_DEFERRED"], c["UPLINK_ACKED"]))

    # (b) the agent stopped: no PUBACK; killed and restarted: the record sent again, acknowledged
    pid = int(open(lab.runtime("agent.pid")).read())
    os.kill(pid, signal.SIGSTOP)
    sent = dpchan(lab)["RECS_TX"]
    m = sensor.publish(TOPIC, "id-stopped", qos=1)
    labtest.wait_for(lambda: dpchan(lab)["RECS_TX"] > sent, 10)
    check(dpchan(lab)["RECS_TX"] > sent, "(b) the record went into the channel")
    check(not m.is_published(), "(b) no PUBACK while the agent is stopped")
    lab.run("kill", "agent")
    labtest.wait_for(m.is_published, 30)
    check(m.is_published(), "(b) the PUBACK came from the restarted agent")
    labtest.wait_for(lambda: cloud.has("id-stopped"), 30)
    check(cloud.has("id-stopped"), "(b) the message sent while the agent was stopped reached the cloud")
    c = dpchan(lab)
    log("channel: connects %d, records sent %d, resent %d, durable %d" %
        (c["CONNECTS"], c["RECS_TX"], c["RECS_RESENT"], c["DURABLE_OK"]))
    check(c["RECS_RESENT"] >= 1 and c["CONNECTS"] >= 2, "(b) reconnected and resent")

    # (c) QoS 2 exactly once through a SIGKILL of the agent mid-stream
    n = 300
    sensor.max_inflight_messages_set(50)
    resent = dpchan(lab)["RECS_RESENT"]
    msgs = [sensor.publish(TOPIC, "q2-%d" % i, qos=2) for i in range(1, n + 1)]
    labtest.wait_for(lambda: sum(m.is_published() for m in msgs) >= n // 3, 30)
    done_at_kill = sum(m.is_published() for m in msgs)
    lab.run("kill", "agent")  # returns once the new agent is connected
    labtest.wait_for(lambda: all(m.is_published() for m in msgs), 60)
    check(all(m.is_published() for m in msgs),
          "(c) every PUBCOMP came (%d before the kill)" % done_at_kill)
    # a marker sent last arrives last (one class, spool order): once it is there, so is any
    # duplicate of the stream
    end = sensor.publish(TOPIC, "q2-end", qos=2)
    labtest.wait_for(lambda: cloud.has("q2-end") and end.is_published(), 60)
    check(cloud.has("q2-end"), "(c) the marker sent after the stream reached the cloud")
    missing = [i for i in range(1, n + 1) if cloud.times("q2-%d" % i) == 0]
    twice = [i for i in range(1, n + 1) if cloud.times("q2-%d" % i) > 1]
    c = dpchan(lab)
    log("(c) kill after %d PUBCOMPs; the dataplane resent %d records; agent log: %s" %
        (done_at_kill, c["RECS_RESENT"] - resent, known_line(lab)))
    check(not missing, "(c) every QoS 2 id reached the cloud (missing: %s)" % missing[:10])
    check(not twice, "(c) no QoS 2 id reached the cloud twice (twice: %s)" % twice[:10])
    # what the QoS 2 uplink's syncs cost the agent's loop (its stats file, every 5 s)
    t_end = time.time()
    labtest.wait_for(lambda: stats_mtime(lab) > t_end, 12)  # written after the marker arrived
    st = agent_store(lab)
    log("(c) restarted agent's channel: %d records taken, %d sent again and already taken, %d sent "
        "again and found in its spool (the records the origins keep from being stored twice)" %
        tuple(labtest.agent_stats(lab, "dpchan").get(k, -1) for k in ("RECS_RX", "RECS_DUP", "RECS_KNOWN")))
    if st.get("q2_syncs"):
        log("(c) restarted agent: %d records sent up, %d QoS 2 commits on the spool's flusher "
            "(%.1f records each), %.0f us each on average from request to end (the loop does not "
            "wait)" %
            (st["sent"], st["q2_syncs"], st["sent"] / st["q2_syncs"],
             st["q2_sync_us"] / st["q2_syncs"]))
    sensor.loop_stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


if __name__ == "__main__":
    labtest.main(test)
