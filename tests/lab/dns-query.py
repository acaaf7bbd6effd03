#!/usr/bin/env python3
"""A small DNS client for the lab (the stdlib only; no dnspython here).

  dns-query.py SERVER:PORT [--tcp] NAME [TYPE] ...   one query per NAME (TYPE: TXT, A or a
                                                     number; default TXT); over --tcp all of
                                                     them on one connection
  dns-query.py SERVER:PORT [--tcp] --raw HEX          send HEX as a message (framed over TCP)
                                                     and report what came back

Prints one line per answer: "rcode=N aa=0|1 tc=0|1 qname=<as echoed> txt=v1,v2", or
"no-reply" (UDP: nothing within 2 s) / "closed" (TCP: the server closed the connection).
"""
import socket
import struct
import sys

TYPES = {"TXT": 16, "A": 1, "AAAA": 28, "SOA": 6, "ANY": 255}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype):
    header = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, 0)
    return header + encode_name(name) + struct.pack(">HH", qtype, 1) + opt


def read_name(msg, at):
    labels = []
    while True:
        n = msg[at]
        if n & 0xC0 == 0xC0:
            return ".".join(labels), at + 2
        at += 1
        if n == 0:
            return ".".join(labels), at
        labels.append(msg[at:at + n].decode("latin-1"))
        at += n


def describe(msg):
    if msg is None:
        return "no-reply"
    if len(msg) < 12:
        return "short-reply"
    _, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    at = 12
    qname = ""
    for _ in range(qd):
        qname, at = read_name(msg, at)
        at += 4
    txt = []
    for _ in range(an):
        _, at = read_name(msg, at)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[at:at + 10])
        at += 10
        rdata = msg[at:at + rdlen]
        at += rdlen
        if rtype == 16:
            value, i = b"", 0
            while i < len(rdata):
                value += rdata[i + 1:i + 1 + rdata[i]]
                i += 1 + rdata[i]
            txt.append(value.decode())
    return "rcode=%d aa=%d tc=%d qname=%s txt=%s" % (
        flags & 0xF, flags >> 10 & 1, flags >> 9 & 1, qname, ",".join(txt))


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main(argv):
    host, port = argv[1].rsplit(":", 1)
    host = host.strip("[]")
    args = argv[2:]
    tcp = "--tcp" in args
    args = [a for a in args if a != "--tcp"]
    if args[0] == "--raw":
        messages = [bytes.fromhex(args[1])]
    else:
        messages = []
        i = 0
        while i < len(args):
            qtype = 16
            if i + 1 < len(args) and (args[i + 1].upper() in TYPES or args[i + 1].isdigit()):
                t = args[i + 1].upper()
                qtype = TYPES[t] if t in TYPES else int(t)
                messages.append(query(0x4000 + len(messages), args[i], qtype))
                i += 2
            else:
                messages.append(query(0x4000 + len(messages), args[i], qtype))
                i += 1
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if tcp:
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect((host, int(port)))
        s.sendall(b"".join(struct.pack(">H", len(m)) + m for m in messages))
        for _ in messages:
            try:
                length = recv_exact(s, 2)
                body = recv_exact(s, struct.unpack(">H", length)[0]) if length else None
            except (ConnectionResetError, socket.timeout):
                body = None
            print(describe(body) if body is not None else "closed")
        s.close()
        return 0
    for m in messages:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(m, (host, int(port)))
        try:
            print(describe(s.recv(65535)))
        except socket.timeout:
            print("no-reply")
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
