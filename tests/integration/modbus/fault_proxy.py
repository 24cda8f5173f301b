#!/usr/bin/python3
"""fault_proxy.py: sits on an RTU line between the agent and pymodbus and mangles the answers of
one unit id in turn: bad CRC, garbage, short frame, wrong unit id, noise before the frame, a slow
answer past the agent's timeout, and good answers between. Other units pass untouched.
It also measures the silence the agent keeps between an answer and its next request (the RTU
3.5-character gap) and records the function codes each unit was sent; it writes both to
STATS_FILE when it is terminated.
  fault_proxy.py AGENT_SIDE_PTY DEVICE_SIDE_PTY FAULTY_UNIT STATS_FILE [MODES]
MODES (optional) replaces the cycle, comma-separated: "crc,crc,ok" mangles two answers of three."""
import json
import os
import select
import signal
import sys
import time

MODES = ["ok", "crc", "ok", "garbage", "ok", "short", "ok", "wrong_unit", "ok", "noise", "ok", "slow"]


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return bytes([crc & 0xFF, crc >> 8])


def read_frame(fd, first_timeout, idle=0.004):
    r, _, _ = select.select([fd], [], [], first_timeout)
    if not r:
        return b""
    buf = os.read(fd, 512)
    while True:
        r, _, _ = select.select([fd], [], [], idle)
        if not r:
            return buf
        buf += os.read(fd, 512)


def mangle(mode, resp):
    if mode == "crc":
        return resp[:-1] + bytes([resp[-1] ^ 0x5A])
    if mode == "garbage":
        return os.urandom(11)
    if mode == "short":
        return resp[:3]
    if mode == "wrong_unit":
        body = bytes([(resp[0] + 1) & 0xFF]) + resp[1:-2]
        return body + crc16(body)
    if mode == "noise":
        return b"\x00\xff\x13" + resp
    return resp


def mode_ok(req, faulty):
    """Only answers from the healthy unit count: after a mangled one the agent drains the line."""
    return req[0] != faulty


def main():
    agent_fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    dev_fd = os.open(sys.argv[2], os.O_RDWR | os.O_NOCTTY)
    faulty = int(sys.argv[3])
    modes = sys.argv[5].split(",") if len(sys.argv) > 5 else MODES
    gaps = []
    functions = {}

    def dump(*_):
        with open(sys.argv[4], "w") as f:
            json.dump({"min_gap_ms": min(gaps) if gaps else None, "n": len(gaps),
                       "functions": {u: sorted(fs) for u, fs in functions.items()}}, f)
        sys.exit(0)
    signal.signal(signal.SIGTERM, dump)
    n = 0
    last_answer = None
    print("ready", flush=True)
    while True:
        r, _, _ = select.select([agent_fd], [], [], 1.0)
        if not r:
            continue
        if last_answer is not None:
            gaps.append((time.monotonic() - last_answer) * 1000)
        req = read_frame(agent_fd, 0)
        if not req:
            continue
        if len(req) >= 2:
            functions.setdefault(str(req[0]), set()).add(req[1])
        os.write(dev_fd, req)
        resp = read_frame(dev_fd, 0.15, idle=0.01)
        if not resp:
            continue
        if req[0] == faulty:
            mode = modes[n % len(modes)]
            n += 1
            if mode == "slow":
                time.sleep(0.35)
            resp = mangle(mode, resp)
        # timed before the write: the agent cannot have the answer (and start its pause)
        # earlier, so the gap measured is never shorter than the silence it kept (taken after
        # the write, a descheduled proxy measured 14.97 ms against a kept 15 ms pause)
        t_answer = time.monotonic()
        os.write(agent_fd, resp)
        last_answer = t_answer if mode_ok(req, faulty) else None


if __name__ == "__main__":
    main()
