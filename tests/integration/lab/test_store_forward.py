#!/usr/bin/python3
"""Store and forward of the poller's readings (issue 15), in the whole lab site: a cloud subscriber
(in the cloud namespace, connected throughout) checks every reading by its id, (device, point,
ts_ms). The lab's rules are changed so that every reading goes up with QoS 1 and the oven's with
QoS 2 (exactly once).

(a) The uplink is cut (lab link cloud down: a silent dead zone) for 20 s while the poller keeps
    producing: the readings wait in the spool on disk (records_live grows), and after lab link
    cloud up every reading the agent made durable arrives.
(b) With the link down again the agent is SIGKILLed (lab kill agent: the supervisor restarts
    it): the new agent recovers the spool, resumes the QoS 2 exchanges under their packet ids,
    and after link up every reading the first agent had made durable arrives too; no QoS 2
    reading arrives twice.
(c) The agent is SIGKILLed again with the link up, mid-stream: the same holds.

The oracle is the agent's own count of durable records (stats file, written every second), less
what was durable before the subscriber subscribed: the readings received must reach it (see Cloud
for how readings are told apart). A reading lost after it was durable keeps the count short and
the test fails; the old agent (an in-memory queue, no spool) fails (b) and has no such count."""
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
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../..")

RULES = """uplink:
  site: lab
  rules:
    - {match: "site/lab/oven-tc/#", topic: "{topic}", qos: 2, class: alarm}
    - {match: "site/lab/#", topic: "{topic}", qos: 1}
  spool: {dir: /run/edgegw-lab/egw-/spool, max_bytes: 64m}

"""


def make_config(path):
    """The lab's config with the rules above, stats every second, a short keepalive and reconnect
    bound (a cut is noticed in 15 s and the link retried every few seconds)."""
    with open(os.path.join(ROOT, "configs/lab/gateway.yaml")) as f:
        text = f.read()
    start, end = text.index("uplink:\n"), text.index("# The agent:")
    text = text[:start] + RULES + text[end:]
    text = text.replace("keepalive: 30s,", "keepalive: 10s, reconnect_max: 4s,")
    text = text.replace("interval: 5s}", "interval: 1s}")
    text = text.replace("profiles_dir: ../profiles",
                        "profiles_dir: %s" % os.path.realpath(os.path.join(ROOT, "configs/profiles")))
    with open(path, "w") as f:
        f.write(text)


