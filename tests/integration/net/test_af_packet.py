#!/usr/bin/python3
"""The dataplane on a net_af_packet port (issue 2: tap, af_packet and memif ports): the lab with
--port af_packet gives the dataplane the sensors' veth peer itself, no tap and no bridge. That
port has no checksum offload, so this also runs the software checksum paths both ways: ping,
a 20 MB echo with matching SHA-256, a TCP segment with a wrong checksum counted and dropped,
and a restart of the dataplane on the same port."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_bad_input import Sender, SYN, ipv4, tcp  # noqa: E402

SIZE = 20 * 1000 * 1000


def test():
    with labtest.Lab("ap", port="af_packet") as lab:
        r = lab.sensors("ping", "-q", "-c", "5", "-i", "0.1", labtest.GW, capture_output=True, text=True)
        check(r.returncode == 0, "ping over the af_packet port")
        lab.enter_sensors()
        r = labtest.transfer(7, SIZE, echo=True, timeout_s=90)
        log("echo over af_packet: %.1f MB/s each way" % r["mb_per_s"])
        check(r["received"] == SIZE and r["recv_sha"] == r["sent_sha"],
              "%d bytes echoed with the same SHA-256 (software checksums both ways)" % SIZE)
        before = lab.counters()
        tx = Sender(lab.prefix + "s0", lab.gateway_mac())
        for _ in range(5):
            tx.send(tx.eth(ipv4(tcp(SYN, bad_cksum=True))))
        labtest.wait_for(lambda: labtest.counter_delta(before, lab.counters(), "tcp_bad_cksum") >= 5, 5)
        check(labtest.counter_delta(before, lab.counters(), "tcp_bad_cksum") == 5,
              "segments with a wrong TCP checksum counted (software verification)")
        lab.restart_dataplane()
        labtest.check_echo_works("after restart")
        check(lab.dataplane_alive(), "dataplane still running")


if __name__ == "__main__":
    labtest.main(test)
