// A client source as the proxy limits it: an IPv4 address, or an IPv6 /64 (one subscriber gets
// a /64 or more and picks addresses in it at will, so single IPv6 addresses would cap
// nothing). IPv4-mapped IPv6 clients of a dual-stack listener arrive as IPv4 (fromSockaddr).
// Used by the per-source connection caps (engine/source_limits.h) and the gateway's rate limit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "schema/net.h"

namespace edgeplane::proxy {

// An IPv4 address, or the first 64 bits of an IPv6 address.
struct SourceKey {
  uint64_t bits = 0;
  bool v6 = false;

  static SourceKey of(const IpAddress& address);
  bool operator==(const SourceKey&) const = default;
};

// Keyed with a random seed (randomSeed(), per table), so that a client cannot aim its
// addresses at one shard or one hash bucket.
struct SourceKeyHash {
  uint64_t seed = 0;
  size_t operator()(const SourceKey& key) const;
  static uint64_t randomSeed();
};

}  // namespace edgeplane::proxy
