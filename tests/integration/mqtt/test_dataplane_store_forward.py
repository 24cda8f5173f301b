#!/usr/bin/python3
"""Store and forward on the dataplane, end to end over the real channel (issue 15): a sensor's
QoS 1 PUBLISH on plant/... reaches the agent's end of the channel (a stand-in agent here, this
script, speaking lib/dpchan's frames), and its PUBACK comes only after the agent answers
DURABLE. While no agent listens the publisher is held (HOLD_UPLINK) and gets no PUBACK; when the
agent dies before answering, the dataplane reconnects to the next one and sends the record again
under the same ref, and the PUBACK follows that agent's answer.

The stand-in agent stands for agent/dpchan_link.c with the store (its unit tests cover that end);
what this checks is the dataplane: broker, lcore client, reconnect, resend, deferred ack."""
import os
import shutil
import socket
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../../lab"))
import labtest  # noqa: E402
from labtest import check, log, wait_for  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

HELLO, PUB, DURABLE, HELD, HELD_END = 1, 2, 3, 7, 8
VERSION = 4  # DPCHAN_VERSION (lib/dpchan/dpchan_proto.h)


class FakeAgent:
    """One listening socket at path; accept() one lcore's connection and read its frames."""

    def __init__(self, path):
        if os.path.exists(path):
            os.unlink(path)
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.ls.bind(path)
        self.ls.listen(4)
        self.ls.settimeout(15)
        self.c = None

    def accept(self):
        self.c, _ = self.ls.accept()
        self.c.settimeout(15)
        t, v, _, n, boot, lcore, ver, _seen = struct.unpack("<BBHIQIIQ", self.c.recv(65536))
        check(t == HELLO and v == VERSION and n == 1, "the lcore's first frame is HELLO (version %d)" % v)
        return boot, lcore

    def records(self):
        """The records of the next PUB frame: [(ref, qos, topic, payload)]. The QoS 2 origins
        the lcore lists as held after its HELLO (HELD, HELD_END) are read past."""
        while True:
            f = self.c.recv(256 * 1024)
            t, v, _, n = struct.unpack_from("<BBHI", f)
            if t not in (HELD, HELD_END):
                break
        check(t == PUB and v == VERSION, "a PUB frame")
        off, out = 8, []
        for _ in range(n):
            ref, qos, flags, tl, pl = struct.unpack_from("<QBBHI", f, off)
            off += 16
            out.append((ref, qos, f[off:off + tl].decode(), f[off + tl:off + tl + pl].decode()))
            off += tl + pl
        check(off == len(f), "the PUB frame holds exactly its records")
        return out

    def durable(self, first, last, status=0):
        self.c.send(struct.pack("<BBHIQQi", DURABLE, VERSION, 0, 1, first, last, status))

    def close(self):
        if self.c is not None:
            self.c.close()
        self.ls.close()


def config(sock):
    """The lab's config with the channel's socket where this script listens."""
    text = open(os.path.join(HERE, "../../../configs/lab/gateway.yaml")).read()
    old = "channel: {path: /run/edgegw-lab/egw-/dpchan.sock}"
    check(old in text, "configs/lab/gateway.yaml: the channel to the agent is on")
    text = text.replace(old, "channel: {path: %s, reconnect_max: 200ms}" % sock)
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name


def broker(lab, name):
    return labtest.dpstat.query("/edgegw/broker", lab.prefix)[name]


def test():
    tmp = tempfile.mkdtemp(prefix="dpchan-lab-")
    sock = os.path.join(tmp, "dpchan.sock")
    cfg = config(sock)
    agent = None
    try:
        with labtest.Lab("sf", config=cfg) as lab:
            lab.enter_sensors()
            cl = mqtt.Client(client_id="sensor-sf", clean_session=False,
                             protocol=mqtt.MQTTv311)
            cl.connect(labtest.GW, 1883, keepalive=60)
            cl.loop_start()
            # no agent: held, no PUBACK
            m1 = cl.publish("plant/line1/t", "id-1", qos=1)
            check(wait_for(lambda: broker(lab, "HOLD_UPLINK") >= 1, 15),
                  "no agent: the publisher is held (HOLD_UPLINK)")
            check(not m1.is_published(), "no agent: no PUBACK")
            # the agent comes: the record arrives, the PUBACK waits for DURABLE
            agent = FakeAgent(sock)
            boot, lcore = agent.accept()
            log("lcore %d connected, boot id %016x" % (lcore, boot))
            recs = agent.records()
            check(recs == [(1, 1, "plant/line1/t", "id-1")],
                  "the agent gets the record: ref 1, QoS 1, topic, payload (%r)" % recs)
            check(not m1.is_published(), "taken but not durable: still no PUBACK")
            agent.durable(1, 1)
            check(wait_for(m1.is_published, 10), "DURABLE: the PUBACK comes")
            # the agent dies before answering: the next one gets the record again, same ref
            m2 = cl.publish("plant/line1/t", "id-2", qos=1)
            check(agent.records() == [(2, 1, "plant/line1/t", "id-2")], "record ref 2 sent")
            agent.close()
            agent = FakeAgent(sock)
            check(agent.accept()[0] == boot, "the lcore reconnects (same boot id)")
            recs = agent.records()
            check(recs == [(2, 1, "plant/line1/t", "id-2")],
                  "after the agent's restart the unanswered record comes again (%r)" % recs)
            check(not m2.is_published(), "no PUBACK before the new agent's answer")
            agent.durable(2, 2)
            check(wait_for(m2.is_published, 10), "the new agent's DURABLE: the PUBACK comes")
            # a failed durability: no PUBACK, the client is closed to send it again
            m3 = cl.publish("plant/line1/t", "id-3", qos=1)
            check(agent.records()[0][0] == 3, "record ref 3 sent")
            agent.durable(3, 3, -5)
            check(wait_for(lambda: broker(lab, "UPLINK_FAILED") == 1, 10),
                  "a failed durability is counted")
            check(not m3.is_published(), "no PUBACK for the failed one")
            # paho reconnects and sends it again (DUP): taken anew, acknowledged once durable
            recs = agent.records()
            check([r[1:] for r in recs] == [(1, "plant/line1/t", "id-3")] and recs[0][0] == 4,
                  "the client's resend goes up as ref 4 (%r)" % recs)
            agent.durable(4, 4)
            check(wait_for(m3.is_published, 10), "the resend's PUBACK comes once durable")
            cl.loop_stop()
            c = labtest.dpstat.query("/edgegw/dpchan", lab.prefix)
            log("channel: connects %d, records sent %d, resent %d, durable %d, failed %d" % (
                c["CONNECTS"], c["RECS_TX"], c["RECS_RESENT"], c["DURABLE_OK"],
                c["DURABLE_FAIL"]))
            check(c["RECS_RESENT"] >= 1 and c["CONNECT_FAIL"] >= 1, "channel counters")
            check(broker(lab, "UPLINK_ACKED") == 3, "three deferred PUBACKs sent")
            check(lab.dataplane_alive(), "dataplane still running")
    finally:
        if agent is not None:
            agent.close()
        os.unlink(cfg)
        shutil.rmtree(tmp, ignore_errors=True)


labtest.main(test)
