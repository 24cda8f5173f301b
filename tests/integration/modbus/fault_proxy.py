#!/usr/bin/python3
"""fault_proxy.py: sits on an RTU line between the agent and pymodbus and mangles the answers of
one unit id in turn: bad CRC, garbage, short frame, wrong unit id, noise before the frame, a slow
answer past the agent's timeout, and good answers between. Other units pass untouched.
  fault_proxy.py AGENT_SIDE_PTY DEVICE_SIDE_PTY FAULTY_UNIT"""
import os
import select
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


def main():
    agent_fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)
    dev_fd = os.open(sys.argv[2], os.O_RDWR | os.O_NOCTTY)
    faulty = int(sys.argv[3])
    n = 0
    print("ready", flush=True)
    while True:
        req = read_frame(agent_fd, 1.0)
        if not req:
            continue
        os.write(dev_fd, req)
        resp = read_frame(dev_fd, 0.15, idle=0.01)
        if not resp:
            continue
        if req[0] == faulty:
            mode = MODES[n % len(MODES)]
            n += 1
            if mode == "slow":
                time.sleep(0.35)
            resp = mangle(mode, resp)
        os.write(agent_fd, resp)


if __name__ == "__main__":
    main()
