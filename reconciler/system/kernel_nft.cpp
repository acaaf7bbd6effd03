// KernelNft: edgeplane's nftables table of a scope, observed and synced in one atomic batch.
#include <algorithm>

#include "reconciler/system/kernel_drivers.h"
#include "reconciler/system/program_identity.h"

namespace edgeplane::sys {
namespace {

core::NftTableView toView(const NftTableState& s) {
  core::NftTableView v;
  v.intact = s.intact;
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
    seen = toView(**table);
  }
  if (key) {
    key->generation = generation;
    cache_.store(scope, *key, seen);
  }
  return seen;
}

Result<void> KernelNft::sync(const std::string& scope, const core::NftTableView& table) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  uint32_t seenAt = 0;
  auto seen = sock->observe(&seenAt);
  if (!seen) {
    return seen.error();
  }
  const NftTableState want = toState(table, scope.empty() ? NftRole::Host : NftRole::Namespace);
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
  if (auto sent = sock->send(*batch); !sent) {
    return sent;
  }
  // One commit after the one we read at: ours, and nobody else's in between. The batch applies
  // whole or not at all, so the table is now `want`.
  std::optional<NftObservationKey> key = keyNow(*sock);
  if (key && key->generation == nextGeneration(seenAt)) {
    cache_.store(scope, *key, toView(want));
  }
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
