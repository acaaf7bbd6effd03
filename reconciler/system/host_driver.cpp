// KernelHost's own calls, and FaultInjectingHost: forced failures of chosen driver calls, for
// tests on a real host.
#include "reconciler/system/host_driver.h"

#include <algorithm>

namespace edgeplane::sys {

Result<void> KernelHost::deleteNamespace(const std::string& ns) {
  auto r = ComposedHost::deleteNamespace(ns);
  if (r) {
    nft.forget(ns);
  }
  return r;
}

bool FaultInjectingHost::fails(const std::string& call) const {
  return std::find(failOn_.begin(), failOn_.end(), call) != failOn_.end();
}

namespace {
std::string scopeName(const std::string& scope) {
  return scope.empty() ? "host" : scope;
}
}  // namespace

Result<void> FaultInjectingHost::guard(const std::string& call,
                                       const std::function<Result<void>()>& next) {
  if (fails(call)) {
    return terminal(call + ": injected failure");
  }
  return next();
}

Result<void> FaultInjectingHost::createNamespace(const std::string& ns) {
  return guard("createNamespace " + ns, [&] { return inner_.createNamespace(ns); });
}
Result<void> FaultInjectingHost::deleteNamespace(const std::string& ns) {
  return guard("deleteNamespace " + ns, [&] { return inner_.deleteNamespace(ns); });
}
Result<void> FaultInjectingHost::setHostForwarding(bool on) {
  return guard("setHostForwarding", [&] { return inner_.setHostForwarding(on); });
}
Result<void> FaultInjectingHost::ensureUplink(const core::UplinkTarget& uplink) {
  return guard("ensureUplink " + uplink.ns, [&] { return inner_.ensureUplink(uplink); });
}
Result<void> FaultInjectingHost::deleteUplink(const std::string& ns) {
  return guard("deleteUplink " + ns, [&] { return inner_.deleteUplink(ns); });
}
Result<void> FaultInjectingHost::ensureWireGuard(const core::WireGuardTarget& wg) {
  return guard("ensureWireGuard " + wg.ns, [&] { return inner_.ensureWireGuard(wg); });
}
Result<void> FaultInjectingHost::deleteWireGuard(const std::string& ns) {
  return guard("deleteWireGuard " + ns, [&] { return inner_.deleteWireGuard(ns); });
}
Result<void> FaultInjectingHost::syncPeers(const core::WireGuardTarget& wg) {
  return guard("syncPeers " + wg.ns, [&] { return inner_.syncPeers(wg); });
}
Result<void> FaultInjectingHost::replaceRoute(const core::RouteTarget& route) {
  return guard("replaceRoute " + route.ns, [&] { return inner_.replaceRoute(route); });
}
Result<void> FaultInjectingHost::deleteRoute(const std::string& ns, const IpPrefix& destination) {
  return guard("deleteRoute " + ns, [&] { return inner_.deleteRoute(ns, destination); });
}
Result<void> FaultInjectingHost::syncTable(const std::string& scope,
                                           const core::NftTableView& table) {
  return guard("syncTable " + scopeName(scope), [&] { return inner_.syncTable(scope, table); });
}
Result<void> FaultInjectingHost::deleteTable(const std::string& scope) {
  return guard("deleteTable " + scopeName(scope), [&] { return inner_.deleteTable(scope); });
}

}  // namespace edgeplane::sys
