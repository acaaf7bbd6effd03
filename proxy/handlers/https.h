// Site and gateway routes: TLS termination and an HTTP/1.1 reverse proxy to the route's
// backends, with keep-alive on both sides.
//
// Per connection: the certificate named by the SNI route (missing: closed, TlsCertificate),
// the handshake with the ClientHello replayed, within the hello timeout (TlsHandshake).
// Per request: the head within EngineOptions::headerTimeout (408) and the codec's limits
// (414, 431, 400, 501, 505); the Host (or absolute-form authority) must resolve in the
// *current* config to a site/gateway route terminated with this connection's certificate,
// else 421 - so one keep-alive connection serves every site of its certificate, and a reload
// applies from the next request, while a request in flight keeps the config it started with.
// Then the RequestFilter (the gateway's API-key check plugs in there), a backend (round_robin
// or random over those whose health is up: none -> 503), an idle pooled connection to it or
// a new one in the route's namespace; connect failures try the next backend (all -> 502).
// A failure of a reused pooled connection before any response byte retries an idempotent
// request without a body on a fresh attempt. No response head within responseTimeout: 504.
//
// Bodies stream both ways through bounded buffers (at most a buffer's worth in flight per
// direction; a side is not read while the other cannot take bytes). Request bodies by
// Content-Length or chunked (forwarded chunked, validated as they pass); responses by length,
// chunked (forwarded, validated; to an HTTP/1.0 client only the data bytes, then close) or
// until the backend closes - then the client gets `Connection: close` and the connection ends
// after the body (no re-framing). Expect:
// 100-continue is forwarded and the backend's 100 relayed. Upgrade requests are forwarded;
// on 101 both directions are relayed raw until either side ends, and that upstream socket is
// never pooled. Every error answer closes the connection. Draining: idle keep-alive
// connections close at once, busy ones answer with `Connection: close` and end.
//
// Access log, one line per request (path without the query):
//   access-https client=IP:PORT host=H method=M path=/p status=N in=N out=N ms=N
//     route="site NAME" backend=IP:PORT outcome=OUTCOME
// A connection that ends before any request (handshake, certificate) logs the engine's
// `access client=...` line instead.
#pragma once

#include <memory>
#include <string_view>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

namespace http {
struct RequestHead;
}

// A per-request check after routing, before a backend is chosen (gateway: API keys, rate
// limits). Returns 0 to let the request through, else the status to answer with (and close).
class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  virtual int check(const http::RequestHead& head, const ActiveRoute& route,
                    const Endpoint& client) = 0;
};

// `filter` may be null (sites only); it must outlive the protocol.
std::unique_ptr<Protocol> makeHttpsProtocol(Context& ctx, RequestFilter* filter = nullptr);

}  // namespace edgeplane::proxy
