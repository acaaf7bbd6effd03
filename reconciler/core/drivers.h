// One driver per host subsystem, and the HostDriver that apply uses, composed from them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "reconciler/core/apply.h"
#include "reconciler/core/host_state.h"
#include "reconciler/core/target.h"
#include "schema/result.h"

namespace edgeplane::core {

// A scope is a tenant namespace's name ("tenant-a", living in ep-tenant-a), "" for the host's
// own network namespace, as in apply's operations. Each driver observes its part of a
// NetnsView and applies its operations; none looks at what another one owns.

// Named network namespaces, and the net.ipv4.ip_forward sysctl.
class NamespaceDriver {
 public:
  virtual ~NamespaceDriver() = default;
  // Every named network namespace by its netns name, edgeplane's ("ep-…") and foreign ones.
  virtual Result<std::vector<std::string>> list() = 0;
  // The scope's net.ipv4.ip_forward.
  virtual Result<bool> forwarding(const std::string& scope) = 0;
  // Makes ep-<ns>; an existing one is an error.
  virtual Result<void> create(const std::string& ns) = 0;
  // Removes ep-<ns> (its links go with it); a missing one is an error.
  virtual Result<void> remove(const std::string& ns) = 0;
  virtual Result<void> setHostForwarding(bool on) = 0;
};

// Links and their addresses: the veth uplink of each tenant namespace.
class UplinkDriver {
 public:
  virtual ~UplinkDriver() = default;
  // edgeplane's links in the scope (eph-, epn-, wg- names) with their addresses; link-scope
  // addresses (fe80::…) are left out, the others sorted. Foreign links are not listed.
  virtual Result<std::vector<LinkView>> observe(const std::string& scope) = 0;
  // Converges the veth pair, its addresses, link state, the namespace's default route and
  // its forwarding sysctl; recreates the pair if either end is missing.
  virtual Result<void> ensure(const UplinkTarget& uplink) = 0;
  // Removes the pair (both ends); a missing pair is not an error.
  virtual Result<void> remove(const std::string& ns) = 0;
};

// The IPv4 main routing table.
class RouteDriver {
 public:
  virtual ~RouteDriver() = default;
  // The scope's unicast routes, foreign ones included (owned = edgeplane's route protocol).
  virtual Result<std::vector<RouteView>> observe(const std::string& scope) = 0;
  // Adds or replaces the route to route.destination as edgeplane's.
  virtual Result<void> replace(const RouteTarget& route) = 0;
  // Removes edgeplane's route to `destination`; a foreign one is kept, a missing one is fine.
  virtual Result<void> remove(const std::string& ns, const IpPrefix& destination) = 0;
};

// edgeplane's nftables table (family ip) of a scope.
class NftDriver {
 public:
  virtual ~NftDriver() = default;
  // The table, if present. Foreign tables are not looked at.
  virtual Result<std::optional<NftTableView>> observe(const std::string& scope) = 0;
  // Makes the table hold exactly `table`, in one atomic batch: only the element changes when
  // the skeleton is intact, the whole table otherwise.
  virtual Result<void> sync(const std::string& scope, const NftTableView& table) = 0;
  // Deletes the table; a missing one is not an error.
  virtual Result<void> remove(const std::string& scope) = 0;
};

// What the WireGuard driver sees of one tenant namespace.
struct WireGuardObservation {
  std::optional<WireGuardView> device;   // wg-<ns>, when it exists and answers
  std::optional<WgKey> storedPublicKey;  // of the private key kept for the namespace
  std::string keyError;                  // why that key cannot be used, or empty
};

// The WireGuard interface of each tenant namespace, and its private key.
class WireGuardDriver {
 public:
  virtual ~WireGuardDriver() = default;
  virtual Result<WireGuardObservation> observe(const std::string& ns) = 0;
  // observe() of each of `namespaces`, in their order. Drivers that can ask several at once
  // (a wireguard-go per namespace answers on its own) override it.
  virtual std::vector<Result<WireGuardObservation>> observeEach(
      const std::vector<std::string>& namespaces) {
    std::vector<Result<WireGuardObservation>> out;
    out.reserve(namespaces.size());
    for (const auto& ns : namespaces) {
      out.push_back(observe(ns));
    }
    return out;
  }
  // Converges the namespace's interface: private key (made only when wg.allowNewKey),
  // interface (restarted if dead), listen port, addresses, up.
  virtual Result<void> ensure(const WireGuardTarget& wg) = 0;
  virtual Result<void> remove(const std::string& ns) = 0;
  // Sends only the peers that differ (added, changed, removed), like `wg syncconf`.
  virtual Result<void> syncPeers(const WireGuardTarget& wg) = 0;
};

struct HostDrivers {
  NamespaceDriver& namespaces;
  UplinkDriver& uplinks;
  RouteDriver& routes;
  NftDriver& nft;
  WireGuardDriver& wireguard;
};

// The HostDriver made of the five drivers. observe() looks into the host and into every
// namespace with edgeplane's prefix; a foreign one is listed by name only. A namespace that
// one driver cannot observe is reported unobservable, with the reason, and the rest goes on.
class ComposedHost : public HostDriver {
 public:
  explicit ComposedHost(HostDrivers drivers) : d_(drivers) {}

  // Interface
  Result<HostState> observe() override;
  Result<void> createNamespace(const std::string& ns) override;
  Result<void> deleteNamespace(const std::string& ns) override;
  Result<void> setHostForwarding(bool on) override;
  Result<void> ensureUplink(const UplinkTarget& uplink) override;
  Result<void> deleteUplink(const std::string& ns) override;
  Result<void> ensureWireGuard(const WireGuardTarget& wg) override;
  Result<void> deleteWireGuard(const std::string& ns) override;
  Result<void> syncPeers(const WireGuardTarget& wg) override;
  Result<void> replaceRoute(const RouteTarget& route) override;
  Result<void> deleteRoute(const std::string& ns, const IpPrefix& destination) override;
  Result<void> syncTable(const std::string& scope, const NftTableView& table) override;
  Result<void> deleteTable(const std::string& scope) override;

 private:
  // Links, routes (tenant namespaces only), table and forwarding of one scope.
  Result<NetnsView> observeScope(const std::string& scope);
  HostDrivers d_;
};

}  // namespace edgeplane::core
