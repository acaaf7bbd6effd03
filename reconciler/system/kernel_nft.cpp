// KernelNft: edgeplane's nftables table of a scope, observed and synced in one atomic batch.
#include <sched.h>

#include <algorithm>

#include "reconciler/system/kernel_drivers.h"
#include "reconciler/system/program_identity.h"

namespace edgeplane::sys {
namespace {

NftRole roleOf(const std::string& scope) {
  return scope.empty() ? NftRole::Host : NftRole::Namespace;
}

// What the planner sees of a table in `scope`: one of the other role's shape is not this
// scope's table, however whole, and is replaced like any altered one.
core::NftTableView toView(const NftTableState& s, NftRole scopeRole) {
  core::NftTableView v;
  v.intact = s.intact && s.role == scopeRole;
  for (const auto& m : s.tcp) {
    v.mappings.push_back(core::PortMapping{Protocol::Tcp, m.port, m.address, m.targetPort});
  }
  for (const auto& m : s.udp) {
    v.mappings.push_back(core::PortMapping{Protocol::Udp, m.port, m.address, m.targetPort});
  }
  std::sort(v.mappings.begin(), v.mappings.end());
  return v;
}

NftTableState toState(const core::NftTableView& v, NftRole role) {
  NftTableState s;
  s.role = role;
  for (const auto& m : v.mappings) {
    NftMapping nm{m.port, m.address, m.targetPort};
    (m.protocol == Protocol::Tcp ? s.tcp : s.udp).push_back(nm);
  }
  std::sort(s.tcp.begin(), s.tcp.end());
  std::sort(s.udp.begin(), s.udp.end());
  return s;
}

// What an observation of `sock`'s namespace now is valid for; nullopt when that cannot be
// told (no boot id, a kernel without SO_NETNS_COOKIE), and then nothing is cached.
std::optional<NftObservationKey> keyNow(NftSocket& sock) {
  auto cookie = sock.netnsCookie();
  auto generation = cookie ? sock.generation() : Result<uint32_t>(cookie.error());
  if (!generation || bootId().empty()) {
    return std::nullopt;
  }
  return NftObservationKey{programIdentity(), bootId(), *cookie, *generation};
}

// The generation a commit made right after `g` has (the kernel skips 0).
uint32_t nextGeneration(uint32_t g) {
  return g + 1 == 0 ? 1 : g + 1;
}

}  // namespace

Result<std::optional<core::NftTableView>> KernelNft::observe(const std::string& scope) {
  auto nft = NftSocket::open(scopeNetns(scope));
  if (!nft) {
    return nft.error();
  }
  std::optional<NftObservationKey> key = keyNow(*nft);
  if (key) {
    if (auto cached = cache_.find(scope, *key)) {
      return *cached;
    }
  }
  uint32_t generation = 0;
  auto table = nft->observe(&generation);
  if (!table) {
    return table.error();
  }
  NftObservation seen;
  if (*table) {
    seen = toView(**table, roleOf(scope));
  }
  if (key) {
    key->generation = generation;
    cache_.store(scope, *key, seen);
  }
  return seen;
}

// The table of `sock`'s namespace as it is, and the generation it was seen at: the cached
// observation while the generation holds (usually the plan's own), else read from the kernel.
// Only an intact table, or none, is taken from the cache: replacing an altered one reads its
// counters first. `cached` says where it came from.
Result<std::optional<NftTableState>> KernelNft::tableNow(NftSocket& sock, const std::string& scope,
                                                         bool useCache, uint32_t& seenAt,
                                                         bool& cached) {
  cached = false;
  if (std::optional<NftObservationKey> key = useCache ? keyNow(sock) : std::nullopt) {
    std::optional<NftObservation> entry = cache_.find(scope, *key);
    if (entry && (!*entry || (*entry)->intact)) {
      cached = true;
      seenAt = key->generation;
      return *entry ? std::optional(toState(**entry, roleOf(scope))) : std::nullopt;
    }
  }
  return sock.observe(&seenAt);
}

Result<void> KernelNft::sync(const std::string& scope, const core::NftTableView& table) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  const NftRole role = roleOf(scope);
  const NftTableState want = toState(table, role);
  Result<void> sent;
  uint32_t seenAt = 0;
  // A batch built from a cached entry that the kernel refuses means the entry was wrong: it is
  // dropped, and the table read and the batch built again, once.
  for (bool useCache : {true, false}) {
    bool cached = false;
    auto seen = tableNow(*sock, scope, useCache, seenAt, cached);
    if (!seen) {
      return seen.error();
    }
    NftChange change = diffTable(*seen, want);
    auto batch = buildChange(change, want);
    if (!batch) {
      return batch.error();
    }
    TableSync sync{scope, change.kind, batch->ops(), std::nullopt};
    if (change.kind == NftChange::Kind::ReplaceTable && *seen) {
      sync.countersBeforeReset = (*seen)->counters;
    }
    syncs_.push_back(std::move(sync));
    if (batch->empty()) {
      return {};
    }
    sent = sock->send(*batch);
    if (sent || !cached) {
      break;
    }
    cache_.forget(scope);
  }
  if (!sent) {
    return sent;
  }
  // The kernel frees what the commit deleted or replaced from a work item queued on this CPU,
  // after an RCU grace period; releasing a netfilter socket while that item is still queued
  // waits for all of it (nft_rcv_nl_event flushes it). Yielding lets it start now, so the
  // grace period runs while the run goes on; a run that ends within it still waits for the rest
  // when the socket is released.
  ::sched_yield();
  // One commit after the one we read at: ours, and nobody else's in between. The batch applies
  // whole or not at all, so the table is now `want`.
  std::optional<NftObservationKey> key = keyNow(*sock);
  if (key && key->generation == nextGeneration(seenAt)) {
    cache_.store(scope, *key, toView(want, role));
  }
  // Closed when the driver is, not now: see committed_.
  committed_.push_back(std::move(*sock));
  return {};
}

Result<void> KernelNft::remove(const std::string& scope) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  cache_.forget(scope);
  return sock->send(buildDeleteTable());
}

}  // namespace edgeplane::sys
