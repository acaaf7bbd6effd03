// An in-memory HostDriver: applies ops to a HostState, can be told to fail, records calls.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "reconciler/core/apply.h"

namespace edgeplane::testing {

class FakeHost : public core::HostDriver {
 public:
  core::HostState state;
  std::set<std::string, std::less<>> failOn;  // e.g. "createNamespace tenant-b"
  std::vector<std::string> calls;
  // Per syncTable call: how many elements it added and removed, and whether it rebuilt.
  struct Sync {
    std::string scope;
    size_t added = 0;
    size_t removed = 0;
    bool rebuilt = false;
  };
  std::vector<Sync> syncs;
  // Per syncPeers call: the peers it touched, by name (unchanged peers are not touched).
  std::vector<std::vector<std::string>> peerSyncs;
  std::set<std::string, std::less<>> keyFiles;  // namespaces with a private key file

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
  Result<void> call(const std::string& what);
  core::NetnsView* view(const std::string& scope);
};

}  // namespace edgeplane::testing
