#!/usr/bin/python3
"""labview: the lab gateway at a glance, refreshed in place (the demo's live view).

Reads the dataplane's DPDK telemetry (/edgegw/status, /edgegw/broker, /edgegw/mem) and the
agent's stats file, and shows per interval: link, sessions, MQTT messages in and out per
second (and by QoS), drops, Modbus polls and errors, the spool's depth and age, what the agent sent to the cloud and bytes per
reading, the cloud link, restarts. On a terminal it redraws the screen; otherwise (a log, CI)
it prints one line per interval. Ends on SIGINT/SIGTERM or after --seconds.

  labview.py [--prefix egw-] [--interval 1] [--seconds N]
"""
import argparse
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpstat  # noqa: E402


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def query(cmd, prefix):
    try:
        return dpstat.query(cmd, prefix, timeout_s=1.0)
    except Exception:  # the dataplane restarting: shown as down, not a crash of the view
        return None


class Sample:
    def __init__(self, prefix, run):
        self.t = time.monotonic()
        self.status = query("/edgegw/status", prefix) or {}
        self.broker = query("/edgegw/broker", prefix) or {}
        self.mem = query("/edgegw/mem", prefix) or {}
        self.agent = read_json(os.path.join(run, "agent-stats.json")) or {}
        self.link_down = os.path.exists(os.path.join(run, "link-cloud-down"))
        self.restarts = {n: read_int(os.path.join(run, n + ".restarts"))
                         for n in ("dataplane", "agent")}

    def agent_totals(self):
        tot = {}
        for b in self.agent.get("buses", []):
            for k, v in b.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    tot[k] = tot.get(k, 0) + v
        return tot


def rate(new, old, key, src):
    a, b = getattr(new, src).get(key), getattr(old, src).get(key)
    if a is None or b is None or new.t <= old.t:
        return 0.0
    return max(0.0, (a - b) / (new.t - old.t))


def drops(broker):
    return sum(v for k, v in broker.items()
               if isinstance(v, int) and ("DROP" in k or "LIMIT" in k or k.startswith("BAD")))


def spool_view(agent):
    """The agent's spool: depth, bytes, age of the oldest record, drops (all classes)."""
    sp = agent.get("store", {}).get("spool")
    if not sp:
        return ("-", "-", "-", "-")
    # its age when the agent wrote the file (ts_ms: every stats interval, 5 s in the lab), not
    # now: measured against now, one record in flight at that moment looked older each second
    at = agent.get("ts_ms", time.time() * 1000.0)
    age = "%.0f s" % max(0.0, (at - sp["oldest_ms"]) / 1000.0) if sp.get("oldest_ms") else "-"
    dropped = sum(sp.get(k, 0) for k in ("dropped_qos0", "dropped_bulk", "dropped_normal",
                                          "dropped_alarm", "expired"))
    return (sp.get("records_live", "-"), sp.get("bytes_used", "-"), age, dropped)


def render(new, old, tty):
    up = new.status != {}
    b, m, a = new.broker, new.mem, new.agent
    at = new.agent_totals()
    upl = a.get("uplink", {})
    readings = at.get("published", 0)
    sent_bytes = upl.get("bytes_out", upl.get("bytes_sent"))
    per_reading = ("%.0f B" % (sent_bytes / readings)) if sent_bytes and readings else "n/a"
    lines = [
        "edgegw lab  %s" % time.strftime("%H:%M:%S"),
        "dataplane   %s  link %s  workers %s  TCP flows %s  restarts %d" % (
            "up" if up else "DOWN", "up" if new.status.get("link_up") else "down",
            new.status.get("workers", "-"), new.status.get("tcp_flows", "-"),
            new.restarts["dataplane"]),
        "broker      sessions %s  connections %s  queued %s" % (
            m.get("mqtt_sessions", "-"), m.get("mqtt_conns", "-"), m.get("mqtt_queued_msgs", "-")),
        "            in %8.0f msg/s (QoS 0 %.0f, 1 %.0f, 2 %.0f)  out %8.0f msg/s  in total %s  "
        "drops/limits/bad %d" % (
            rate(new, old, "PUB_RX", "broker"), rate(new, old, "PUB_RX_QOS0", "broker"),
            rate(new, old, "PUB_RX_QOS1", "broker"), rate(new, old, "PUB_RX_QOS2", "broker"),
            rate(new, old, "PUB_TX", "broker"), b.get("PUB_RX", "-"), drops(b)),
        "modbus      polls %s  responses %s  timeouts %s  crc %s  exceptions %s" % (
            at.get("polls", "-"), at.get("responses", "-"), at.get("timeouts", "-"),
            at.get("crc_errors", "-"), at.get("exceptions", "-")),
        "spool       %s records waiting  %s bytes  oldest %s  dropped %s" % spool_view(a),
        "uplink      %s  cloud link %s  readings %s  sent %s  acked %s  queued %s  "
        "per reading %s  agent restarts %d" % (
            "connected" if upl.get("connected") else "not connected",
            "DOWN (lab link cloud up)" if new.link_down else "up", readings,
            upl.get("sent", "-"), upl.get("acked", "-"), upl.get("queued", "-"), per_reading,
            new.restarts["agent"]),
    ]
    if tty:
        sys.stdout.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
    else:
        sys.stdout.write(" | ".join(x.strip() for x in lines[1:]) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prefix", default=os.environ.get("EGW_PREFIX", "egw-"))
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    args = ap.parse_args()
    run = os.path.join("/run/edgegw-lab", args.prefix)
    tty = sys.stdout.isatty()
    stop = []
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
    end = time.monotonic() + args.seconds if args.seconds else None
    old = Sample(args.prefix, run)
    while not stop and (end is None or time.monotonic() < end):
        time.sleep(args.interval)
        new = Sample(args.prefix, run)
        render(new, old, tty)
        old = new
    return 0


if __name__ == "__main__":
    sys.exit(main())
