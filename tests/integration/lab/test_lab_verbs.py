#!/usr/bin/python3
"""The lab verbs other tests build on (issue 15's contract): the gateway's processes run under a
supervisor that restarts them when they die (Restart=on-failure); `lab kill dataplane|agent`
SIGKILLs one and returns once the new one is ready; `lab link cloud down|up` cuts the uplink
silently (a dead zone: no RST, no ICMP) and restores it; the stand-in cloud broker listens with
TLS on 8883 with certificates the lab makes, verified by name (cloud.lab) and refused with
another CA."""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

CLOUD = "198.18.1.2"


def read_int(path, default=0):
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return default


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def tcp_connect(host, port, timeout):
    """'ok', 'refused' or 'timeout' (run inside the gateway's namespace)."""
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return "ok"
    except ConnectionRefusedError:
        return "refused"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError as e:
        return "error %s" % e
    finally:
        s.close()


def tls_sub(lab, cafile, host):
    r = subprocess.run(["ip", "netns", "exec", lab.prefix + "gw", "mosquitto_sub", "-h", host,
                        "-p", "8883", "--cafile", cafile, "-t", "$SYS/broker/version", "-C", "1",
                        "-W", "5"], capture_output=True, text=True, timeout=20)
    return r.returncode, (r.stdout + r.stderr).strip()


def test():
    labtest.need_agent()
    with labtest.Lab("lv", site=True) as lab:
        # kill dataplane: a new process, answering ping, counted as a restart
        old = lab.dataplane_pid()
        lab.run("kill", "dataplane")
        new = lab.dataplane_pid()
        check(new != old and pid_alive(new) and not pid_alive(old),
              "kill dataplane: pid %d replaced by %d" % (old, new))
        check(read_int(lab.runtime("dataplane.restarts")) == 1,
              "the supervisor counted one dataplane restart")
        st = lab.run("status").stdout
        check("gateway 198.18.0.1: answers ping" in st, "the restarted dataplane answers ping")

        # kill agent: a new agent, connected to the cloud again (lab kill waits for it)
        old = read_int(lab.runtime("agent.pid"))
        lab.run("kill", "agent")
        new = read_int(lab.runtime("agent.pid"))
        check(new != old and pid_alive(new), "kill agent: pid %d replaced by %d" % (old, new))
        check(labtest.wait_log(lab.runtime("agent.log"), "mqtt: connected",
                               read_int(lab.runtime("agent.logpos")), 0),
              "the restarted agent connected to the cloud broker")
        # its RS-485 pty opens again (a killed agent leaves the line set, and a pty drops the
        # configured parity: the reopen failed with EINVAL until the agent opened ptys without)
        check(labtest.wait_log(lab.runtime("agent.log"), "bus rs485-1: connected to",
                               read_int(lab.runtime("agent.logpos")), 10),
              "the restarted agent opened the RS-485 bus again")
        check(read_int(lab.runtime("agent.restarts")) == 1,
              "the supervisor counted one agent restart")

        # TLS on 8883: verified by name with the lab's CA, refused with another CA
        rc, out = tls_sub(lab, lab.runtime("tls/ca.crt"), "cloud.lab")
        check(rc == 0 and "mosquitto" in out, "TLS to cloud.lab:8883 with the lab CA (%s)" % out)
        other = lab.runtime("other-ca.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=not the lab", "-keyout", lab.runtime("other-ca.key"), "-out", other],
                       check=True, capture_output=True)
        rc, out = tls_sub(lab, other, "cloud.lab")
        check(rc != 0, "TLS with another CA is refused (rc %d: %s)" % (rc, out[:80]))

        # link cloud down: silent drop (a connect times out, no RST); up: back
        labtest.setns_path("/run/netns/%sgw" % lab.prefix)
        check(tcp_connect(CLOUD, 1883, 3) == "ok", "the cloud broker is reachable before the cut")
        lab.run("link", "cloud", "down")
        check("link cloud: down" in lab.run("status").stdout, "status shows the link down")
        r = tcp_connect(CLOUD, 1883, 2)
        check(r == "timeout", "while the link is down a connect times out silently (%s)" % r)
        r = tcp_connect(CLOUD, 9, 2)
        check(r == "timeout", "a closed port gives no RST either while down (%s)" % r)
        lab.run("link", "cloud", "up")
        check(tcp_connect(CLOUD, 1883, 3) == "ok", "the cloud broker is reachable after link up")
        labtest.setns_path(labtest.HOME_NETNS)
        deadline = time.time() + 30
        while time.time() < deadline and not pid_alive(read_int(lab.runtime("agent.pid"))):
            time.sleep(0.2)
        check(pid_alive(read_int(lab.runtime("agent.pid"))), "the agent outlived the link cut")
    log("ok: supervisor restarts, lab kill, lab link, TLS on 8883")


if __name__ == "__main__":
    labtest.main(test)
