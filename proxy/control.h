// The proxy's control side: published snapshot -> ActiveConfig, the watcher, traffic accounting.
//
// The reconciler publishes a routing snapshot with a new generation into <state-dir>/published
// (schema/proxy_feed.h) and then notifies the proxy (POST /api/v1/reload); the Controller also
// polls the published generation, so a lost notice costs at most one poll interval. A snapshot
// that fails to decode or to build a clean routing table is refused: the active config stays.
// The proxy never opens the reconciler's store: its counters (traffic, API-key usage) go to a
// store of its own in <state-dir>/proxy.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "proxy/acme_challenges.h"
#include "proxy/gateway/usage.h"
#include "proxy/health/registry.h"
#include "proxy/runtime.h"
#include "proxy/tls/ticket_keys.h"
#include "schema/proxy_feed.h"
#include "schema/result.h"
#include "schema/snapshot.h"
#include "schema/store.h"

namespace edgeplane::proxy {

// Generation 0: no routes, every server name is NoRoute. Served before any snapshot exists.
std::shared_ptr<const ActiveConfig> emptyConfig();

// The config for one snapshot generation. RouteStats are taken over from `previous` by route
// key, so counters survive a reload; a new key gets fresh stats; a key absent from the
// snapshot is dropped. An error (naming every problem) when two routes share a key or
// RoutingTable::build reports issues. With `health`, every route's backend health is attached
// from it (carried across generations by key), once the config is otherwise valid; a
// malformed health check is an error too.
// TLS: the snapshot's certificates are loaded by tls::ContextSet::build (unchanged ones keep
// `previous`'s SSL_CTX) with `ticketKeys` (nullptr: the previous generation's, else fresh
// ones); `tls` stays nullptr without certificates. A certificate that fails is left out, not
// fatal: its "NAME: reason" goes to `tlsErrors` (may be nullptr) for the caller to log and
// count.
Result<std::shared_ptr<const ActiveConfig>> buildActiveConfig(
    const ProxySnapshot& snapshot, int64_t generation, std::string json,
    const ActiveConfig* previous, health::HealthRegistry* health = nullptr,
    std::shared_ptr<tls::TicketKeys> ticketKeys = nullptr,
    std::vector<std::string>* tlsErrors = nullptr);

// Traffic of one route over some period.
struct RouteTraffic {
  std::string route;  // the route key ("passthrough secure")
  int64_t bytesIn = 0;
  int64_t bytesOut = 0;
  int64_t connections = 0;
  auto operator<=>(const RouteTraffic&) const = default;
};

struct ReloadOutcome {
  int64_t active = 0;              // the generation active after the call
  bool changed = false;            // a new generation was swapped in
  std::optional<int64_t> refused;  // the newest generation published, refused
  std::string error;               // why it was refused, or why the snapshot could not be read
  bool storeError = false;         // the published snapshot could not be read (retryable)
};

struct ControllerOptions {
  std::filesystem::path stateDir;
  StoreOptions store;  // busy timeout of the proxy's own store (its file name is set here)
  std::chrono::milliseconds pollInterval{500};
  std::chrono::milliseconds flushInterval{10000};
  std::chrono::milliseconds pruneInterval{std::chrono::hours(1)};
  std::chrono::milliseconds trafficRetention{std::chrono::hours(24 * 30)};
  std::function<int64_t()> clock;             // unix ms; the system clock when unset
  std::function<void(std::string_view)> log;  // one line per event; stderr when unset
  // Refreshed from the published pending ACME answers on every poll and reload (the engine's :80
  // and :443 listeners and the --dns responder serve them); nullptr: not read.
  std::shared_ptr<AcmeChallengeBoard> acmeChallenges;
  // Whether the --dns responder runs: without it pending DNS-01 answers reach no CA, which is
  // logged when they appear.
  bool dnsResponder = false;
};

// What the proxy listens on, as GET /api/v1/listeners tells the reconciler (which picks an
// ACME challenge the proxy can answer): each bound "ADDR:PORT", or "off".
struct Listeners {
  std::string https = "off";
  std::string http = "off";
  std::string dns = "off";
};

// Owns the active config and the proxy's connection to its own store. Thread-safe: the watcher
// thread, the admin API's threads and main call into it concurrently.
class Controller {
 public:
  using Sink = std::function<void(std::shared_ptr<const ActiveConfig>)>;

