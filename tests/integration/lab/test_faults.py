#!/usr/bin/python3
"""Store and forward through faults (issue 15, "What it must show" (c), (d), (e)), in the whole lab
site. Sensors (paho clients with persistent sessions: they reconnect and resend what was not
acknowledged, as real clients do) publish on plant/... with an id in each payload; a cloud
subscriber on the lab's cloud broker checks every id under site/lab/plant/... One scenario per
run, named by the first argument:

dataplane_kill  (c) the dataplane is SIGKILLed mid-stream (lab kill dataplane: the supervisor
                restarts it). Every QoS 1 and 2 message the sensors published gets its PUBACK /
                PUBCOMP after their reconnect and reaches the cloud; no QoS 2 message that was
                acknowledged (PUBREC) before the kill arrives twice; the poller's readings keep
                reaching the cloud across the restart.
spool_full      (d) the agent's spool lives on a 2 MiB tmpfs (mounted in this test's own mount
                namespace, which the lab's processes inherit) and the uplink is cut: the disk
                fills, the spool says so (counter enospc, log line), the sensor's PUBACKs stop
                (the broker holds the publisher), and after link up every acknowledged message
                reaches the cloud. The poller's QoS 0 readings refused meanwhile are counted.
qos2_window     (c) aimed at QoS 2's window: the dataplane SIGKILLs itself at a DURABLE answer
                (a test-only hook: EDGEGW_TEST_KILL_AT_DURABLE names a file; the next answer
                read while it exists kills the process before the broker sees it), so QoS 2
                messages the agent made durable (and may have sent up) were never acknowledged
                to the sensor. The sensor resends them to the restarted dataplane: every one
                reaches the cloud exactly once, and the counters show the window was hit (the
                new dataplane sent resends under their first origin, the agent held them).
release_lost    (c) aimed at a lost release: the dataplane SIGKILLs itself when an lcore is about
                to send QoS 2 origin releases (EDGEGW_TEST_KILL_AT_RELEASE, as above): PUBRELs
                taken and journaled whose RELEASE never reaches the agent. The restarted
                dataplane lists the origins it still holds (HELD); the agent forgets the lost
                ones (Q2_SWEPT) and, once every exchange is complete, holds no origin; no QoS 2
                message arrives twice.
downlink_full   (d) for the downlink: the spool's volume (as spool_full) is filled while the cloud
                sends commands (QoS 1) to a sensor: the agent cannot keep them and does not
                acknowledge them; with room again every one reaches the sensor, the link never
                cut: the agent reconnects so that the cloud broker sends them again
                (downlink_redeliver).
corrupt_segment (e) with the uplink cut and messages waiting in the spool, the agent is stopped
                (SIGSTOP), bytes of one record in a segment file are overwritten, and the agent
                is SIGKILLed (lab kill agent: restarted). Recovery skips the bad record and says
                so (corrupt_records, a log line); every other acknowledged message arrives.

QoS 2 exactly once across the kill: the broker journals a QoS 2 id with the origin its message
went up under before the record leaves for the agent, and the agent holds that origin until the
sensor's PUBREL (docs/architecture.md, "QoS 2 across a restart of the dataplane"). (c) and
qos2_window allow no QoS 2 duplicate."""
import ctypes
import errno
import json
import os
import re
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
SPOOL_DEFAULT = "spool: {dir: /run/edgegw-lab/egw-/spool, max_bytes: 64m}"


def make_config(path, spool=None):
    """The lab's config with stats every second, a short channel reconnect and uplink keepalive,
    and the spool section replaced by spool when given."""
    with open(os.path.join(ROOT, "configs/lab/gateway.yaml")) as f:
        text = f.read()
    old = "channel: {path: /run/edgegw-lab/egw-/dpchan.sock}"
    for s in (old, SPOOL_DEFAULT, "keepalive: 30s,", "interval: 5s}"):
        check(s in text, "configs/lab/gateway.yaml has %r" % s)
    text = text.replace(old, old[:-1] + ", reconnect_max: 500ms}")
    text = text.replace("keepalive: 30s,", "keepalive: 10s, reconnect_max: 2s,")
    text = text.replace("interval: 5s}", "interval: 1s}")
    if spool is not None:
        text = text.replace(SPOOL_DEFAULT, spool)
    with open(path, "w") as f:
        f.write(text)


