// ComposedHost: the host as the five subsystem drivers see and change it.
#include "reconciler/core/drivers.h"

namespace edgeplane::core {

Result<NetnsView> ComposedHost::observeScope(const std::string& scope) {
  NetnsView v;
  auto links = d_.uplinks.observe(scope);
  if (!links) {
    return links.error();
  }
  v.links = std::move(*links);
  if (!scope.empty()) {
    auto routes = d_.routes.observe(scope);
    if (!routes) {
      return routes.error();
    }
    v.routes = std::move(*routes);
  }
  auto table = d_.nft.observe(scope);
  if (!table) {
    return table.error();
  }
  v.table = std::move(*table);
  auto forwarding = d_.namespaces.forwarding(scope);
  if (!forwarding) {
    return forwarding.error();
  }
  v.ipForward = *forwarding;
  return v;
}

Result<HostState> ComposedHost::observe() {
  HostState h;
  auto host = observeScope("");
  if (!host) {
    return host.error();
  }
  h.host = std::move(*host);
  auto names = d_.namespaces.list();
  if (!names) {
    return names.error();
  }
  // Each of ours: its links, routes, table and forwarding, then the WireGuard interfaces of
  // those seen, asked all together.
  std::vector<std::string> ours;
  std::vector<Result<NetnsView>> views;
  for (const auto& name : *names) {
    if (name.rfind(kNetnsPrefix, 0) != 0) {
      h.namespaces[name] = NetnsView{};  // foreign: seen by name, not looked into
      continue;
    }
    ours.push_back(name.substr(kNetnsPrefix.size()));
    views.push_back(observeScope(ours.back()));
  }
  std::vector<std::string> seen;
  for (size_t i = 0; i < ours.size(); ++i) {
    if (views[i]) {
      seen.push_back(ours[i]);
    }
  }
  std::vector<Result<WireGuardObservation>> wgs = d_.wireguard.observeEach(seen);
  // One namespace that cannot be looked into (a stale /run/netns entry, a wireguard-go that
  // does not answer) fails its own operations only, as the planner decides from the reason.
  for (size_t i = 0, w = 0; i < ours.size(); ++i) {
    Result<NetnsView>& v = views[i];
    Result<WireGuardObservation> wg =
        v ? std::move(wgs[w++]) : Result<WireGuardObservation>(v.error());
    if (!wg) {
      NetnsView unseen;
      unseen.unobservable = wg.error().message;
      h.namespaces[netnsName(ours[i])] = std::move(unseen);
      continue;
    }
    v->wireguard = std::move(wg->device);
    v->storedPublicKey = wg->storedPublicKey;
    v->keyError = std::move(wg->keyError);
    h.namespaces[netnsName(ours[i])] = std::move(*v);
  }
  return h;
}

Result<void> ComposedHost::createNamespace(const std::string& ns) {
  return d_.namespaces.create(ns);
}
Result<void> ComposedHost::deleteNamespace(const std::string& ns) {
  return d_.namespaces.remove(ns);
}
Result<void> ComposedHost::setHostForwarding(bool on) {
  return d_.namespaces.setHostForwarding(on);
}
Result<void> ComposedHost::ensureUplink(const UplinkTarget& uplink) {
  return d_.uplinks.ensure(uplink);
}
Result<void> ComposedHost::deleteUplink(const std::string& ns) {
  return d_.uplinks.remove(ns);
}
Result<void> ComposedHost::ensureWireGuard(const WireGuardTarget& wg) {
  return d_.wireguard.ensure(wg);
}
Result<void> ComposedHost::deleteWireGuard(const std::string& ns) {
  return d_.wireguard.remove(ns);
}
Result<void> ComposedHost::syncPeers(const WireGuardTarget& wg) {
  return d_.wireguard.syncPeers(wg);
}
Result<void> ComposedHost::replaceRoute(const RouteTarget& route) {
  return d_.routes.replace(route);
}
Result<void> ComposedHost::deleteRoute(const std::string& ns, const IpPrefix& destination) {
  return d_.routes.remove(ns, destination);
}
Result<void> ComposedHost::syncTable(const std::string& scope, const NftTableView& table) {
  return d_.nft.sync(scope, table);
}
Result<void> ComposedHost::deleteTable(const std::string& scope) {
  return d_.nft.remove(scope);
}

}  // namespace edgeplane::core
