// What the proxy's control side (snapshot watcher, admin API) and its data path (the engine's
// event loops) share: the active routing config, swapped atomically, and the counters.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/sni_router.h"
#include "schema/snapshot.h"

namespace edgeplane::proxy {

namespace tls {
class ContextSet;  // proxy/tls/context.h: one SSL_CTX per snapshot certificate
}
namespace gateway {
class GatewayConfig;  // proxy/gateway/config.h: the gateways and API keys of a generation
}

// Per-route counters. One object per route key ("passthrough secure"), kept by the control
// side across snapshot swaps, so a reload neither resets nor double-counts them.
struct RouteStats {
  std::atomic<uint64_t> connections{0};  // accepted and routed to this route
  std::atomic<uint64_t> bytesIn{0};      // client -> backend
  std::atomic<uint64_t> bytesOut{0};     // backend -> client
  std::atomic<uint64_t> failures{0};     // no backend reachable, relay errors

  // Terminated routes (site, gateway): per HTTP request.
  static constexpr std::array<uint32_t, 10> kDurationBucketsMs{5,   10,  25,   50,   100,
                                                               250, 500, 1000, 2500, 10000};
  std::array<std::atomic<uint64_t>, 5> responses{};  // by status class: [0] 1xx .. [4] 5xx
  // Request durations (head received to response sent), per bucket (not cumulative); the
  // last entry counts those above the largest bound.
  std::array<std::atomic<uint64_t>, kDurationBucketsMs.size() + 1> durationBuckets{};
  std::atomic<uint64_t> durationMsSum{0};
  std::atomic<uint64_t> upstreamConnectErrors{0};  // failed backend connects (each attempt)
  void observeRequest(int status, int64_t ms);
};

// One backend's health, shared by the prober (proxy/health) and the workers. Keyed by
// (netns, backend address) on the control side and carried across snapshot generations, so a
// reload neither resets a down backend to up nor forgets its counters. Workers only read `up`
// and report connect failures (passive marking); the prober owns every other transition.
struct BackendHealth {
  std::atomic<bool> up{true};                // no health_check: always true
  std::atomic<uint32_t> passiveFailures{0};  // consecutive connect failures from workers
  std::atomic<int64_t> changedAtMs{0};       // wall clock of the last up/down change
  void connectFailed() { passiveFailures.fetch_add(1, std::memory_order_relaxed); }
  void connectSucceeded() { passiveFailures.store(0, std::memory_order_relaxed); }
};

// One route as the data path uses it. Immutable once published, except the round-robin cursor
// and the counters.
struct ActiveRoute {
  SnapshotRoute spec;
  std::shared_ptr<RouteStats> stats;
  // Parallel to spec.backends (sites, passthroughs) or, for a gateway, to the backends of
  // spec.endpoints flattened in order. Filled by the control side; never empty entries.
  std::vector<std::shared_ptr<BackendHealth>> health;
  mutable std::atomic<uint32_t> cursor{0};  // round_robin: next backend index
};

// One snapshot generation, built by the control side, read by every worker. RouteId in the
// table is the index into `routes`.
struct ActiveConfig {
  int64_t generation = 0;
  std::shared_ptr<const RoutingTable> table;
  std::vector<std::unique_ptr<ActiveRoute>> routes;
  // The certificates of this generation, loaded; an unchanged fingerprint reuses the previous
  // generation's SSL_CTX. nullptr when the snapshot has no certificates.
  std::shared_ptr<const tls::ContextSet> tls;
  std::string json;  // the snapshot body as stored (served by GET /api/v1/config)
  // The gateways' endpoints and API keys; nullptr only for the empty config (generation 0).
  std::shared_ptr<const gateway::GatewayConfig> gateway;
};

// Why a connection ended badly; stable snake_case names for metrics and the access log.
enum class ErrorKind : uint8_t {
  HelloMalformed,     // the ClientHello reader refused the bytes
  HelloTimeout,       // no complete ClientHello within the hello timeout
  NoRoute,            // SNI matched no route (or no SNI at all)
  RouteUnsupported,   // a route kind this build does not serve
  UpstreamConnect,    // every backend refused or timed out on connect
  IdleTimeout,        // no bytes either way within the idle timeout
  ConnectionLimit,    // accepted over the connection limit and closed at once
  IpConnectionLimit,  // accepted over the per-source connection limit and closed at once
  IpHelloLimit,       // accepted while its source had too many pending hellos; closed at once
  Relay,              // a read/write/splice error mid-stream
  HttpMalformed,      // the :80 listener got a bad request head
  TlsCertificate,     // a terminated route whose certificate is not loaded
  TlsHandshake,       // the TLS handshake failed or did not finish within the hello timeout
  UpstreamTimeout,    // no response head from the backend within the response timeout (504)
  kCount
};
inline constexpr size_t kErrorKinds = static_cast<size_t>(ErrorKind::kCount);
std::string_view toString(ErrorKind kind);

// Process-wide counters, exported by GET /metrics.
struct Metrics {
  std::atomic<uint64_t> connectionsOpen{0};
  std::atomic<uint64_t> connectionsTotal{0};
  std::atomic<uint64_t> bytesIn{0};
  std::atomic<uint64_t> bytesOut{0};
  std::atomic<uint64_t> backendAttemptFailures{0};  // one backend refused/timed out/no netns
  std::atomic<uint64_t> reloads{0};
  std::atomic<uint64_t> tlsCertificateErrors{0};  // certificates left out of a generation
  std::atomic<int64_t> generation{0};
  std::array<std::atomic<uint64_t>, kErrorKinds> errors{};
  void count(ErrorKind kind) { errors[static_cast<size_t>(kind)].fetch_add(1); }
};

}  // namespace edgeplane::proxy