class Cloud:
    """A subscriber on the cloud broker: sensor payloads (site/lab/plant/...) counted by id,
    the poller's readings (the other site/lab/ topics) by their read time."""

    def __init__(self):
        self.lock = threading.Lock()
        self.got = {}
        self.reading_ms = []
        self.c = mqtt.Client(client_id="flt-cloud", clean_session=True)
        self.subscribed = threading.Event()
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect(CLOUD, 1883, keepalive=30)
        self.c.subscribe("site/lab/#", qos=2)
        self.c.loop_start()
        check(self.subscribed.wait(10), "the cloud subscriber is subscribed")

    def on_message(self, c, u, msg):
        with self.lock:
            if msg.topic.startswith("site/lab/plant/"):
                key = msg.payload.decode(errors="replace").rstrip(" ")
                self.got[key] = self.got.get(key, 0) + 1
                return
            try:
                self.reading_ms.append(int(json.loads(msg.payload)["ts_ms"]))
            except (ValueError, KeyError, TypeError):
                pass

    def missing(self, ids):
        with self.lock:
            return [i for i in ids if i not in self.got]

    def twice(self, ids):
        with self.lock:
            return [i for i in ids if self.got.get(i, 0) > 1]

    def readings_after(self, t_ms):
        with self.lock:
            return sum(1 for t in self.reading_ms if t > t_ms)

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class Sensor:
    """A paho client with a persistent session that reconnects on its own (every 1-2 s) and
    resends what was not acknowledged. Payloads are ids: <name>-<n>."""

    def __init__(self, name, qos):
        self.name, self.qos, self.n, self.pad = name, qos, 0, 0
        self.msgs = {}  # id: paho's mid
        self.done = set()  # mids acknowledged (PUBACK; QoS 2: PUBCOMP)
        self.lock = threading.Lock()
        self.connects = 0
        self.unacked_at_drop = None  # ids not acknowledged when the first connection dropped
        self.c = mqtt.Client(client_id="flt-" + name, clean_session=False,
                             protocol=mqtt.MQTTv311)
        self.c.max_inflight_messages_set(20)
        self.c.reconnect_delay_set(1, 2)
        self.c.on_connect = self.on_connect
        self.c.on_publish = self.on_publish
        self.c.on_disconnect = self.on_disconnect
        self.c.connect(labtest.GW, 1883, keepalive=60)
        self.c.loop_start()

    def on_connect(self, c, u, flags, rc):
        with self.lock:
            self.connects += 1

    def on_disconnect(self, c, u, rc):
        # nothing can be acknowledged between the gateway's death and this: the ids whose
        # acknowledgement had not come are exactly those the sensor will resend
        with self.lock:
            if self.unacked_at_drop is None:
                self.unacked_at_drop = {i for i, m in self.msgs.items() if m not in self.done}

    def on_publish(self, c, u, mid):
        with self.lock:
            self.done.add(mid)

    def publish(self):
        with self.lock:
            self.n += 1
            mid = "%s-%05d" % (self.name, self.n)
        # outside self.lock: paho calls on_publish holding its own lock, which publish takes.
        # Published while the gateway is away: kept by paho, sent after the reconnect.
        m = self.c.publish("plant/flt/" + self.name, mid + " " * self.pad, qos=self.qos).mid
        with self.lock:
            self.msgs[mid] = m
        return mid

    def acked(self):
        with self.lock:
            return [i for i, m in self.msgs.items() if m in self.done]

    def unacked(self):
        with self.lock:
            return [i for i, m in self.msgs.items() if m not in self.done]

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()


