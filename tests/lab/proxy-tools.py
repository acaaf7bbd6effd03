#!/usr/bin/python3
# Real clients and backends for tests/lab/proxy-e2e (Python standard library only).
#
#   tls       a TLS client whose ClientHello is sent whole, one byte at a time, in chunks
#             (larger than a TCP segment) or re-framed into small TLS records; prints the
#             backend certificate's CN and the first reply line
#   raw       send garbage, the first N bytes of a real hello, or a real hello trickled one
#             byte at a time, and report when and how the proxy closed the connection
#   backend   a threaded TLS backend that can read a PROXY v1/v2 header first and answers
#             every line with "NAME SRC DST LINE"
#   load      bounded parallel TLS handshake + request loop; prints ok/failed counts
#   longlived one TLS connection kept open and used until a stop file appears
#
# The ClientHello is produced by OpenSSL itself (ssl.MemoryBIO), so what the proxy parses
# is a real client's first flight; the handshake is then completed against the real backend
# through the proxy, which proves the bytes were relayed intact.
import argparse
import ipaddress
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time


# ---- client side ---------------------------------------------------------------------------


def client_context(cafile, big_alpn):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the backends' certificates name the backends, not the SNI
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile)
    if big_alpn:
        # ~6 KiB of ALPN: the hello spans several TCP segments but stays under 16 KiB.
        ctx.set_alpn_protocols(["x-edgeplane-test-%03d-" % i + "p" * 100 for i in range(56)] +
                               ["http/1.1"])
    return ctx


def reframe(hello, size):
    # The first flight as TLS records of at most `size` bytes of handshake data each.
    out = bytearray()
    pos = 0
    while pos < len(hello):
        ctype, ver, length = hello[pos], hello[pos + 1:pos + 3], struct.unpack(
            "!H", hello[pos + 3:pos + 5])[0]
        body = hello[pos + 5:pos + 5 + length]
        for i in range(0, len(body), size):
            part = body[i:i + size]
            out += bytes([ctype]) + ver + struct.pack("!H", len(part)) + part
        pos += 5 + length
    return bytes(out)


def send_first_flight(sock, data, mode, delay):
    if mode == "whole":
        sock.sendall(data)
    elif mode == "bytes":
        for b in data:
            sock.sendall(bytes([b]))
            time.sleep(delay)
    elif mode == "split":
        for i in range(0, len(data), 1000):
            sock.sendall(data[i:i + 1000])
            time.sleep(0.02)
    elif mode == "records":
        sock.sendall(reframe(data, 64))
    else:
        raise ValueError(mode)


