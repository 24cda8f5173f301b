#!/usr/bin/python3
"""dpstat: read the dataplane's counters and memory use from its DPDK telemetry socket.

    dpstat.py [--prefix egw-] [--json] [COMMAND]     COMMAND defaults to /edgegw/counters

The lab rewrites the dataplane's --file-prefix to <prefix>lab, so the socket is
/var/run/dpdk/<prefix>lab/dpdk_telemetry.v2 (SOCK_SEQPACKET: the server greets with a JSON
info blob, then answers each command string with {"<command>": value}). Tests import query().
"""
import argparse
import json
import os
import socket
import sys

DPDK_RUN_DIR = "/var/run/dpdk"


def socket_path(prefix="egw-", file_prefix=None):
    fp = file_prefix or prefix + "lab"
    return os.path.join(DPDK_RUN_DIR, fp, "dpdk_telemetry.v2")


def query(command="/edgegw/counters", prefix="egw-", file_prefix=None, timeout_s=5.0):
    """Send one telemetry command; return its value (the dict under the command's key)."""
    path = socket_path(prefix, file_prefix)
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.settimeout(timeout_s)
        s.connect(path)
        info = json.loads(s.recv(16384).decode())
        s.send(command.encode())
        reply = json.loads(s.recv(int(info.get("max_output_len", 16384)) + 1).decode())
    if command.split(",")[0] not in reply:
        raise RuntimeError("telemetry %s: unexpected reply %r" % (command, reply))
    return reply[command.split(",")[0]]


def counters(prefix="egw-", file_prefix=None):
    return query("/edgegw/counters", prefix, file_prefix)


def mem(prefix="egw-", file_prefix=None):
    return query("/edgegw/mem", prefix, file_prefix)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", default=os.environ.get("EGW_PREFIX", "egw-"),
                    help="lab prefix (socket under /var/run/dpdk/<prefix>lab)")
    ap.add_argument("--file-prefix", help="DPDK --file-prefix, when not run by the lab")
    ap.add_argument("--json", action="store_true", help="print raw JSON")
    ap.add_argument("--nonzero", action="store_true", help="only counters that are not zero")
    ap.add_argument("command", nargs="?", default="/edgegw/counters")
    a = ap.parse_args()
    try:
        v = query(a.command, a.prefix, a.file_prefix)
    except (OSError, ValueError, RuntimeError) as e:
        print("dpstat: %s: %s" % (socket_path(a.prefix, a.file_prefix), e), file=sys.stderr)
        return 1
    if a.json or not isinstance(v, dict):
        print(json.dumps(v, indent=1))
        return 0
    for k, x in v.items():
        if not a.nonzero or x:
            print("%-28s %s" % (k, x))
    return 0


if __name__ == "__main__":
    sys.exit(main())
