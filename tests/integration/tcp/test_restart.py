#!/usr/bin/python3
"""The stack restarts cleanly: with 50 connections open, lab restart-dataplane; each old
connection finds itself reset, the new process starts with no flow and fresh counters, and
the clients reconnect and exchange data. Twice, to catch state left behind by a stop. (issue 2)"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

N = 50


def open_and_echo():
    socks = [labtest.connect(7) for _ in range(N)]
    for i, s in enumerate(socks):
        msg = b"client %d" % i
        if labtest.echo_once(s, msg) != msg:
            raise labtest.CheckFailed("echo mismatch on connection %d" % i)
    return socks


def test():
    with labtest.Lab("rs") as lab:
        lab.enter_sensors()
        socks = open_and_echo()
        check(lab.flows() == N, "%d flows before the restart" % N)
        for round_ in (1, 2):
            pid = lab.dataplane_pid()
            lab.restart_dataplane()
            check(lab.dataplane_pid() != pid and lab.dataplane_alive(), "round %d: a new dataplane process runs" % round_)
            c = lab.counters()
            check(lab.flows() == 0, "round %d: the new process holds no flow" % round_)
            check(c.get("tcp_rx_segs", 0) < 100, "round %d: counters start fresh (tcp_rx_segs %d)" % (round_, c.get("tcp_rx_segs", 0)))
            reset = 0
            for s in socks:
                s.settimeout(5)
                try:
                    s.sendall(b"still there?")
                    reset += s.recv(100) == b""
                except (ConnectionResetError, BrokenPipeError):
                    reset += 1
                s.close()
            check(reset == N, "round %d: all %d old connections were reset (%d)" % (round_, N, reset))
            socks = open_and_echo()
            log("round %d: %d clients reconnected" % (round_, N))
            check(lab.flows() == N, "round %d: the new process holds exactly the %d new flows" % (round_, N))
        for s in socks:
            s.close()
        check(lab.wait_flows(0, 30) == 0, "flows back to 0 after the clients close")


labtest.main(test)
