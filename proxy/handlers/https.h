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
// Content-Length or chunked (validated as they pass and re-framed: the data in chunks of
// canonical sizes, no extensions, no trailers); responses by length,
// chunked (forwarded, validated; to an HTTP/1.0 client only the data bytes, then close) or
// until the backend closes - then the client gets `Connection: close` and the connection ends
// after the body (no re-framing). Expect:
// 100-continue is forwarded and the backend's 100 relayed (1xx not to HTTP/1.0 clients).
// WebSocket upgrades are forwarded (any other Upgrade is dropped, the request goes on as
// HTTP/1.1); on 101 both directions are relayed raw until either side ends, and that upstream
// socket is never pooled. Every error answer closes the connection. Draining: idle keep-alive
// connections close at once, busy ones answer with `Connection: close` and end.
//
// Access log, one line per request (path without the query):
//   access-https client=IP:PORT host=H method=M path=/p status=N in=N out=N ms=N
//     route="site NAME" backend=IP:PORT outcome=OUTCOME
// A connection that ends before any request (handshake, certificate) logs the engine's
// `access client=...` line instead.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/engine/handler.h"
#include "proxy/http/message.h"

namespace edgeplane::proxy {

// The backends a request may go to: a site's, or the gateway endpoint the filter chose.
struct BackendChoice {
  const std::vector<Endpoint>* backends = nullptr;
  // Parallel to *backends (a missing entry counts as up).
  std::span<const std::shared_ptr<BackendHealth>> health;
  std::atomic<uint32_t>* cursor = nullptr;  // round_robin position
  Balance balance = Balance::RoundRobin;
};

// What a RequestFilter decided for one request. Reset by the handler before each check.
struct FilterVerdict {
  int status = 0;  // 0: forward; else answer with this status and close the connection
  // The answer (status != 0): body ("" = the reason phrase) and extra header fields; a
  // Content-Type among them replaces the default text/plain.
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // Forwarding (status == 0): the backends (unset: the route's), fields to add to the
  // upstream request (views into the config the request holds) and fields to drop.
  BackendChoice choice;
  std::array<http::HeaderField, 2> add{};
  size_t addCount = 0;
  std::span<const std::string_view> drop;  // field names not to forward (static storage)
  // Errors the handler answers itself afterwards (502, 503, 504) as a JSON body
  // {"error":"bad gateway"} instead of text.
  bool jsonErrors = false;
  // The filter's own bookkeeping for finished() and stillAdmits() (pointers into the request's
  // config).
  const void* subject = nullptr;
  const void* scope = nullptr;
  const void* endpoint = nullptr;

  void reset() {
    status = 0;
    body.clear();
    headers.clear();
    choice = BackendChoice{};
    addCount = 0;
    drop = {};
    jsonErrors = false;
    subject = scope = endpoint = nullptr;
  }
};

// A per-request check after routing, before a backend is chosen (gateway: API keys, rate
// limits, endpoint routing). One instance per worker thread. finished() is called once for
// every request check() saw, with the status it ended with (0: no response was sent).
class RequestFilter {
 public:
  virtual ~RequestFilter() = default;
  virtual void check(const http::RequestHead& head, const ActiveConfig& config,
                     const ActiveRoute& route, const Endpoint& client, FilterVerdict& verdict) = 0;
  virtual void finished(const FilterVerdict& verdict, const Endpoint& client, int status) = 0;
  // Whether what check() forwarded (while its exchange lasts: a streamed body or response, a
  // tunnel after its 101) is still admitted by `config`, the config published last; false ends
  // the connection. Asked about once a second per such request.
  virtual bool stillAdmits(const FilterVerdict& verdict, const ActiveConfig& config,
                           const Endpoint& client) = 0;
};

// `filter` may be null (sites).
std::unique_ptr<Protocol> makeHttpsProtocol(Context& ctx,
                                            std::unique_ptr<RequestFilter> filter = nullptr);

}  // namespace edgeplane::proxy
