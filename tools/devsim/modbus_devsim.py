#!/usr/bin/python3
"""modbus_devsim.py: simulated Modbus devices for the lab and the demo, driven by the agent's own
device profiles (configs/profiles/*.yaml). Each device's register map is built from its profile's
points; values move slowly (a sine and a little noise around a plausible level for the point's
unit, energy counters only grow), so report-by-exception has something to report. Writable
points keep what is written to them (the agent's read-back sees it). Served by Debian's pymodbus
(3.0.0rc1) over RTU on a serial line (a socat pty in the lab) or Modbus TCP.

  modbus_devsim.py --rtu /run/.../bus-dev --baud 19200 --device 1:eastron-sdm630.yaml --device 10:eurotherm-3200.yaml
  modbus_devsim.py --tcp 127.0.0.1:1502 --device 3:eastron-sdm120.yaml

Prints "ready" once listening. Only what a profile maps is readable: reads across unmapped
addresses get an illegal-address exception, as from the real devices.
"""
import argparse
import asyncio
import logging
import math
import os
import random
import struct
import sys
import time

import yaml
from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

# Plausible levels by unit: (centre, swing).
LEVELS = {"V": (230.0, 3.0), "A": (5.0, 1.5), "W": (1150.0, 300.0), "VA": (1200.0, 300.0),
          "var": (150.0, 60.0), "Hz": (50.0, 0.1), "°C": (180.0, 2.0), "%": (40.0, 10.0)}
FMT = {"u16": "H", "i16": "h", "u32": "I", "i32": "i", "u64": "Q", "f32": "f", "f64": "d"}
FN = {"holding": 3, "input": 4, "coil": 1, "discrete": 2}


def encode(ptype, value, byte_order="big", word_order="big"):
    raw = struct.pack(">" + FMT[ptype], value)
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


class Point:
    def __init__(self, p, profile):
        self.name, self.fn = p["name"], FN.get(p.get("function", "holding"), 3)
        self.addr, self.type = int(p["address"]), p.get("type", "u16")
        self.scale, self.offset = float(p.get("scale", 1.0)), float(p.get("offset", 0.0))
        self.unit, self.writable = p.get("unit", ""), bool(p.get("writable", False))
        self.bo = p.get("byte_order", profile.get("byte_order", "big"))
        self.wo = p.get("word_order", profile.get("word_order", "big"))
        self.centre, self.swing = LEVELS.get(self.unit, (10.0, 2.0))
        if "factor" in self.name:
            self.centre, self.swing = 0.95, 0.03
        self.phase = random.uniform(0, 2 * math.pi)
        self.counter = self.unit in ("kWh", "kvarh", "Wh")
        self.start = random.uniform(1000, 5000)

    def value(self, t):
        if self.counter:
            return self.start + t * 0.01
        return self.centre + self.swing * math.sin(t / 20.0 + self.phase) + random.uniform(-0.05, 0.05) * self.swing

    def raw(self, t):
        """Register words (or a bit) for the value at time t, per type, scale and order."""
        if self.fn in (1, 2) or self.type == "bool":
            return [int(self.value(t)) & 1]
        if self.type not in FMT:  # string, bit: fixed content
            return None
        v = (self.value(t) - self.offset) / self.scale
        if self.type in ("f32", "f64"):
            return encode(self.type, v, self.bo, self.wo)
        lo, hi = {"u16": (0, 0xffff), "i16": (-0x8000, 0x7fff), "u32": (0, 0xffffffff),
                  "i32": (-0x80000000, 0x7fffffff), "u64": (0, 2**64 - 1)}[self.type]
        return encode(self.type, max(lo, min(hi, int(round(v)))), self.bo, self.wo)


def load_device(spec, profiles_dir):
    unit, name = spec.split(":", 1)
    path = name if os.path.isabs(name) or os.path.exists(name) else os.path.join(profiles_dir, name)
    with open(path) as f:
        prof = yaml.safe_load(f)
    points = [Point(p, prof) for p in prof["points"]]
    blocks = {fn: {} for fn in (1, 2, 3, 4)}
    for pt in points:
        words = pt.raw(0.0) or [0] * {"string": 8}.get(pt.type, 1)
        for i, w in enumerate(words):
            blocks[pt.fn][pt.addr + i] = w
    ctx = ModbusSlaveContext(co=ModbusSparseDataBlock(blocks[1] or {0: 0}),
                             di=ModbusSparseDataBlock(blocks[2] or {0: 0}),
                             hr=ModbusSparseDataBlock(blocks[3] or {0: 0}),
                             ir=ModbusSparseDataBlock(blocks[4] or {0: 0}), zero_mode=True)
    return int(unit), ctx, points, prof.get("name", name)


async def update(devices, period_s):
    t0 = time.monotonic()
    while True:
        await asyncio.sleep(period_s)
        t = time.monotonic() - t0
        for ctx, points in devices:
            for pt in points:
                words = None if pt.writable else pt.raw(t)
                if words is not None:
                    ctx.setValues(pt.fn, pt.addr, words)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtu", help="serial device (a pty) to serve RTU on")
    ap.add_argument("--baud", type=int, default=19200)
    ap.add_argument("--tcp", help="ADDR:PORT to serve Modbus TCP on")
    ap.add_argument("--device", action="append", required=True, help="UNIT:PROFILE.yaml (repeatable)")
    ap.add_argument("--profiles-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                           "../../configs/profiles"))
    ap.add_argument("--period", type=float, default=0.5, help="seconds between value updates")
    a = ap.parse_args()
    if bool(a.rtu) == bool(a.tcp):
        ap.error("one of --rtu or --tcp")
    slaves, devices = {}, []
    for spec in a.device:
        unit, ctx, points, name = load_device(spec, a.profiles_dir)
        slaves[unit] = ctx
        devices.append((ctx, points))
        print("unit %d: %s, %d points" % (unit, name, len(points)), flush=True)
    ctx = ModbusServerContext(slaves=slaves, single=False)
    asyncio.ensure_future(update(devices, a.period))
    logging.basicConfig(level=logging.CRITICAL)
    print("ready", flush=True)
    if a.rtu:
        await StartAsyncSerialServer(context=ctx, framer=ModbusRtuFramer, port=a.rtu,
                                     baudrate=a.baud, ignore_missing_slaves=True)
    else:
        host, port = a.tcp.rsplit(":", 1)
        await StartAsyncTcpServer(context=ctx, framer=ModbusSocketFramer, address=(host, int(port)),
                                  ignore_missing_slaves=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
