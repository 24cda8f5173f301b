#!/usr/bin/python3
"""2,000 concurrent connections to echo: all open at once, each exchanges a little data while
the others are open, then all close cleanly (FIN both ways) and the dataplane's flow count
returns to 0. (issue 2)"""
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, log  # noqa: E402

N = int(os.environ.get("EGW_CONNS", 2000))


def open_all():
    """Non-blocking connects, a few hundred in flight at a time (the listen backlog is finite)."""
    socks, sel, pending = [], selectors.DefaultSelector(), 0
    deadline = time.monotonic() + 60
    while (len(socks) < N or pending) and time.monotonic() < deadline:
        while len(socks) < N and pending < 256:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((labtest.GW, 7))
            sel.register(s, selectors.EVENT_WRITE)
            socks.append(s)
            pending += 1
        for key, _ in sel.select(1.0):
            err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise labtest.CheckFailed("connect %d failed: %s" % (len(socks), os.strerror(err)))
            sel.unregister(key.fileobj)
            pending -= 1
    check(len(socks) == N and pending == 0, "%d connections established (%d pending)" % (len(socks), pending))
    return socks


def exchange(socks):
    """Each connection sends a message naming itself and must get exactly it back."""
    sel = selectors.DefaultSelector()
    want = {}
    for i, s in enumerate(socks):
        msg = b"conn %05d says hello through the dataplane\n" % i
        s.send(msg)
        want[s] = [msg, b""]
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + 60
    while want and time.monotonic() < deadline:
        for key, _ in sel.select(1.0):
            s = key.fileobj
            b = s.recv(4096)
            if not b:
                raise labtest.CheckFailed("a connection closed before its echo")
            want[s][1] += b
            if len(want[s][1]) >= len(want[s][0]):
                if want[s][1] != want[s][0]:
                    raise labtest.CheckFailed("echo mismatch: sent %r got %r" % tuple(want[s]))
                sel.unregister(s)
                del want[s]
    check(not want, "all %d connections got their own message back (%d missing)" % (len(socks), len(want)))


def test():
    resource.setrlimit(resource.RLIMIT_NOFILE, (N + 1024, N + 1024))
    with labtest.Lab("mc") as lab:
        lab.enter_sensors()
        t0 = time.monotonic()
        socks = open_all()
        log("opened %d connections in %.2fs" % (N, time.monotonic() - t0))
        exchange(socks)
        mem = lab.mem()
        log("dataplane memory with %d connections open: %s" % (N, mem))
        per = mem["tcb_bytes"] + mem["hash_entry_bytes"] + mem["delack_entry_bytes"]
        check(mem["delack_entry_bytes"] > 0 and mem["bytes_per_idle_flow"] == per,
              "bytes_per_idle_flow counts the TCB, its hash entry and its delayed-ACK slot "
              "(%d, %d)" % (mem["bytes_per_idle_flow"], per))
        flows = lab.flows()
        check(flows == N, "the dataplane holds exactly the %d flows (%d)" % (N, flows))
        exchange(socks)  # a second round, all still open
        for s in socks:
            s.setblocking(True)
            s.settimeout(10)
            s.shutdown(socket.SHUT_WR)
        eof = sum(1 for s in socks if s.recv(1) == b"")
        check(eof == N, "every connection saw the server's FIN after ours (%d of %d)" % (eof, N))
        for s in socks:
            s.close()
        left = lab.wait_flows(0, 90)
        check(left == 0, "flow count back to 0 after the closes and TIME_WAIT (%s)" % left)
        labtest.check_echo_works("after 2,000 connections")
        check(lab.dataplane_alive(), "dataplane still running")


labtest.main(test)
