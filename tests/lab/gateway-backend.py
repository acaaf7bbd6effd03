#!/usr/bin/python3
"""A worker-gateway backend for lab.gateway_e2e (stdlib only): answers every request with one
JSON line saying what it received, and logs the same line to --log.

  gateway-backend.py --listen ADDR:PORT --name NAME [--log FILE] [--lifetime S]

GET /healthz -> 200 "ok" (not logged). Anything else -> 200 with
  {"backend": NAME, "method": M, "path": P, "key_id": X-Edgeplane-Key-Id or null,
   "key_name": X-Edgeplane-Key-Name or null, "authorization": true when an Authorization
   header arrived, "xff": X-Forwarded-For, "body": the request body (text), "len": N}
"""
import argparse
import http.server
import json
import socketserver
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-gateway-backend"

    def log_message(self, fmt, *args):
        pass

    def _answer(self):
        if self.path == "/healthz":
            body = b"ok\n"
        else:
            n = int(self.headers.get("Content-Length", "0") or "0")
            data = self.rfile.read(n) if n else b""
            seen = {
                "backend": self.server.name,
                "method": self.command,
                "path": self.path,
                "key_id": self.headers.get("X-Edgeplane-Key-Id"),
                "key_name": self.headers.get("X-Edgeplane-Key-Name"),
                "authorization": self.headers.get("Authorization") is not None,
                "xff": self.headers.get("X-Forwarded-For"),
                "body": data.decode("utf-8", "replace"),
                "len": len(data),
            }
            line = json.dumps(seen, sort_keys=True)
            if self.server.log:
                with self.server.log_lock:
                    self.server.log.write(line + "\n")
                    self.server.log.flush()
            body = (line + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _answer


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=600)
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    srv = Server((host, int(port)), Handler)
    srv.name = a.name
    srv.log = open(a.log, "a") if a.log else None
    srv.log_lock = threading.Lock()
    threading.Thread(target=lambda: (time.sleep(a.lifetime), srv.shutdown()), daemon=True).start()
    srv.serve_forever()
    sys.exit(0)


if __name__ == "__main__":
    main()
