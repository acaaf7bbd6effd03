// See source_key.h.
#include "proxy/source_key.h"

#include <random>

namespace edgeplane::proxy {

SourceKey SourceKey::of(const IpAddress& address) {
  SourceKey key;
  key.v6 = address.family == IpAddress::Family::V6;
  size_t n = key.v6 ? 8 : 4;
  for (size_t i = 0; i < n; ++i) {
    key.bits = key.bits << 8 | address.bytes[i];
  }
  return key;
}

// The tables built on it pick their shard by the top bits of a 64-bit hash.
static_assert(sizeof(size_t) == 8);

// splitmix64's finalizer over the key and the seed.
size_t SourceKeyHash::operator()(const SourceKey& key) const {
  uint64_t z = key.bits ^ seed ^ (key.v6 ? 0x9E3779B97F4A7C15ull : 0);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<size_t>(z ^ (z >> 31));
}

uint64_t SourceKeyHash::randomSeed() {
  std::random_device rd;
  return static_cast<uint64_t>(rd()) << 32 | rd();
}

}  // namespace edgeplane::proxy
