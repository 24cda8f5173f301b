#!/usr/bin/python3
"""modbus_sim.py: Modbus devices for the agent's integration tests, served by Debian's pymodbus
(3.0.0rc1) over RTU (a socat pty) or Modbus TCP on loopback. The register images below are the
ground truth the tests compare the agent's messages with (see profiles/*.yaml).

  modbus_sim.py --rtu /path/to/pty --units 1,2,4   (unit 3 is left out: a dead device)
  modbus_sim.py --tcp 15020 --units 1,2

Units: 1 and 4 hold every type in every byte/word order ("alltypes"); 2 has holes in its map
(reads across them get illegal-address exceptions, "holes"). A task changes the ramp register
every 100 ms.
"""
import argparse
import asyncio
import logging
import struct
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext, ModbusSparseDataBlock)
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer


def regs(fmt, value, word_swap=False, byte_swap=False):
    raw = struct.pack(">" + fmt, value)
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if word_swap:
        words.reverse()
    if byte_swap:
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def alltypes_holding():
    h = [0] * 64
    h[0] = 12345
    h[1] = regs("h", -1234)[0]
    h[2:4] = regs("I", 0x11223344)
    h[4:6] = regs("I", 0x11223344, word_swap=True)
    h[6:8] = regs("i", -123456789, byte_swap=True)
    h[8:10] = regs("i", -123456789, word_swap=True, byte_swap=True)
    h[10:14] = regs("Q", 0x0102030405060708)
    h[14:16] = regs("f", 25.5)
    h[16:18] = regs("f", -3.25, word_swap=True)
    h[18:22] = regs("d", 3.141592653589793)
    h[22:26] = regs("d", 2.718281828459045, word_swap=True, byte_swap=True)
    h[26:30] = [int.from_bytes(b"EDGEGW01"[i:i + 2], "big") for i in range(0, 8, 2)]
    h[30] = 0b101
    h[31] = 2345
    h[32:36] = regs("q", -5000000000, word_swap=True)
    h[40] = 215            # setpoint 21.5 (scale 0.1)
    h[42:44] = regs("f", 1.5)
    h[50] = 0              # ramp
    h[51] = 777            # constant (heartbeat only)
    return h


def alltypes_context():
    inp = [0] * 8
    inp[0:2] = regs("f", 21.5)
    inp[2] = 400
    return ModbusSlaveContext(
        co=ModbusSequentialDataBlock(0, [False, True, False, False, False, False, False, True]),
        di=ModbusSequentialDataBlock(0, [True, False, False, True] + [False] * 4),
        hr=ModbusSequentialDataBlock(0, alltypes_holding()),
        ir=ModbusSequentialDataBlock(0, inp),
        zero_mode=True)


def holes_context():
    hr = {a: 100 + a for a in list(range(0, 10)) + list(range(20, 30))}
    return ModbusSlaveContext(
        co=ModbusSparseDataBlock({0: False}),
        di=ModbusSparseDataBlock({0: False}),
        hr=ModbusSparseDataBlock(hr),
        ir=ModbusSparseDataBlock({0: 1}),
        zero_mode=True)


async def ramp(ctx, units):
    # one step each 150 ms: about 3.3 per 500 ms poll of dev1, so a deadband of 4.5 publishes
    # about every other poll whatever the machine's load (at 100 ms it was 5 a poll on an idle
    # box: every poll published and the deadband check could not tell)
    while True:
        await asyncio.sleep(0.15)
        for u in units:
            if u in (1, 4):
                s = ctx[u]
                v = s.getValues(3, 50, 1)[0]
                s.setValues(3, 50, [(v + 1) & 0xffff])


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtu")
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--units", default="1,2,4")
    args = ap.parse_args()
    units = [int(u) for u in args.units.split(",")]
    slaves = {u: (holes_context() if u == 2 else alltypes_context()) for u in units}
    ctx = ModbusServerContext(slaves=slaves, single=False)
    asyncio.ensure_future(ramp(ctx, units))
    logging.basicConfig(level=logging.CRITICAL)
    print("ready", flush=True)
    if args.rtu:
        await StartAsyncSerialServer(context=ctx, framer=ModbusRtuFramer, port=args.rtu,
                                     baudrate=115200, ignore_missing_slaves=True)
    else:
        await StartAsyncTcpServer(context=ctx, framer=ModbusSocketFramer,
                                  address=("127.0.0.1", args.tcp), ignore_missing_slaves=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
