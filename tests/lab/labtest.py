"""labtest: what the lab's integration tests share (tests/integration/{lab,net,tcp}/*.py).

A test does:
    with labtest.Lab("eb") as lab:       # lab up with a unique prefix; down even on failure
        lab.enter_sensors()              # this process's sockets now live in the sensors netns
        ...
        labtest.check(cond, "what went wrong")

Lab.up() runs tests/lab/lab with EGW_PREFIX set; teardown runs on exit, exception, SIGTERM
(meson's timeout) and SIGINT. Everything here is standard library, for /usr/bin/python3.
"""
import ctypes
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import dpstat  # noqa: E402

LAB = os.path.join(HERE, "lab")
GW = "198.18.0.1"
SENSOR = "198.18.0.2"
CLONE_NEWNET = 0x40000000
T0 = time.monotonic()


def log(msg):
    print("[%7.2fs] %s" % (time.monotonic() - T0, msg), flush=True)


class CheckFailed(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)
    log("ok: " + msg)


def wait_for(fn, timeout_s, interval_s=0.2):
    """Poll fn() until it returns a true value or timeout_s passes; return the last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval_s)


def log_size(path):
    """The size of a log file now (0 when it does not exist yet): the offset to give wait_log
    for the lines written after this moment."""
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def wait_log(path, needle, offset=0, timeout_s=10.0):
    """The first line of the log at path that contains needle and was written at or after byte
    offset (see log_size), waiting up to timeout_s for it; None when none came."""
    def find():
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return None
        return next((ln for ln in text.splitlines() if needle in ln), None)
    return wait_for(find, timeout_s)


def mqtt_packet(first_byte, body):
    """One MQTT packet: the fixed header (first byte, remaining length) and body."""
    n, rl = len(body), bytearray()
    while True:
        n, digit = n // 128, n % 128
        rl.append(digit | (0x80 if n else 0))
        if not n:
            return bytes([first_byte]) + bytes(rl) + body


def mqtt_connect_packet(client_id, clean=True, keepalive_s=60):
    """A raw MQTT 3.1.1 CONNECT (no will, no credentials)."""
    cid = client_id.encode()
    return mqtt_packet(0x10, b"\x00\x04MQTT\x04" + bytes([0x02 if clean else 0x00]) +
                       keepalive_s.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid)


def mqtt_subscribe_packet(topic, qos=0, packet_id=1):
    """A raw MQTT 3.1.1 SUBSCRIBE to one filter."""
    t = topic.encode()
    return mqtt_packet(0x82, packet_id.to_bytes(2, "big") + len(t).to_bytes(2, "big") + t +
                       bytes([qos]))


def setns_path(path):
    """Move the calling thread (threads it starts later follow) into the netns at path."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + path)
    finally:
        os.close(fd)


# Where this process started: "lab down" kills every process left in the lab's namespaces,
# so the test steps back out before calling it.
HOME_NETNS = "/proc/%d/ns/net" % os.getpid()
_home_fd = os.open(HOME_NETNS, os.O_RDONLY)
HOME_NETNS = "/proc/self/fd/%d" % _home_fd


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(logdir):
    """Lines of the logs in logdir that carry a sanitizer report, with their file."""
    found = []
    for name in sorted(os.listdir(logdir)):
        with open(os.path.join(logdir, name), errors="replace") as f:
            lines = f.readlines()
        for i, line in enumerate(lines):
            if any(m in line for m in SANITIZER_MARKS):
                found.append("%s:%d: %s" % (name, i + 1, "".join(lines[i:i + 12]).rstrip()))
    return found


