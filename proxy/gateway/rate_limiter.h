// Per-client rate limits for the worker gateway (GCRA), one limiter shared by every worker
// thread: decisions are exact across threads (a lock per shard), memory is bounded. A client is
// a source as in source_key.h: an IPv4 address or an IPv6 /64.
//
// GCRA with the limit "N per P": each admitted request moves the client's theoretical arrival
// time (TAT) on by P/N; a request is admitted while TAT, after the move, is at most P ahead of
// now. So a client starts with a burst of N and then gets N per P, evenly. Refused requests do
// not move the TAT. A client whose TAT has passed is the same as one never seen; purge()
// forgets those. A shard holds at most kMaxClientsPerShard clients: when a new client finds it
// full even after purging, it is refused (fail closed: an attacker with very many addresses
// must not switch the limit off).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "proxy/source_key.h"
#include "schema/net.h"

namespace edgeplane::proxy::gateway {

class RateLimiter {
 public:
  static constexpr size_t kShards = 64;
  static constexpr size_t kMaxClientsPerShard = 16384;  // 1 Mi clients in all

  struct Decision {
    bool allowed = true;
    int64_t retryAfterUs = 0;  // refused: when the next request would be admitted
  };

  RateLimiter();

  // One request of `client` (counted as its source: its /64 for IPv6) under `limit` (count per
  // period, both > 0). `scope` keeps the gateways' budgets apart. `nowUs`: a monotonic clock in
  // microseconds.
  Decision admit(uint64_t scope, const IpAddress& client, const RateLimit& limit, int64_t nowUs);
  // Forgets clients whose TAT has passed; returns how many are still tracked.
  size_t purge(int64_t nowUs);
  size_t clients() const;

 private:
  struct Key {
    uint64_t scope = 0;
    SourceKey source;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {  // keyed with a random seed per limiter
    uint64_t seed;  // no default member initializer: the map needs it default-constructible
    size_t operator()(const Key& k) const;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<Key, int64_t, KeyHash> tat;
  };
  KeyHash hash_;
  std::array<Shard, kShards> shards_;
};

}  // namespace edgeplane::proxy::gateway
