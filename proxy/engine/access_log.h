// Access-log formatting shared by the engine and the handlers: logfmt lines, one write(2) each.
//
//   access client=IP:PORT sni=NAME route="KEY" backend=IP:PORT in=N out=N ms=N outcome=OUTCOME
//
// OUTCOME is "ok", an ErrorKind name, "empty" (closed by the client before sending a byte),
// "shutdown" (cut by drain/shutdown) or "revoked" (a gateway exchange or tunnel ended because
// its API key was revoked meanwhile). Handlers with their own record (access-http,
// access-https) format it themselves and write it with Context::accessLog.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

inline constexpr size_t kMaxLogLine = 1024;

// "ip:port" / "[v6]:port" into `out`, without allocating.
void formatEndpoint(const Endpoint& e, char* out, size_t size);

std::string_view outcomeName(Outcome outcome);

// The connection record above; `backend` null or "-" when none was used.
void logConnection(const Connection& conn, const char* backend, uint64_t in, uint64_t out,
                   Outcome outcome);

// Writes `len` bytes of `line` (snprintf's result, possibly truncated) as one record ending
// in '\n'.
void writeLogLine(Context& ctx, char* line, size_t capacity, int len);

}  // namespace edgeplane::proxy
