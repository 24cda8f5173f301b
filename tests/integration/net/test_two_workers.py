#!/usr/bin/python3
"""Two worker lcores on one port (issue 2: run-to-completion per lcore, one rx/tx queue each).
The tap's kernel side spreads flows over its queues by flow hash, so connections land on both
workers; each worker owns its flows, and ARP learned on one lcore reaches the other. Checks:
both workers accept connections, every connection echoes correctly, a bulk transfer matches,
the broker's $SYS/broker/clients/connected counts the MQTT clients of both workers (the first
worker sums them), a SIGHUP with a lower mqtt.max_connections takes effect on both workers
while a changed tcp.rcvbuf is reported as needing a restart, and the flow count returns to
zero."""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import dpstat  # noqa: E402
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

CONNS = 64
MQTT_CLIENTS = 16


def mqtt_connect(client_id):
    """A raw MQTT 3.1.1 CONNECT (clean session, keepalive 60 s); returns the socket once the
    CONNACK said 0."""
    s = labtest.connect(1883)
    s.sendall(labtest.mqtt_connect_packet(client_id))
    ack = recv_exact(s, 4)
    check(ack == b"\x20\x02\x00\x00", "%s: CONNACK accepted (%r)" % (client_id, ack))
    return s


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise labtest.CheckFailed("connection closed by the broker")
        buf += chunk
    return buf


def recv_publish(s):
    """The next PUBLISH (QoS 0) on s: (topic, payload)."""
    head = recv_exact(s, 1)[0]
    rl, mult = 0, 1
    while True:
        b = recv_exact(s, 1)[0]
        rl += (b & 0x7F) * mult
        mult *= 128
        if b < 0x80:
            break
    body = recv_exact(s, rl)
    if head >> 4 != 3:
        return None, None
    tl = int.from_bytes(body[:2], "big")
    return body[2:2 + tl].decode(), body[2 + tl:]


def try_mqtt_connect(client_id):
    """CONNECT; the socket when accepted, None when the broker refused the connection."""
    try:
        return mqtt_connect(client_id)
    except (labtest.CheckFailed, OSError):
        return None


def reload_with(lab, edits):
    """Edit the lab's config copy (text replacements), SIGHUP the dataplane, and return its
    reload log line."""
    path = lab.runtime("gateway.yaml")
    with open(path) as f:
        text = f.read()
    for old, new in edits:
        check(old in text, "the lab config has %r" % old)
        text = text.replace(old, new, 1)
    with open(path, "w") as f:
        f.write(text)
    start = labtest.log_size(lab.runtime("dataplane.log"))
    os.kill(lab.dataplane_pid(), signal.SIGHUP)
    line = labtest.wait_log(lab.runtime("dataplane.log"), "reload: ", start, 10)
    check(line, "the dataplane logged its reload")
    return line


def sys_clients_connected(want, timeout_s):
    """Subscribe to $SYS/broker/clients/connected and read its values until one is want."""
    s = mqtt_connect("sys-watch")
    topic = b"$SYS/broker/clients/connected"
    s.sendall(labtest.mqtt_subscribe_packet(topic.decode()))
    s.settimeout(timeout_s)
    seen = []
    try:
        while True:
            t, pl = recv_publish(s)
            if t == topic.decode():
                seen.append(int(pl))
                if seen[-1] == want:
                    return seen
    except OSError:
        return seen
    finally:
        s.close()


def test():
    cfg = labtest.two_worker_config()
    with open(cfg) as f:  # $SYS every second, so the sums are seen soon
        text = f.read().replace("  mqtt:", "  mqtt:\n    sys_interval: 1s", 1)
    with open(cfg, "w") as f:
        f.write(text)
    try:
        with labtest.Lab("2w", config=cfg) as lab:
            lab.enter_sensors()
            socks = [labtest.connect(7) for _ in range(CONNS)]
            for i, s in enumerate(socks):
                said = b"conn %d says hello" % i
                got = labtest.echo_once(s, said)
                check(got == said, "connection %d echoed what it sent (%r)" % (i, got))
            w = dpstat.query("/edgegw/workers", lab.prefix)
            log("workers: %s" % w)
            check("w1_lcore" in w, "the dataplane runs two workers")
            check(w["w0_tcp_flows"] + w["w1_tcp_flows"] == CONNS, "every connection is held by a worker")
            check(w["w0_tcp_accepted"] > 0 and w["w1_tcp_accepted"] > 0,
                  "both workers accepted connections (%d and %d)" % (w["w0_tcp_accepted"], w["w1_tcp_accepted"]))
            for s in socks:
                s.close()
            mq = [mqtt_connect("c%d" % i) for i in range(MQTT_CLIENTS)]
            w = dpstat.query("/edgegw/workers", lab.prefix)
            log("workers with MQTT clients: %s" % w)
            seen = sys_clients_connected(MQTT_CLIENTS + 1, 15)
            check(seen and seen[-1] == MQTT_CLIENTS + 1,
                  "$SYS/broker/clients/connected counts both workers' clients: %d (values seen %s)"
                  % (MQTT_CLIENTS + 1, seen))
            for s in mq:
                s.close()
            check(lab.wait_flows(0, 30) == 0, "flow count back to 0 after the MQTT clients closed")

            # reload: a lower connection limit applies on both workers; a TCP change waits
            line = reload_with(lab, [("max_connections: 20000", "max_connections: 3"),
                                     ("rcvbuf: 256k", "rcvbuf: 128k")])
            log(line)
            check("1 setting(s) changed live" in line and
                  "needs a restart" in line and "dataplane.tcp" in line,
                  "reload: the limit changed live, dataplane.tcp named as needing a restart")
            got = [try_mqtt_connect("r%d" % i) for i in range(12)]
            ok = [g for g in got if g is not None]
            log("after the reload: %d of 12 connections accepted" % len(ok))
            check(len(ok) <= 6 and len(ok) < 12,
                  "max_connections 3 per worker holds on both workers (%d of 12 accepted)" % len(ok))
            check(lab.dataplane_alive(), "dataplane alive after the reload")
            for s in ok:
                s.close()
            line = reload_with(lab, [("max_connections: 3", "max_connections: nine")])
            check("config rejected" in line, "a bad config is rejected: %s" % line)
            check(len([g for g in (try_mqtt_connect("b%d" % i) for i in range(2)) if g]) >= 1,
                  "the running config stays after a rejected reload")
            r = labtest.transfer(7, 20 * 1000 * 1000, echo=True, timeout_s=90)
            check(r["received"] == 20 * 1000 * 1000 and r["recv_sha"] == r["sent_sha"],
                  "20 MB echoed with the same SHA-256 (%.1f MB/s)" % r["mb_per_s"])
            check(lab.wait_flows(0, 30) == 0, "flow count back to 0 after the clients closed")
            check(lab.dataplane_alive(), "dataplane still running")
    finally:
        os.unlink(cfg)


if __name__ == "__main__":
    labtest.main(test)
