// Passthrough routes: the TLS bytes relayed raw to a backend in the route's namespace (splice
// through a pipe, a copy buffer as the fallback), an optional PROXY protocol preamble, and
// failover across the route's backends on connect.
//
// Per direction, readiness flags are set by events and cleared only by EAGAIN; a source is
// read only when its direction's pipe is empty, so a splice() EAGAIN from the socket into the
// pipe always means "socket drained", never "pipe full" - the ambiguity that makes
// edge-triggered splice relays lose wake-ups. kPumpBudget reads per direction per turn; more
// work asks the worker for another turn.
//
// Idle time is tracked lazily: bytes only bump the activity time; when the idle timer fires
// early it is re-armed at lastActivity + idleTimeout.
#pragma once

#include <memory>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy {

std::unique_ptr<Protocol> makePassthroughProtocol(Context& ctx);

}  // namespace edgeplane::proxy
