#!/usr/bin/env python3
"""Tiny protocol-level health probes used by start.sh / status.sh.

Standard library only, so it works before the project's virtualenv exists.

    probe.py port  HOST PORT          # something accepts TCP connections
    probe.py amqp  HOST PORT          # an AMQP 0-9-1 broker sends connection.start
    probe.py mongo HOST PORT          # a MongoDB-wire server answers {ping: 1} with ok: 1

Exit status 0 = healthy, 1 = not healthy (reason on stderr).
"""

import socket
import struct
import sys

TIMEOUT = 3.0


def _connect(host, port):
    return socket.create_connection((host, int(port)), timeout=TIMEOUT)


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def probe_port(host, port):
    with _connect(host, port):
        pass


def probe_amqp(host, port):
    # Protocol header for AMQP 0-9-1; a broker replies with a method frame
    # (type 1) on channel 0 carrying connection.start (class 10, method 10).
    with _connect(host, port) as s:
        s.sendall(b"AMQP\x00\x00\x09\x01")
        head = _recv_exact(s, 7)
        ftype, channel, size = struct.unpack(">BHI", head)
        payload = _recv_exact(s, min(size, 4))
        if ftype != 1 or channel != 0 or payload[:4] != b"\x00\x0a\x00\x0a":
            raise ValueError("not an AMQP 0-9-1 connection.start frame: %r" % (head + payload))


def _bson_doc(items):
    # Only what we need: int32 (0x10) and string (0x02) elements.
    body = b""
    for key, value in items:
        k = key.encode() + b"\x00"
        if isinstance(value, int):
            body += b"\x10" + k + struct.pack("<i", value)
        else:
            v = value.encode() + b"\x00"
            body += b"\x02" + k + struct.pack("<i", len(v)) + v
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def probe_mongo(host, port):
    # OP_MSG (opcode 2013) with a single body section {ping: 1, $db: "admin"}.
    doc = _bson_doc([("ping", 1), ("$db", "admin")])
    msg = struct.pack("<I", 0) + b"\x00" + doc  # flagBits, section kind 0, document
    header = struct.pack("<iiii", 16 + len(msg), 1, 0, 2013)
    with _connect(host, port) as s:
        s.sendall(header + msg)
        length, _req, _resp, opcode = struct.unpack("<iiii", _recv_exact(s, 16))
        reply = _recv_exact(s, length - 16)
    if opcode != 2013:
        raise ValueError(f"unexpected reply opcode {opcode}")
    # reply = flagBits(4) kind(1) BSON document; look for ok: 1 (double or int32).
    bson = reply[5:]
    if b"\x01ok\x00" + struct.pack("<d", 1.0) not in bson and b"\x10ok\x00" + struct.pack("<i", 1) not in bson:
        raise ValueError(f"ping reply has no ok: 1: {bson[:200]!r}")


PROBES = {"port": probe_port, "amqp": probe_amqp, "mongo": probe_mongo}


def main(argv):
    if len(argv) != 4 or argv[1] not in PROBES:
        sys.stderr.write(__doc__)
        return 2
    try:
        PROBES[argv[1]](argv[2], argv[3])
    except Exception as exc:  # any failure just means "not (yet) healthy"
        sys.stderr.write(f"{argv[1]} {argv[2]}:{argv[3]}: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
