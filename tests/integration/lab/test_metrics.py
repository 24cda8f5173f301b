#!/usr/bin/python3
"""/metrics in the lab (issue 18): the agent in the gateway's namespace serves its own and the
dataplane's figures on 127.0.0.1:9880. The scrape is checked with `promtool check metrics` and
with this file's own reader of the text format (every sample under a # HELP and # TYPE, counters
ending in _total, no family twice, labels well formed); counters move after echo traffic, an
MQTT publish and a few Modbus polls; the uplink to the lab's cloud is up over TLS, its
certificate verified (its own counters); a real Prometheus scrapes it; a dataplane that hangs
(SIGSTOP) or is stopped gives edgegw_dataplane_up 0 and the agent's figures still."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import CheckFailed, check, log  # noqa: E402

METRICS = "http://127.0.0.1:9880/metrics"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(r"^(%s)(\{(.*)\})? (\S+)$" % NAME)
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def need(cond, msg):
    """check() without the log line: the reader checks each line."""
    if not cond:
        raise CheckFailed(msg)


def parse_exposition(text):
    """{(name, labels-tuple): value}, or CheckFailed naming the first line that breaks the
    format: every family has one HELP and one TYPE before its samples, counters end in _total,
    the samples of one family are together, values are numbers."""
    samples, families, types, done = {}, set(), {}, set()
    current = None
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            need(name not in families, "line %d: family %s twice" % (n, name))
            families.add(name)
            if current is not None:
                done.add(current)
            current = name
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            need(name == current and name not in types, "line %d: TYPE without its HELP" % n)
            need(typ in ("counter", "gauge"), "line %d: type %s" % (n, typ))
            need((typ == "counter") == name.endswith("_total"),
                  "line %d: %s: counters and only counters end in _total" % (n, name))
            types[name] = typ
            continue
        m = SAMPLE_RE.match(line)
        need(m is not None, "line %d: not a sample: %r" % (n, line))
        name, labels = m.group(1), ()
        need(name == current and name in types, "line %d: %s outside its family" % (n, name))
        if m.group(3):
            found = LABEL_RE.findall(m.group(3))
            need("".join('%s="%s"%s' % f for f in found) == m.group(3),
                  "line %d: bad labels %r" % (n, m.group(3)))
            labels = tuple((k, v) for k, v, _ in found)
        need(re.match(r"^-?[0-9.e+-]+$|^[+-]?Inf$|^NaN$", m.group(4)) is not None,
              "line %d: bad value %r" % (n, m.group(4)))
        samples[(name, labels)] = float(m.group(4))
    return samples


def scrape(lab):
    labtest.setns_path("/run/netns/%sgw" % lab.prefix)
    try:
        with urllib.request.urlopen(METRICS, timeout=10) as r:
            ctype = r.headers.get("Content-Type", "")
            text = r.read().decode()
    finally:
        labtest.setns_path(labtest.HOME_NETNS)
    need(ctype.startswith("text/plain; version=0.0.4"), "Content-Type %s" % ctype)
    return text


def value(samples, name, **labels):
    """The one sample of name whose labels include these (a counter's class needs no naming)."""
    found = [v for (n, lab), v in samples.items()
             if n == name and set(labels.items()) <= set(lab)]
    return found[0] if len(found) == 1 else None


def wait_scrape(lab, timeout_s=20):
    got = [None]

    def ready():
        try:
            got[0] = scrape(lab)
            return True
        except OSError:
            return False
    check(labtest.wait_for(ready, timeout_s), "the agent serves %s in %sgw" % (METRICS, lab.prefix))
    return got[0]


def promtool(text):
    exe = shutil.which("promtool")
    if exe is None:
        log("promtool not installed (Debian's prometheus): the format is checked by this file's "
            "reader only")
        return
    r = subprocess.run([exe, "check", "metrics"], input=text, capture_output=True, text=True)
    check(r.returncode == 0, "promtool check metrics: %s" % (r.stdout + r.stderr).strip()[:500])
    log("promtool check metrics: clean")


def real_prometheus(lab):
    """Debian's prometheus, on loopback in the gateway's namespace, scraping every second."""
    exe = shutil.which("prometheus")
    if exe is None:
        log("prometheus not installed: the real-server scrape is skipped")
        return
    d = tempfile.mkdtemp(prefix="egw-prom-")
    with open(os.path.join(d, "prometheus.yml"), "w") as f:
        f.write("global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: edgegw\n"
                "    static_configs: [{targets: ['127.0.0.1:9880']}]\n")
    p = subprocess.Popen(["ip", "netns", "exec", lab.prefix + "gw", exe,
                          "--config.file=" + os.path.join(d, "prometheus.yml"),
                          "--storage.tsdb.path=" + os.path.join(d, "data"),
                          "--web.listen-address=127.0.0.1:9090"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
    result = [None]

    def query():
        q = "http://127.0.0.1:9090/api/v1/query?query=" + urllib.parse.quote(
            'edgegw_dataplane_up + on() group_left count(edgegw_agent_device_polls_total)')
        labtest.setns_path("/run/netns/%sgw" % lab.prefix)
        try:
            with urllib.request.urlopen(q, timeout=2) as r:
                res = json.load(r)["data"]["result"]
            result[0] = res
            return len(res) == 1 and float(res[0]["value"][1]) > 1
        except (OSError, ValueError, KeyError):
            return False
        finally:
            labtest.setns_path(labtest.HOME_NETNS)
    try:
        ok = labtest.wait_for(query, 60, 0.5)
        if not ok:
            with open(os.path.join(d, "log")) as f:
                log("prometheus log tail:\n" + "".join(f.readlines()[-15:]))
        check(ok, "Prometheus scraped the gateway: up 1 and the devices' series (%r)" % result[0])
        log("prometheus: edgegw_dataplane_up + device series = %s" % result[0][0]["value"][1])
    finally:
        p.terminate()
        p.wait(timeout=20)
        shutil.rmtree(d, ignore_errors=True)


def ctl(lab, *args):
    exe = os.path.join(os.path.dirname(labtest.dataplane_binary()), "../tools/edgegwctl/edgegwctl")
    return subprocess.run(["ip", "netns", "exec", lab.prefix + "gw", exe, "-c",
                           lab.runtime("gateway.yaml"), *args],
                          capture_output=True, text=True, timeout=30)


# A persistent MQTT 3.1.1 client in the sensors' namespace: CONNECT (clean session 0), SUBSCRIBE
# ctl/# at QoS 1, print "ready", then wait until the broker closes the connection: "closed".
WATCHER = r"""
import socket, sys
sys.path.insert(0, sys.argv[2])
import labtest
s = socket.create_connection((sys.argv[1], 1883), timeout=60)
s.sendall(labtest.mqtt_connect_packet("ctl-watch", clean=False))
assert s.recv(4) == b"\x20\x02\x00\x00"
s.sendall(labtest.mqtt_subscribe_packet("ctl/#", qos=1))
assert s.recv(5)[:1] == b"\x90"
print("ready", flush=True)
while True:
    data = s.recv(4096)
    if not data:
        break
    if b"hello-sensor" in data:
        print("got hello-sensor", flush=True)
print("closed", flush=True)
"""


def edgegwctl_broker(lab):
    """edgegwctl sessions, subscriptions, retained (and delete), publish, kick (and --purge)
    against a client the test runs in the sensors' namespace."""
    w = lab.sensors_popen(sys.executable, "-c", WATCHER, labtest.GW, labtest.HERE, stdout=subprocess.PIPE,
                          text=True)
    try:
        check(w.stdout.readline().strip() == "ready", "the watcher is connected and subscribed")
        r = lab.sensors("mosquitto_pub", "-h", labtest.GW, "-t", "ctl/kept", "-m", "hello",
                        "-r", "-q", "1", capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "a retained message published: %r" % r.stderr)
        r = ctl(lab, "sessions")
        check(r.returncode == 0 and re.search(r"^ctl-watch online v3\.1\.1 subs=1 ", r.stdout,
                                              re.M), "edgegwctl sessions: %r" % r.stdout)
        r = ctl(lab, "subscriptions")
        check(r.returncode == 0 and "ctl-watch ctl/# qos=1" in r.stdout,
              "edgegwctl subscriptions: %r" % r.stdout)
        r = ctl(lab, "--json", "retained")
        j = json.loads(r.stdout) if r.returncode == 0 else {}
        check("ctl/kept qos=1 bytes=5" in j.get("retained", []),
              "edgegwctl --json retained: %r" % r.stdout)
        r = ctl(lab, "retained", "delete", "ctl/kept")
        check(r.returncode == 0 and "cleared" in r.stdout, "retained delete: %r" % r.stdout)
        r = ctl(lab, "retained", "delete", "ctl/kept")
        check(r.returncode == 1 and "no retained message" in r.stdout,
              "retained delete of a topic without one: exit 1 (%r)" % r.stdout)
        r = ctl(lab, "publish", "-q", "1", "ctl/cmd", "hello-sensor")
        check(r.returncode == 0 and "delivered to the subscribers" in r.stdout,
              "edgegwctl publish: %r" % (r.stdout + r.stderr))
        check(w.stdout.readline().strip() == "got hello-sensor",
              "the subscribed client got the gateway's message")
        r = ctl(lab, "publish", "ctl/#", "x")
        check(r.returncode == 1, "publish to a filter is refused: %r" % r.stderr)
        r = ctl(lab, "kick", "ctl-watch")
        check(r.returncode == 0 and "disconnected" in r.stdout, "kick: %r" % r.stdout)
        check(w.stdout.readline().strip() == "closed", "the kicked client's connection closed")
        r = ctl(lab, "sessions")
        check(re.search(r"^ctl-watch offline ", r.stdout, re.M),
              "its session stays (clean session 0): %r" % r.stdout)
        r = ctl(lab, "kick", "--purge", "ctl-watch")
        check(r.returncode == 0 and "session removed" in r.stdout, "kick --purge: %r" % r.stdout)
        r = ctl(lab, "sessions")
        check(r.returncode == 0 and "ctl-watch" not in r.stdout, "--purge removed the session")
        r = ctl(lab, "kick", "nobody-here")
        check(r.returncode == 1 and "no such session" in r.stdout, "kick of an unknown id: exit 1")
    finally:
        w.kill()
        w.wait()


def edgegwctl(lab):
    """edgegwctl against the running gateway: the addresses from the lab's config."""
    r = ctl(lab, "status")
    check(r.returncode == 0 and "dataplane: running (pid %d)" % lab.dataplane_pid() in r.stdout
          and "agent: running" in r.stdout, "edgegwctl status: %r" % r.stdout)
    r = ctl(lab, "--json", "stats")
    j = json.loads(r.stdout)
    check(r.returncode == 0 and j["dataplane"]["counters"]["port_rx_pkts"] > 0 and
          j["dataplane"]["kinds"]["eth_runt"] == "drop" and
          j["dataplane"]["broker"]["PUB_RX"] >= 1 and len(j["agent"]["buses"]) == 2,
          "edgegwctl --json stats: dataplane, kinds, broker and agent figures")
    r = ctl(lab, "stats")
    check(r.returncode == 0 and re.search(r"^  port_rx_pkts +[1-9]", r.stdout, re.M) and
          "broker counters:" in r.stdout, "edgegwctl stats: a table")
    r = ctl(lab, "devices")
    check(r.returncode == 0 and re.search(r"^rs485-1 +main-meter +1 +\w+ +[1-9]", r.stdout, re.M),
          "edgegwctl devices: %r" % r.stdout[:300])
    r = ctl(lab, "buses")
    check(r.returncode == 0 and re.search(r"^hall2-gateway +yes ", r.stdout, re.M),
          "edgegwctl buses: %r" % r.stdout[:300])
    # reload: SIGHUP to both (no systemd here); each logs its reload
    start = labtest.log_size(lab.runtime("agent.log"))
    r = ctl(lab, "reload")
    check(r.returncode == 0 and "dataplane: SIGHUP sent" in r.stdout and
          "agent: SIGHUP sent" in r.stdout, "edgegwctl reload: %r" % (r.stdout + r.stderr))
    check(labtest.wait_log(lab.runtime("agent.log"), "reload: ", start, 15),
          "the agent logged its reload")
    check(lab.dataplane_alive(), "the dataplane lives through SIGHUP")
    r = ctl(lab, "spool")
    check(r.returncode == 0 and re.search(r"^spool: \d+ records not yet acknowledged", r.stdout, re.M)
          and re.search(r"^drain: ", r.stdout, re.M), "edgegwctl spool: %r" % (r.stdout + r.stderr))
    r = ctl(lab, "--json", "spool")
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check("records" in j and "oldest_age_s" in j and j.get("spool", {}).get("appended", 0) > 0,
          "edgegwctl --json spool: depth, age and the spool's counters (%r)" % r.stdout[:200])
    edgegwctl_broker(lab)


def test():
    agent = os.path.join(os.path.dirname(labtest.dataplane_binary()), "../agent/edgegw-agent")
    if not os.path.exists(agent):
        log("SKIP: no agent in this build")
        sys.exit(77)
    with labtest.Lab("mx", site=True) as lab:
        text = wait_scrape(lab)
        promtool(text)
        s0 = parse_exposition(text)
        check(value(s0, "edgegw_dataplane_up") == 1, "edgegw_dataplane_up 1 with the lab running")
        meter = dict(bus="rs485-1", device="main-meter")
        for name in ("edgegw_agent_device_polls_total", "edgegw_agent_device_busy_seconds_total",
                     "edgegw_agent_device_lateness_max_seconds"):
            check(value(s0, name, **meter) is not None, "%s{bus,device} present" % name)
        check(any(k[0] == "edgegw_dataplane_worker_rx_packets_total" and k[1][0][0] == "lcore"
                  for k in s0), "per-worker figures carry an lcore label")
        # the kinds of the tables: a drop counter of the dataplane, a bad-input one of the agent
        check(value(s0, "edgegw_dataplane_eth_runt_total", **{"class": "drop"}) is not None,
              "the dataplane's drops carry class=\"drop\"")
        check(value(s0, "edgegw_agent_device_crc_errors_total", **{"class": "bad_input"},
                    **meter) is not None, "the agent's CRC errors carry class=\"bad_input\"")
        check(("edgegw_agent_device_lateness_max_seconds", (("bus", "rs485-1"),
                                                             ("device", "main-meter"))) in s0,
              "a GAUGE of stats.def is a gauge, without a class")
        # the channel between the dataplane and the agent, from both ends
        sc = [s0]

        def chan_up():
            sc[0] = parse_exposition(scrape(lab))
            return (value(sc[0], "edgegw_agent_dpchan_connected_lcores") or 0) >= 1
        check(labtest.wait_for(chan_up, 20, 0.5), "the agent's channel: a dataplane lcore connected"
              " (edgegw_agent_dpchan_connected_lcores %s)"
              % value(sc[0], "edgegw_agent_dpchan_connected_lcores"))
        check((value(sc[0], "edgegw_dataplane_dpchan_connects_total", **{"class": "info"}) or 0)
              >= 1, "the dataplane's end of the channel: connected (class=\"info\")")
        check(value(sc[0], "edgegw_agent_dpchan_sink_fail_total", **{"class": "error"}) == 0,
              "the agent's channel: no record refused by the store")
        # the downlink's answers (DOWN_ACK), from both ends, and its error counters
        check(value(sc[0], "edgegw_dataplane_dpchan_down_ack_tx_total", **{"class": "info"})
              is not None and value(sc[0], "edgegw_agent_dpchan_down_ack_rx_total",
                                    **{"class": "info"}) is not None,
              "the downlink's answers are exported from both ends (down_ack_tx, down_ack_rx)")
        check(value(sc[0], "edgegw_dataplane_dpchan_down_ack_fail_total", **{"class": "error"})
              == 0, "the dataplane answered every downlink record it took")
        check(value(sc[0], "edgegw_agent_store_down_q2_fail_total", **{"class": "error"}) == 0
              and value(sc[0], "edgegw_agent_store_down_refused_total", **{"class": "drop"})
              == 0, "the downlink: no QoS 2 id lost, no message refused (class error, drop)")
        # the uplink to the lab's cloud over TLS (configs/lab/gateway.yaml: cloud.lab:8883,
        # verified against the lab's CA): connected, a full handshake done, nothing refused
        su = [sc[0]]

        def uplink_up():
            su[0] = parse_exposition(scrape(lab))
            return (value(su[0], "edgegw_agent_uplink_connected") or 0) == 1 and \
                (value(su[0], "edgegw_agent_uplink_link_tls_full_total", **{"class": "info"})
                 or 0) >= 1
        check(labtest.wait_for(uplink_up, 20, 0.5),
              "the uplink is up over TLS (edgegw_agent_uplink_connected %s, tls_full %s)" %
              (value(su[0], "edgegw_agent_uplink_connected"),
               value(su[0], "edgegw_agent_uplink_link_tls_full_total", **{"class": "info"})))
        check(value(su[0], "edgegw_agent_uplink_link_tls_verify_fail_total",
                    **{"class": "bad_input"}) == 0 and
              value(su[0], "edgegw_agent_uplink_link_tls_fail_total", **{"class": "error"}) == 0,
              "the uplink: the lab's server certificate verified, no TLS failure")
        check((value(su[0], "edgegw_agent_uplink_link_connects_total", **{"class": "info"}) or 0)
              >= 1 and (value(su[0], "edgegw_agent_uplink_link_bytes_out_total",
                              **{"class": "info"}) or 0) > 0,
              "the uplink's own counters: connected (connects_total), bytes sent")
        log("first scrape: %d samples, %d bytes" % (len(s0), len(text)))
        # every metric the Grafana dashboard names is served
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               "../../../configs/grafana/edgegw.json")) as f:
            exprs = [t["expr"] for p in json.load(f)["panels"] for t in p["targets"]]
        names = {n for n in re.findall(r"\b(edgegw_[a-z0-9_]+)", " ".join(exprs))
                 if not n.endswith("_")}  # edgegw_dataplane_.*_total is a pattern
        served = {k[0] for k in s0}
        check(names and names <= served, "the dashboard's %d metrics are served (missing: %s)"
              % (len(names), sorted(names - served)))

        # traffic: echo connections, an MQTT publish to the dataplane's broker
        lab.enter_sensors()
        for i in range(3):
            labtest.check_echo_works("echo %d" % i)
        labtest.setns_path(labtest.HOME_NETNS)
        r = lab.sensors("mosquitto_pub", "-h", labtest.GW, "-t", "metrics/test", "-m", "x", "-q", "1",
                        capture_output=True, text=True, timeout=20)
        check(r.returncode == 0, "mosquitto_pub to the dataplane's broker (%s)" % r.stderr.strip())

        polls0 = value(s0, "edgegw_agent_device_polls_total", **meter)
        s1 = [None]

        def moved():
            s1[0] = parse_exposition(scrape(lab))
            return value(s1[0], "edgegw_agent_device_polls_total", **meter) > polls0
        check(labtest.wait_for(moved, 20, 0.5), "the main meter's polls counter moves")
        s1 = s1[0]
        for name, least in (("edgegw_dataplane_port_rx_pkts_total", 10),
                            ("edgegw_dataplane_tcp_conn_accepted_total", 3),
                            ("edgegw_broker_pub_rx_total", 1)):
            d = value(s1, name) - value(s0, name)
            check(d >= least, "%s moved by %d (at least %d)" % (name, d, least))
        real_prometheus(lab)
        edgegwctl(lab)

        # a dataplane that does not answer (stopped by a signal): up 0 after one timeout
        pid = lab.dataplane_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            s2 = parse_exposition(scrape(lab))
        finally:
            os.kill(pid, signal.SIGCONT)
        check(value(s2, "edgegw_dataplane_up") == 0, "a hung dataplane: edgegw_dataplane_up 0")
        check(value(s2, "edgegw_agent_device_polls_total", **meter) is not None,
              "the agent's figures are still served")
        check(value(parse_exposition(scrape(lab)), "edgegw_dataplane_up") == 1,
              "up 1 again once it runs")
        # stopped for good (a clean exit: the supervisor does not restart it)
        os.kill(pid, signal.SIGTERM)
        check(labtest.wait_for(lambda: not lab.dataplane_alive(), 30), "the dataplane stopped")
        text = scrape(lab)
        s3 = parse_exposition(text)
        promtool(text)
        check(value(s3, "edgegw_dataplane_up") == 0, "a stopped dataplane: edgegw_dataplane_up 0")
        check(not any(k[0].startswith("edgegw_broker_") for k in s3),
              "no stale dataplane figures while it is down")
    log("ok: /metrics format, counters move, a real Prometheus scrapes it, up 0 when down")


if __name__ == "__main__":
    labtest.main(test)
