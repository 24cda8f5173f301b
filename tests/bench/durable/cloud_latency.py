#!/usr/bin/python3
"""cloud_latency.py: sensor to cloud through a running lab site (tests/bench/durable/run calls it
with the lab it brought up). A paho publisher in the sensors' namespace publishes on
plant/bench/cloud/<n> to the dataplane (the lab's rule sends plant/# up durable, the agent forwards
it over TLS to the cloud broker as site/lab/plant/bench/cloud/<n>); a paho subscriber in the cloud's
namespace, on the cloud broker's plain listener, takes each one. Two phases:

  warm-up   one message, its PUBACK timed apart (the first after the gateway started waits for
            the channel to the agent)
  paced     COUNT messages at RATE/s: p50/p99/max from publish to arrival at the cloud, and
            from publish to the gateway's PUBACK (the durable path alone: the record on disk in
            the agent's spool), so that a tail can be put on one leg or the other
  flat out  COUNT messages as fast as the publisher's window lets: arrival rate at the cloud

Both clients run on this host, so one clock times both ends. Prints one line per phase, and
`--json` one JSON object. Needs root (setns).
    cloud_latency.py --prefix egw-du- [--count N] [--rate R] [--qos 1|2] [--json]
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402

CLOUD, GW = "198.18.1.2", "198.18.0.1"


class Sub:
    def __init__(self, tag):
        self.lock = threading.Lock()
        self.got = {}  # id -> arrival time
        self.ready = threading.Event()
        self.c = mqtt.Client(client_id="bench-cloud-" + tag, clean_session=True)
        self.c.on_message = self.on_message
        self.c.on_subscribe = lambda c, u, mid, q: self.ready.set()
        self.c.connect(CLOUD, 1883, keepalive=30)
        self.c.subscribe("site/lab/plant/bench/cloud/#", qos=2)
        self.c.loop_start()

    def on_message(self, c, u, msg):
        now = time.time()
        try:
            i = int(msg.payload.split(b" ")[0])
        except ValueError:
            return
        with self.lock:
            self.got.setdefault(i, now)

    def n(self):
        with self.lock:
            return len(self.got)


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def run(prefix, count, rate, qos):
    labtest.setns_path("/run/netns/%scloud" % prefix)
    sub = Sub(prefix)
    if not sub.ready.wait(10):
        raise SystemExit("cloud_latency: the cloud subscriber did not subscribe")
    labtest.setns_path("/run/netns/%ssensors" % prefix)
    pub = mqtt.Client(client_id="bench-cloud-pub", clean_session=True)
    pub.max_inflight_messages_set(64)
    pub.max_queued_messages_set(0)
    acked, mids, alock = {}, {}, threading.Lock()

    def on_publish(c, u, mid):
        with alock:
            acked[mid] = time.time()
    pub.on_publish = on_publish
    pub.connect(GW, 1883, keepalive=30)
    pub.loop_start()
    labtest.setns_path(labtest.HOME_NETNS)
    out = {}
    sent = {}
    # warm-up: the first durable PUBACK after the gateway started waits for what starts with it
    # (the channel to the agent connecting, with its backoff), up to ~120 ms in the lab: timed
    # apart, so that the paced phase measures the steady state
    w0 = time.time()
    pub.publish("plant/bench/warm", "w", qos=qos).wait_for_publish()
    out["first_ack_ms"] = (time.time() - w0) * 1000
    # paced
    t0 = time.time()
    for i in range(count):
        due = t0 + i / rate
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        sent[i] = time.time()
        mids[i] = pub.publish("plant/bench/cloud/%d" % i, "%d %.6f" % (i, sent[i]), qos=qos).mid
    end = time.time() + 30
    while sub.n() < count and time.time() < end:
        time.sleep(0.05)
    with sub.lock:
        lat = sorted((sub.got[i] - sent[i]) * 1000 for i in range(count) if i in sub.got)
    with alock:
        ack = sorted((acked[mids[i]] - sent[i]) * 1000 for i in range(count) if mids[i] in acked)
    out["paced"] = {"rate": rate, "sent": count, "arrived": len(lat), "p50_ms": pct(lat, 0.5),
                    "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] if lat else float("nan"),
                    "acked": len(ack), "ack_p50_ms": pct(ack, 0.5), "ack_p99_ms": pct(ack, 0.99),
                    "ack_max_ms": ack[-1] if ack else float("nan")}
    pub.on_publish = None
    # flat out
    base = count
    t1 = time.time()
    for i in range(base, base + count):
        while pub.publish("plant/bench/cloud/%d" % i, "%d x" % i, qos=qos).rc == \
                mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
    end = time.time() + 60
    while sub.n() < 2 * count and time.time() < end:
        time.sleep(0.05)
    with sub.lock:
        arr = sorted(t for i, t in sub.got.items() if i >= base)
    span = (arr[-1] - t1) if arr else float("nan")
    out["flat_out"] = {"sent": count, "arrived": len(arr),
                       "msgs_per_s": len(arr) / span if arr and span > 0 else float("nan")}
    pub.loop_stop()
    pub.disconnect()
    sub.c.loop_stop()
    sub.c.disconnect()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--qos", type=int, default=1, choices=(1, 2))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    r = run(a.prefix, a.count, a.rate, a.qos)
    if a.json:
        print(json.dumps(r))
        return
    p, f = r["paced"], r["flat_out"]
    print("first durable %s after the publisher connected: %.1f ms (warm-up, not in the rows "
          "below)" % ("PUBACK" if a.qos == 1 else "PUBCOMP", r["first_ack_ms"]))
    print("sensor to cloud, QoS %d, paced %.0f/s: %d of %d arrived, p50 %.1f ms, p99 %.1f ms, "
          "max %.1f ms" % (a.qos, p["rate"], p["arrived"], p["sent"], p["p50_ms"], p["p99_ms"],
                           p["max_ms"]))
    print("sensor to its %s (durable), QoS %d, paced %.0f/s: %d acknowledged, p50 %.1f ms, "
          "p99 %.1f ms, max %.1f ms" % ("PUBACK" if a.qos == 1 else "PUBCOMP", a.qos, p["rate"],
                                        p["acked"], p["ack_p50_ms"], p["ack_p99_ms"],
                                        p["ack_max_ms"]))
    print("sensor to cloud, QoS %d, flat out: %d of %d arrived, %.0f msgs/s at the cloud" %
          (a.qos, f["arrived"], f["sent"], f["msgs_per_s"]))


if __name__ == "__main__":
    main()