class Publisher(threading.Thread):
    """Publishes on each sensor every period_s until stopped (mid-stream faults)."""

    def __init__(self, sensors, period_s=0.01):
        super().__init__(daemon=True)
        self.sensors, self.period_s = sensors, period_s
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            for s in self.sensors:
                s.publish()
            time.sleep(self.period_s)

    def stop(self):
        self.halt.set()
        self.join(5)


def stats(lab):
    return labtest.agent_stats(lab)


def spool_counters(lab):
    return ((stats(lab) or {}).get("store") or {}).get("spool") or {}


def agent_log(lab):
    try:
        with open(lab.runtime("agent.log"), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def diagnose(lab):
    st = stats(lab) or {}
    log("agent store: %s" % st.get("store"))
    log("agent uplink: %s" % st.get("uplink"))
    try:
        log("broker: %s" % {k: v for k, v in
                            labtest.dpstat.query("/edgegw/broker", lab.prefix).items()
                            if "UPLINK" in k})
        log("channel: %s" % labtest.dpstat.query("/edgegw/dpchan", lab.prefix))
    except Exception as e:  # noqa: BLE001 (diagnostics only)
        log("no dataplane counters: %s" % e)
    log("agent log tail:\n" + "".join("    " + x + "\n" for x in agent_log(lab).splitlines()[-40:]))


def wait_delivered(cloud, ids, timeout_s, what):
    labtest.wait_for(lambda: not cloud.missing(ids), timeout_s)
    miss = cloud.missing(ids)
    check(not miss, "%s: all %d reached the cloud (missing %d: %s)" %
          (what, len(ids), len(miss), miss[:5]))


# ---- (c) SIGKILL of the dataplane mid-stream ----

def dataplane_kill(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    q1, q2 = Sensor("q1", 1), Sensor("q2", 2)
    pub = Publisher([q1, q2])
    pub.start()
    labtest.wait_for(lambda: len(q1.acked()) >= 100 and len(q2.acked()) >= 100, 20)
    check(len(q2.acked()) >= 100, "the sensors' messages are acknowledged before the kill")
    old_pid = lab.dataplane_pid()
    kill_ms = int(time.time() * 1000)
    q2_before = set(q2.acked())  # completed (PUBCOMP) before the kill
    lab.run("kill", "dataplane")
    check(lab.dataplane_pid() != old_pid, "the supervisor restarted the dataplane")
    n_at_restart = q1.n
    labtest.wait_for(lambda: q1.n >= n_at_restart + 200 and q1.connects >= 2 and q2.connects >= 2,
                     30)
    pub.stop()
    check(q1.connects >= 2 and q2.connects >= 2, "both sensors reconnected (%d, %d connects)" %
          (q1.connects, q2.connects))
    for s in (q1, q2):
        labtest.wait_for(lambda: not s.unacked(), 30)
        un = s.unacked()
        check(not un, "QoS %d: every message published got its acknowledgement (%d of %d; "
              "waiting: %s)" % (s.qos, s.n - len(un), s.n, un[:5]))
        wait_delivered(cloud, list(s.msgs), 30, "QoS %d, %d messages across the kill" %
                       (s.qos, s.n))
    twice = cloud.twice(list(q2.msgs))
    q2_inflight = q2.unacked_at_drop
    log("QoS 2: %d messages were not complete when the connection dropped" % len(q2_inflight))
    check(not twice, "no QoS 2 message arrived twice (twice: %d, %s; %d of them acknowledged "
          "before the kill)" % (len(twice), twice[:5], len([i for i in twice if i in q2_before])))
    log("QoS 1 messages received twice (at least once allows it): %d" %
        len(cloud.twice(list(q1.msgs))))
    # every QoS 2 exchange is complete (PUBCOMP): the agent holds none of their origins, those
    # of the killed start included (released by the PUBRELs that came after the restart, or
    # forgotten at the new start's resync when their release died with the dataplane)
    chan = lambda: labtest.agent_stats(lab, "dpchan")  # noqa: E731
    labtest.wait_for(lambda: chan().get("Q2_ORIGINS", -1) == 0, 10)
    c = chan()
    check(c.get("Q2_ORIGINS", -1) == 0 and c.get("HELD_RX", -1) >= 0,
          "the agent holds no QoS 2 origin once every exchange is complete (%d held; %d listed "
          "by the new start, %d forgotten at its resync, %d released)" %
          (c.get("Q2_ORIGINS", -1), c.get("HELD_RX", -1), c.get("Q2_SWEPT", -1),
           c.get("RELEASE_RX", -1)))
    # the poller's readings: read after the restart and delivered
    t_back = int(time.time() * 1000)
    labtest.wait_for(lambda: cloud.readings_after(t_back) >= 10, 20)
    check(cloud.readings_after(t_back) >= 10, "the poller's readings keep reaching the cloud "
          "after the dataplane's restart (%d since; %d since the kill at %d)" %
          (cloud.readings_after(t_back), cloud.readings_after(kill_ms), kill_ms))
    for s in (q1, q2):
        s.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


# ---- (c) aimed at QoS 2's window: killed at a DURABLE answer ----

KILL_FLAG = "/tmp/edgegw-flt-kill-at-durable-%d" % os.getpid()
KILL_REL_FLAG = "/tmp/edgegw-flt-kill-at-release-%d" % os.getpid()


def dp_counter(lab, path, name):
    try:
        return int(labtest.dpstat.query(path, lab.prefix).get(name, 0))
    except Exception:  # noqa: BLE001 (the dataplane restarting: asked again)
        return -1


def qos2_window(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    q2 = Sensor("w2", 2)
    pub = Publisher([q2], period_s=0.005)
    pub.start()
    labtest.wait_for(lambda: len(q2.acked()) >= 100, 20)
    check(len(q2.acked()) >= 100, "the sensor's QoS 2 messages complete before the kill")
    old_pid = lab.dataplane_pid()
    with open(KILL_FLAG, "w"):
        pass  # the next DURABLE answer the dataplane reads kills it
    labtest.wait_for(lambda: not os.path.exists(KILL_FLAG), 10)
    check(not os.path.exists(KILL_FLAG), "the dataplane took the kill at a DURABLE answer")
    labtest.wait_for(lambda: lab.dataplane_pid() != old_pid and lab.dataplane_alive(), 30)
    check(lab.dataplane_pid() != old_pid, "the supervisor restarted the dataplane")
    n_at_restart = q2.n
    labtest.wait_for(lambda: q2.n >= n_at_restart + 100 and q2.connects >= 2, 30)
    pub.stop()
    check(q2.connects >= 2, "the sensor reconnected (%d connects)" % q2.connects)
    labtest.wait_for(lambda: not q2.unacked(), 30)
    un = q2.unacked()
    check(not un, "every QoS 2 message published got its PUBCOMP (%d of %d; waiting: %s)" %
          (q2.n - len(un), q2.n, un[:5]))
    wait_delivered(cloud, list(q2.msgs), 30, "QoS 2, %d messages across the kill" % q2.n)
    inflight = q2.unacked_at_drop or set()
    twice = cloud.twice(list(q2.msgs))
    resent = dp_counter(lab, "/edgegw/broker", "UPLINK_QOS2_RESENT")

    def agent_held():
        return int(((stats(lab) or {}).get("dpchan") or {}).get("Q2_HELD", 0))

    # the agent writes its stats file every 5 s in the lab: wait for the one after the resend
    labtest.wait_for(lambda: resent <= 0 or agent_held() > 0, 15)
    held = agent_held()
    log("QoS 2: %d messages in flight at the kill; the new dataplane sent %d again under their "
        "first origin, the agent held %d of them (answered durable, not stored again)" %
        (len(inflight), resent, held))
    check(not twice, "no QoS 2 message arrived twice (twice: %d, %s)" % (len(twice), twice[:5]))
    check(resent > 0 and held > 0, "the kill hit the window: resends went up under their "
          "first origin (%d) and the agent already held some (%d)" % (resent, held))
    q2.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


def release_lost(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    q2 = Sensor("r2", 2)
    pub = Publisher([q2], period_s=0.005)
    pub.start()
    labtest.wait_for(lambda: len(q2.acked()) >= 100, 20)
    check(len(q2.acked()) >= 100, "the sensor's QoS 2 messages complete before the kill")
    old_pid = lab.dataplane_pid()
    with open(KILL_REL_FLAG, "w"):
        pass  # the next lcore about to send releases kills the dataplane
    labtest.wait_for(lambda: not os.path.exists(KILL_REL_FLAG), 10)
    check(not os.path.exists(KILL_REL_FLAG), "the dataplane died with releases unsent")
    labtest.wait_for(lambda: lab.dataplane_pid() != old_pid and lab.dataplane_alive(), 30)
    check(lab.dataplane_pid() != old_pid, "the supervisor restarted the dataplane")
    n_at_restart = q2.n
    labtest.wait_for(lambda: q2.n >= n_at_restart + 100 and q2.connects >= 2, 30)
    pub.stop()
    labtest.wait_for(lambda: not q2.unacked(), 30)
    un = q2.unacked()
    check(not un, "every QoS 2 message published got its PUBCOMP (%d of %d; waiting: %s)" %
          (q2.n - len(un), q2.n, un[:5]))
    wait_delivered(cloud, list(q2.msgs), 30, "QoS 2, %d messages across the kill" % q2.n)
    twice = cloud.twice(list(q2.msgs))
    check(not twice, "no QoS 2 message arrived twice (twice: %d, %s)" % (len(twice), twice[:5]))

    def chan():
        return labtest.agent_stats(lab, "dpchan")

    # the agent writes its stats file every 5 s in the lab
    labtest.wait_for(lambda: chan().get("Q2_SWEPT", 0) > 0 and chan().get("Q2_ORIGINS") == 0, 20)
    c = chan()
    log("agent: %d origins listed by the new start, %d forgotten at its resync, %d released, "
        "%d held now" % (c.get("HELD_RX", -1), c.get("Q2_SWEPT", -1), c.get("RELEASE_RX", -1),
                         c.get("Q2_ORIGINS", -1)))
    check(c.get("Q2_SWEPT", 0) > 0, "the agent forgot the origins whose release died with the "
          "dataplane (%d)" % c.get("Q2_SWEPT", 0))
    check(c.get("Q2_ORIGINS", -1) == 0, "the agent holds no QoS 2 origin once every exchange "
          "is complete (%d)" % c.get("Q2_ORIGINS", -1))
    q2.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


# ---- (e) a corrupted segment ----

def spool_dir(lab):
    return lab.runtime("spool")


def corrupt_one(dirpath, payload):
    """Overwrites payload's bytes in the segment file that holds them; returns the file's name."""
    for name in sorted(os.listdir(dirpath)):
        path = os.path.join(dirpath, name)
        if not name.endswith(".seg"):
            continue
        with open(path, "r+b") as f:
            data = f.read()
            at = data.find(payload.encode())
            if at < 0:
                continue
            f.seek(at)
            f.write(b"#" * len(payload))
            f.flush()
            os.fsync(f.fileno())
            return name
    return None


def corrupt_segment(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    q1, q2 = Sensor("q1", 1), Sensor("q2", 2)
    lab.run("link", "cloud", "down")
    for _ in range(100):
        q1.publish()
        q2.publish()
    labtest.wait_for(lambda: not q1.unacked() and not q2.unacked(), 30)
    check(not q1.unacked() and not q2.unacked(), "200 messages acknowledged (durable) with the "
          "uplink cut (waiting: %s)" % (q1.unacked() + q2.unacked())[:5])
    pid = int(open(lab.runtime("agent.pid")).read())
    os.kill(pid, signal.SIGSTOP)  # nothing moves in the spool while its bytes are changed
    victim = "q1-00050"
    seg = corrupt_one(spool_dir(lab), victim)
    check(seg is not None, "the record of %s found in a segment of %s" % (victim, spool_dir(lab)))
    log("overwrote the payload of %s in %s" % (victim, seg))
    lab.run("kill", "agent")  # SIGKILL of the stopped agent; the supervisor restarts it
    new = int(open(lab.runtime("agent.pid")).read())
    labtest.wait_for(lambda: (stats(lab) or {}).get("pid") == new, 15)
    sp = spool_counters(lab)
    log("recovery: %s" % {k: v for k, v in sp.items() if k.startswith(("recovered", "corrupt",
                                                                       "torn"))})
    check(sp.get("corrupt_records", 0) >= 1 and sp.get("corrupt_bytes", 0) > 0,
          "the restarted agent's recovery counts the bad record (corrupt_records %s)" %
          sp.get("corrupt_records"))
    said = [x for x in agent_log(lab).splitlines() if seg in x and "corrupt" in x]
    check(said, "the agent's log says which segment had a bad spot")
    log("log: %s" % said[0].strip())
    lab.run("link", "cloud", "up")
    rest = [i for i in list(q1.msgs) + list(q2.msgs) if i != victim]
    wait_delivered(cloud, rest, 30, "every other acknowledged message")
    check(cloud.missing([victim]) == [victim], "the corrupt record is not delivered")
    check(not cloud.twice(list(q2.msgs)), "no QoS 2 message arrived twice")
    for s in (q1, q2):
        s.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


# ---- (d) the spool's volume full ----

CLONE_NEWNS = 0x00020000
MS_REC, MS_SLAVE = 0x4000, 0x80000
TMPFS_MIB = 2


def private_tmpfs(path):
    """A TMPFS_MIB tmpfs at path in a mount namespace of this process's own (the lab's processes,
    started by it, inherit it; nothing leaks to the host's mounts, and it goes when they end)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rslave /")
    os.makedirs(path, exist_ok=True)
    opts = ("size=%dm,mode=0750" % TMPFS_MIB).encode()
    if libc.mount(b"tmpfs", path.encode(), b"tmpfs", 0, opts) != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs " + path)


def umount(path):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(path.encode(), 2)  # MNT_DETACH
    os.rmdir(path)


def broker_counters(lab):
    return labtest.dpstat.query("/edgegw/broker", lab.prefix)


def spool_full(lab):
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = Cloud()
    lab.enter_sensors()
    q0, q1, q2 = Sensor("q0", 0), Sensor("q1", 1), Sensor("q2", 2)
    for s in (q0, q1, q2):
        s.pad = 1200  # one TCP segment (no Nagle wait) of ~1.2 KB: 2 MiB is ~1,600 of them
    lab.run("link", "cloud", "down")
    pub = Publisher([q0, q1, q2], period_s=0.005)
    pub.start()
    labtest.wait_for(lambda: spool_counters(lab).get("enospc", 0) > 0, 30)
    sp = spool_counters(lab)
    check(sp.get("enospc", 0) > 0, "the spool's disk filled: enospc %s, %s bytes used" %
          (sp.get("enospc"), sp.get("bytes_used")))
    said = [x for x in agent_log(lab).splitlines() if "No space left on device" in x]
    check(said, "the agent's log says the disk is full")
    log("log: %s" % said[0].strip())
    # the sensors keep publishing into the full gateway: their acknowledgements stop; what was
    # acknowledged stays acknowledged
    acked1, n1 = set(q1.acked()) | set(q2.acked()), q1.n + q2.n
    time.sleep(3)  # the cut with a full disk goes on (a phase of the scenario, not a ready wait)
    pub.stop()
    acked2, n2 = set(q1.acked()) | set(q2.acked()), q1.n + q2.n
    log("full disk: %d QoS 1/2 acknowledged when enospc was seen, %d three seconds later, while "
        "%d more were published; spool %s" %
        (len(acked1), len(acked2), n2 - n1, {k: spool_counters(lab).get(k) for k in
                                             ("enospc", "refused_disk_full", "failed_records",
                                              "durable_records", "bytes_used")}))
    # at most what was in flight (paho's window, 20 per sensor) when the disk filled
    check(n2 - n1 > 100 and len(acked2 - acked1) <= 40,
          "the acknowledgements stopped with the disk full (%d more acknowledged of %d more "
          "published)" % (len(acked2 - acked1), n2 - n1))
    bc = broker_counters(lab)
    log("broker: %s" % {k: v for k, v in bc.items() if "UPLINK" in k or "HOLD" in k})
    lab.run("link", "cloud", "up")
    for s in (q1, q2):
        labtest.wait_for(lambda: not s.unacked(), 30)
        check(not s.unacked(), "QoS %d: after link up every message published was acknowledged "
              "(%d waiting)" % (s.qos, len(s.unacked())))
    wait_delivered(cloud, sorted(acked2), 30, "messages acknowledged during the cut")
    wait_delivered(cloud, list(q1.msgs) + list(q2.msgs), 30, "all QoS 1/2 messages")
    check(not cloud.twice(list(q2.msgs)), "no QoS 2 message arrived twice")
    lost0 = len(cloud.missing(list(q0.msgs)))
    st = (stats(lab) or {}).get("store") or {}
    sp = spool_counters(lab)
    bc = broker_counters(lab)
    counted = (st.get("refused_full", 0) + st.get("durable_fail", 0) + sp.get("dropped_qos0", 0) +
               bc.get("UPLINK_BEST_EFFORT_DROP", 0))
    log("QoS 0: %d of %d lost; counted drops: store refused_full %d + durable_fail %d, spool "
        "dropped_qos0 %d, broker UPLINK_BEST_EFFORT_DROP %d" %
        (lost0, q0.n, st.get("refused_full", 0), st.get("durable_fail", 0),
         sp.get("dropped_qos0", 0), bc.get("UPLINK_BEST_EFFORT_DROP", 0)))
    check(lost0 <= counted, "QoS 0 losses (%d) are no more than the drops counted (%d)" %
          (lost0, counted))
    for s in (q0, q1, q2):
        s.stop()
    cloud.stop()
    labtest.setns_path(labtest.HOME_NETNS)


def fill(path):
    """Write zeros into path until the disk says it is full."""
    zeros = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(zeros)
        except OSError as e:
            check(e.errno == errno.ENOSPC, "filling the disk ended with ENOSPC, not %s" % e)


def cloud_link(lab):
    """The agent's cloud link counters (uplink_stats.def; {} until the stats file is written)."""
    return ((stats(lab) or {}).get("uplink") or {}).get("link") or {}


def downlink_full(lab):
    """(d) the downlink with the spool's disk full: the agent cannot keep the cloud's commands, so
    it does not acknowledge them; the cloud broker resends only on a new connection, and the link
    stays up (keepalive answered). Once the disk has room again every command reaches the sensor
    without any cut of the link: the agent reconnects for them (downlink_redeliver)."""
    lab.enter_sensors()
    got, lock, subscribed = set(), threading.Lock(), threading.Event()

    def on_message(c, u, msg):
        with lock:
            got.add(msg.payload.decode(errors="replace"))
    sensor = mqtt.Client(client_id="flt-dl-sensor", clean_session=True)
    sensor.on_message = on_message
    sensor.on_subscribe = lambda c, u, mid, q: subscribed.set()
    sensor.connect(labtest.GW, 1883, keepalive=30)
    sensor.subscribe("cmd/plant/#", qos=1)
    sensor.loop_start()
    check(subscribed.wait(10), "the sensor subscribed to cmd/plant/# on the dataplane's broker")
    labtest.setns_path("/run/netns/%scloud" % lab.prefix)
    cloud = mqtt.Client(client_id="flt-dl-cloud", clean_session=True)
    cloud.connect(CLOUD, 1883, keepalive=30)
    cloud.loop_start()

    def through(payload):
        with lock:
            return payload in got

    def probe():
        cloud.publish("site/lab/cmd/plant/probe", "probe", qos=0)
        return through("probe")
    labtest.wait_for(probe, 30, interval_s=0.5)
    check(through("probe"), "a QoS 0 probe from the cloud reached the sensor")

    filler = os.path.join(SPOOL_TMPFS, "filler")
    fill(filler)
    ids = ["dl-%d" % i for i in range(5)]
    for i in ids:
        cloud.publish("site/lab/cmd/plant/valve", i, qos=1).wait_for_publish()
    labtest.wait_for(lambda: cloud_link(lab).get("downlink_not_owned", 0) > 0, 20)
    up = cloud_link(lab)
    check(up.get("downlink_not_owned", 0) > 0,
          "the agent did not acknowledge commands it could not keep (downlink_not_owned %s)" %
          up.get("downlink_not_owned"))
    t_refused = time.time()
    check(not [i for i in ids if through(i)], "no command reached the sensor with the disk full")
    connects = up.get("connects", 0)
    os.unlink(filler)
    labtest.wait_for(lambda: all(through(i) for i in ids), 60)
    missing = [i for i in ids if not through(i)]
    t_all = time.time()
    # the stats file is written every second: its counters may not show the reconnect yet
    labtest.wait_for(lambda: cloud_link(lab).get("downlink_redeliver", 0) > 0, 5)
    up = cloud_link(lab)
    log("disk room again: %s of %d commands at the sensor %.1f s after the first refusal; agent "
        "uplink: downlink_not_owned %s, downlink_redeliver %s, connects %s -> %s, "
        "keepalive_timeouts %s" %
        (len(ids) - len(missing), len(ids), t_all - t_refused,
         up.get("downlink_not_owned"), up.get("downlink_redeliver"), connects,
         up.get("connects"), up.get("keepalive_timeouts")))
    check(not missing, "every command reached the sensor once the disk had room (missing %s)" %
          missing)
    check(up.get("downlink_redeliver", 0) >= 1 and up.get("keepalive_timeouts", 0) == 0,
          "the agent reconnected for them (downlink_redeliver %s), not a lost link" %
          up.get("downlink_redeliver"))
    cloud.loop_stop()
    cloud.disconnect()
    sensor.loop_stop()
    sensor.disconnect()
    labtest.setns_path(labtest.HOME_NETNS)


SCENARIOS = {"dataplane_kill": dataplane_kill, "spool_full": spool_full,
             "corrupt_segment": corrupt_segment, "qos2_window": qos2_window,
             "release_lost": release_lost, "downlink_full": downlink_full}
SPOOL_TMPFS = None


def test():
    global SPOOL_TMPFS
    scenario = sys.argv[1] if len(sys.argv) > 1 else ""
    if scenario not in SCENARIOS:
        raise labtest.CheckFailed("usage: test_faults.py %s" % "|".join(SCENARIOS))
    labtest.need_agent()
    tmpfs, spool = None, None
    if scenario in ("spool_full", "downlink_full"):
        # not "egw-": the lab renames those to its prefix
        tmpfs = SPOOL_TMPFS = "/tmp/edgegw-flt-spool-%d" % os.getpid()
        private_tmpfs(tmpfs)
        spool = "spool: {dir: %s, max_bytes: 64m, segment_bytes: 256k, disk_full_retry: 200ms}" % tmpfs
    if scenario == "qos2_window":
        os.environ["EDGEGW_TEST_KILL_AT_DURABLE"] = KILL_FLAG  # the lab's processes inherit it
    if scenario == "release_lost":
        os.environ["EDGEGW_TEST_KILL_AT_RELEASE"] = KILL_REL_FLAG
    try:
        labtest.run_site("fl", SCENARIOS[scenario], lambda path: make_config(path, spool),
                         on_fail=diagnose)
    finally:
        if tmpfs is not None:
            umount(tmpfs)
        for flag in (KILL_FLAG, KILL_REL_FLAG):
            if os.path.exists(flag):
                os.unlink(flag)


if __name__ == "__main__":
    labtest.main(test)
