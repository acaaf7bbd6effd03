// See rate_limiter.h.
#include "proxy/gateway/rate_limiter.h"

#include <algorithm>
#include <string_view>

namespace edgeplane::proxy::gateway {

size_t RateLimiter::KeyHash::operator()(const Key& k) const {
  return SourceKeyHash{seed ^ k.scope}(k.source);
}

RateLimiter::RateLimiter() : hash_{SourceKeyHash::randomSeed()} {
  for (Shard& s : shards_) {
    s.tat = decltype(s.tat)(0, hash_);
  }
}

RateLimiter::Decision RateLimiter::admit(uint64_t scope, const IpAddress& client,
                                         const RateLimit& limit, int64_t nowUs) {
  const int64_t periodUs = static_cast<int64_t>(limit.period.count()) * 1000000;
  const int64_t emissionUs = std::max<int64_t>(1, periodUs / std::max<uint32_t>(1, limit.count));
  const Key key{scope, SourceKey::of(client)};
  static_assert(kShards == 64);
  Shard& shard = shards_[hash_(key) >> 58];  // the top bits; the map's buckets use the low ones
  std::lock_guard lock(shard.mu);
  auto it = shard.tat.find(key);
  if (it == shard.tat.end()) {
    if (shard.tat.size() >= kMaxClientsPerShard) {
      std::erase_if(shard.tat, [&](const auto& e) { return e.second <= nowUs; });
      if (shard.tat.size() >= kMaxClientsPerShard) {
        return Decision{false, emissionUs};
      }
    }
    shard.tat.emplace(key, nowUs + emissionUs);
    return Decision{};
  }
  const int64_t next = std::max(it->second, nowUs) + emissionUs;
  if (next - nowUs > periodUs) {
    return Decision{false, next - periodUs - nowUs};
  }
  it->second = next;
  return Decision{};
}

size_t RateLimiter::purge(int64_t nowUs) {
  size_t left = 0;
  for (Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    std::erase_if(shard.tat, [&](const auto& e) { return e.second <= nowUs; });
    left += shard.tat.size();
  }
  return left;
}

size_t RateLimiter::clients() const {
  size_t n = 0;
  for (const Shard& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.tat.size();
  }
  return n;
}

}  // namespace edgeplane::proxy::gateway
