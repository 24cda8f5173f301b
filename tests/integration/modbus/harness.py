"""harness.py: shared plumbing for the agent's Modbus integration tests. Starts socat pty pairs,
the pymodbus simulator, optional Mosquitto, and edgegw-agent; everything started is killed on
exit (normal, exception or signal). Checks raise AssertionError with a readable message."""
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
_procs = []


def _cleanup():
    for p in reversed(_procs):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    _procs.append(p)
    return p


def tmpdir():
    d = tempfile.mkdtemp(prefix="egw-modbus-")
    atexit.register(lambda: subprocess.run(["rm", "-rf", d]))
    return d


def wait_for(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def pty_pair(d, name):
    a, b = os.path.join(d, name + "_a"), os.path.join(d, name + "_b")
    start(["socat", "pty,raw,echo=0,link=" + a, "pty,raw,echo=0,link=" + b])
    wait_for(lambda: os.path.exists(a) and os.path.exists(b), 5, "socat ptys")
    return a, b


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_sim(args, log):
    p = start([PY, os.path.join(HERE, "modbus_sim.py")] + args, stdout=subprocess.PIPE,
              stderr=open(log, "w"), text=True)
    line = p.stdout.readline()
    if "ready" not in line:
        raise AssertionError("simulator did not start: see " + log)
    time.sleep(0.5)   # the server opens its port after printing ready
    return p


def start_agent(agent, cfg_path, log):
    return start([agent, "-c", cfg_path], stdout=open(log, "w"), stderr=subprocess.STDOUT)


def stop_agent(p, log):
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=10)
    if rc != 0:
        raise AssertionError("agent exited %d; log:\n%s" % (rc, open(log).read()[-3000:]))


def read_jsonl(path):
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def points(msgs, device, point):
    return [m["payload"] for m in msgs
            if m["payload"].get("device") == device and m["payload"].get("point") == point]


def stats_dev(stats, bus, dev):
    for b in stats["buses"]:
        if b["name"] == bus:
            for d in b["devices"]:
                if d["name"] == dev:
                    return d
    raise AssertionError("no stats for %s/%s" % (bus, dev))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# Expected first readings of the simulator's "alltypes" device (modbus_sim.py).
ALLTYPES = {
    "u16": 12345, "i16": -1234, "u32_abcd": 287454020, "u32_cdab": 287454020,
    "i32_badc": -123456789, "i32_dcba": -123456789, "u64": 72623859790382856,
    "f32_abcd": 25.5, "f32_cdab": -3.25, "f64_abcd": 3.141592653589793,
    "f64_dcba": 2.718281828459045, "serial": "EDGEGW01", "alarm_a": True, "alarm_b": False,
    "alarm_c": True, "scaled": 134.5, "i64_cdab": -5000000000, "setpoint": 21.5, "limit": 1.5,
    "constant": 777, "temperature": 21.5, "pressure": 4, "pump": False, "valve": True,
    "door": True, "smoke": True,
}


def check_alltypes(msgs, device):
    for name, want in ALLTYPES.items():
        got = points(msgs, device, name)
        check(got, "%s/%s: never published" % (device, name))
        first = got[0]
        check(first["quality"] == "good", "%s/%s: quality %s" % (device, name, first["quality"]))
        v = first["value"]
        if isinstance(want, float):
            check(abs(v - want) < 1e-9 * max(1, abs(want)), "%s/%s: %r != %r" % (device, name, v, want))
        else:
            check(v == want and type(v) == type(want), "%s/%s: %r != %r" % (device, name, v, want))
        check(first["ts"] and first["ts_ms"] > 1.6e12, "%s/%s: no timestamp" % (device, name))


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)


def agent_section(out, stats, stats_interval="200ms", profiles_dir=None, topic_prefix="site",
                  jsonl_extra="", more=""):
    """The head of the `agent:` section the tests share, up to and with `  buses:`: first more
    (lines of the test's own keys, each ending in a newline), then the profiles (this folder's
    by default), the topic prefix (None: none), a state directory next to out, the JSON-lines
    uplink into out (jsonl_extra: more of its keys, as ", commands: FIFO") and the stats file."""
    prefix = f"  topic_prefix: {topic_prefix}\n" if topic_prefix else ""
    return (f"agent:\n"
            f"{more}"
            f"  profiles_dir: {profiles_dir or os.path.join(HERE, 'profiles')}\n"
            f"{prefix}"
            f"  state_dir: {os.path.dirname(out)}/state\n"
            f"  uplink: jsonl\n"
            f"  jsonl: {{path: {out}{jsonl_extra}}}\n"
            f"  stats: {{file: {stats}, interval: {stats_interval}}}\n"
            f"  buses:\n")


def start_mosquitto(d, port):
    conf = os.path.join(d, "mosquitto-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % port)
    p = start(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, 5, "mosquitto on port %d" % port)
    return p


def _json_or_raw(b):
    try:
        return json.loads(b)
    except ValueError:
        return {"raw_len": len(b)}


class Subscriber:
    """A paho client that records every message under a filter and can publish commands."""

    def __init__(self, port, filt):
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.c = mqtt.Client(client_id="egw-test-sub-%d" % os.getpid(), clean_session=True)
        self.c.on_message = lambda c, u, m: self.msgs.append(
            {"topic": m.topic, "qos": m.qos, "payload": _json_or_raw(m.payload)})
        self.subscribed = False
        self.c.on_connect = lambda c, u, f, rc: c.subscribe(filt, qos=1)
        self.c.on_subscribe = lambda c, u, mid, q: setattr(self, "subscribed", True)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        wait_for(lambda: self.subscribed, 5, "test subscriber's SUBACK")

    def publish(self, topic, obj, qos=1):
        payload = obj if isinstance(obj, str) else json.dumps(obj)
        self.c.publish(topic, payload, qos=qos).wait_for_publish()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
