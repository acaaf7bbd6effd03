// KernelHost: the planner's view of a real host, and the ops that converge it.
#include "reconciler/system/host_driver.h"

#include <linux/rtnetlink.h>

#include <algorithm>

#include "reconciler/system/netns.h"
#include "reconciler/system/rtnl.h"

namespace edgeplane::sys {
namespace {

std::string scopeNetns(const std::string& scope) {
  return scope.empty() ? std::string() : core::netnsName(scope);
}

std::string protocolName(uint8_t p) {
  switch (p) {
    case RTPROT_KERNEL:
      return "kernel";
    case RTPROT_BOOT:
      return "boot";
    case RTPROT_STATIC:
      return "static";
    case kRouteProtocol:
      return "edgeplane";
    default:
      return std::to_string(p);
  }
}

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

// Links, routes, table and forwarding of one namespace ("" = the host's own).
Result<core::NetnsView> observeNetns(const std::string& netns, bool withRoutes) {
  core::NetnsView v;
  auto rt = Rtnl::open(netns);
  if (!rt) {
    return rt.error();
  }
  auto links = rt->links();
  if (!links) {
    return links.error();
  }
  for (const auto& l : *links) {
    bool ours = l.name.rfind(core::kHostLinkPrefix, 0) == 0 ||
                l.name.rfind(core::kNsLinkPrefix, 0) == 0 ||
                l.name.rfind(core::kWgLinkPrefix, 0) == 0;
    if (!ours) {
      continue;
    }
    core::LinkView lv{l.name, l.up, {}};
    for (const auto& a : l.addresses) {
      if (a.scope != RT_SCOPE_LINK) {  // fe80:: and the like come with the link
        lv.addresses.push_back(a.prefix);
      }
    }
    std::sort(lv.addresses.begin(), lv.addresses.end());
    v.links.push_back(std::move(lv));
  }
  if (withRoutes) {
    auto routes = rt->routes(IpAddress::Family::V4);
    if (!routes) {
      return routes.error();
    }
    for (const auto& r : *routes) {
      if (r.type != RTN_UNICAST) {
        continue;  // local/broadcast entries are the kernel's bookkeeping
      }
      v.routes.push_back(
          core::RouteView{r.destination, r.gateway, r.device, r.owned(), protocolName(r.protocol)});
    }
  }
  auto nft = NftSocket::open(netns);
  if (!nft) {
    return nft.error();
  }
  auto table = nft->observe();
  if (!table) {
    return table.error();
  }
  if (*table) {
    v.table = toView(**table);
  }
  auto fwd = getSysctl(netns, "net/ipv4/ip_forward");
  if (!fwd) {
    return fwd.error();
  }
  v.ipForward = fwd->rfind('1', 0) == 0;
  return v;
}

Result<void> ignoreAbsent(const Result<Removal>& r) {
  if (!r) {
    return r.error();
  }
  return {};
}

}  // namespace

Result<core::HostState> KernelHost::observe() {
  core::HostState h;
  auto host = observeNetns("", false);
  if (!host) {
    return host.error();
  }
  h.host = std::move(*host);
  for (const auto& name : listNamedNetns()) {
    if (name.rfind(core::kNetnsPrefix, 0) != 0) {
      h.namespaces[name] = core::NetnsView{};  // foreign: seen by name, not looked into
      continue;
    }
    auto v = observeNetns(name, true);
    if (!v) {
      return v.error();
    }
    h.namespaces[name] = std::move(*v);
  }
  return h;
}

Result<void> KernelHost::createNamespace(const std::string& ns) {
  return createNamedNetns(core::netnsName(ns));
}

Result<void> KernelHost::deleteNamespace(const std::string& ns) {
  return deleteNamedNetns(core::netnsName(ns));
}

Result<void> KernelHost::enableHostForwarding() {
  return setSysctl("", "net/ipv4/ip_forward", "1");
}

// Makes `link` carry exactly `want` and be up.
static Result<void> convergeLink(Rtnl& rt, const std::string& link, const IpPrefix& want) {
  auto seen = rt.link(link);
  if (!seen) {
    return seen.error();
  }
  if (!*seen) {
    return terminal("link " + link + " vanished while being configured");
  }
  for (const auto& a : (*seen)->addresses) {
    if (a.prefix != want && a.prefix.address.family == IpAddress::Family::V4) {
      if (auto r = ignoreAbsent(rt.removeAddress(link, a.prefix)); !r) {
        return r;
      }
    }
  }
  if (auto r = rt.addAddress(link, want); !r) {
    return r;
  }
  return rt.setUp(link, true);
}

Result<void> KernelHost::ensureUplink(const core::UplinkTarget& u) {
  const std::string netns = core::netnsName(u.ns);
  const std::string hostIf = core::hostLinkName(u.ns);
  const std::string nsIf = core::nsLinkName(u.ns);
  auto host = Rtnl::open("");
  if (!host) {
    return host.error();
  }
  auto inside = Rtnl::open(netns);
  if (!inside) {
    return inside.error();
  }
  auto hl = host->link(hostIf);
  auto nl = inside->link(nsIf);
  if (!hl) {
    return hl.error();
  }
  if (!nl) {
    return nl.error();
  }
  if (!*hl || !*nl) {
    // A half pair cannot be repaired in place: remove what is left, make a new pair.
    if (*hl) {
      if (auto r = ignoreAbsent(host->deleteLink(hostIf)); !r) {
        return r;
      }
    }
    if (*nl) {
      if (auto r = ignoreAbsent(inside->deleteLink(nsIf)); !r) {
        return r;
      }
    }
    if (auto r = host->createVethPair(hostIf, nsIf, netns); !r) {
      return r;
    }
  }
  if (auto r = convergeLink(*host, hostIf, u.hostAddress); !r) {
    return r;
  }
  if (auto r = convergeLink(*inside, nsIf, u.nsAddress); !r) {
    return r;
  }
  RouteInfo def;
  def.destination = *IpPrefix::parse("0.0.0.0/0");
  def.gateway = u.hostAddress.address;
  def.device = nsIf;
  if (auto r = inside->replaceRoute(def); !r) {
    return r;
  }
  return setSysctl(netns, "net/ipv4/ip_forward", "1");
}

Result<void> KernelHost::deleteUplink(const std::string& ns) {
  auto host = Rtnl::open("");
  if (!host) {
    return host.error();
  }
  return ignoreAbsent(host->deleteLink(core::hostLinkName(ns)));
}

Result<void> KernelHost::replaceRoute(const core::RouteTarget& route) {
  auto rt = Rtnl::open(core::netnsName(route.ns));
  if (!rt) {
    return rt.error();
  }
  RouteInfo r;
  r.destination = route.destination;
  r.gateway = route.via;
  return rt->replaceRoute(r);
}

Result<void> KernelHost::deleteRoute(const std::string& ns, const IpPrefix& destination) {
  auto rt = Rtnl::open(core::netnsName(ns));
  if (!rt) {
    return rt.error();
  }
  auto routes = rt->routes(destination.address.family);
  if (!routes) {
    return routes.error();
  }
  for (const auto& r : *routes) {
    if (r.owned() && r.destination == destination) {
      return ignoreAbsent(rt->deleteRoute(r));
    }
  }
  return {};
}

Result<void> KernelHost::syncTable(const std::string& scope, const core::NftTableView& table) {
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

Result<void> KernelHost::deleteTable(const std::string& scope) {
  auto sock = NftSocket::open(scopeNetns(scope));
  if (!sock) {
    return sock.error();
  }
  return sock->send(buildDeleteTable());
}

bool FaultInjectingHost::fails(const std::string& call) const {
  return std::find(failOn_.begin(), failOn_.end(), call) != failOn_.end();
}

namespace {
Error injected(const std::string& call) {
  return terminal(call + ": injected failure");
}
std::string scopeName(const std::string& scope) {
  return scope.empty() ? "host" : scope;
}
}  // namespace

Result<void> FaultInjectingHost::createNamespace(const std::string& ns) {
  if (fails("createNamespace " + ns)) {
    return injected("createNamespace " + ns);
  }
  return inner_.createNamespace(ns);
}
Result<void> FaultInjectingHost::deleteNamespace(const std::string& ns) {
  if (fails("deleteNamespace " + ns)) {
    return injected("deleteNamespace " + ns);
  }
  return inner_.deleteNamespace(ns);
}
Result<void> FaultInjectingHost::enableHostForwarding() {
  if (fails("enableHostForwarding")) {
    return injected("enableHostForwarding");
  }
  return inner_.enableHostForwarding();
}
Result<void> FaultInjectingHost::ensureUplink(const core::UplinkTarget& uplink) {
  if (fails("ensureUplink " + uplink.ns)) {
    return injected("ensureUplink " + uplink.ns);
  }
  return inner_.ensureUplink(uplink);
}
Result<void> FaultInjectingHost::deleteUplink(const std::string& ns) {
  if (fails("deleteUplink " + ns)) {
    return injected("deleteUplink " + ns);
  }
  return inner_.deleteUplink(ns);
}
Result<void> FaultInjectingHost::replaceRoute(const core::RouteTarget& route) {
  if (fails("replaceRoute " + route.ns)) {
    return injected("replaceRoute " + route.ns);
  }
  return inner_.replaceRoute(route);
}
Result<void> FaultInjectingHost::deleteRoute(const std::string& ns, const IpPrefix& destination) {
  if (fails("deleteRoute " + ns)) {
    return injected("deleteRoute " + ns);
  }
  return inner_.deleteRoute(ns, destination);
}
Result<void> FaultInjectingHost::syncTable(const std::string& scope,
                                           const core::NftTableView& table) {
  if (fails("syncTable " + scopeName(scope))) {
    return injected("syncTable " + scopeName(scope));
  }
  return inner_.syncTable(scope, table);
}
Result<void> FaultInjectingHost::deleteTable(const std::string& scope) {
  if (fails("deleteTable " + scopeName(scope))) {
    return injected("deleteTable " + scopeName(scope));
  }
  return inner_.deleteTable(scope);
}

}  // namespace edgeplane::sys
