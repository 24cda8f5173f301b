#!/usr/bin/python3
"""Ping and ARP against the dataplane: the sensors resolve 198.18.0.1, the dataplane answers
echo requests (small and near-MTU), resolves a sensor address itself when it has to send
(a second sensor address whose ARP request the dataplane never saw), and ignores ARP for
other addresses. (issue 2)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, counter_delta, log  # noqa: E402


def ping(lab, *args):
    r = lab.sensors("ping", "-q", *args, capture_output=True, text=True)
    log(r.stdout.strip().splitlines()[-2] if r.stdout.strip() else r.stderr.strip())
    return r


def test():
    with labtest.Lab("pa") as lab:
        c0 = lab.counters()
        r = ping(lab, "-c", "20", "-i", "0.05", "-w", "10", labtest.GW)
        check(r.returncode == 0 and " 0% packet loss" in r.stdout, "20 pings, no loss")
        r = ping(lab, "-c", "5", "-i", "0.05", "-s", "1472", "-w", "10", labtest.GW)
        check(r.returncode == 0 and " 0% packet loss" in r.stdout, "5 pings of 1500-byte packets, no loss")
        c1 = lab.counters()
        check(counter_delta(c0, c1, "icmp_echo_request") >= 25, "icmp_echo_request counted the 25 pings")
        mac = lab.gateway_mac()
        check(mac is not None, "the sensors resolved 198.18.0.1 by ARP (lladdr %s)" % mac)

        # The dataplane must ask for a sensor address it has never heard an ARP request from:
        # pin the gateway's MAC on the sensors' side so they send none, and ping from .5.
        dev = lab.prefix + "s0"
        lab.sensors("ip", "addr", "add", "198.18.0.5/24", "dev", dev, check=True)
        lab.sensors("ip", "neigh", "replace", labtest.GW, "lladdr", mac, "dev", dev, "nud", "permanent", check=True)
        r = ping(lab, "-c", "3", "-i", "0.2", "-W", "2", "-I", "198.18.0.5", labtest.GW)
        check(r.returncode == 0, "ping from 198.18.0.5 answered")
        c2 = lab.counters()
        check(counter_delta(c1, c2, "arp_tx_request") >= 1, "the dataplane sent an ARP request (for 198.18.0.5)")
        check(counter_delta(c1, c2, "arp_rx_reply") >= 1, "and received the reply")

        # ARP for an address that is not the gateway's: counted, not answered.
        r = ping(lab, "-c", "1", "-W", "1", "198.18.0.77")
        c3 = lab.counters()
        check(r.returncode != 0, "nobody answers for 198.18.0.77")
        check(counter_delta(c2, c3, "arp_not_for_us") >= 1, "arp_not_for_us counted the request for .77")
        check(lab.dataplane_alive(), "dataplane still running")


labtest.main(test)
