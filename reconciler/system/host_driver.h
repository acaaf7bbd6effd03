// The real HostDriver (the kernel drivers composed), and one that fails chosen calls on purpose.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "reconciler/core/drivers.h"
#include "reconciler/system/kernel_drivers.h"

namespace edgeplane::sys {

// The five kernel drivers of one host (a base of KernelHost, so they exist before it
// composes them).
struct KernelDriverSet {
  // `stateDir` also holds nft-observed/, the nftables observations (empty: none kept).
  KernelDriverSet(std::string stateDir, WgBackendChoice wgChoice)
      : nft(stateDir.empty() ? std::string() : stateDir + "/nft-observed"),
        wireguard(std::move(stateDir), wgChoice) {}
  KernelNamespaces namespaces;
  KernelUplinks uplinks;
  KernelRoutes routes;
  KernelNft nft;
  KernelWireGuard wireguard;
};

// The real host: the kernel drivers composed (observe, and the ops apply runs).
class KernelHost : private KernelDriverSet, public core::ComposedHost {
 public:
  // `stateDir` holds keys/<namespace>.key (0600) and wireguard-go's pid and log files;
  // `wgChoice` is the backend of WireGuard interfaces that do not exist yet.
  KernelHost(std::string stateDir, WgBackendChoice wgChoice)
      : KernelDriverSet(std::move(stateDir), wgChoice),
        ComposedHost({namespaces, uplinks, routes, nft, wireguard}) {}
  // The composition refers to this object's own drivers.
  KernelHost(const KernelHost&) = delete;
  KernelHost& operator=(const KernelHost&) = delete;

  // A deleted namespace takes its nftables observation with it.
  Result<void> deleteNamespace(const std::string& ns) override;

  using TableSync = KernelNft::TableSync;
  // What each syncTable call sent, for tests and --verbose output.
  const std::vector<TableSync>& tableSyncs() const { return nft.syncs(); }
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
