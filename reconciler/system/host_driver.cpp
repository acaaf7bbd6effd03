// KernelHost: the planner's view of a real host, and the ops that converge it.
#include "reconciler/system/host_driver.h"

#include <linux/rtnetlink.h>

#include <algorithm>

#include "reconciler/system/netns.h"
#include "reconciler/system/rtnl.h"
#include "reconciler/system/wg_keys.h"

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
    // One namespace that cannot be looked into (a stale /run/netns entry, a wireguard-go that
    // does not answer) fails its own operations only, as the planner decides from the reason.
    auto v = observeNetns(name, true);
    Result<void> wg = v ? observeWireGuard(name, *v) : Result<void>(v.error());
    if (!wg) {
      core::NetnsView unseen;
      unseen.unobservable = wg.error().message;
      h.namespaces[name] = std::move(unseen);
      continue;
    }
    h.namespaces[name] = std::move(*v);
  }
  return h;
}

std::string wireguardKeyPath(const std::string& stateDir, const std::string& ns) {
  return stateDir + "/keys/" + ns + ".key";
}

Result<WgBackend*> KernelHost::wireguard() {
  if (!wg_) {
    WgEnv env;
    env.stateDir = stateDir_;
    auto backend = selectBackend(wgChoice_, env);
    if (!backend) {
      return backend.error();
    }
    wg_ = std::move(*backend);
  }
  return wg_.get();
}

// The interface (if it exists and answers) and the public key of the stored private key.
Result<void> KernelHost::observeWireGuard(const std::string& netns, core::NetnsView& v) {
  const std::string ns = netns.substr(core::kNetnsPrefix.size());
  if (auto key = loadKey(wireguardKeyPath(stateDir_, ns)); !key) {
    v.keyError = key.error().message;  // refused by the planner, never replaced
  } else if (*key) {
    v.storedPublicKey = (*key)->publicKey;
  }
  const std::string ifname = core::wgLinkName(ns);
  if (v.link(ifname) == nullptr) {
    return {};
  }
  auto backend = wireguard();
  if (!backend) {
    return backend.error();
  }
  auto alive = (*backend)->interfaceAlive(ifname, netns);
  if (!alive) {
    return alive.error();
  }
  if (!*alive) {
    return {};  // a link without its wireguard-go: planned as a missing interface
  }
  auto dev = (*backend)->getDevice(ifname, netns);
  if (!dev) {
    return dev.error();
  }
  core::WireGuardView wg;
  wg.publicKey = dev->publicKey;
  wg.listenPort = dev->listenPort.value_or(0);
  for (const auto& p : dev->peers) {
    core::PeerView pv;
    pv.publicKey = p.publicKey;
    pv.endpoint = p.endpoint;
    pv.keepalive = p.persistentKeepalive;
    pv.hasPsk = p.presharedKey.has_value();
    pv.presharedKey = p.presharedKey;
    pv.lastHandshake = p.lastHandshake;
    pv.rxBytes = p.rxBytes;
    pv.txBytes = p.txBytes;
    for (const auto& a : p.allowedIps) {
      pv.allowedIps.push_back(a.network());
    }
    std::sort(pv.allowedIps.begin(), pv.allowedIps.end());
    if (pv.keepalive && *pv.keepalive == 0) {
      pv.keepalive.reset();
    }
    wg.peers.push_back(std::move(pv));
  }
  v.wireguard = std::move(wg);
  return {};
}