  Controller(ControllerOptions options, Metrics& metrics);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Receives the active config at once, then every config swapped in (the engine's
  // setConfig). Atomic with respect to reloads: the sink never misses or reorders a swap.
  void setSink(Sink sink);
  std::shared_ptr<const ActiveConfig> current() const;

  // Loads the newest generation published if it differs from the active one. A generation
  // already refused is not decoded (nor logged, nor counted) again.
  ReloadOutcome reload();

  // The watcher thread: polls the newest generation every pollInterval, flushes traffic every
  // flushInterval, prunes old traffic samples every pruneInterval. stopWatcher() joins it and
  // flushes once more.
  void startWatcher();
  void stopWatcher();

  // Writes the per-route deltas since the last successful flush (non-zero ones only) to the
  // store, in one transaction. Returns how many samples were written. On failure the deltas
  // stay pending for the next flush.
  Result<size_t> flushTraffic();
  // Deletes samples older than the retention. Returns how many.
  Result<int64_t> pruneTraffic();

  // Per-route traffic since `sinceMs` (unix ms): stored samples plus the deltas not flushed
  // yet. Sorted by route key; routes without traffic left out.
  Result<std::vector<RouteTraffic>> trafficSince(int64_t sinceMs);

  // The worker gateway (gateway_control.cpp). flushUsage(): the API-key usage the workers
  // counted since the last successful flush, into the store in one transaction (returns how
  // many keys); on failure the counts stay pending. The watcher calls it every
  // flushInterval and stopWatcher() once more.
  Result<size_t> flushUsage();
  // GET /api/v1/apikeys: the keys of the active config (never a digest) with their usage
  // (stored plus pending) and whether they are blocked; a JSON array.
  Result<std::string> apiKeysJson();
  // The gateway runtime of the active config (rate limiter, usage, blocks).
  gateway::Runtime& gatewayRuntime() const;

  // Each ACME certificate's lifecycle state as the reconciler published it (failures, renewal
  // time), read now: /metrics exports it. Empty before anything is published.
  Result<std::vector<AcmeState>> acmeStates();

  uint64_t refusedCount() const;
  // Set by main once the listeners are bound; nullopt until then (not "off": unknown).
  void setListeners(Listeners listeners);
  std::optional<Listeners> listeners() const;
  int64_t now() const;
  // The backend health of the configs this controller builds (the prober and the admin API).
  health::HealthRegistry& health() { return health_; }

 private:
  // One RouteStats object being accounted: what was last flushed of it.
  struct Tracked {
    std::string key;
    std::shared_ptr<RouteStats> stats;
    uint64_t bytesIn = 0;
    uint64_t bytesOut = 0;
    uint64_t connections = 0;
  };
  struct Delta {
    std::string key;
    uint64_t bytesIn = 0;
    uint64_t bytesOut = 0;
    uint64_t connections = 0;
  };

  Result<Store*> storeLocked();
  void storeFailedLocked(const Error& error, std::string_view what);
  void feedFailedLocked(std::string& last, const Error& error, std::string_view what);
  ReloadOutcome reloadLocked(bool fromWatcher);
  void feedReadLocked(std::string& last);
  bool refreshPublishedLocked();
  // Puts the keys blocked on this host into the gateway runtime and the active config's keys
  // (`edgeplane apikey block`: at the next poll or reload notice).
  void refreshBlocksLocked(const std::vector<ApiKeyBlock>& blocks);
  // Puts the pending ACME answers into options_.acmeChallenges.
  void refreshChallengesLocked(std::vector<AcmeChallenge> challenges);
  Result<size_t> flushUsageLocked();
  void publishLocked(std::shared_ptr<const ActiveConfig> config);
  std::vector<Delta> pendingLocked() const;
  void pollLocked();
  void watch();
  void log(std::string_view line) const;

  ControllerOptions options_;
  Metrics& metrics_;
  health::HealthRegistry health_;

  mutable std::mutex cfgMu_;  // guards current_ only, so readers never wait on the files
  std::shared_ptr<const ActiveConfig> current_;

  std::mutex mu_;  // everything below
  Sink sink_;
  std::unique_ptr<Store> store_;
  std::string lastStoreError_;  // logged once until the proxy's store works again
  // What was logged about each published file, once, until it reads again.
  std::string lastStateError_;
  std::string lastSnapshotError_;
  bool loadedOnce_ = false;  // the first load is not a "reload"
  std::optional<int64_t> refusedGeneration_;
  std::string refusedError_;
  std::atomic<uint64_t> refused_{0};
  std::vector<Tracked> tracked_;
  // One key set for the process's life: tickets resume across snapshot generations.
  std::shared_ptr<tls::TicketKeys> ticketKeys_ = tls::TicketKeys::create();

  std::mutex watchMu_;
  mutable std::mutex listenersMu_;
  std::optional<Listeners> listeners_;
  std::condition_variable watchCv_;
  bool stopping_ = false;
  std::thread watcher_;
};

}  // namespace edgeplane::proxy
