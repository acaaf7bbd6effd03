// The worker gateway's view of one snapshot generation: its gateways with their endpoints
// (backends, health, round-robin cursors) and rate limits, and the API keys by id. Built by
// the control side with the ActiveConfig (after health is attached) and immutable afterwards,
// except the cursors and the keys' `blocked` flags.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/gateway/usage.h"
#include "proxy/runtime.h"
#include "schema/api_key.h"
#include "schema/snapshot.h"

namespace edgeplane::proxy::gateway {

// The reserved path on every gateway hostname: its stats, for admin keys.
inline constexpr std::string_view kStatsPath = "/api/gateway/stats";

// `path` (a request's, as sent) stays within every prefix it starts with on a backend that
// resolves dot-segments after decoding once, as most do: none of its segments is "." or ".."
// (also with a '.' as "%2e", or before a ';' as in "..;"), and it has no '\' and no encoded
// '/' or '\' ("%2f", "%5c"), which backends may take for a '/'. Not covered: backends that
// decode twice ("%252e") or take overlong UTF-8 ("%c0%ae"). The gateway refuses any other path
// (400) before it matches one to an endpoint.
bool normalPath(std::string_view path);

struct KeyEntry {
  SnapshotApiKey spec;
  ApiKeyDigest digest{};
  mutable std::atomic<bool> blocked{false};
  // Its gateways include `gateway` (an admin key without gateways: every gateway).
  bool mayCall(std::string_view gateway) const;
  // Its endpoint scope includes `path` (no scope: every endpoint).
  bool mayUse(std::string_view path) const;
};

struct EndpointEntry {
  const SnapshotEndpoint* spec = nullptr;
  std::span<const std::shared_ptr<BackendHealth>> health;  // parallel to spec->backends
  mutable std::atomic<uint32_t> cursor{0};
};

struct GatewayEntry {
  const ActiveRoute* route = nullptr;
  std::optional<RateLimit> limit;
  uint64_t scope = 0;  // the rate limiter's scope (a hash of the name)
  std::vector<std::unique_ptr<EndpointEntry>> endpoints;

  // Routing a path: the endpoints whose path matches (exact, or a prefix ending in '/'), the
  // longest match only; empty: none (404).
  std::vector<const EndpointEntry*> match(std::string_view path) const;
};

class GatewayConfig {
 public:
  // `config`'s gateway routes (health attached) and `keys`; `runtime` carried over from the
  // previous generation (nullptr: a new one). Its blocked set is applied to the keys.
  static std::shared_ptr<const GatewayConfig> build(const ActiveConfig& config,
                                                    const std::vector<SnapshotApiKey>& keys,
                                                    std::shared_ptr<Runtime> runtime);

  const KeyEntry* findKey(std::string_view id) const;
  const GatewayEntry* find(const ActiveRoute* route) const;
  const GatewayEntry* findByName(std::string_view name) const;  // a walk: gateways are few
  const std::vector<std::unique_ptr<KeyEntry>>& keys() const { return keys_; }
  Runtime& runtime() const { return *runtime_; }
  const std::shared_ptr<Runtime>& runtimePtr() const { return runtime_; }
  // Marks exactly the keys in `ids` blocked.
  void applyBlocks(const std::set<std::string, std::less<>>& ids) const;

 private:
  std::shared_ptr<Runtime> runtime_;
  std::vector<std::unique_ptr<KeyEntry>> keys_;  // by id
  std::vector<std::unique_ptr<GatewayEntry>> gateways_;
  std::unordered_map<const ActiveRoute*, const GatewayEntry*> byRoute_;
};

}  // namespace edgeplane::proxy::gateway
