#!/usr/bin/python3
"""Real MQTT clients (mosquitto_pub/mosquitto_sub, paho-mqtt) against the broker core.

By default it starts the kernel-socket TEST harness (broker_kernel_harness, path in
$EDGEGW_BROKER_HARNESS) on 127.0.0.1 with a free port. With --target HOST:PORT (or
$EDGEGW_MQTT_TARGET) it runs the same checks against a broker already listening there, e.g.
the dataplane in the lab: ip netns exec egw-sensors /usr/bin/python3 test_broker_clients.py
--target 198.18.0.1:1883. Each check uses its own topic prefix so reruns do not collide.
"""
import argparse
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

WAIT = 5.0
RUN = uuid.uuid4().hex[:8]
MULTI_LCORE = False  # --multi-lcore: the target spreads connections over broker instances
TARGET = False  # --target: a running broker (the dataplane), not the test harness


def rc_value(rc):
    """paho 1.6 gives 5.0 reason codes as ReasonCodes objects, 3.1.1 ones as ints."""
    return rc.value if hasattr(rc, "value") else int(rc)


class Client:
    """A paho client on a background loop that queues what it receives."""

    def __init__(self, host, port, cid="", v5=False, clean=True, will=None, expiry=None,
                 alias_max=None):
        self.msgs = queue.Queue()
        self.events = queue.Queue()
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kw = {} if v5 else {"clean_session": clean}
        self.c = mqtt.Client(client_id=cid, protocol=proto, **kw)
        if will:
            self.c.will_set(will[0], will[1], qos=1)
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, *a: self.events.put(("suback", mid, a))
        self.c.on_disconnect = lambda c, u, rc, *a: self.events.put(("disconnect", rc))
        self.c.on_connect = lambda c, u, flags, rc, *a: self.events.put(("connack", flags, rc))
        self.c.on_publish = lambda c, u, mid: self.events.put(("published", mid))
        ckw = {}
        if v5:
            ckw["clean_start"] = clean
            if expiry is not None or alias_max is not None:
                p = Properties(PacketTypes.CONNECT)
                if expiry is not None:
                    p.SessionExpiryInterval = expiry
                if alias_max is not None:
                    p.TopicAliasMaximum = alias_max
                ckw["properties"] = p
        self.c.connect(host, port, 30, **ckw)
        self.c.loop_start()
        ev = self.event("connack")
        self.session_present = bool(ev[1].get("session present"))
        if rc_value(ev[2]) != 0:
            raise AssertionError("CONNACK refused: %s" % ev[2])

    def event(self, kind, timeout=WAIT):
        end = time.time() + timeout
        while time.time() < end:
            try:
                ev = self.events.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                break
            if ev[0] == kind:
                return ev
        raise AssertionError("no %s within %.1fs" % (kind, timeout))

    def subscribe(self, topic, qos):
        self.c.subscribe(topic, qos)
        self.event("suback")

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(WAIT)
        if not info.is_published():
            raise AssertionError("publish to %s not acknowledged" % topic)

    def get(self, timeout=WAIT):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %.1fs" % timeout)

    def nothing(self, timeout=0.5):
        try:
            m = self.msgs.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("unexpected message %s %r" % (m.topic, m.payload))

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def kill(self):
        """Abrupt end: the socket goes away without DISCONNECT."""
        self.c.loop_stop()
        self.c.socket().close()


MOSQ_TIMED_OUT = 27  # mosquitto_sub's exit status when -W expired before -C messages came


def mosq_debug(line):
    """A line mosquitto_sub -d writes about the protocol, not a message it received."""
    return line.startswith("Client ") or line.startswith("Subscribed (mid")


def mosq(tool, host, port, args, timeout=10, rc=0):
    """Run mosquitto_pub or mosquitto_sub; its exit status must be rc (0: it did its job;
    MOSQ_TIMED_OUT: mosquitto_sub -W ran out, e.g. when nothing may come). mosquitto_sub runs
    with -d and must show its SUBACK, so a subscription that never happened cannot pass for
    one that received nothing; only the messages' lines are returned."""
    sub = tool == "mosquitto_sub"
    cmd = [tool, "-h", host, "-p", str(port)] + (["-d"] if sub else []) + args
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != rc:
        raise AssertionError("%s exited %d, want %d: %s" % (" ".join(cmd), r.returncode, rc,
                                                            r.stderr.strip()))
    if not sub:
        return r.stdout
    lines = r.stdout.splitlines()
    if not any(line.startswith("Subscribed (mid") for line in lines):
        raise AssertionError("%s: no SUBACK: %r" % (" ".join(cmd), r.stdout))
    return "".join(line + "\n" for line in lines if not mosq_debug(line))


