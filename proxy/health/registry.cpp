// Backend health entries keyed by (netns, backend, spec), carried across generations.
#include "proxy/health/registry.h"

#include <chrono>
#include <utility>

namespace edgeplane::proxy::health {

Result<std::vector<HealthKey>> healthKeys(const SnapshotRoute& route) {
  std::vector<HealthKey> keys;
  if (route.kind == RouteKind::Gateway) {
    // Each endpoint's backends are probed with the endpoint's own health check.
    for (const SnapshotEndpoint& endpoint : route.endpoints) {
      auto spec = HealthSpec::of(route, endpoint);
      if (!spec) {
        return spec.error();
      }
      for (const Endpoint& backend : endpoint.backends) {
        keys.push_back(HealthKey{route.netns, backend, *spec});
      }
    }
    return keys;
  }
  auto spec = HealthSpec::of(route);
  if (!spec) {
    return spec.error();
  }
  for (const Endpoint& backend : route.backends) {
    keys.push_back(HealthKey{route.netns, backend, *spec});
  }
  return keys;
}

HealthEntry::HealthEntry(HealthKey key, int64_t createdMs)
    : key_(std::move(key)), health_(std::make_shared<BackendHealth>()) {
  state_.lastChangeMs = createdMs;
  health_->changedAtMs.store(createdMs, std::memory_order_relaxed);
}

void HealthEntry::publish(Transition t) {
  if (t == Transition::None) {
    return;
  }
  // Stale worker failures (counted while down, or the ones that just took it down) must not
  // mark it down again at the next turn.
  health_->passiveFailures.store(0, std::memory_order_relaxed);
  health_->changedAtMs.store(state_.lastChangeMs, std::memory_order_relaxed);
  health_->up.store(t == Transition::Up, std::memory_order_release);
}

Transition HealthEntry::record(const ProbeResult& result, int64_t nowMs) {
  if (!key_.spec) {
    return Transition::None;
  }
  std::lock_guard lock(mu_);
  Transition t = state_.record(*key_.spec, result, nowMs);
  publish(t);
  return t;
}

Transition HealthEntry::markPassive(int64_t nowMs) {
  if (!key_.spec) {
    return Transition::None;
  }
  uint32_t failures = health_->passiveFailures.load(std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  Transition t = state_.markPassive(*key_.spec, failures, nowMs);
  publish(t);
  return t;
}

HealthState HealthEntry::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

std::string HealthEntry::route() const {
  std::lock_guard lock(mu_);
  return route_;
}

void HealthEntry::setRoute(std::string route) {
  std::lock_guard lock(mu_);
  route_ = std::move(route);
}

HealthRegistry::HealthRegistry(std::function<int64_t()> clock) : clock_(std::move(clock)) {}

int64_t HealthRegistry::now() const {
  if (clock_) {
    return clock_();
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<void> HealthRegistry::attach(ActiveConfig& config) {
  std::vector<std::vector<HealthKey>> keys;
  keys.reserve(config.routes.size());
  std::string problems;
  for (const auto& route : config.routes) {
    auto routeKeys = healthKeys(route->spec);
    if (!routeKeys) {
      problems += problems.empty() ? "" : "; ";
      problems += routeKeys.error().message;
      keys.emplace_back();
      continue;
    }
    keys.push_back(std::move(*routeKeys));
  }
  if (!problems.empty()) {
    return terminal(problems);
  }

  int64_t createdMs = now();
  std::lock_guard lock(mu_);
  std::map<HealthKey, std::shared_ptr<HealthEntry>> next;
  for (size_t r = 0; r < config.routes.size(); ++r) {
    ActiveRoute& route = *config.routes[r];
    route.health.clear();
    route.health.reserve(keys[r].size());
    for (HealthKey& key : keys[r]) {
      auto found = next.find(key);
      if (found == next.end()) {
        auto previous = entries_.find(key);
        std::shared_ptr<HealthEntry> entry = previous != entries_.end()
                                                 ? previous->second
                                                 : std::make_shared<HealthEntry>(key, createdMs);
        found = next.emplace(std::move(key), std::move(entry)).first;
      }
      if (found->first.spec) {
        // The Host header is part of the key, so a probed entry belongs to one route.
        found->second->setRoute(route.spec.key());
      }
      route.health.push_back(found->second->health());
    }
  }
  entries_ = std::move(next);
  return {};
}

std::shared_ptr<HealthEntry> HealthRegistry::find(const HealthKey& key) const {
  std::lock_guard lock(mu_);
  auto found = entries_.find(key);
  return found != entries_.end() ? found->second : nullptr;
}

size_t HealthRegistry::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::vector<BackendStatus> HealthRegistry::describe(const ActiveConfig& config) const {
  std::vector<BackendStatus> out;
  for (const auto& route : config.routes) {
    auto keys = healthKeys(route->spec);
    if (!keys) {
      continue;  // attach() refused it, so no published config has such a route
    }
    for (size_t i = 0; i < keys->size(); ++i) {
      const HealthKey& key = (*keys)[i];
      BackendStatus row;
      row.route = route->spec.key();
      row.netns = key.netns;
      row.backend = key.backend.str();
      const BackendHealth* seen = i < route->health.size() ? route->health[i].get() : nullptr;
      auto entry = find(key);
      if (entry != nullptr && entry->health().get() == seen) {
        HealthState state = entry->state();
        row.up = state.up;
        row.checked = key.spec.has_value() && state.checked;
        row.lastChangeMs = state.lastChangeMs;
        row.consecutiveFailures = state.failures;
        row.lastError = state.lastError;
      } else if (seen != nullptr) {
        // A config this registry no longer tracks: only what the workers see is known.
        row.up = seen->up.load(std::memory_order_acquire);
        row.lastChangeMs = seen->changedAtMs.load(std::memory_order_relaxed);
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

}  // namespace edgeplane::proxy::health
