#!/usr/bin/python3
"""A small HTTP/1.1 backend for the lab tests of edgeplane-proxy's sites (stdlib, plus
python3-websockets for --ws).

  http-backend.py --listen ADDR:PORT --name NAME [--log FILE] [--lifetime S]
  http-backend.py --listen ADDR:PORT --name NAME --ws        (a WebSocket echo server)

Endpoints (keep-alive, HTTP/1.1):
  GET  /whoami        "backend=NAME host=H xff=… xfp=… xfh=… fwd=… conn=N" (the request's view)
  GET  /healthz       200 "ok"
  GET  /big?bytes=N   N bytes of a fixed pattern (Content-Length), streamed in 64 KiB writes
  GET  /chunked?n=K   K chunks of "chunk-I\\n" (Transfer-Encoding: chunked)
  POST|PUT /upload    reads the body (Content-Length or chunked), answers "len=N sha256=HEX"
  GET  /status?code=C an empty answer with that status (204, 304, 500, …)
  GET  /sleep?ms=N    200 "slept" after N ms (at most 30 s)
Each request is logged to --log as one line: "NAME METHOD PATH conn=N".
"""
import argparse
import asyncio
import hashlib
import http.server
import itertools
import socketserver
import sys
import threading
import time
import urllib.parse

PATTERN = bytes(range(256)) * 256  # 64 KiB


def pattern_bytes(n):
    """The first n bytes of the endless PATTERN stream, for clients to checksum."""
    full, rest = divmod(n, len(PATTERN))
    return PATTERN * full + PATTERN[:rest]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-backend"

    def log_message(self, fmt, *args):  # quiet stderr; we log our own lines
        pass

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.conn_ids)

    def _log(self):
        if self.server.log:
            with self.server.log_lock:
                self.server.log.write(f"{self.server.name} {self.command} {self.path} "
                                      f"conn={self.conn_id}\n")
                self.server.log.flush()

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if code not in (204, 304) and not (100 <= code < 200):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _read_body(self):
        h = hashlib.sha256()
        n = 0
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    b = self.rfile.read(min(left, 1 << 16))
                    if not b:
                        raise ConnectionError("short chunk")
                    h.update(b)
                    n += len(b)
                    left -= len(b)
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 1 << 16))
                if not b:
                    raise ConnectionError("short body")
                h.update(b)
                n += len(b)
                left -= len(b)
        return n, h.hexdigest()

    def do_GET(self):
        self._log()
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/whoami":
            g = self.headers.get
            body = (f"backend={self.server.name} host={g('Host')} xff={g('X-Forwarded-For')} "
                    f"xfp={g('X-Forwarded-Proto')} xfh={g('X-Forwarded-Host')} "
                    f"fwd={(g('Forwarded') or '').replace(' ', '')} "
                    f"conn={self.conn_id}\n").encode()
            self._send(200, body, [("Content-Type", "text/plain")])
        elif url.path == "/healthz":
            self._send(200, b"ok\n")
        elif url.path == "/sleep":
            time.sleep(min(int(q.get("ms", "0")), 30000) / 1000)
            self._send(200, b"slept\n")
        elif url.path == "/big":
            n = int(q.get("bytes", "0"))
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            left = n
            while left:
                k = min(left, len(PATTERN))
                self.wfile.write(PATTERN[:k])
                left -= k
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(int(q.get("n", "3"))):
                data = f"chunk-{i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/status":
            self._send(int(q.get("code", "200")), b"" if q.get("code") in ("204", "304") else b"x\n")
        else:
            self._send(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        self._log()
        if self.headers.get("Expect", "").lower() == "100-continue":
            pass  # BaseHTTPRequestHandler already answered 100 Continue
        n, digest = self._read_body()
        self._send(200, f"len={n} sha256={digest}\n".encode())

    do_PUT = do_POST


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


async def ws_main(host, port, name):
    import websockets  # python3-websockets

    async def echo(ws, *_):
        async for msg in ws:
            await ws.send(f"{name}:{msg}")

    async with websockets.serve(echo, host, port):
        await asyncio.Future()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=600)
    ap.add_argument("--ws", action="store_true")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    threading.Timer(a.lifetime, lambda: sys.exit(0)).start()
    if a.ws:
        t = threading.Thread(target=lambda: asyncio.run(ws_main(host, int(port), a.name)),
                             daemon=True)
        t.start()
        time.sleep(a.lifetime)
        return
    srv = Server((host, int(port)), Handler)
    srv.name = a.name
    srv.conn_ids = itertools.count(1)
    srv.log = open(a.log, "a") if a.log else None
    srv.log_lock = threading.Lock()
    threading.Thread(target=lambda: (time.sleep(a.lifetime), srv.shutdown()), daemon=True).start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
