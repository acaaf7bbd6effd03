// The real HostDriver: observes and converges a host through netns, rtnetlink and nftables.
#pragma once

#include <string>
#include <vector>

#include <functional>
#include <memory>

#include "reconciler/core/apply.h"
#include "reconciler/system/nft.h"
#include "reconciler/system/wireguard.h"

namespace edgeplane::sys {

// Where a namespace's WireGuard private key is kept: <state-dir>/keys/<namespace>.key (0600).
std::string wireguardKeyPath(const std::string& stateDir, const std::string& ns);

class KernelHost : public core::HostDriver {
 public:
  // `stateDir` holds keys/<namespace>.key (0600) and wireguard-go's pid and log files.
  KernelHost(std::string stateDir, WgBackendChoice wireguard)
      : stateDir_(std::move(stateDir)), wgChoice_(wireguard) {}

  // What one syncTable call sent, for tests and --verbose output.
  struct TableSync {
    std::string scope;
    NftChange::Kind change = NftChange::Kind::None;
    std::vector<NftBatchOp> ops;
    // The rule counters as read just before a rebuild reset them (ReplaceTable only), so
    // the caller can keep them.
    std::optional<NftCounters> countersBeforeReset;
  };
  const std::vector<TableSync>& tableSyncs() const { return syncs_; }

  // Interface
  Result<core::HostState> observe() override;
  Result<void> createNamespace(const std::string& ns) override;
  Result<void> deleteNamespace(const std::string& ns) override;
  Result<void> setHostForwarding(bool on) override;
  Result<void> ensureUplink(const core::UplinkTarget& uplink) override;
  Result<void> deleteUplink(const std::string& ns) override;
  Result<void> ensureWireGuard(const core::WireGuardTarget& wg) override;
  Result<void> deleteWireGuard(const std::string& ns) override;
  Result<void> syncPeers(const core::WireGuardTarget& wg) override;
  Result<void> replaceRoute(const core::RouteTarget& route) override;
  Result<void> deleteRoute(const std::string& ns, const IpPrefix& destination) override;
  Result<void> syncTable(const std::string& scope, const core::NftTableView& table) override;
  Result<void> deleteTable(const std::string& scope) override;

 private:
  Result<WgBackend*> wireguard();
  Result<void> observeWireGuard(const std::string& netns, core::NetnsView& v);

  std::string stateDir_;
  WgBackendChoice wgChoice_;
  std::unique_ptr<WgBackend> wg_;
  std::vector<TableSync> syncs_;
};

// Wraps a HostDriver and fails the calls named in `failOn` ("createNamespace tenant-b",
// "ensureUplink tenant-b", "syncTable host", …) before they reach it. For tests that need a
// forced failure on a real host (EDGEPLANE_FAIL_OPS, comma-separated); never set in production.
class FaultInjectingHost : public core::HostDriver {
 public:
  FaultInjectingHost(core::HostDriver& inner, std::vector<std::string> failOn)
      : inner_(inner), failOn_(std::move(failOn)) {}

  // Interface
  Result<core::HostState> observe() override { return inner_.observe(); }
  Result<void> ensureWireGuard(const core::WireGuardTarget& wg) override;
  Result<void> deleteWireGuard(const std::string& ns) override;
  Result<void> syncPeers(const core::WireGuardTarget& wg) override;
  Result<void> createNamespace(const std::string& ns) override;
  Result<void> deleteNamespace(const std::string& ns) override;
  Result<void> setHostForwarding(bool on) override;
  Result<void> ensureUplink(const core::UplinkTarget& uplink) override;
  Result<void> deleteUplink(const std::string& ns) override;
  Result<void> replaceRoute(const core::RouteTarget& route) override;
  Result<void> deleteRoute(const std::string& ns, const IpPrefix& destination) override;
  Result<void> syncTable(const std::string& scope, const core::NftTableView& table) override;
  Result<void> deleteTable(const std::string& scope) override;

 private:
  bool fails(const std::string& call) const;
  Result<void> guard(const std::string& call, const std::function<Result<void>()>& next);
  core::HostDriver& inner_;
  std::vector<std::string> failOn_;
};

}  // namespace edgeplane::sys