class Sub:
    """mosquitto_sub in the background, started with -d: its SUBACK ("Subscribed (mid: ...")
    is the signal that it is ready, so the test publishes only once the broker has the
    subscription. result() waits for it to end and checks its exit status."""

    def __init__(self, host, port, args):
        self.cmd = ["mosquitto_sub", "-d", "-h", host, "-p", str(port)] + args
        # its stdout is a pipe: line-buffered, so the SUBACK line comes when it happens
        self.p = subprocess.Popen(["stdbuf", "-oL"] + self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seen = []
        end = time.time() + WAIT
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.time()))
            except queue.Empty:
                self.p.kill()
                raise AssertionError("%s: no SUBACK within %.1fs" % (" ".join(self.cmd), WAIT))
            if line is None:
                raise AssertionError("%s exited before its SUBACK: %s" % (
                    " ".join(self.cmd), self.p.stderr.read().strip()))
            self.seen.append(line)
            if line.startswith("Subscribed (mid"):
                return

    def _read(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def result(self, timeout=8, rc=0):
        """The messages' lines, once it exited with rc."""
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise AssertionError("%s still running after %ds" % (" ".join(self.cmd), timeout))
        out = []
        while True:
            line = self.lines.get(timeout=WAIT)
            if line is None:
                break
            if not mosq_debug(line):
                out.append(line)
        if self.p.returncode != rc:
            raise AssertionError("%s exited %d, want %d: %s" % (
                " ".join(self.cmd), self.p.returncode, rc, self.p.stderr.read().strip()))
        return "".join(line + "\n" for line in out)


def t_mosquitto_qos(host, port):
    """mosquitto_pub -> mosquitto_sub at each QoS, 3.1.1 and 5.0."""
    for ver in ([], ["-V", "5"]):
        for qos in (0, 1, 2):
            topic = "it/%s/q%d/%s" % (RUN, qos, "v5" if ver else "v311")
            sub = Sub(host, port, ver + ["-t", topic, "-q", str(qos), "-C", "1", "-W", "5",
                                         "-F", "%q %t %p"])
            mosq("mosquitto_pub", host, port, ver + ["-t", topic, "-q", str(qos), "-m", "hi"])
            out = sub.result()
            want = "%d %s hi" % (qos, topic)
            if out.strip() != want:
                raise AssertionError("got %r, want %r" % (out.strip(), want))


def t_paho_qos_both_ways(host, port):
    """paho publisher and subscriber, delivery QoS = min(pub, sub)."""
    for v5 in (False, True):
        topic = "it/%s/paho/%s" % (RUN, v5)
        s = Client(host, port, v5=v5)
        s.subscribe(topic, 2)
        p = Client(host, port, v5=v5)
        for qos in (0, 1, 2):
            p.publish(topic, b"m%d" % qos, qos=qos)
            m = s.get()
            assert m.payload == b"m%d" % qos and m.qos == qos, (m.payload, m.qos)
        s.c.unsubscribe(topic)
        s.subscribe(topic + "/low", 1)
        p.publish(topic + "/low", b"two", qos=2)
        assert s.get().qos == 1
        p.close()
        s.close()


def t_retained(host, port):
    """Retained: set, replace, delivered on subscribe with retain flag, cleared by empty."""
    topic = "it/%s/ret" % RUN
    mosq("mosquitto_pub", host, port, ["-t", topic, "-m", "one", "-r", "-q", "1"])
    mosq("mosquitto_pub", host, port, ["-t", topic, "-m", "two", "-r", "-q", "1"])
    out = mosq("mosquitto_sub", host, port, ["-t", topic, "-C", "1", "-W", "3", "-F", "%r %p"])
    assert out.strip() == "1 two", out
    mosq("mosquitto_pub", host, port, ["-t", topic, "-n", "-r"])
    out = mosq("mosquitto_sub", host, port, ["-t", topic, "-C", "1", "-W", "1"],
               rc=MOSQ_TIMED_OUT)
    assert out.strip() == "", out


def t_will(host, port):
    """The will goes out on an abrupt end, not after a clean DISCONNECT."""
    topic = "it/%s/will" % RUN
    w = Client(host, port)
    w.subscribe(topic, 1)
    a = Client(host, port, will=(topic, b"bye"))
    a.kill()
    m = w.get()
    assert m.payload == b"bye", m.payload
    b = Client(host, port, will=(topic, b"clean"))
    b.close()
    w.nothing(1.0)
    w.close()


def t_offline_queue(host, port):
    """A persistent session gets what was published while it was away (3.1.1 and 5.0), once
    and in order, with session present 1. With several lcores (--multi-lcore) it reconnects
    a few times, so the session resumes on another lcore's instance at least once, very
    likely (each connection lands on a lcore by its port hash)."""
    rounds = 6 if MULTI_LCORE else 1
    for v5 in (False, True):
        cid = "it-%s-keep-%d" % (RUN, v5)
        topic = "it/%s/off/%d" % (RUN, v5)
        kw = {"expiry": 60} if v5 else {}
        s = Client(host, port, cid=cid, v5=v5, clean=False, **kw)
        s.subscribe(topic, 1)
        for r in range(rounds):
            s.close()
            for i in range(3):
                mosq("mosquitto_pub", host, port, ["-t", topic, "-q", "1", "-m", "r%dm%d" % (r, i)])
            s = Client(host, port, cid=cid, v5=v5, clean=False, **kw)
            assert s.session_present, "session present 0 on a reconnect (round %d)" % r
            got = [s.get().payload for _ in range(3)]
            want = [("r%dm%d" % (r, i)).encode() for i in range(3)]
            assert got == want, (got, want)
        s.nothing(0.3)
        s.close()
        s = Client(host, port, cid=cid, v5=v5, clean=True)  # clean up the stored session
        s.close()


def raw_connect_v5(host, port, cid):
    """A 5.0 CONNECT by hand on a plain socket (paho 1.6 drops a DISCONNECT's reason code
    when the packet has no properties, so the takeover reason is read from the wire)."""
    cid = cid.encode()
    body = b"\x00\x04MQTT\x05\x02\x00\x3c\x00" + len(cid).to_bytes(2, "big") + cid
    sock = socket.create_connection((host, port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    connack = sock.recv(3)
    assert connack[:1] == b"\x20", connack
    sock.recv(connack[1] - 1)
    return sock


def read_to_eof(sock):
    """Everything until the broker's FIN; a reset instead fails (the client could not have
    read what came before it)."""
    data = b""
    while True:
        more = sock.recv(65536)
        if not more:
            return data
        data += more


def t_error_close_graceful(host, port):
    """5.0 4.13.1: a PUBLISH over the Maximum Packet Size gets DISCONNECT 0x95, and a client
    over our Receive Maximum DISCONNECT 0x93, readable before a graceful close (FIN, not a
    reset) although the client is still sending. The test harness closes its sockets with
    unread data (a reset): checked against the dataplane only."""
    if not TARGET:
        return
    a = raw_connect_v5(host, port, "it-%s-big" % RUN)
    topic = b"\x00\x01t"
    body = topic + b"\x00" + b"x" * (300 * 1024)  # over max_packet_size 256k
    rl, n = b"", len(body)
    while True:
        rl += bytes([(n & 0x7F) | (0x80 if n > 0x7F else 0)])
        n >>= 7
        if not n:
            break
    try:
        a.sendall(b"\x30" + rl + body)
    except OSError:
        pass  # the broker may close before it took everything
    data = read_to_eof(a)
    a.close()
    assert data.endswith(b"\xe0\x01\x95"), data[-8:]
    b = raw_connect_v5(host, port, "it-%s-rmax" % RUN)
    pubs = b""
    for pid in range(1, 41):  # QoS 2 awaiting PUBREL: our Receive Maximum is 32
        pubs += b"\x34\x07\x00\x01t" + pid.to_bytes(2, "big") + b"\x00p"
    try:
        b.sendall(pubs)
    except OSError:
        pass
    data = read_to_eof(b)
    b.close()
    assert data.endswith(b"\xe0\x01\x93"), data[-8:]


def t_takeover(host, port):
    """A second CONNECT with the same client id takes the session over (5.0: reason 0x8E)."""
    cid = "it-%s-same" % RUN
    a = raw_connect_v5(host, port, cid)
    b = Client(host, port, cid=cid, v5=True)
    assert a.recv(3) == b"\xe0\x01\x8e"  # DISCONNECT, Session taken over
    assert a.recv(1) == b""                  # then closed
    a.close()
    topic = "it/%s/take" % RUN
    b.subscribe(topic, 1)
    b.publish(topic, b"ok", qos=1)
    assert b.get().payload == b"ok"
    b.close()


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        assert more, "connection closed after %r" % data
        data += more
    return data


def read_packet(sock):
    """(first byte, body) of the next packet on a plain socket."""
    first = recv_exact(sock, 1)[0]
    rlen, shift = 0, 0
    while True:
        b = recv_exact(sock, 1)[0]
        rlen |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, recv_exact(sock, rlen)


def raw_connect_311_keep(host, port, cid):
    """3.1.1 CONNECT with clean session 0 by hand; returns (socket, session present)."""
    cid = cid.encode()
    body = b"\x00\x04MQTT\x04\x00\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    sock = socket.create_connection((host, port), timeout=WAIT)
    sock.sendall(bytes([0x10, len(body)]) + body)
    first, ack = read_packet(sock)
    assert first == 0x20 and ack[1] == 0, (first, ack)
    return sock, bool(ack[0] & 1)


def t_inflight_dup(host, port):
    """A QoS 1 delivery never acknowledged comes again with DUP and the same packet id after
    each reconnect, with session present 1 (with --multi-lcore: more rounds, so the session
    moves between lcores with the message in flight), and once acknowledged, never again."""
    cid = "it-%s-dup" % RUN
    topic = ("it/%s/dup" % RUN).encode()
    sock, _ = raw_connect_311_keep(host, port, cid)
    sock.sendall(bytes([0x82, 5 + len(topic)]) + b"\x00\x01" + len(topic).to_bytes(2, "big") +
                 topic + b"\x01")
    first, body = read_packet(sock)
    assert first == 0x90 and body == b"\x00\x01\x01", (first, body)
    mosq("mosquitto_pub", host, port, ["-t", topic.decode(), "-q", "1", "-m", "once"])
    first, body = read_packet(sock)
    assert first & 0xF6 == 0x32 and not first & 0x08, hex(first)  # QoS 1, no DUP yet
    pid = body[2 + len(topic):4 + len(topic)]
    for r in range(6 if MULTI_LCORE else 2):
        sock.close()  # no PUBACK
        sock, present = raw_connect_311_keep(host, port, cid)
        assert present, "session present 0 on a reconnect (round %d)" % r
        first, body = read_packet(sock)
        assert first == 0x3A, hex(first)  # PUBLISH, DUP, QoS 1
        assert body[2 + len(topic):4 + len(topic)] == pid and body.endswith(b"once"), body
    sock.sendall(b"\x40\x02" + pid)
    sock.close()
    sock, present = raw_connect_311_keep(host, port, cid)
    assert present
    sock.settimeout(0.5)
    try:
        extra = sock.recv(64)
    except socket.timeout:
        extra = b""
    assert extra == b"", extra
    sock.sendall(b"\xe0\x00")
    sock.close()
    Client(host, port, cid=cid, clean=True).close()  # clean up the stored session


def t_wildcards(host, port):
    """+ and # subscriptions through mosquitto_sub."""
    base = "it/%s/wild" % RUN
    sub = Sub(host, port, ["-t", base + "/+/x", "-t", base + "/deep/#", "-C", "3", "-W", "5",
                           "-F", "%t"])
    for t in ("a/x", "a/y", "deep", "deep/1/2", "b/x"):
        mosq("mosquitto_pub", host, port, ["-t", base + "/" + t, "-m", "."])
    out = sub.result()
    got = sorted(out.split())
    want = sorted(base + "/" + t for t in ("a/x", "deep", "deep/1/2"))
    assert got == want, (got, want)


def t_v5_properties(host, port):
    """Request/response properties and user properties pass through."""
    topic = "it/%s/props" % RUN
    s = Client(host, port, v5=True)
    s.subscribe(topic, 1)
    p = Client(host, port, v5=True)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = topic + "/reply"
    props.CorrelationData = b"\x01\x02"
    props.UserProperty = [("k", "v")]
    props.MessageExpiryInterval = 30
    p.publish(topic, b"ask", qos=1, properties=props)
    m = s.get()
    assert m.properties.ResponseTopic == topic + "/reply"
    assert m.properties.CorrelationData == b"\x01\x02"
    assert ("k", "v") in m.properties.UserProperty
    assert 0 < m.properties.MessageExpiryInterval <= 30
    p.close()
    s.close()


def t_topic_alias_out(host, port):
    """Outbound topic aliases, read by paho's own decoder: a client that allows 2 gets each
    topic in full with a new alias, then the alias alone; round robin when all are bound."""
    base = "it/%s/alias/" % RUN
    s = Client(host, port, v5=True, alias_max=2)
    s.subscribe(base + "#", 1)
    plain = Client(host, port, v5=True)
    plain.subscribe(base + "#", 1)
    p = Client(host, port)
    sent = ["a", "a", "b", "c", "a"]
    for i, t in enumerate(sent):
        p.publish(base + t, b"m%d" % i, qos=1)
    want = [(base + "a", 1), ("", 1), (base + "b", 2), (base + "c", 1), (base + "a", 2)]
    bound = {}
    for i, (topic, alias) in enumerate(want):
        m = s.get()
        got_alias = getattr(m.properties, "TopicAlias", None)
        assert (m.topic, got_alias) == (topic, alias), "delivery %d: %r alias %r, want %r %r" % (
            i, m.topic, got_alias, topic, alias)
        if m.topic:
            bound[alias] = m.topic
        assert bound[alias] == base + sent[i] and m.payload == b"m%d" % i
        m2 = plain.get()  # allows none: every topic in full, no alias
        assert m2.topic == base + sent[i] and getattr(m2.properties, "TopicAlias", None) is None
    for c in (p, plain, s):
        c.close()


def t_shared(host, port):
    """$share/group/filter: each message to one member, the two members taking turns."""
    topic = "it/%s/shared" % RUN
    a = Client(host, port, v5=True)
    b = Client(host, port, v5=True)
    a.subscribe("$share/grp/" + topic, 1)
    b.subscribe("$share/grp/" + topic, 1)
    p = Client(host, port, v5=True)
    # Ready when the group hands messages to both members (with several workers the member
    # counts travel to the group's owner first): publish "warm" until each member got one.
    warm = {"a": 0, "b": 0}
    end = time.time() + WAIT
    while not (warm["a"] and warm["b"]):
        if time.time() > end:
            raise AssertionError("the group never reached both members: %r" % warm)
        p.publish(topic, b"warm", qos=1)
        for name, c in (("a", a), ("b", b)):
            try:
                while c.msgs.get(timeout=0.05):
                    warm[name] += 1
            except queue.Empty:
                pass
    for i in range(10):
        p.publish(topic, b"%d" % i, qos=1)
    got = {"a": [], "b": []}
    end = time.time() + WAIT
    while len(got["a"]) + len(got["b"]) < 10 and time.time() < end:
        for name, c in (("a", a), ("b", b)):
            try:
                m = c.msgs.get(timeout=0.05)
            except queue.Empty:
                continue
            if m.payload != b"warm":  # a late one from the warm-up
                got[name].append(int(m.payload))
    a.nothing(0.3)
    b.nothing(0.1)
    assert sorted(got["a"] + got["b"]) == list(range(10)), got
    assert len(got["a"]) == 5 and len(got["b"]) == 5, got
    for c in (a, b, p):
        c.close()


def t_sys(host, port):
    """$SYS/broker/... statistics are published (retained) under Mosquitto's names, whatever the
    number of dataplane workers (the first sums every worker's figures); each worker's own are
    under $SYS/broker/lcore/<n>/ when there are several."""
    for name in ("uptime", "clients/connected"):
        out = mosq("mosquitto_sub", host, port, ["-t", "$SYS/broker/" + name,
                                                 "-C", "1", "-W", "12"], timeout=15)
        assert out.strip().isdigit(), (name, out)


def t_bad_input_isolated(host, port):
    """A client sending garbage is dropped; a subscriber next to it keeps working."""
    topic = "it/%s/iso" % RUN
    s = Client(host, port)
    s.subscribe(topic, 0)
    with socket.create_connection((host, port), timeout=WAIT) as raw:
        raw.sendall(b"\x30\xff\xff\xff\xff\x01")  # remaining length over 4 bytes, no CONNECT
        raw.settimeout(WAIT)
        assert raw.recv(16) == b""  # closed by the broker
    mosq("mosquitto_pub", host, port, ["-t", topic, "-m", "alive"])
    assert s.get().payload == b"alive"
    s.close()


def t_many_and_large(host, port):
    """20 publishers x 40 QoS 1 messages to one subscriber (within the default per-session
    queue of 1000), none lost and in order per publisher; then
    payloads of 200 kB (many TCP segments each) both ways."""
    topic = "it/%s/load" % RUN
    s = Client(host, port, v5=True)
    s.subscribe(topic + "/#", 1)
    pubs = [Client(host, port) for _ in range(20)]
    for k in range(40):
        for i, p in enumerate(pubs):
            p.c.publish("%s/%d" % (topic, i), b"%d" % k, qos=1)
    seen = {}
    for _ in range(20 * 40):
        m = s.get(timeout=20)
        i = int(m.topic.rsplit("/", 1)[1])
        k = int(m.payload)
        assert k == seen.get(i, -1) + 1, "publisher %d: %d after %d" % (i, k, seen.get(i, -1))
        seen[i] = k
    for p in pubs:
        p.close()
    big = bytes(range(256)) * 800
    s.publish(topic + "/big", big, qos=1)
    m = s.get(timeout=20)
    assert m.payload == big, len(m.payload)
    s.close()


TESTS = [t_mosquitto_qos, t_paho_qos_both_ways, t_retained, t_will, t_offline_queue, t_inflight_dup,
         t_takeover, t_wildcards, t_v5_properties, t_bad_input_isolated, t_many_and_large,
         t_shared, t_sys, t_topic_alias_out, t_error_close_graceful]


def start_harness():
    path = os.environ.get("EDGEGW_BROKER_HARNESS")
    if not path or not os.path.exists(path):
        print("SKIP: no broker harness ($EDGEGW_BROKER_HARNESS) and no --target")
        sys.exit(77)
    proc = subprocess.Popen([path, "-a", "127.0.0.1", "-p", "0", "-s", "1000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 3 or line[0] != "listening":
        proc.kill()
        raise SystemExit("harness did not start: %r %s" % (line, proc.stderr.read()))
    return proc, line[1], int(line[2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default=os.environ.get("EDGEGW_MQTT_TARGET"),
                    help="HOST:PORT of a running broker (default: start the test harness)")
    ap.add_argument("-k", default="", help="run only tests whose name contains this")
    ap.add_argument("--multi-lcore", action="store_true",
                    help="the target runs several broker instances (dataplane workers)")
    args = ap.parse_args()
    global MULTI_LCORE, TARGET
    MULTI_LCORE = args.multi_lcore
    TARGET = bool(args.target)
    proc = None
    if args.target:
        host, port = args.target.rsplit(":", 1)
        port = int(port)
    else:
        proc, host, port = start_harness()
    failed = 0
    try:
        for t in TESTS:
            if args.k not in t.__name__:
                continue
            t0 = time.time()
            try:
                t(host, port)
                print("PASS %-24s %.1fs" % (t.__name__, time.time() - t0), flush=True)
            except Exception as e:  # report every check, then fail once
                failed += 1
                print("FAIL %-24s %s: %s" % (t.__name__, type(e).__name__, e), flush=True)
    finally:
        if proc:
            proc.terminate()
            _, err = proc.communicate(timeout=5)
            print("harness counters:\n" + err)
    print("%d failed" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
