#!/usr/bin/python3
"""RST and FIN from either side in the middle of transfers, and the stack keeps serving:
client RST (SO_LINGER 0) into echo and discard, client FIN (shutdown SHUT_WR) with data still
echoing (all of it must come back, then the server's FIN), a connection to a closed port
(refused), and a server-side abort (the dataplane stopped mid-transfer: the client sees a
reset). After each, a new echo connection works and no flow is left behind. (issue 2)"""
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../lab"))
import labtest  # noqa: E402
from labtest import check, counter_delta, log  # noqa: E402


def client_rst(lab, port):
    s = labtest.connect(port)
    chunk = os.urandom(65536)
    for _ in range(16):          # 1 MB in flight (echo answers; discard swallows)
        s.sendall(chunk)
        if port == 7:
            s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()                    # RST with data still unread and in flight
    check(lab.wait_flows(0, 10) == 0, "port %d: client RST mid-transfer removed the flow" % port)
    labtest.check_echo_works("after client RST on port %d" % port)


def client_fin():
    """Half-close with 4 MB still echoing: everything comes back, then EOF."""
    s = labtest.connect(7, timeout_s=30)
    data = os.urandom(4 * 1024 * 1024)
    got = bytearray()

    def reader():
        while True:
            b = s.recv(262144)
            if not b:
                return
            got.extend(b)
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    t.join(60)
    s.close()
    check(not t.is_alive() and bytes(got) == data,
          "client FIN mid-echo: all %d bytes came back, then the server's FIN (got %d)" % (len(data), len(got)))


def discard_fin():
    s = labtest.connect(9, timeout_s=30)
    s.sendall(os.urandom(1024 * 1024))
    s.shutdown(socket.SHUT_WR)
    check(s.recv(1) == b"", "discard: our FIN after 1 MB is answered by the server's FIN")
    s.close()


def closed_port(lab):
    c0 = lab.counters()
    try:
        labtest.connect(8, timeout_s=5).close()
        refused = False
    except ConnectionRefusedError:
        refused = True
    check(refused, "a closed port (8) refuses with RST")
    check(counter_delta(c0, lab.counters(), "tcp_no_listener") >= 1, "tcp_no_listener counted it")


def server_abort(lab):
    """Stop the dataplane while a transfer runs: it aborts its flows with RST."""
    s = labtest.connect(7, timeout_s=30)
    res = {}

    def pump():
        try:
            chunk = os.urandom(65536)
            while True:
                s.sendall(chunk)
                s.recv(65536)
        except OSError as e:
            res["err"] = e
    t = threading.Thread(target=pump, daemon=True)
    t.start()
    time.sleep(1)
    check("err" not in res, "transfer running before the restart")
    lab.restart_dataplane()
    t.join(10)
    log("client saw: %r" % res.get("err"))
    check(isinstance(res.get("err"), (ConnectionResetError, BrokenPipeError)),
          "the client saw the server's reset (%r)" % res.get("err"))
    s.close()
    check(lab.flows() == 0, "the restarted dataplane starts with no flow")
    labtest.check_echo_works("after the server-side abort")


def test():
    with labtest.Lab("cr") as lab:
        lab.enter_sensors()
        client_rst(lab, 7)
        client_rst(lab, 9)
        client_fin()
        discard_fin()
        check(lab.wait_flows(0, 10) == 0, "no flow left after the FIN exchanges")
        labtest.check_echo_works("after client FINs")
        closed_port(lab)
        server_abort(lab)
        check(lab.dataplane_alive(), "dataplane running")


labtest.main(test)
