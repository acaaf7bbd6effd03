// Per-source caps on the accept path: concurrent connections and pending ClientHellos per client
// address (an IPv4 address, or an IPv6 /64), one table shared by every worker.
//
// Why per source: the global --max-connections alone lets one client hold every slot with
// slow hellos. Why an IPv6 /64: see source_key.h.
//
// Cost: one uncontended mutex per accept, per completed hello and per close, in one of 64
// shards picked by a keyed hash (the key is random per process, so a client cannot aim its
// addresses at one shard or one hash bucket). Entries live only while a source has open
// connections: the table holds at most as many entries as there are open connections.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "proxy/source_key.h"
#include "schema/net.h"

namespace edgeplane::proxy {

enum class SourceVerdict : uint8_t {
  Admitted,            // a connection slot (and a hello slot, if asked) is held
  TooManyConnections,  // the source holds maxConnections already
  TooManyHellos,       // the source has maxPendingHellos connections still in their hello
};

class SourceLimits {
 public:
  // 0 for either cap: no cap of that kind.
  SourceLimits(size_t maxConnections, size_t maxPendingHellos);

  // Takes a connection slot for `key` and, with `hello`, a pending-hello slot: both or none.
  SourceVerdict admit(const SourceKey& key, bool hello);
  // The hello is complete (or abandoned): gives back the hello slot only.
  void helloDone(const SourceKey& key);
  // The connection ended: gives back its connection slot and, with `hello`, its hello slot.
  void release(const SourceKey& key, bool hello);

  struct Counts {
    uint32_t connections = 0;
    uint32_t hellos = 0;
  };
  Counts counts(const SourceKey& key) const;
  size_t sources() const;  // entries held now (sources with an open connection)

 private:
  using Map = std::unordered_map<SourceKey, Counts, SourceKeyHash>;
  struct alignas(64) Shard {
    mutable std::mutex mu;
    Map map;
  };
  static constexpr size_t kShards = 64;

  Shard& shardOf(const SourceKey& key) const;
  void giveBack(const SourceKey& key, uint32_t connections, uint32_t hellos);

  size_t maxConnections_;
  size_t maxPendingHellos_;
  SourceKeyHash hash_;
  std::unique_ptr<std::array<Shard, kShards>> shards_;
};

}  // namespace edgeplane::proxy
