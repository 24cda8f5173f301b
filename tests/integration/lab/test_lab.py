#!/usr/bin/python3
"""The lab itself: up is idempotent, the impairment relay does what its spec says (ping RTT
carries the configured delay, loss, duplication and reordering near the configured ones, a rate
limit caps throughput), and down
removes everything it made, even after the dataplane was killed with SIGKILL."""
import os
import re
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402


def ping_stats(lab, count, interval="0.01", deadline=None):
    # Without a deadline ping waits only about two RTTs for the last replies once all are sent:
    # on a loaded machine a late last reply is then reported lost. With -w it waits for all
    # count replies, up to deadline seconds: what the no-loss check needs.
    wait = ["-w", str(deadline)] if deadline else ["-W", "1"]
    r = lab.sensors("ping", "-q", "-c", str(count), "-i", interval, *wait, labtest.GW,
                    capture_output=True, text=True)
    out = r.stdout
    log(" | ".join(out.strip().splitlines()[-2:]))
    tx, rx = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    dup = int(re.search(r"\+(\d+) duplicates", out).group(1)) if "duplicates" in out else 0
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/", out)
    return tx, rx, dup, [float(x) for x in rtt.groups()] if rtt else None


def icmp_order(count, gap_s=0.002):
    """Send count ICMP echo requests gap_s apart; return the reply sequence numbers in arrival order."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(0.5)
    ident = os.getpid() & 0xFFFF
    for seq in range(count):
        body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"reorder-probe."  # even length
        words = sum(struct.unpack("!%dH" % (len(body) // 2), body))
        while words >> 16:
            words = (words & 0xFFFF) + (words >> 16)
        body = body[:2] + struct.pack("!H", ~words & 0xFFFF) + body[4:]
        s.sendto(body, (labtest.GW, 0))
        time.sleep(gap_s)
    seqs = []
    try:
        while len(seqs) < count:
            pkt = s.recv(2048)
            ihl = (pkt[0] & 0x0F) * 4
            typ, _, _, rid, rseq = struct.unpack("!BBHHH", pkt[ihl:ihl + 8])
            if typ == 0 and rid == ident:
                seqs.append(rseq)
    except socket.timeout:
        pass
    s.close()
    return seqs


def leftovers(prefix):
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    found = [x.split()[0] for x in ns.splitlines() if x.startswith(prefix)]
    if os.path.exists("/run/edgegw-lab/" + prefix):
        found.append("/run/edgegw-lab/" + prefix)
    if os.path.exists("/var/run/dpdk/%slab" % prefix):
        found.append("/var/run/dpdk/%slab" % prefix)
    return found


def running(pid):
    """Alive and not a zombie: an exited orphan stays in /proc until init reaps it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test():
    lab = labtest.Lab("lb")
    with lab:
        r = lab.run("up")
        check("already up" in r.stderr, "a second 'lab up' says the lab is already up")
        tx, rx, dup, rtt = ping_stats(lab, 50, deadline=10)
        # no upper bound on RTT: a loaded machine (ASan, shared cores) is slow, not wrong
        check(rx == tx, "bridged: no loss (RTT max %.2f ms)" % rtt[2])
        pid = lab.dataplane_pid()
        os.kill(pid, 9)
    check(not leftovers(lab.prefix), "down after SIGKILL of the dataplane leaves nothing (%s)" % leftovers(lab.prefix))

    lab = labtest.Lab("li", impair="delay=20ms,loss=10%,dup=10%", impair_back="delay=5ms,jitter=2ms")
    with lab:
        tx, rx, dup, rtt = ping_stats(lab, 400)
        loss = 1 - (rx / tx)
        # the relay adds at least what was configured; how much more depends on the machine's load
        check(22.5 <= rtt[0], "RTT min %.2f (avg %.2f) ms: 20 + 5 +- 2 ms configured" % (rtt[0], rtt[1]))
        check(0.04 <= loss <= 0.17, "loss %.1f%% (10%% configured on requests)" % (100 * loss))
        check(0.04 * rx <= dup <= 0.17 * rx, "%d duplicates of %d replies (10%% configured)" % (dup, rx))
        st = lab.relay_stats()
        log("relay: %s" % st)
        check(st["a2b"]["lost"] > 0 and st["b2a"]["lost"] == 0 and st["a2b"]["overflow"] == 0,
              "relay counters: a2b lost frames, b2a lost none")
        relay = int(open(lab.runtime("impair.pid")).read())
    check(not leftovers(lab.prefix), "down leaves no namespace, runtime dir or DPDK dir")
    check(not running(relay), "down stopped the relay")

    # reorder: a held-back request is sent after the next one, so its reply comes after the
    # reply to its successor: about 20% of the replies arrive after a higher sequence number.
    with labtest.Lab("lo", impair="reorder=20%") as lab:
        lab.enter_sensors()
        n = 200  # within the dataplane's ICMP burst allowance (it rate-limits echo replies)
        seqs = icmp_order(n, 0.004)
        late = sum(1 for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1])
        log("%d replies, %d arrived after a later one" % (len(seqs), late))
        check(len(seqs) == n, "every request answered (reordering loses nothing)")
        check(0.08 * n <= late <= 0.32 * n, "%.0f%% of replies reordered (20%% configured)" % (100 * late / n))

    # rate: 8 Mbit/s on the sensors' egress caps a bulk transfer near 1 MB/s (Ethernet, IP and
    # TCP headers take ~4% of it); the frames queue in the relay rather than drop.
    with labtest.Lab("lr", impair="rate=8mbit,limit=2000") as lab:
        lab.enter_sensors()
        r = labtest.transfer(9, 2 * 1000 * 1000, echo=False, timeout_s=30)
        log("2 MB into discard at rate=8mbit: %.2f MB/s" % r["mb_per_s"])
        check(0.6 <= r["mb_per_s"] <= 1.02, "throughput %.2f MB/s under the 1 MB/s configured" % r["mb_per_s"])


labtest.main(test)
