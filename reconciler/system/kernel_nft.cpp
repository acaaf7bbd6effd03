// KernelNft: edgeplane's nftables table of a scope, observed and synced in one atomic batch.
#include <algorithm>

#include "reconciler/system/kernel_drivers.h"

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

}  // namespace

Result<std::optional<core::NftTableView>> KernelNft::observe(const std::string& scope) {
  auto nft = NftSocket::open(scopeNetns(scope));
  if (!nft) {
    return nft.error();
  }
  auto table = nft->observe();
  if (!table) {
    return table.error();
  }
  if (!*table) {
    return std::optional<core::NftTableView>();
  }
  return std::optional<core::NftTableView>(toView(**table));
}

Result<void> KernelNft::sync(const std::string& scope, const core::NftTableView& table) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  auto seen = sock->observe();
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
  return sock->send(*batch);
}

Result<void> KernelNft::remove(const std::string& scope) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  return sock->send(buildDeleteTable());
}

}  // namespace edgeplane::sys
