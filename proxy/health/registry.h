// Backend health across snapshot generations: one entry per (netns, backend, health spec),
// shared by every route that would probe that backend the same way, carried by key from one
// ActiveConfig to the next.
//
// The control side calls attach() on each config it builds; attach() fills every
// ActiveRoute::health with the entries of the registry (the same objects as in the previous
// generation for every key still present, fresh ones - up, unchecked - for new keys) and drops
// the keys no longer referenced. A dropped entry lives on as long as an old config (an
// established connection) holds it. The prober (prober.h) finds the entries of the config it
// follows here and updates their state; the admin API reads it with describe().
//
// Routes without a health check get entries too (spec unset): always up, never probed, so the
// workers treat every route alike.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proxy/health/state.h"
#include "proxy/runtime.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::proxy::health {

struct HealthKey {
  std::string netns;  // "" = the proxy's own namespace
  Endpoint backend;
  std::optional<HealthSpec> spec;  // unset: the route has no health check
  auto operator<=>(const HealthKey&) const = default;
};

// The keys of a route's backends, parallel to ActiveRoute::health: spec.backends for sites and
// passthroughs with the route's health check, the endpoints' backends flattened in order for
// gateways, each with its endpoint's health check. An error when a health check is malformed
// (HealthSpec::of).
Result<std::vector<HealthKey>> healthKeys(const SnapshotRoute& route);

// One backend's health. `health()` is what the workers see; the state machine behind it is
// changed by the prober only, read by the admin API; both under the entry's lock.
class HealthEntry {
 public:
  HealthEntry(HealthKey key, int64_t createdMs);
  HealthEntry(const HealthEntry&) = delete;
  HealthEntry& operator=(const HealthEntry&) = delete;

  const HealthKey& key() const { return key_; }
  const std::shared_ptr<BackendHealth>& health() const { return health_; }

  // A finished probe; mirrors a transition into BackendHealth (up, changedAtMs) and clears the
  // workers' passive failure count on it. Only for entries with a spec.
  Transition record(const ProbeResult& result, int64_t nowMs);
  // Passive marking at the prober's turn (HealthState::markPassive).
  Transition markPassive(int64_t nowMs);

  HealthState state() const;
  // The key of the route this entry was last attached for (for events and logs).
  std::string route() const;
  void setRoute(std::string route);

 private:
  void publish(Transition t);

  const HealthKey key_;
  const std::shared_ptr<BackendHealth> health_;
  mutable std::mutex mu_;
  HealthState state_;
  std::string route_;
};

// One row of GET /api/v1/backends.
struct BackendStatus {
  std::string route;  // "site shop"
  std::string netns;
  std::string backend;  // "10.0.0.5:8080"
  bool up = true;
  bool checked = false;  // has a health check and at least one probe finished
  int64_t lastChangeMs = 0;
  uint32_t consecutiveFailures = 0;
  std::string lastError;
};

// Thread-safe.
class HealthRegistry {
 public:
  // `clock`: unix ms for last-change times; the system clock when unset.
  explicit HealthRegistry(std::function<int64_t()> clock = {});

  // Fills every route's `health` (replacing what is there). Validates every route's health
  // check first: on an error nothing is changed, neither the config nor the registry.
  Result<void> attach(ActiveConfig& config);

  // The entry of `key` in the last attached generation, or nullptr.
  std::shared_ptr<HealthEntry> find(const HealthKey& key) const;
  size_t size() const;
  int64_t now() const;

  // Per route of `config` in order, per backend in `health` order. Routes whose health vector
  // was not filled by this registry show their backends as up and unchecked.
  std::vector<BackendStatus> describe(const ActiveConfig& config) const;

 private:
  std::function<int64_t()> clock_;
  mutable std::mutex mu_;
  std::map<HealthKey, std::shared_ptr<HealthEntry>> entries_;
};

}  // namespace edgeplane::proxy::health
