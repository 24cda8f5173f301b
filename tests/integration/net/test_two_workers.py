#!/usr/bin/python3
"""Two worker lcores on one port (issue 2: run-to-completion per lcore, one rx/tx queue each).
The tap's kernel side spreads flows over its queues by flow hash, so connections land on both
workers; each worker owns its flows, and ARP learned on one lcore reaches the other. Checks:
both workers accept connections, every connection echoes correctly, a bulk transfer matches,
and the flow count returns to zero."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import dpstat  # noqa: E402
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

CONNS = 64


def test():
    cfg = labtest.two_worker_config()
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
            r = labtest.transfer(7, 20 * 1000 * 1000, echo=True, timeout_s=90)
            check(r["received"] == 20 * 1000 * 1000 and r["recv_sha"] == r["sent_sha"],
                  "20 MB echoed with the same SHA-256 (%.1f MB/s)" % r["mb_per_s"])
            check(lab.wait_flows(0, 30) == 0, "flow count back to 0 after the clients closed")
            check(lab.dataplane_alive(), "dataplane still running")
    finally:
        os.unlink(cfg)


if __name__ == "__main__":
    labtest.main(test)
