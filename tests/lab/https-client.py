#!/usr/bin/python3
"""TLS/HTTP clients for tests/lab/sites-e2e (stdlib, plus python3-websockets for `ws`).

  https-client.py loop --connect IP:443 --host H --ca CA --conns N --stop FILE [--path P]
      N keep-alive connections, each sending GET P in a loop until FILE exists (bounded by
      --max-seconds); prints "requests=N failed=N reconnects=N statuses=200:N,…". A request
      fails when it gets no complete response or a status other than 200; a connection the
      proxy closes cleanly after a response with "Connection: close" is reopened (reconnects).
  https-client.py raw --connect IP:443 --sni H --ca CA --file F
      sends F's bytes as they are over one TLS connection, then reads for up to 3 s; prints
      "status=N closed=yes|no" (status 0: no response).
  https-client.py ws --connect IP:443 --host H --ca CA --send TEXT
      a WebSocket (wss://H/) through the proxy; prints the echoed message.
"""
import argparse
import asyncio
import os
import socket
import ssl
import sys
import threading
import time


def tls_connect(addr, sni, ca, timeout=5):
    host, port = addr.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=sni)


def read_response(f):
    """One HTTP/1.1 response from a buffered reader -> (status, headers dict, body)."""
    line = f.readline(65536)
    if not line:
        raise EOFError("no response")
    parts = line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        h = f.readline(65536)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        n = int(headers["content-length"])
        body = f.read(n)
        if len(body) != n:
            raise EOFError("short body")
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(f.readline().split(b";")[0].strip(), 16)
            if size == 0:
                f.readline()
                break
            body += f.read(size)
            f.readline()
    return status, headers, body


def cmd_loop(a):
    stats = {"requests": 0, "failed": 0, "reconnects": 0}
    statuses = {}
    lock = threading.Lock()
    deadline = time.time() + a.max_seconds

    def worker():
        sock = f = None
        while not os.path.exists(a.stop) and time.time() < deadline:
            try:
                if sock is None:
                    sock = tls_connect(a.connect, a.host, a.ca)
                    f = sock.makefile("rb")
                req = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode()
                sock.sendall(req)
                status, headers, _ = read_response(f)
                with lock:
                    stats["requests"] += 1
                    statuses[status] = statuses.get(status, 0) + 1
                    if status != 200:
                        stats["failed"] += 1
                if headers.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None
                    with lock:
                        stats["reconnects"] += 1
            except (OSError, EOFError, ValueError, IndexError) as e:
                with lock:
                    stats["failed"] += 1
                    print(f"error: {e!r}", file=sys.stderr)
                if sock:
                    sock.close()
                sock = None
                time.sleep(0.05)
        if sock:
            sock.close()

    threads = [threading.Thread(target=worker) for _ in range(a.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    st = ",".join(f"{k}:{v}" for k, v in sorted(statuses.items()))
    print(f"requests={stats['requests']} failed={stats['failed']} "
          f"reconnects={stats['reconnects']} statuses={st}")


def cmd_raw(a):
    data = open(a.file, "rb").read()
    s = tls_connect(a.connect, a.sni, a.ca)
    s.settimeout(3)
    try:
        s.sendall(data)
    except OSError:
        pass
    got = b""
    closed = "no"
    t0 = time.time()
    try:
        while time.time() - t0 < 3:
            b = s.recv(65536)
            if not b:
                closed = "yes"
                break
            got += b
    except socket.timeout:
        pass
    except (OSError, ssl.SSLError):
        closed = "yes"
    status = 0
    if got.startswith(b"HTTP/1."):
        try:
            status = int(got.split(b" ", 2)[1])
        except ValueError:
            status = 0
    print(f"status={status} closed={closed}")


def cmd_ws(a):
    import websockets  # python3-websockets

    async def run():
        ctx = ssl.create_default_context(cafile=a.ca)
        host, port = a.connect.rsplit(":", 1)
        async with websockets.connect(f"wss://{a.host}/", ssl=ctx, host=host, port=int(port),
                                      server_hostname=a.host, open_timeout=5) as ws:
            await ws.send(a.send)
            print(await asyncio.wait_for(ws.recv(), 5))

    asyncio.run(run())


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("loop")
    p.add_argument("--connect", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--stop", required=True)
    p.add_argument("--path", default="/whoami")
    p.add_argument("--max-seconds", type=float, default=120)
    p = sub.add_parser("raw")
    p.add_argument("--connect", required=True)
    p.add_argument("--sni", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--file", required=True)
    p = sub.add_parser("ws")
    p.add_argument("--connect", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--send", required=True)
    a = ap.parse_args()
    {"loop": cmd_loop, "raw": cmd_raw, "ws": cmd_ws}[a.cmd](a)


if __name__ == "__main__":
    main()
