// The worker gateway's process-wide state, carried across snapshot generations: the
// per-client rate limiter, API-key usage counted by the workers, and the keys blocked on this host.
//
// Usage: each worker counts into its own UsageShard (a lock it alone takes per request, so
// uncontended but for collection); collect() moves every shard's counts into the totals (for
// /metrics and the admin API) and into the deltas the control side flushes to the store.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "proxy/gateway/rate_limiter.h"
#include "schema/net.h"

namespace edgeplane::proxy::gateway {

// What one key (or, with an empty key id, the unauthenticated requests) did on one gateway.
struct UsageCount {
  uint64_t requests = 0;
  int64_t lastUsedMs = 0;  // unix ms
  IpAddress lastIp;
  std::array<uint64_t, 5> classes{};  // responses by status class, [0] = 1xx
  std::map<int, uint64_t> codes;      // responses by status code
  void add(const UsageCount& other);
};

class UsageShard {
 public:
  // One finished request: `keyId` empty for a refused one (counted for metrics only).
  void record(std::string_view gateway, std::string_view keyId, const IpAddress& client, int status,
              int64_t wallMs);

 private:
  friend class Runtime;
  std::mutex mu_;
  // "gateway\0keyId" -> counts since the last collection
  std::unordered_map<std::string, UsageCount> counts_;
  std::string scratch_;
};

// A key's usage to add to the store (all gateways merged).
struct KeyUsageDelta {
  std::string keyId;
  UsageCount count;
};

class Runtime {
 public:
  RateLimiter limiter;

  // A worker's shard; the runtime keeps it for collection.
  std::shared_ptr<UsageShard> addShard();
  // Moves every shard's counts into the totals and the pending store deltas.
  void collect();
  // The pending deltas (taken: the caller flushes them, and gives them back on failure).
  std::vector<KeyUsageDelta> takePending();
  void restorePending(std::vector<KeyUsageDelta> deltas);

  // Since the start of the process, by (gateway, key id, status code); key id "" for the
  // refused requests.
  using TotalKey = std::tuple<std::string, std::string, int>;
  std::map<TotalKey, uint64_t> totals() const;
  // Per key id, since the start of the process (pending or flushed), all gateways merged.
  std::map<std::string, UsageCount> keyTotals() const;

  // The key ids blocked on this host (as published). Returns true when the set changed.
  bool setBlocked(std::set<std::string, std::less<>> ids);
  std::set<std::string, std::less<>> blocked() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::shared_ptr<UsageShard>> shards_;
  std::map<TotalKey, uint64_t> totals_;
  std::map<std::string, UsageCount> keyTotals_;
  std::map<std::string, UsageCount> pending_;
  std::set<std::string, std::less<>> blocked_;
};

}  // namespace edgeplane::proxy::gateway