class TlsClient:
    """TLS over a plain socket through MemoryBIOs, so the first flight can be shaped."""

    def __init__(self, addr, sni, cafile, mode="whole", delay=0.001, big_alpn=False,
                 timeout=10.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.local = "%s:%d" % self.sock.getsockname()[:2]
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_context(cafile, big_alpn).wrap_bio(self.inc, self.out,
                                                               server_hostname=sni)
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        first = self.out.read()
        self.hello_len = len(first)
        send_first_flight(self.sock, first, mode, delay)
        self._pump(self.obj.do_handshake)
        cert = self.obj.getpeercert()
        self.cn = dict(x[0] for x in cert["subject"]).get("commonName", "")

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pump(self, op, *args):
        while True:
            try:
                r = op(*args)
                self._flush()
                return r
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    self.inc.write_eof()
                else:
                    self.inc.write(data)

    def request(self, line):
        self._pump(self.obj.write, line.encode())
        buf = b""
        while b"\n" not in buf:
            try:
                chunk = self._pump(self.obj.read, 4096)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            buf += chunk
        return buf.split(b"\n", 1)[0].decode(errors="replace").rstrip("\r")

    def close(self):
        self.sock.close()


def cmd_tls(a):
    start = time.monotonic()
    try:
        c = TlsClient(a.connect, a.sni, a.ca, a.mode, a.delay, a.big_alpn)
        reply = c.request(a.send.encode().decode("unicode_escape")) if a.send else ""
        c.close()
    except (OSError, ssl.SSLError, ValueError) as e:
        print("error=%s: %s ms=%d" % (type(e).__name__, e, (time.monotonic() - start) * 1000))
        return 1
    print("cn=%s local=%s hello=%d ms=%d reply=%s" % (c.cn, c.local, c.hello_len,
                                                      (time.monotonic() - start) * 1000, reply))
    return 0


def cmd_raw(a):
    # Sends garbage, or the first --bytes bytes of a real hello, or (--trickle S) a whole real
    # hello one byte every S seconds; then waits (at most --wait s from the first byte) for the
    # proxy to close. Prints "closed ms=N got=BYTES how=eof|reset" or "open ms=N got=BYTES".
    if a.garbage:
        data = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + bytes(range(256)) * 4
    else:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        obj = ctx.wrap_bio(inc, out, server_hostname=a.sni)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        data = out.read()
        if not a.trickle:
            data = data[:a.bytes]
    host, port = a.connect.rsplit(":", 1)
    start = time.monotonic()
    try:
        s = socket.create_connection((host, int(port)), timeout=5)
    except ConnectionResetError:
        # Reset at accept before connect() returned (a slow client side, e.g. under ASan).
        print("closed ms=%d got=0 how=reset" % ((time.monotonic() - start) * 1000))
        return 0
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = start + a.wait
    got = 0
    how = "open"
    pending = [data[i:i + 1] for i in range(len(data))] if a.trickle else [data]
    try:
        while time.monotonic() < deadline:
            if pending:
                s.sendall(pending.pop(0))
            wait = a.trickle if pending else deadline - time.monotonic()
            readable, _, _ = select.select([s], [], [], max(0.0, wait))
            if readable:
                chunk = s.recv(4096)
                if not chunk:
                    how = "eof"
                    break
                got += len(chunk)
    except (ConnectionResetError, BrokenPipeError):
        how = "reset"
    ms = (time.monotonic() - start) * 1000
    if how == "open":
        print("open ms=%d got=%d" % (ms, got))
        return 1
    print("closed ms=%d got=%d how=%s" % (ms, got, how))
    return 0


# ---- backend -------------------------------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ValueError("eof inside the PROXY header")
        buf += chunk
    return buf


def read_proxy_header(conn, version):
    # Reads exactly the header (never past it: the TLS stream follows) and returns
    # (src, dst) as "ip:port" strings.
    if version == "v1":
        line = b""
        while not line.endswith(b"\r\n"):
            if len(line) >= 107:
                raise ValueError("v1 header longer than 107 bytes")
            line += recv_exact(conn, 1)
        parts = line[:-2].decode("ascii").split(" ")
        if len(parts) != 6 or parts[0] != "PROXY" or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError("bad v1 header %r" % line)
        return "%s:%s" % (parts[2], parts[4]), "%s:%s" % (parts[3], parts[5])
    head = recv_exact(conn, 16)
    if head[:12] != V2_SIG:
        raise ValueError("bad v2 signature %r" % head[:12])
    if head[12] != 0x21:
        raise ValueError("v2 version/command 0x%02x, want 0x21 (v2 PROXY)" % head[12])
    length = struct.unpack("!H", head[14:16])[0]
    body = recv_exact(conn, length)
    if head[13] == 0x11:  # TCP over IPv4
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        return "%s:%d" % (src, sport), "%s:%d" % (dst, dport)
    if head[13] == 0x21:  # TCP over IPv6
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
        return "[%s]:%d" % (src, sport), "[%s]:%d" % (dst, dport)
    raise ValueError("v2 family/protocol 0x%02x" % head[13])


def serve_one(conn, peer, a, ctx, log):
    try:
        conn.settimeout(30)
        src, dst = "%s:%d" % peer, "-"
        if a.proxy != "none":
            src, dst = read_proxy_header(conn, a.proxy)
        tls = ctx.wrap_socket(conn, server_side=True)
        f = tls.makefile("rwb")
        for line in f:
            f.write(("%s src=%s dst=%s %s\n" % (a.name, src, dst,
                                                 line.decode(errors="replace").strip())).encode())
            f.flush()
        tls.close()
    except (OSError, ValueError, ssl.SSLError) as e:
        log("error %s %s: %s" % (peer, type(e).__name__, e))
        conn.close()


def cmd_backend(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    host, port = a.listen.rsplit(":", 1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, int(port)))
    s.listen(128)
    lock = threading.Lock()

    def log(msg):
        with lock, open(a.log, "a") as f:
            f.write(msg + "\n")

    log("listening %s" % a.listen)
    deadline = time.monotonic() + a.lifetime  # bounded, even if the test's cleanup is missed
    s.settimeout(1)
    while time.monotonic() < deadline:
        try:
            conn, peer = s.accept()
        except socket.timeout:
            continue
        log("accept %s:%d" % peer[:2])
        threading.Thread(target=serve_one, args=(conn, peer[:2], a, ctx, log), daemon=True).start()
    return 0


# ---- load and long-lived connections -------------------------------------------------------


def cmd_load(a):
    stats = {"ok": 0, "failed": 0}
    errors = []
    lock = threading.Lock()
    deadline = time.monotonic() + a.seconds

    def worker(n):
        i = 0
        while time.monotonic() < deadline and not os.path.exists(a.stop_file) and i < a.max:
            i += 1
            line = "w%d-%d" % (n, i)
            try:
                c = TlsClient(a.connect, a.sni, a.ca, timeout=5)
                reply = c.request(line + "\n")
                c.close()
                good = c.cn == a.want_cn and reply.startswith(a.want_name + " ") and \
                    reply.endswith(" " + line)
                err = None if good else "cn=%s reply=%r" % (c.cn, reply)
            except (OSError, ssl.SSLError, ValueError) as e:
                err = "%s: %s" % (type(e).__name__, e)
            with lock:
                if err is None:
                    stats["ok"] += 1
                else:
                    stats["failed"] += 1
                    errors.append("%.3f %s %s" % (time.time(), line, err))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(a.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("ok=%d failed=%d" % (stats["ok"], stats["failed"]))
    for e in errors[:10]:
        print("  " + e)
    return 0


def cmd_longlived(a):
    # Opens one connection, then exchanges a line every --every s until the stop file appears
    # (bounded by --seconds), then one last exchange. Prints the count of good exchanges.
    try:
        c = TlsClient(a.connect, a.sni, a.ca, timeout=10)
    except (OSError, ssl.SSLError, ValueError) as e:
        print("error=connect %s: %s" % (type(e).__name__, e))
        return 1
    with open(a.ready_file, "w") as f:
        f.write(c.local + "\n")
    good = 0
    deadline = time.monotonic() + a.seconds
    i = 0
    while True:
        stop = os.path.exists(a.stop_file) or time.monotonic() >= deadline
        i += 1
        line = "long-%d" % i
        try:
            reply = c.request(line + "\n")
        except (OSError, ssl.SSLError, ValueError) as e:
            print("error=exchange %d after %d good: %s: %s" % (i, good, type(e).__name__, e))
            return 1
        if not (reply.startswith(a.want_name + " ") and reply.endswith(" " + line)):
            print("error=exchange %d after %d good: reply %r" % (i, good, reply))
            return 1
        good += 1
        if stop:
            break
        time.sleep(a.every)
    c.close()
    print("good=%d local=%s" % (good, c.local))
    return 0


def main():
    p = argparse.ArgumentParser(prog="proxy-tools.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tls")
    t.add_argument("--connect", required=True)
    t.add_argument("--sni", required=True)
    t.add_argument("--ca", required=True)
    t.add_argument("--mode", default="whole", choices=["whole", "bytes", "split", "records"])
    t.add_argument("--delay", type=float, default=0.001)
    t.add_argument("--big-alpn", action="store_true")
    t.add_argument("--send", default="")
    r = sub.add_parser("raw")
    r.add_argument("--connect", required=True)
    r.add_argument("--sni", default="a.example.com")
    r.add_argument("--garbage", action="store_true")
    r.add_argument("--bytes", type=int, default=50)
    r.add_argument("--trickle", type=float, default=0)
    r.add_argument("--wait", type=float, default=10)
    b = sub.add_parser("backend")
    b.add_argument("--listen", required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--cert", required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--proxy", default="none", choices=["none", "v1", "v2"])
    b.add_argument("--log", required=True)
    b.add_argument("--lifetime", type=float, default=600)
    ld = sub.add_parser("load")
    ld.add_argument("--connect", required=True)
    ld.add_argument("--sni", required=True)
    ld.add_argument("--ca", required=True)
    ld.add_argument("--want-cn", required=True)
    ld.add_argument("--want-name", required=True)
    ld.add_argument("--workers", type=int, default=2)
    ld.add_argument("--seconds", type=float, default=120)
    ld.add_argument("--max", type=int, default=100000)
    ld.add_argument("--stop-file", required=True)
    ll = sub.add_parser("longlived")
    ll.add_argument("--connect", required=True)
    ll.add_argument("--sni", required=True)
    ll.add_argument("--ca", required=True)
    ll.add_argument("--want-name", required=True)
    ll.add_argument("--ready-file", required=True)
    ll.add_argument("--stop-file", required=True)
    ll.add_argument("--every", type=float, default=0.5)
    ll.add_argument("--seconds", type=float, default=150)
    a = p.parse_args()
    return {"tls": cmd_tls, "raw": cmd_raw, "backend": cmd_backend, "load": cmd_load,
            "longlived": cmd_longlived}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
