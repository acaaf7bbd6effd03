// In-memory subsystem drivers over one shared HostState: the fakes of the kernel drivers.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "reconciler/core/drivers.h"

namespace edgeplane::testing {

// The fakes' "kernel": the host state they observe and change, the calls they were asked to
// make, and the calls told to fail.
struct FakeKernel {
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

  // Records the call; its injected failure, if `failOn` names it.
  Result<void> call(const std::string& what);
  // The scope's view ("" = the host); nullptr when the namespace does not exist.
  core::NetnsView* view(const std::string& scope);
  // The view of a scope to observe: an error when it is missing or marked unobservable.
  Result<const core::NetnsView*> observable(const std::string& scope);
};

class FakeNamespaces : public core::NamespaceDriver {
 public:
  explicit FakeNamespaces(FakeKernel& k) : k_(k) {}
  // Interface
  Result<std::vector<std::string>> list() override;
  Result<bool> forwarding(const std::string& scope) override;
  Result<void> create(const std::string& ns) override;
  Result<void> remove(const std::string& ns) override;
  Result<void> setHostForwarding(bool on) override;

 private:
  FakeKernel& k_;
};

class FakeUplinks : public core::UplinkDriver {
 public:
  explicit FakeUplinks(FakeKernel& k) : k_(k) {}
  // Interface
  Result<std::vector<core::LinkView>> observe(const std::string& scope) override;
  Result<void> ensure(const core::UplinkTarget& uplink) override;
  Result<void> remove(const std::string& ns) override;

 private:
  FakeKernel& k_;
};

class FakeRoutes : public core::RouteDriver {
 public:
  explicit FakeRoutes(FakeKernel& k) : k_(k) {}
  // Interface
  Result<std::vector<core::RouteView>> observe(const std::string& scope) override;
  Result<void> replace(const core::RouteTarget& route) override;
  Result<void> remove(const std::string& ns, const IpPrefix& destination) override;

 private:
  FakeKernel& k_;
};

class FakeNft : public core::NftDriver {
 public:
  explicit FakeNft(FakeKernel& k) : k_(k) {}
  // Interface
  Result<std::optional<core::NftTableView>> observe(const std::string& scope) override;
  Result<void> sync(const std::string& scope, const core::NftTableView& table) override;
  Result<void> remove(const std::string& scope) override;

 private:
  FakeKernel& k_;
};

// Keys are stand-ins (the fake has no crypto): a namespace's public key is derived from its
// name, and a rotation changes it.
class FakeWireGuard : public core::WireGuardDriver {
 public:
  explicit FakeWireGuard(FakeKernel& k) : k_(k) {}
  // Interface
  Result<core::WireGuardObservation> observe(const std::string& ns) override;
  Result<void> ensure(const core::WireGuardTarget& wg) override;
  Result<void> remove(const std::string& ns) override;
  Result<void> syncPeers(const core::WireGuardTarget& wg) override;

 private:
  FakeKernel& k_;
};

// The five fakes over one FakeKernel.
struct FakeDriverSet {
  explicit FakeDriverSet(FakeKernel& k)
      : namespaces(k), uplinks(k), routes(k), nft(k), wireguard(k) {}
  FakeNamespaces namespaces;
  FakeUplinks uplinks;
  FakeRoutes routes;
  FakeNft nft;
  FakeWireGuard wireguard;
  core::HostDrivers drivers() { return {namespaces, uplinks, routes, nft, wireguard}; }
};

}  // namespace edgeplane::testing
