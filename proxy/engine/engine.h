// The proxy's data path: listeners, per-worker epoll loops, ClientHello routing, passthrough
// relay (splice), PROXY protocol, the :80 redirect listener, limits, timers and the access log.
//
// Threads: start() opens one SO_REUSEPORT listening socket per worker and listener address and
// starts the workers; each worker runs one epoll loop over its own listeners and the
// connections it accepted (a connection never moves between threads, so connection state has
// no locks). The control side talks to the engine only through setConfig()/config(), the
// Metrics it passed in, stopAccepting() and drain(); those are thread-safe.
//
// Config swaps: setConfig() publishes a new ActiveConfig; a worker reads the published pointer
// once per new connection. Each connection keeps the shared_ptr of the config it was routed
// with, so its route (and RouteStats) stay alive until it ends; established connections are
// never cut by a reload.
//
// Route kinds: each protocol is a handler (proxy/engine/handler.h, proxy/handlers/): the
// engine accepts, reads the ClientHello, routes by SNI and hands the connection to the
// protocol of its entry point: Passthrough routes to the splice relay, Site and Gateway routes
// to TLS termination, the :80 listener to the redirect handler. A connection whose protocol
// is not served is closed and counted as RouteUnsupported.
//
// Namespaces: upstream sockets are created in <netnsDir>/<route.netns> (see
// netns_socket.h). An empty netns name means "the engine's own namespace" (unit tests, or a
// host-namespace route).
//
// Access log: one line per connection (or per request, for HTTP handlers) to stderr, a single
// write(2) each (formats in proxy/engine/access_log.h and the handlers' headers):
//   access client=IP:PORT sni=NAME route="KEY" backend=IP:PORT in=N out=N ms=N outcome=OUTCOME
//   access-http client=IP:PORT host=NAME status=N ms=N outcome=OUTCOME
// OUTCOME is "ok", an ErrorKind name, "empty" (closed by the client before sending a byte;
// not counted as an error, e.g. browser pre-connects), "shutdown" (cut by drain/shutdown), or
// "revoked" (a gateway exchange or tunnel whose API key was revoked meanwhile; not an error).
//
// Counting: Metrics.errors[kind] once per connection that ended with that kind. The :80 head
// not complete within helloTimeout counts as HelloTimeout; a 400 answer as HttpMalformed. A
// reset or socket error mid-relay (from either side) is Relay, also counted in the route's
// RouteStats.failures, as is UpstreamConnect. Metrics.backendAttemptFailures counts every
// failed backend attempt, including those a later backend made up for. Out of file
// descriptors, ConnectionLimit counts each pending client reset to make room, and once each
// time a worker stops watching its listeners for 100 ms because it could not make room (the
// clients then wait in the backlog). A source over its per-IP cap is refused the same way and
// counted as IpConnectionLimit or IpHelloLimit. The Metrics object must outlive the Engine.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "proxy/acme_challenges.h"
#include "proxy/runtime.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::proxy {

struct EngineOptions {
  Endpoint https{IpAddress{}, 443};  // passthrough listener (default 0.0.0.0:443)
  std::optional<Endpoint> http;      // :80 redirect listener; absent = none
  int workers = 0;                   // 0: one per online CPU
  size_t maxConnections = 20000;     // both listeners; above it: accepted and reset at once
  // Per client source (an IPv4 address or an IPv6 /64, see source_limits.h), both listeners:
  // open connections, and :443 connections still in their ClientHello. Above either: accepted
  // and reset at once. 0: no cap.
  size_t maxConnectionsPerIp = 1000;
  size_t maxPendingHellosPerIp = 100;
  // The whole ClientHello (or :80 request head) within this, from accept; bytes trickling in
  // do not extend it (slowloris).
  std::chrono::milliseconds helloTimeout{5000};
  std::chrono::milliseconds connectTimeout{3000};  // per backend attempt
  std::chrono::milliseconds idleTimeout{300000};   // no bytes either way
  // Terminated HTTP (proxy/handlers/https.h): a request head within headerTimeout of its first
  // byte (else 408), the next request within keepAliveTimeout (else the connection closes),
  // the response head within responseTimeout of the request being sent (else 504).
  std::chrono::milliseconds headerTimeout{10000};
  std::chrono::milliseconds keepAliveTimeout{60000};
  std::chrono::milliseconds responseTimeout{60000};
  // Idle upstream connections kept per backend per worker, and for how long.
  size_t upstreamIdlePerBackend = 64;
  std::chrono::milliseconds upstreamIdleTimeout{30000};
  // >= 16 KiB: the copy buffer per direction (copy fallback) and the pipe size for splice
  // (pipes are never made smaller than the kernel's default 64 KiB, see engine.cpp).
  size_t bufferBytes = 16384;
  bool splice = true;  // false: relay by read/write copies only (debugging, odd kernels)
  std::string netnsDir = "/run/netns";
  bool accessLog = true;  // one line per connection to stderr
  // The pending ACME HTTP-01 answers the :80 listener serves (the controller refreshes
  // them); nullptr: none.
  std::shared_ptr<const AcmeChallengeBoard> acmeChallenges;
};

class Engine {
 public:
  // Binds the listeners (port 0: an ephemeral port shared by all workers) and starts the
  // workers. Fails with a clear message when an address cannot be bound or options are bad.
  // `config` is published before any worker runs: connections that reach the listeners'
  // backlog the moment they are bound (a restart under load) are routed with it, not closed
  // as NoRoute for lack of a config.
  static Result<std::unique_ptr<Engine>> start(
      const EngineOptions& options, Metrics& metrics,
      std::shared_ptr<const ActiveConfig> config = nullptr);

  // Publishes a config for new connections (thread-safe; nullptr = no routes at all).
  void setConfig(std::shared_ptr<const ActiveConfig> config);
  std::shared_ptr<const ActiveConfig> config() const;

  uint16_t httpsPort() const;
  std::optional<uint16_t> httpPort() const;
  int workers() const;

  // Connections currently open (both listeners), across workers.
  size_t openConnections() const;

  // Closes every listening socket and returns once all workers have done so. New connection
  // attempts are refused from then on; open connections go on. Idempotent.
  void stopAccepting();
  // Waits up to `timeout` for open connections to end by themselves; then closes the rest
  // (outcome "shutdown"). True if none had to be cut. Call after stopAccepting(). `cut`, if
  // given, receives how many were closed (openConnections() is 0 by the time this returns).
  bool drain(std::chrono::milliseconds timeout, size_t* cut = nullptr);

  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  struct Shared;  // state shared by the workers (engine.cpp)

 private:
  Engine() = default;
  std::unique_ptr<Shared> shared_;
};

}  // namespace edgeplane::proxy