Result<void> KernelHost::ensureWireGuard(const core::WireGuardTarget& wt) {
  const std::string netns = core::netnsName(wt.ns);
  auto key = wt.rotateKey ? rotateKey(wireguardKeyPath(stateDir_, wt.ns))
                          : loadOrCreateKey(wireguardKeyPath(stateDir_, wt.ns), wt.allowNewKey);
  if (!key) {
    return key.error();
  }
  auto backend = wireguard();
  if (!backend) {
    return backend.error();
  }
  auto alive = (*backend)->interfaceAlive(wt.ifname, netns);
  if (!alive) {
    return alive.error();
  }
  if (!*alive) {
    if (auto gone = (*backend)->deleteInterface(wt.ifname, netns); !gone) {
      return gone.error();
    }
    if (auto r = (*backend)->createInterface(wt.ifname, netns, wt.mtu); !r) {
      return r;
    }
  }
  WgSetRequest req;
  req.ifname = wt.ifname;
  req.netns = netns;
  req.privateKey = key->privateKey;
  req.listenPort = wt.listenPort;
  if (auto r = (*backend)->setDevice(req); !r) {
    return r;
  }
  auto rt = Rtnl::open(netns);
  if (!rt) {
    return rt.error();
  }
  auto seen = rt->link(wt.ifname);
  if (!seen) {
    return seen.error();
  }
  if (!*seen) {
    return terminal("WireGuard interface " + wt.ifname + " vanished in " + netns);
  }
  for (const auto& a : (*seen)->addresses) {
    bool wanted =
        std::find(wt.addresses.begin(), wt.addresses.end(), a.prefix) != wt.addresses.end();
    if (!wanted && a.scope != RT_SCOPE_LINK) {
      if (auto r = ignoreAbsent(rt->removeAddress(wt.ifname, a.prefix)); !r) {
        return r;
      }
    }
  }
  for (const auto& a : wt.addresses) {
    if (auto r = rt->addAddress(wt.ifname, a); !r) {
      return r;
    }
  }
  if (wt.mtu) {
    if (auto r = rt->setMtu(wt.ifname, *wt.mtu); !r) {
      return r;
    }
  }
  return rt->setUp(wt.ifname, true);
}

Result<void> KernelHost::deleteWireGuard(const std::string& ns) {
  auto backend = wireguard();
  if (!backend) {
    return backend.error();
  }
  auto r = (*backend)->deleteInterface(core::wgLinkName(ns), core::netnsName(ns));
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> KernelHost::syncPeers(const core::WireGuardTarget& wt) {
  const std::string netns = core::netnsName(wt.ns);
  auto backend = wireguard();
  if (!backend) {
    return backend.error();
  }
  auto observed = (*backend)->getDevice(wt.ifname, netns);
  if (!observed) {
    return observed.error();
  }
  WgDevice desired;
  desired.ifname = wt.ifname;
  for (const auto& p : wt.peers) {
    WgPeer peer;
    peer.name = p.name;
    peer.publicKey = p.publicKey;
    peer.allowedIps = p.allowedIps;
    peer.persistentKeepalive = p.keepalive;
    if (p.pskFile && !p.presharedKey) {
      // A key that was not read must not be applied as "no key" (loadPresharedKeys reads it).
      return terminal("peer " + wt.ns + "/" + p.name + ": its preshared key was not read");
    }
    peer.presharedKey = p.presharedKey;
    if (p.endpoint) {
      auto ep = resolveEndpoint(*p.endpoint);
      if (!ep) {
        return Error{"peer " + wt.ns + "/" + p.name + ": " + ep.error().message,
                     ep.error().retryable};
      }
      peer.endpoint = *ep;
    }
    desired.peers.push_back(std::move(peer));
  }
  WgSetRequest req = diffPeers(*observed, desired);
  if (req.empty()) {
    return {};
  }
  req.netns = netns;
  return (*backend)->setDevice(req);
}

Result<void> KernelHost::createNamespace(const std::string& ns) {
  return createNamedNetns(core::netnsName(ns));
}

Result<void> KernelHost::deleteNamespace(const std::string& ns) {
  return deleteNamedNetns(core::netnsName(ns));
}

Result<void> KernelHost::setHostForwarding(bool on) {
  return setSysctl("", "net/ipv4/ip_forward", on ? "1" : "0");
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
