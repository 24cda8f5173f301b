#!/usr/bin/python3
"""rtu_bus_sim.py: a Modbus RTU bus with real wire timing, for measuring how much bus time a
poller spends. Unlike pymodbus (which answers at once), each answer is written when it would have
ended on a real line: the request's characters, the 3.5-character gap, then the answer's
characters, at the bus's baud rate (11 bits a character: 8E1). Every transaction is accounted in
wire time (the same model as the agent's planner, agent/modbus/planner.c mb_cost_read_us with no
turnaround): (8 + 5 + data) characters and two gaps; a request nobody answers costs its 8
characters and one gap.

  rtu_bus_sim.py --pty /path/to/pty --site SITE --log LOG [--baud 9600] [--seed 1]
                 [--control FILE]

SITE (JSON): {"units": {"1": {"holding": {"0": 100, ...}, "input": {...},
                            "noise": 0.1, "dead": false}, ...}}
Only the addresses listed are served; a read (FC3/FC4) that covers any other address gets
exception 2 (illegal data address), a read longer than 125 registers exception 3. A dead unit
never answers; "noise" is the fraction of answers sent with a corrupted CRC (seeded). Other
function codes get exception 1. Prints "ready" once the port is open.

Bad input, per unit (the "Bad input" of issue 17):
  "functions": [3]       only these function codes are served; the others get exception 1
  "exception": 2         every read gets this exception code
  "answer_as": 9         every answer carries this unit id instead of the unit's own
  "later": {...}         the unit's tables after a firmware update: "holding" / "input" replace
                         the unit's when the control file (--control) holds "update"; holes
                         that move are a "later" map with other addresses missing Each transaction is one
JSON line in the log: t (monotonic s), unit, fc, start, count, outcome (ok, exc1, exc2, exc3,
other excN, badcrc_sent, wrong_unit_sent, dead, bad_request), wire_us, silence_us (line silence before the request since the
previous answer ended, as seen here).
"""
import argparse
import json
import os
import random
import select
import struct
import sys
import termios
import time
import tty


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body):
    return body + struct.pack("<H", crc16(body))


class Bus:
    def __init__(self, fd, site, baud, seed, log, control=None):
        self.fd, self.log, self.control, self.updated = fd, log, control, False
        self.char_us = 11 * 1e6 / baud
        self.gap_us = 1750.0 if baud > 19200 else 3.5 * self.char_us
        self.units = {int(k): v for k, v in site["units"].items()}
        for u in self.units.values():
            for m in (u, u.get("later", {})):
                for t in ("holding", "input"):
                    if t in m or m is u:
                        m[t] = {int(a): int(v) for a, v in m.get(t, {}).items()}
        self.rnd = random.Random(seed)
        self.line_free = time.monotonic()  # when the last answer ended on the wire

    def cost_us(self, resp_chars):
        # request (8) + answer characters, a gap after each frame
        return (8 + resp_chars) * self.char_us + 2 * self.gap_us

    def answer(self, req, t_req):
        unit, fc = req[0], req[1]
        start, count = struct.unpack(">HH", req[2:6])
        rec = {"t": round(t_req, 6), "unit": unit, "fc": fc, "start": start, "count": count,
               "silence_us": round((t_req - self.line_free) * 1e6, 1)}
        u = self.units.get(unit)
        if u is None or u.get("dead"):
            rec.update(outcome="dead", wire_us=round(8 * self.char_us + self.gap_us, 1))
            return rec, None
        m = u["later"] if self.firmware_updated() and "later" in u else u
        table = {3: m.get("holding", u["holding"]), 4: m.get("input", u["input"])}.get(fc)
        if "functions" in u and fc not in u["functions"]:
            table = None
        if table is None:
            rec["outcome"], body = "exc1", bytes([unit, fc | 0x80, 1])
        elif "exception" in u:
            exc = u["exception"]
            rec["outcome"], body = "exc%d" % exc, bytes([unit, fc | 0x80, exc])
        elif count < 1 or count > 125:
            rec["outcome"], body = "exc3", bytes([unit, fc | 0x80, 3])
        elif any(a not in table for a in range(start, start + count)):
            rec["outcome"], body = "exc2", bytes([unit, fc | 0x80, 2])
        else:
            data = b"".join(struct.pack(">H", table[a]) for a in range(start, start + count))
            rec["outcome"], body = "ok", bytes([unit, fc, len(data)]) + data
        if "answer_as" in u:
            body = bytes([u["answer_as"]]) + body[1:]
            rec["outcome"] = "wrong_unit_sent"
        out = frame(body)
        if self.rnd.random() < u.get("noise", 0):
            out = out[:-1] + bytes([out[-1] ^ 0x5A])
            rec["outcome"] = "badcrc_sent"
        rec["wire_us"] = round(self.cost_us(len(out)), 1)
        return rec, out

    def firmware_updated(self):
        if not self.updated and self.control:
            try:
                self.updated = open(self.control).read().strip() == "update"
            except OSError:
                pass
        return self.updated

    def serve(self):
        buf, last = b"", 0.0
        while True:
            r, _, _ = select.select([self.fd], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = os.read(self.fd, 256)
            except OSError:
                return
            if not chunk:
                return
            now = time.monotonic()
            if buf and now - last > 0.02:   # a stale fragment: the line was silent since
                buf = b""
            buf += chunk
            last = now
            while len(buf) >= 8:
                req, buf = buf[:8], buf[8:]
                if crc16(req[:6]) != struct.unpack("<H", req[6:8])[0]:
                    self.write_log({"t": round(now, 6), "outcome": "bad_request",
                                    "hex": req.hex()})
                    buf = b""
                    break
                rec, out = self.answer(req, now)
                if out is not None:
                    # the request's characters, the gap, the answer's characters on the wire
                    due = now + ((8 + len(out)) * self.char_us + self.gap_us) / 1e6
                    d = due - time.monotonic()
                    if d > 0:
                        time.sleep(d)
                    os.write(self.fd, out)
                    self.line_free = time.monotonic()
                self.write_log(rec)

    def write_log(self, rec):
        self.log.write(json.dumps(rec) + "\n")
        self.log.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pty", required=True)
    ap.add_argument("--site", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--control", help="a file; 'update' in it switches units to their 'later' maps")
    args = ap.parse_args()
    site = json.load(open(args.site))
    fd = os.open(args.pty, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    termios.tcflush(fd, termios.TCIOFLUSH)
    bus = Bus(fd, site, args.baud, args.seed, open(args.log, "w"), args.control)
    print("ready", flush=True)
    bus.serve()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