class Cloud:
    """A subscriber on the cloud broker. A good reading is named by (device, point, ts_ms): each
    read has its own time. A reading of another quality (stale, comm-failure) keeps the time of
    the last good read and is repeated by the heartbeat, so those are counted one by one (a
    resent duplicate of one of them makes the check lenient, never wrong)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count, self.qos, self.devices, self.other = {}, {}, set(), 0
        self.per_dev = {}  # device: [good readings, other readings] (diagnostics)
        self.c = mqtt.Client(client_id="sf-cloud", clean_session=True)
        self.subscribed = threading.Event()
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect(CLOUD, 1883, keepalive=30)
        self.c.subscribe("site/lab/#", qos=2)
        self.c.loop_start()

    def on_message(self, c, u, msg):
        try:
            m = json.loads(msg.payload)
            key = (m["device"], m["point"], m["ts_ms"])
            good = m["quality"] == "good"
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            self.devices.add(m["device"])
            pd = self.per_dev.setdefault(m["device"], [0, 0])
            if good and key not in self.count:
                pd[0] += 1
            elif not good:
                pd[1] += 1
            if not good:
                self.other += 1
                return
            self.count[key] = self.count.get(key, 0) + 1
            self.qos[key] = msg.qos

    def unique(self):
        with self.lock:
            return len(self.count) + self.other

    def twice(self, qos):
        with self.lock:
            return [k for k, n in self.count.items() if n > 1 and self.qos[k] == qos]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


def stats(lab):
    return labtest.agent_stats(lab)


def store(lab):
    st = stats(lab)
    return st["store"] if st and "store" in st else None


def wait_store(lab, pred, timeout_s):
    labtest.wait_for(lambda: store(lab) is not None and pred(store(lab)), timeout_s)
    s = store(lab)
    return s if s is not None and pred(s) else None


def published(st):
    return {d["name"]: d["published"] for b in (st or {}).get("buses", []) for d in b["devices"]}


def diagnose(lab, cloud=None, before_kill=None):
    """On failure: the agent's store and link counters and its log's tail."""
    st = stats(lab) or {}
    if cloud is not None:
        log("received per device [good, other]: %s" % cloud.per_dev)
        log("published per device: before the kill %s, now %s" %
            (published(before_kill), published(st)))
        with cloud.lock:
            for dev in sorted(cloud.devices):
                ts = sorted({k[2] for k in cloud.count if k[0] == dev})
                log("%s: good read times received, last ten: %s" % (dev, ts[-10:]))
        log("kill at %s" % CTX.get("kill_ms"))
    log("agent store: %s" % st.get("store"))
    log("agent uplink: %s" % st.get("uplink"))
    try:
        with open(lab.runtime("agent.log")) as f:
            log("agent log tail:\n" + "".join("    " + x for x in f.readlines()[-60:]))
    except OSError:
        pass


def test():
    labtest.run_site("sf", run, make_config,
                     on_fail=lambda lab: diagnose(lab, CTX.get("cloud"), CTX.get("before_kill")))


CTX = {}


def run(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = CTX["cloud"] = Cloud()
    check(cloud.subscribed.wait(10), "the cloud subscriber is subscribed")
    # what was durable before the subscription is not expected: b0, from the first stats file
    # written after it, is at least that (the readings of the second between are not expected)
    t_sub = int(time.time() * 1000)
    labtest.wait_for(lambda: (stats(lab) or {}).get("ts_ms", 0) > t_sub + 10, 10)
    b0 = store(lab)["durable"]
    labtest.wait_for(lambda: DEVICES <= cloud.devices, 30)
    check(DEVICES <= cloud.devices, "all four devices report through the spool (%s)" %
          sorted(cloud.devices))

    # (a) the uplink cut for 20 s while the poller keeps producing
    s0 = wait_store(lab, lambda s: s["durable"] > 0, 10)
    check(s0 is not None, "the agent's stats count durable records")
    lab.run("link", "cloud", "down")
    got0 = cloud.unique()
    time.sleep(20)  # the outage itself
    s1 = store(lab)
    live = s1["spool"]["records_live"]
    log("(a) during the cut: %d readings durable, %d waiting in the spool, %d received" %
        (s1["durable"], live, cloud.unique()))
    check(s1["durable"] > s0["durable"] + 20, "the poller kept producing into the spool")
    check(live > 10, "readings wait in the spool while the link is down (%d)" % live)
    lab.run("link", "cloud", "up")
    s2 = store(lab)
    labtest.wait_for(lambda: cloud.unique() >= s2["durable"] - b0, 60)
    log("(a) after link up: %d received, %d durable since the subscription" %
        (cloud.unique(), s2["durable"] - b0))
    check(cloud.unique() >= s2["durable"] - b0,
          "every durable reading arrived after the cut (%d received, %d durable)" %
          (cloud.unique(), s2["durable"] - b0))
    check(cloud.unique() > got0 + 20, "the backlog of the cut arrived")
    check(not cloud.twice(2), "no QoS 2 reading twice after the cut: %s" % cloud.twice(2)[:3])

    # (b) SIGKILL of the agent with readings in the spool and QoS 2 exchanges under way
    lab.run("link", "cloud", "down")
    before = store(lab)["durable"]
    labtest.wait_for(lambda: store(lab)["durable"] >= before + 40, 20)
    d1 = store(lab)["durable"]  # the first agent's durable count, a second old at most
    CTX["before_kill"] = stats(lab)
    CTX["kill_ms"] = int(time.time() * 1000)
    lab.run("kill", "agent")
    # the new agent: its stats file replaces the old one once it runs
    pid = int(open(lab.runtime("agent.pid")).read())
    labtest.wait_for(lambda: (stats(lab) or {}).get("pid") == pid, 10)
    check((stats(lab) or {}).get("pid") == pid, "the restarted agent writes its stats")
    lab.run("link", "cloud", "up")
    s3 = store(lab)
    log("(b) restarted agent: %d spool records recovered, %d QoS 2 exchanges resumed" %
        (stats(lab)["store"]["spool"]["recovered_records"], s3["restored"]))
    # an exchange is under way at the kill only if the first agent had sent a QoS 2 reading
    # (PUBLISH written, its SENT mark committed first) that the cloud had not completed: the
    # store's backlog also counts records given to the client after it found the connection
    # lost, which never left and have no packet id. No exchange completes while the link is
    # down, so a count in the stats (a second old at most) still holds at the kill.
    link = CTX["before_kill"]["uplink"]["link"]
    inflight = link["pub_qos2"] - link["pubcomp"] - link["pub_refused"]
    if inflight > 0:
        check(s3["restored"] >= 1,
              "QoS 2 readings in flight at the kill resume under their packet ids (%d QoS 2 "
              "exchanges were open)" % inflight)
    else:
        log("(b) no QoS 2 exchange was open at the kill (%d records given to the client): the "
            "resume of QoS 2 exchanges is not seen" % CTX["before_kill"]["store"]["backlog"])
    need = lambda: d1 - b0 + store(lab)["durable"]  # noqa: E731
    labtest.wait_for(lambda: cloud.unique() >= need(), 60)
    total_durable = need()
    log("(b) received %d readings in all; durable since the subscription: %d by the first agent "
        "(before the kill), %d by the second" % (cloud.unique(), d1 - b0, total_durable - d1 + b0))
    check(cloud.unique() >= total_durable,
          "every reading made durable by either agent arrived (%d received, %d durable)" %
          (cloud.unique(), total_durable))
    twice = cloud.twice(2)
    check(not twice, "no QoS 2 reading arrived twice across the kill: %s" % twice[:3])

    # (c) SIGKILL mid-stream with the link up: QoS 2 exchanges caught in any phase
    d2 = store(lab)["durable"]
    lab.run("kill", "agent")  # returns once the new agent is connected
    pid = int(open(lab.runtime("agent.pid")).read())
    labtest.wait_for(lambda: (stats(lab) or {}).get("pid") == pid, 10)
    labtest.wait_for(lambda: store(lab)["durable"] >= 20, 15)  # the third agent produces too
    need = lambda: d1 - b0 + d2 + store(lab)["durable"]  # noqa: E731
    labtest.wait_for(lambda: cloud.unique() >= need(), 30)
    total_durable = need()
    log("(c) received %d readings in all, %d durable by the three agents" %
        (cloud.unique(), total_durable))
    check(cloud.unique() >= total_durable,
          "every durable reading arrived across a kill mid-stream (%d received, %d durable)" %
          (cloud.unique(), total_durable))
    twice = cloud.twice(2)
    check(not twice, "no QoS 2 reading arrived twice across a kill mid-stream: %s" % twice[:3])
    log("QoS 1 readings received twice (allowed: at least once): %d" % len(cloud.twice(1)))
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


if __name__ == "__main__":
    labtest.main(test)
