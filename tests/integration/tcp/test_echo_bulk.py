#!/usr/bin/python3
"""50 MB both ways through the dataplane's TCP echo (port 7), sent and received concurrently,
with matching SHA-256; then 50 MB into discard (port 9). Prints MB/s. (issue 2)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

SIZE = int(os.environ.get("EGW_BULK_BYTES", 50 * 1000 * 1000))


def test():
    with labtest.Lab("eb") as lab:
        lab.enter_sensors()
        before = lab.counters()
        r = labtest.transfer(7, SIZE, echo=True)
        log("echo: %d bytes each way in %.2fs: %.1f MB/s each way" % (r["sent"], r["seconds"], r["mb_per_s"]))
        check(r["received"] == SIZE, "echo returned all %d bytes (got %d)" % (SIZE, r["received"]))
        check(r["recv_sha"] == r["sent_sha"], "echoed data has the same SHA-256 (%s)" % r["sent_sha"][:16])
        r = labtest.transfer(9, SIZE, echo=False)
        log("discard: %d bytes in %.2fs: %.1f MB/s" % (r["sent"], r["seconds"], r["mb_per_s"]))
        after = labtest.wait_for(lambda: (lambda c: c if c.get("tcp_rx_segs", 0) - before.get("tcp_rx_segs", 0) > 2 * SIZE // 1460 else None)(lab.counters()), 10)
        check(after is not None, "the dataplane counted at least 2 x %d B / MSS segments received" % SIZE)
        check(lab.dataplane_alive(), "dataplane still running")


labtest.main(test)
