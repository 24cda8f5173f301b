#!/usr/bin/python3
"""uplink_tls_mosquitto: the agent's cloud client (uplink_harness) against Mosquitto over TLS on
loopback, certificates made here with openssl. Checks that QoS 1 and 2 messages all arrive
across two forced reconnects and a broker restart (SIGTERM, persistence on), with no QoS 2
message delivered twice; that a reconnect to the same broker resumes the TLS session (and how
many handshake bytes that saves); that a wrong host name, an unknown CA and a missing client
certificate are refused and counted; that TLS-PSK (tls.psk_identity, tls.psk_file, no CA) reaches
a PSK listener, and a wrong key is refused and logged once.
    test_uplink_tls.py UPLINK_HARNESS MOSQUITTO
"""
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt

HARNESS, MOSQUITTO = sys.argv[1], sys.argv[2]
procs = []


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", name + ".key", "-out", name + ".pem", "-days", "2", "-subj",
            "/CN=edgegw test " + name, cwd=d)


def make_cert(d, name, ca, cn, san=None):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % (san or "DNS:" + cn))
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", ext, cwd=d)


PSK_HEX = "6567772d7073682d746573742d6b65792d3332627974657321212121212121"  # 31 bytes


def start_broker(d, plain, tls, psk):
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        # run as us (as root it would switch to the mosquitto user, who cannot read our files)
        f.write(f"""user {getpass.getuser()}
per_listener_settings false
allow_anonymous true
persistence true
persistence_location {d}/
psk_file {d}/mosquitto.psk
log_dest file {d}/mosquitto.log
log_type all
listener {plain} 127.0.0.1
listener {tls} 127.0.0.1
cafile {d}/ca.pem
certfile {d}/server.pem
keyfile {d}/server.key
require_certificate true
tls_version tlsv1.2
listener {psk} 127.0.0.1
psk_hint edgegw
tls_version tlsv1.2
""")
    with open(os.path.join(d, "mosquitto.psk"), "w") as f:
        f.write("edgegw-site:%s\n" % PSK_HEX)
    p = subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    procs.append(p)

    def up():
        try:
            socket.create_connection(("127.0.0.1", plain), 0.2).close()
            socket.create_connection(("127.0.0.1", tls), 0.2).close()
            socket.create_connection(("127.0.0.1", psk), 0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, 10, "mosquitto listening")
    return p


class Subscriber:
    def __init__(self, port):
        self.msgs, self.subscribed = [], False
        self.c = mqtt.Client(client_id="egw-uplink-test-sub", clean_session=False)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("up/#", qos=2)
        self.c.on_subscribe = lambda *a: setattr(self, "subscribed", True)
        self.c.on_message = lambda c, u, m: self.msgs.append((m.topic, m.payload.decode(), m.qos))
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()

    def ids(self):
        return {int(p) for (_, p, _) in list(self.msgs)}

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def write_config(d, name, port, **tls):
    t = {"ca": f"{d}/ca.pem", "cert": f"{d}/client.pem", "key": f"{d}/client.key"}
    t.update(tls)
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(f"""mqtt:
  host: 127.0.0.1
  port: {port}
  client_id: edgegw-uplink-test-{name}
  keepalive: 10s
  reconnect_min: 100ms
  reconnect_max: 1s
  connect_timeout: 5s
  tls: {json.dumps(t)}
""")
    return path


def run_harness(cfg, count, period, run_ms=None, log=None, prefix="up"):
    args = [HARNESS, cfg, str(count), str(period), prefix] + ([str(run_ms)] if run_ms else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)


def refused(d, port, what, counter, **tls):
    cfg = write_config(d, "bad.yaml", port, **tls)
    with open(os.path.join(d, "bad.log"), "w") as log:
        p = run_harness(cfg, 0, 10, 1500, log)
        out, _ = p.communicate(timeout=30)
    c = json.loads(out)
    check(c["connects"] == 0 and c[counter] >= 1, f"{what}: not refused as {counter}: {c}")
    text = open(os.path.join(d, "bad.log")).read()
    check(text.count("cannot connect") == 1, f"{what}: not logged once per series:\n{text}")
    print(f"ok: {what} refused ({counter} {c[counter]}, {c['connect_attempts']} attempts)")


