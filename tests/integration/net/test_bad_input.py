#!/usr/bin/python3
"""Bad input from the sensors' segment, hand-built and sent with an AF_PACKET socket: unknown
ethertypes, bad IPv4 versions, IHLs, lengths and checksums, fragments, bad TCP
checksums, data offsets, flag combinations and options, and RSTs and ACKs for flows that do
not exist. Each kind must be counted under its own counter, the dataplane must stay up, and
an echo connection opened before the barrage must still work after it. (issue 2)
Runts cannot be sent this way: the kernel pads AF_PACKET frames to an Ethernet header."""
import os
import random
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, counter_delta, log  # noqa: E402

REPEAT = 20
SRC_IP = socket.inet_aton(labtest.SENSOR)
DST_IP = socket.inet_aton(labtest.GW)
SYN, FIN, RST, ACK = 0x02, 0x01, 0x04, 0x10


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(payload, proto=6, ihl=5, version=4, total=None, frag=0, bad_cksum=False, options=b""):
    total = total if total is not None else 20 + len(options) + len(payload)
    h = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, random.getrandbits(16), frag,
                    64, proto, 0, SRC_IP, DST_IP) + options
    c = csum(h)
    if bad_cksum:
        c ^= 0x5A5A
    return h[:10] + struct.pack("!H", c) + h[12:] + payload


def tcp(flags, sport=None, dport=7, seq=None, ack=0, options=b"", doff=None, payload=b"", bad_cksum=False,
        cut=None):
    sport = sport or random.randint(20000, 60000)
    seq = random.getrandbits(32) if seq is None else seq
    hl = 20 + len(options)
    doff = doff if doff is not None else hl // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, flags, 65535, 0, 0) + options + payload
    if cut is not None:     # shorter than a TCP header: no checksum field to fill in
        return h[:cut]
    pseudo = SRC_IP + DST_IP + struct.pack("!BBH", 0, 6, len(h))
    c = csum(pseudo + h)
    if bad_cksum:
        c ^= 0x1234
    return h[:16] + struct.pack("!H", c) + h[18:]


class Sender:
    def __init__(self, ifname, gw_mac):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.s.bind((ifname, 0))
        self.dst = bytes.fromhex(gw_mac.replace(":", ""))
        self.src = self.s.getsockname()[4][:6]   # sll_addr: the interface's MAC

    def eth(self, payload, ethertype=0x0800):
        return self.dst + self.src + struct.pack("!H", ethertype) + payload

    def send(self, frame):
        self.s.send(frame)


def cases(tx):
    """(name, counter, frame builder) for each kind of bad input."""
    return [
        ("unknown ethertype", "eth_unknown_type", lambda: tx.eth(b"\0" * 46, 0x88B5)),
        ("IP version 6 in an IPv4 frame", "ipv4_bad_version", lambda: tx.eth(ipv4(tcp(SYN), version=6))),
        ("IHL < 5", "ipv4_bad_hdr_len", lambda: tx.eth(ipv4(tcp(SYN), ihl=3))),
        ("IP total length > frame", "ipv4_truncated", lambda: tx.eth(ipv4(tcp(SYN), total=1400))),
        ("IP header checksum wrong", "ipv4_bad_cksum", lambda: tx.eth(ipv4(tcp(SYN), bad_cksum=True))),
        ("fragment (MF set)", "ipv4_fragment", lambda: tx.eth(ipv4(tcp(SYN, payload=b"x" * 64), frag=0x2000))),
        ("fragment (offset)", "ipv4_fragment", lambda: tx.eth(ipv4(b"y" * 64, frag=0x0010))),
        ("TCP checksum wrong", "tcp_bad_cksum", lambda: tx.eth(ipv4(tcp(SYN, bad_cksum=True)))),
        ("TCP data offset < 5", "tcp_bad_hdr", lambda: tx.eth(ipv4(tcp(SYN, doff=3)))),
        ("TCP data offset past the segment", "tcp_bad_hdr", lambda: tx.eth(ipv4(tcp(ACK, doff=15)))),
        ("TCP header cut short", "tcp_bad_hdr", lambda: tx.eth(ipv4(tcp(SYN, cut=12)))),
        ("SYN+FIN", "tcp_bad_flags", lambda: tx.eth(ipv4(tcp(SYN | FIN)))),
        ("SYN+RST", "tcp_bad_flags", lambda: tx.eth(ipv4(tcp(SYN | RST)))),
        ("no flags", "tcp_bad_flags", lambda: tx.eth(ipv4(tcp(0)))),
        ("option length 0", "tcp_bad_options", lambda: tx.eth(ipv4(tcp(SYN, options=b"\x02\x00\x05\xb4")))),
        ("option overflowing the header", "tcp_bad_options", lambda: tx.eth(ipv4(tcp(SYN, options=b"\x01\x01\x08\x0a")))),
        ("RST for no flow", "tcp_unknown_flow", lambda: tx.eth(ipv4(tcp(RST | ACK, ack=1)))),
        ("ACK for no flow", "tcp_unknown_flow", lambda: tx.eth(ipv4(tcp(ACK, ack=12345)))),
        ("data for no flow", "tcp_unknown_flow", lambda: tx.eth(ipv4(tcp(ACK, ack=12345, payload=b"hello")))),
    ]


def test():
    random.seed(2)
    with labtest.Lab("bi") as lab:
        lab.enter_sensors()
        early = labtest.connect(7)
        check(labtest.echo_once(early, b"before") == b"before", "echo connection open before the barrage")
        tx = Sender(lab.prefix + "s0", lab.gateway_mac())
        failed = []
        for name, counter, build in cases(tx):
            c0 = lab.counters()
            for _ in range(REPEAT):
                tx.send(build())
            got = labtest.wait_for(lambda: counter_delta(c0, lab.counters(), counter) >= REPEAT, 3, 0.1)
            d = counter_delta(c0, lab.counters(), counter)
            log("%-34s x%d -> %s +%d" % (name, REPEAT, counter, d))
            if not got:
                failed.append("%s (%s +%d)" % (name, counter, d))
        # random garbage behind a valid Ethernet/IPv4/TCP start, then random bytes after Ethernet
        for i in range(2000):
            body = os.urandom(random.randint(0, 120))
            tx.send(tx.eth(ipv4(tcp(random.getrandbits(8))[:random.randint(0, 20)] + body) if i % 2 else body))
        check(lab.dataplane_alive(), "dataplane alive after the barrage and 2,000 random frames")
        check(not failed, "each kind of bad input was counted under its counter (missing: %s)" % ", ".join(failed))
        check(labtest.echo_once(early, b"after the barrage") == b"after the barrage",
              "the connection opened before the barrage still echoes")
        early.close()
        labtest.check_echo_works("after the barrage")


if __name__ == "__main__":
    labtest.main(test)
