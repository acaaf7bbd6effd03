// Per-source connection and pending-hello counts (see source_limits.h).
#include "proxy/engine/source_limits.h"

#include <algorithm>

namespace edgeplane::proxy {

SourceLimits::SourceLimits(size_t maxConnections, size_t maxPendingHellos)
    : maxConnections_(maxConnections),
      maxPendingHellos_(maxPendingHellos),
      shards_(std::make_unique<std::array<Shard, kShards>>()) {
  hash_.seed = SourceKeyHash::randomSeed();
  for (Shard& s : *shards_) {
    s.map = Map(0, hash_);
  }
}

// The top bits pick the shard; the map's buckets use the low ones.
SourceLimits::Shard& SourceLimits::shardOf(const SourceKey& key) const {
  return (*shards_)[hash_(key) >> 58];
}

SourceVerdict SourceLimits::admit(const SourceKey& key, bool hello) {
  Shard& s = shardOf(key);
  std::lock_guard lock(s.mu);
  Counts& c = s.map[key];
  // A refusal leaves no empty entry behind: either cap (>= 1) was reached, so the source
  // holds at least one connection.
  if (maxConnections_ != 0 && c.connections >= maxConnections_) {
    return SourceVerdict::TooManyConnections;
  }
  if (hello && maxPendingHellos_ != 0 && c.hellos >= maxPendingHellos_) {
    return SourceVerdict::TooManyHellos;
  }
  ++c.connections;
  if (hello) {
    ++c.hellos;
  }
  return SourceVerdict::Admitted;
}

void SourceLimits::giveBack(const SourceKey& key, uint32_t connections, uint32_t hellos) {
  Shard& s = shardOf(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  if (it == s.map.end()) {
    return;
  }
  Counts& c = it->second;
  c.connections -= std::min(c.connections, connections);
  c.hellos -= std::min(c.hellos, hellos);
  if (c.connections == 0) {
    s.map.erase(it);
  }
}

void SourceLimits::helloDone(const SourceKey& key) {
  giveBack(key, 0, 1);
}

void SourceLimits::release(const SourceKey& key, bool hello) {
  giveBack(key, 1, hello ? 1 : 0);
}

SourceLimits::Counts SourceLimits::counts(const SourceKey& key) const {
  Shard& s = shardOf(key);
  std::lock_guard lock(s.mu);
  auto it = s.map.find(key);
  return it == s.map.end() ? Counts{} : it->second;
}

size_t SourceLimits::sources() const {
  size_t n = 0;
  for (const Shard& s : *shards_) {
    std::lock_guard lock(s.mu);
    n += s.map.size();
  }
  return n;
}

}  // namespace edgeplane::proxy
