// The worker gateway's request filter: what the https handler runs for every request on a
// [[gateway]] hostname before a backend is chosen. In order:
//   1. the per-client rate limit (an IPv4 address or an IPv6 /64), if the gateway has one
//      (every request counts, failed authentications included): over it -> 429 with
//      Retry-After, `RATE_LIMITED: from IP <ip>`;
//   2. `Authorization: Bearer <key>`: none -> 401 with `WWW-Authenticate: Bearer`,
//      `API_KEY_MISSING: Request from IP <ip>`; anything but exactly one well-formed Bearer
//      credential of an enabled, unblocked key of this gateway whose digest matches (compared
//      in constant time) -> 401, `API_KEY_INVALID: Failed auth from IP <ip>`;
//   3. GET /api/gateway/stats: 200 with the gateway's endpoints and backend health for an
//      admin key; 401 (API_KEY_INVALID) for any other key;
//   4. the endpoint: a path a backend could resolve out of the endpoint it matches (a "." or
//      ".." segment, also as %2e or before a ';', a '\' or an encoded '/' or '\', see
//      normalPath) -> 400; the longest matching path (exact, or a prefix ending in '/'), none ->
//      404; none of that path's methods -> 405 with Allow; out of the key's endpoint scope ->
//      401 (API_KEY_INVALID);
//   5. forwarded to the endpoint's backends (round_robin/random over the healthy ones), with
//      Authorization and any client-sent X-Edgeplane-Key-Id / -Name (also spelled with '_')
//      removed and X-Edgeplane-Key-Id / X-Edgeplane-Key-Name added; `API_KEY_AUTH: <name> (type:
//      <gateway>) from IP <ip>`;
//   6. while the forwarded request lasts (a streamed body or response, a WebSocket after its
//      101), stillAdmits(): the key checked again once a second against the config published
//      last; disabled, blocked, removed, no longer allowed this gateway or endpoint, or the
//      gateway or endpoint gone -> the connection ends, `API_KEY_REVOKED: <name> (type:
//      <gateway>) connection closed, from IP <ip>`.
// Answers are JSON ({"error":"..."}), and so are the handler's own 502/503/504 on a gateway
// (503: {"error":"no healthy backends available"}). Every finished request is counted per
// key in the worker's usage shard (see usage.h).
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "proxy/handlers/https.h"

namespace edgeplane::proxy::gateway {

struct FilterClock {
  std::function<int64_t()> monotonicUs;  // the rate limiter's clock
  std::function<int64_t()> wallMs;       // last_used_at
};

// `log` receives each API_KEY_* / RATE_LIMITED line (ending in '\n'). Default clocks:
// CLOCK_MONOTONIC and CLOCK_REALTIME.
std::unique_ptr<RequestFilter> makeGatewayFilter(std::function<void(std::string_view)> log,
                                                 FilterClock clock = {});

// The TLS-terminating HTTP protocol with the gateway filter: what Entry::Gateway serves. Its
// lines go to the worker's event log (Context::eventLog).
std::unique_ptr<Protocol> makeGatewayProtocol(Context& ctx);

}  // namespace edgeplane::proxy::gateway