class Lab:
    """One lab, with a prefix unique to this test run: egw-<tag><pid in base 36>-."""

    def __init__(self, tag, impair=None, impair_back=None, kernel_peer=False, port=None, config=None,
                 site=False):
        n, pid36 = os.getpid(), ""
        while n:
            pid36, n = "0123456789abcdefghijklmnopqrstuvwxyz"[n % 36] + pid36, n // 36
        self.prefix = "egw-%s%s-" % (tag[:2], pid36[-4:])
        self.impair, self.impair_back, self.kernel_peer = impair, impair_back, kernel_peer
        self.port = port
        self.site = site  # False: the dataplane alone (lab up --dataplane-only), as most tests need
        self.is_up = False
        self.env = dict(os.environ, EGW_PREFIX=self.prefix)
        if config is not None:
            self.env["EGW_LAB_CONFIG"] = config

    def run(self, *args, check_rc=True, timeout=120):
        r = subprocess.run([LAB, *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        if r.stderr.strip():
            log("lab %s: %s" % (args[0], r.stderr.strip()))
        if check_rc and r.returncode != 0:
            raise CheckFailed("lab %s failed (rc %d)" % (" ".join(args), r.returncode))
        return r

    def up(self):
        args = ["up"]
        if self.impair is not None:
            args += ["--impair", self.impair]
        if self.impair_back is not None:
            args += ["--impair-back", self.impair_back]
        if self.kernel_peer:
            args += ["--kernel-peer"]
        if self.port is not None:
            args += ["--port", self.port]
        if not self.site:
            args += ["--dataplane-only"]
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.is_up = True
        self.run(*args)
        return self

    def down(self):
        """lab down; returns the sanitizer reports (ASan, LSan, UBSan) found in the logs."""
        if not self.is_up:
            return []
        self.is_up = False
        setns_path(HOME_NETNS)
        with tempfile.TemporaryDirectory() as logdir:
            self.env["LAB_LOG_DIR"] = logdir
            self.run("down", check_rc=False)
            return sanitizer_reports(logdir)

    def _on_signal(self, sig, frame):
        log("signal %d: tearing the lab down" % sig)
        self.down()
        os._exit(1)

    def __enter__(self):
        return self.up()

    def __exit__(self, et, ev, tb):
        if et is not None:
            self.dump_log()
        reports = self.down()
        for r in reports:
            log("sanitizer report in %s" % r)
        if reports and et is None:
            raise CheckFailed("sanitizer reports in the lab's logs (dataplane or relay)")
        return False

    def runtime(self, name):
        return os.path.join("/run/edgegw-lab", self.prefix, name)

    def dump_log(self, lines=40):
        try:
            with open(self.runtime("dataplane.log")) as f:
                tail = f.readlines()[-lines:]
            log("dataplane log tail:\n" + "".join("    " + x for x in tail))
        except OSError:
            pass

    def dataplane_pid(self):
        with open(self.runtime("dataplane.pid")) as f:
            return int(f.read())

    def dataplane_alive(self):
        try:
            os.kill(self.dataplane_pid(), 0)
            return True
        except (OSError, ValueError):
            return False

    def restart_dataplane(self):
        self.run("restart-dataplane")

    def relay_stats(self):
        """The impairment relay's counters: {"a2b": {"rx": N, ...}, "b2a": {...}} (SIGUSR1)."""
        with open(self.runtime("impair.pid")) as f:
            os.kill(int(f.read()), signal.SIGUSR1)
        time.sleep(0.3)
        stats = {}
        with open(self.runtime("impair.log")) as f:
            for line in f:
                for d in ("a2b", "b2a"):
                    if "] %s: " % d in line:
                        kv = line.split("] %s: " % d, 1)[1].split()
                        stats[d] = {k: int(v) for k, v in (x.split("=") for x in kv)}
        return stats

    def enter_sensors(self):
        setns_path("/run/netns/" + self.prefix + "sensors")

    def sensors(self, *cmd, **kw):
        """Run a command in the sensors namespace."""
        return subprocess.run(["ip", "netns", "exec", self.prefix + "sensors", *cmd], **kw)

    def sensors_popen(self, *cmd, **kw):
        """Start a command in the sensors namespace; returns the Popen."""
        return subprocess.Popen(["ip", "netns", "exec", self.prefix + "sensors", *cmd], **kw)

    def counters(self):
        return dpstat.counters(self.prefix)

    def mem(self):
        return dpstat.mem(self.prefix)

    def flows(self):
        """TCP flows the dataplane holds (all states, TIME_WAIT included)."""
        m = self.mem()
        if isinstance(m, dict) and "flows" in m:
            return int(m["flows"])
        return int(dpstat.query("/edgegw/status", self.prefix)["tcp_flows"])

    def wait_flows(self, n, timeout_s):
        """Wait until the flow count is n; return the last count seen."""
        last = [None]

        def probe():
            last[0] = self.flows()
            return last[0] == n
        wait_for(probe, timeout_s, 0.5)
        return last[0]

    def gateway_mac(self):
        """The dataplane's MAC as the sensors' kernel learned it (ping first)."""
        out = self.sensors("ip", "neigh", "show", GW, capture_output=True, text=True).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None


def counter_delta(before, after, name):
    return after.get(name, 0) - before.get(name, 0)


def counters_matching(c, word):
    """Sum of the counters whose name contains word (e.g. "cookie")."""
    return sum(v for k, v in c.items() if word in k)


def connect(port=7, timeout_s=10.0, addr=GW):
    s = socket.create_connection((addr, port), timeout=timeout_s)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def echo_once(s, payload):
    """Send payload on s and read the same number of bytes back; return what came back."""
    s.sendall(payload)
    got = bytearray()
    while len(got) < len(payload):
        b = s.recv(len(payload) - len(got))
        if not b:
            raise CheckFailed("echo closed after %d of %d bytes" % (len(got), len(payload)))
        got += b
    return bytes(got)


def check_echo_works(tag, size=1000, port=7):
    with connect(port) as s:
        data = os.urandom(size)
        check(echo_once(s, data) == data, "%s: a new echo connection works" % tag)


def pattern_chunks(total, chunk=65536, seed=b"edgegw"):
    """Deterministic pseudo-random data, generated on the fly (SHA-256 in counter mode)."""
    block = b"".join(hashlib.sha256(seed + struct.pack("<Q", i)).digest() for i in range(chunk // 32))
    sent = 0
    i = 0
    while sent < total:
        n = min(chunk, total - sent)
        # vary each chunk cheaply so a misordered chunk changes the hash
        yield struct.pack("<Q", i) + block[8:n] if n >= 8 else block[:n]
        sent += n
        i += 1


def transfer(port, total, echo=True, timeout_s=120.0, addr=GW):
    """Send total bytes on one connection while a thread reads the echo concurrently.

    Returns dict(sent_sha, recv_sha, sent, received, seconds, mb_per_s)."""
    s = connect(port, timeout_s, addr)
    s.settimeout(timeout_s)
    res = {"received": 0, "recv_sha": None, "err": None}
    rh = hashlib.sha256()

    def reader():
        try:
            while res["received"] < total:
                b = s.recv(262144)
                if not b:
                    break
                rh.update(b)
                res["received"] += len(b)
        except OSError as e:
            res["err"] = e
        res["recv_sha"] = rh.hexdigest()

    t = threading.Thread(target=reader, daemon=True)
    t0 = time.monotonic()
    if echo:
        t.start()
    sh = hashlib.sha256()
    sent = 0
    for c in pattern_chunks(total):
        s.sendall(c)
        sh.update(c)
        sent += len(c)
    if echo:
        t.join(timeout_s)
    else:
        s.shutdown(socket.SHUT_WR)
        s.settimeout(timeout_s)
        if s.recv(1) != b"":
            raise CheckFailed("discard sent data back")
    el = time.monotonic() - t0
    s.close()
    if res["err"]:
        raise CheckFailed("receive failed after %d bytes: %s" % (res["received"], res["err"]))
    return {"sent_sha": sh.hexdigest(), "recv_sha": res["recv_sha"], "sent": sent,
            "received": res["received"], "seconds": el,
            "mb_per_s": sent / el / 1e6}  # each way


def two_worker_config():
    """A copy of the lab config with two workers (three lcores mapped onto this box's CPUs),
    for Lab(..., config=...). The caller removes the file."""
    import re
    text = open(os.path.join(HERE, "../../configs/lab/gateway.yaml")).read()
    ncpu = os.cpu_count() or 1
    text, n1 = re.subn(r'-l, "0-1"', '--lcores, "0@0,1@%d,2@%d"' % (1 % ncpu, 2 % ncpu), text)
    text, n2 = re.subn(r"workers: 1\b", "workers: 2", text)
    if n1 != 1 or n2 != 1:
        raise CheckFailed("configs/lab/gateway.yaml: cannot rewrite it for two workers")
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name


def dataplane_binary():
    build = os.environ.get("EDGEGW_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(HERE, "../..", build)
    return os.environ.get("EDGEGW_DATAPLANE") or os.path.join(build, "dataplane/edgegw-dataplane")


def agent_binary():
    """The agent of the same build as the dataplane."""
    return os.path.join(os.path.dirname(dataplane_binary()), "../agent/edgegw-agent")


def need_agent():
    """Skip (77) when this build has no agent (-Dagent=disabled)."""
    if not os.path.exists(agent_binary()):
        log("SKIP: no agent in this build (%s)" % agent_binary())
        sys.exit(77)


def agent_stats(lab, part=None):
    """The agent's stats file (None until it is written), or one part of it ({} until then)."""
    import json
    try:
        with open(lab.runtime("agent-stats.json")) as f:
            st = json.load(f)
    except (OSError, ValueError):
        st = None
    if part is None:
        return st
    return (st or {}).get(part) or {}


def log_cloud_drops(lab):
    """Print what the stand-in cloud broker says it dropped for a slow subscriber (a message
    missing at a test's cloud subscriber is then the lab's, not the gateway's)."""
    try:
        with open(lab.runtime("cloud.log"), errors="replace") as f:
            said = [x.strip() for x in f if "dropped" in x]
    except OSError:
        return
    log("cloud broker: %s" % ("; ".join(said[:5]) if said else "dropped nothing for a slow "
                                                                 "subscriber"))


def run_site(tag, run, make_config=None, on_fail=None):
    """A site lab (agent, cloud, devices) tagged tag (see Lab), run(lab) in it.

    make_config(path), when given, writes the gateway config the lab starts with (removed after);
    on_fail(lab), when given, prints what helps on a failed check before it is re-raised.
    """
    need_agent()
    cfg = None
    if make_config is not None:
        cfg = "/tmp/egw-%s-%d.yaml" % (tag, os.getpid())
        make_config(cfg)
    try:
        with Lab(tag, site=True, config=cfg) as lab:
            try:
                run(lab)
            except CheckFailed:
                if on_fail is not None:
                    on_fail(lab)
                log_cloud_drops(lab)
                raise
    finally:
        if cfg is not None:
            os.unlink(cfg)


def main(fn):
    """Run a test function, print PASS/FAIL, exit with meson's convention (77: skipped)."""
    if os.geteuid() != 0:
        log("SKIP: needs root (network namespaces)")
        sys.exit(77)
    if not os.path.exists(dataplane_binary()):
        log("SKIP: no dataplane binary at %s" % dataplane_binary())
        sys.exit(77)
    try:
        fn()
    except CheckFailed as e:
        log("FAIL: %s" % e)
        sys.exit(1)
    log("PASS")
    sys.exit(0)