def main():
    d = tempfile.mkdtemp(prefix="egw-uplink-")
    try:
        make_ca(d, "ca")
        make_ca(d, "otherca")
        make_cert(d, "server", "ca", "localhost", "DNS:localhost,IP:127.0.0.1")
        make_cert(d, "client", "ca", "edgegw-client")
        plain, tls, pskp = free_port(), free_port(), free_port()
        broker = start_broker(d, plain, tls, pskp)
        sub = Subscriber(plain)
        wait_for(lambda: sub.subscribed, 10, "subscriber ready")

        count = 300
        cfg = write_config(d, "good.yaml", tls, server_name="localhost")
        log_path = os.path.join(d, "harness.log")
        with open(log_path, "w") as log:
            h = run_harness(cfg, count, 10, None, log)
            wait_for(lambda: len(sub.ids()) >= 60, 20, "60 messages")
            h.send_signal(signal.SIGUSR1)
            wait_for(lambda: len(sub.ids()) >= 130, 20, "130 messages")
            broker.terminate()
            broker.wait()
            broker = start_broker(d, plain, tls, pskp)
            wait_for(lambda: len(sub.ids()) >= 200, 20, "200 messages after the broker restart")
            h.send_signal(signal.SIGUSR1)
            out, _ = h.communicate(timeout=60)
        log = open(log_path).read()
        check(h.returncode == 0, f"harness exit {h.returncode}:\n{log[-3000:]}")
        c = json.loads(out)
        wait_for(lambda: sub.ids() >= set(range(count)), 20, "every message at the subscriber")
        main_msgs = list(sub.msgs)

        seen = {}
        for (_, p, qos) in main_msgs:
            seen.setdefault(int(p), []).append(qos)
        dup2 = [i for i, q in seen.items() if i % 2 == 1 and len(q) > 1]
        dup1 = [i for i, q in seen.items() if i % 2 == 0 and len(q) > 1]
        check(not dup2, f"QoS 2 messages delivered twice: {dup2}")
        check(all(q[0] == 2 for i, q in seen.items() if i % 2 == 1), "QoS 2 messages arrived below QoS 2")
        check(c["connects"] >= 3 and c["disconnects"] >= 3, f"not three reconnects: {c}")
        check(c["session_present"] >= 2 and c["session_lost"] == 0, f"session not resumed: {c}")
        check(c["tls_resumed"] >= 1 and c["tls_full"] >= 2, f"no TLS resumption: {c}")
        full = [int(a) + int(b) for a, b in re.findall(r"full handshake .*?: (\d+) bytes out, (\d+) in", log)]
        res = [int(a) + int(b) for a, b in re.findall(r"resumed handshake .*?: (\d+) bytes out, (\d+) in", log)]
        check(full and res and max(res) < min(full), f"resumed not smaller: full {full} resumed {res}")
        print(f"ok: {count} messages (QoS 1 and 2) across 2 forced reconnects and a broker restart: "
              f"none lost, no QoS 2 duplicate ({len(dup1)} QoS 1 duplicates); "
              f"connects {c['connects']}, resent {c['resent_dup']} PUBLISH + {c['pubrel_resent']} PUBREL")
        print(f"ok: TLS handshake bytes (out+in): full {full}, resumed {res}")
        print(f"counters: {json.dumps(c)}")

        # TLS-PSK: no CA, no certificates; the key authenticates both ends
        with open(os.path.join(d, "agent.psk"), "w") as f:
            f.write(PSK_HEX + "\n")
        os.chmod(os.path.join(d, "agent.psk"), 0o600)
        psk = {"ca": "", "cert": "", "key": "", "psk_identity": "edgegw-site",
               "psk_file": f"{d}/agent.psk"}
        cfg = write_config(d, "psk.yaml", pskp, **psk)
        with open(os.path.join(d, "psk.log"), "w") as log:
            h = run_harness(cfg, 40, 5, None, log, prefix="up/psk")
            out, _ = h.communicate(timeout=60)
        c = json.loads(out)
        check(h.returncode == 0 and c["connects"] >= 1,
              f"PSK: harness exit {h.returncode}: {c}\n{open(os.path.join(d, 'psk.log')).read()[-2000:]}")
        wait_for(lambda: len([t for (t, _, _) in list(sub.msgs) if t.startswith("up/psk/")]) >= 40,
                 20, "the 40 PSK messages at the subscriber")
        print(f"ok: TLS-PSK (identity edgegw-site, no CA): 40 messages arrived; connects {c['connects']}")
        sub.close()

        refused(d, tls, "wrong host name", "tls_verify_fail", server_name="wrong.example")
        refused(d, tls, "unknown CA", "tls_verify_fail", ca=f"{d}/otherca.pem", server_name="localhost")
        refused(d, tls, "no client certificate", "tls_fail", cert="", key="", server_name="localhost")
        with open(os.path.join(d, "wrong.psk"), "w") as f:
            f.write("00" * 31 + "\n")
        os.chmod(os.path.join(d, "wrong.psk"), 0o600)
        refused(d, pskp, "wrong pre-shared key", "tls_fail",
                **dict(psk, psk_file=f"{d}/wrong.psk"))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if os.environ.get("EGW_KEEP_TMP"):
            print("kept", d)
        else:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
