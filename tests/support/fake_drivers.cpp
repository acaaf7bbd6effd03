// The fake subsystem drivers: each changes its part of the FakeKernel's HostState.
#include "tests/support/fake_drivers.h"

#include <algorithm>

namespace edgeplane::testing {

using core::LinkView;
using core::NetnsView;

Result<void> FakeKernel::call(const std::string& what) {
  calls.push_back(what);
  if (failOn.count(what) != 0) {
    return terminal(what + ": injected failure");
  }
  return {};
}

NetnsView* FakeKernel::view(const std::string& scope) {
  if (scope.empty()) {
    return &state.host;
  }
  auto it = state.namespaces.find(core::netnsName(scope));
  return it != state.namespaces.end() ? &it->second : nullptr;
}

Result<const NetnsView*> FakeKernel::observable(const std::string& scope) {
  const NetnsView* v = view(scope);
  if (v == nullptr) {
    return terminal("no namespace " + scope);
  }
  if (!v->unobservable.empty()) {
    return terminal(v->unobservable);
  }
  return v;
}

Result<std::vector<std::string>> FakeNamespaces::list() {
  std::vector<std::string> names;
  for (const auto& [name, view] : k_.state.namespaces) {
    names.push_back(name);
  }
  return names;
}

Result<bool> FakeNamespaces::forwarding(const std::string& scope) {
  auto v = k_.observable(scope);
  if (!v) {
    return v.error();
  }
  return (*v)->ipForward;
}

Result<void> FakeNamespaces::create(const std::string& ns) {
  if (auto r = k_.call("createNamespace " + ns); !r) {
    return r;
  }
  if (k_.state.namespaces.count(core::netnsName(ns)) != 0) {
    return terminal("namespace exists");
  }
  k_.state.namespaces[core::netnsName(ns)] = NetnsView{};
  return {};
}

Result<void> FakeNamespaces::remove(const std::string& ns) {
  if (auto r = k_.call("deleteNamespace " + ns); !r) {
    return r;
  }
  if (k_.state.namespaces.erase(core::netnsName(ns)) == 0) {
    return terminal("delete namespace " + core::netnsName(ns) + ": not found");
  }
  auto& links = k_.state.host.links;  // the veth pair dies with its namespace
  links.erase(std::remove_if(links.begin(), links.end(),
                             [&](const LinkView& l) { return l.name == core::hostLinkName(ns); }),
              links.end());
  return {};
}

Result<void> FakeNamespaces::setHostForwarding(bool on) {
  if (auto r = k_.call(on ? "setHostForwarding on" : "setHostForwarding off"); !r) {
    return r;
  }
  k_.state.host.ipForward = on;
  return {};
}

Result<std::vector<LinkView>> FakeUplinks::observe(const std::string& scope) {
  auto v = k_.observable(scope);
  if (!v) {
    return v.error();
  }
  std::vector<LinkView> out;
  for (const auto& l : (*v)->links) {
    if (l.name.starts_with(core::kHostLinkPrefix) || l.name.starts_with(core::kNsLinkPrefix) ||
        l.name.starts_with(core::kWgLinkPrefix)) {
      out.push_back(l);
    }
  }
  return out;
}

Result<void> FakeUplinks::ensure(const core::UplinkTarget& u) {
  if (auto r = k_.call("ensureUplink " + u.ns); !r) {
    return r;
  }
  NetnsView* v = k_.view(u.ns);
  if (v == nullptr) {
    return terminal("no namespace " + u.ns);
  }
  auto setLink = [](NetnsView& nv, const std::string& name, const IpPrefix& addr) {
    auto it = std::find_if(nv.links.begin(), nv.links.end(),
                           [&](const LinkView& l) { return l.name == name; });
    if (it == nv.links.end()) {
      nv.links.push_back(LinkView{name, true, {addr}});
    } else {
      *it = LinkView{name, true, {addr}};
    }
  };
  setLink(k_.state.host, core::hostLinkName(u.ns), u.hostAddress);
  setLink(*v, core::nsLinkName(u.ns), u.nsAddress);
  auto& routes = v->routes;
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [](const core::RouteView& r) { return r.destination.length == 0; }),
               routes.end());
  routes.push_back(core::RouteView{*IpPrefix::parse("0.0.0.0/0"), u.hostAddress.address,
                                   core::nsLinkName(u.ns), true, "edgeplane"});
  v->ipForward = true;
  return {};
}

Result<void> FakeUplinks::remove(const std::string& ns) {
  if (auto r = k_.call("deleteUplink " + ns); !r) {
    return r;
  }
  auto drop = [](std::vector<LinkView>& links, const std::string& name) {
    links.erase(std::remove_if(links.begin(), links.end(),
                               [&](const LinkView& l) { return l.name == name; }),
                links.end());
  };
  drop(k_.state.host.links, core::hostLinkName(ns));
  if (NetnsView* v = k_.view(ns)) {
    drop(v->links, core::nsLinkName(ns));
  }
  return {};
}

Result<core::WireGuardObservation> FakeWireGuard::observe(const std::string& ns) {
  auto v = k_.observable(ns);
  if (!v) {
    return v.error();
  }
  return core::WireGuardObservation{(*v)->wireguard, (*v)->storedPublicKey, (*v)->keyError};
}

Result<void> FakeWireGuard::ensure(const core::WireGuardTarget& wg) {
  if (auto r = k_.call("ensureWireGuard " + wg.ns); !r) {
    return r;
  }
  NetnsView* v = k_.view(wg.ns);
  if (v == nullptr) {
    return terminal("no namespace " + wg.ns);
  }
  if (k_.keyFiles.count(wg.ns) == 0 && !wg.allowNewKey) {
    return terminal("private key file for " + wg.ns + " is missing");
  }
  WgKey pub;
  pub.bytes[0] = static_cast<uint8_t>(wg.ns.size());  // a stand-in; the fake has no crypto
  if (wg.rotateKey) {
    pub.bytes[1] = static_cast<uint8_t>(pub.bytes[1] + 1);
  }
  k_.keyFiles.insert(wg.ns);
  v->storedPublicKey = pub;
  std::vector<core::PeerView> peers;
  if (v->wireguard) {
    peers = v->wireguard->peers;
  }
  v->wireguard = core::WireGuardView{pub, wg.listenPort, peers};
  auto it = std::find_if(v->links.begin(), v->links.end(),
                         [&](const LinkView& l) { return l.name == wg.ifname; });
  if (it == v->links.end()) {
    v->links.push_back(LinkView{wg.ifname, true, wg.addresses});
  } else {
    *it = LinkView{wg.ifname, true, wg.addresses};
  }
  return {};
}

Result<void> FakeWireGuard::remove(const std::string& ns) {
  if (auto r = k_.call("deleteWireGuard " + ns); !r) {
    return r;
  }
  if (NetnsView* v = k_.view(ns)) {
    v->wireguard.reset();
    v->links.erase(
        std::remove_if(v->links.begin(), v->links.end(),
                       [&](const LinkView& l) { return l.name == core::wgLinkName(ns); }),
        v->links.end());
  }
  return {};
}

Result<void> FakeWireGuard::syncPeers(const core::WireGuardTarget& wg) {
  if (auto r = k_.call("syncPeers " + wg.ns); !r) {
    return r;
  }
  NetnsView* v = k_.view(wg.ns);
  if (v == nullptr || !v->wireguard) {
    return terminal("no WireGuard interface in " + wg.ns);
  }
  std::vector<std::string> touched;
  std::vector<core::PeerView> next;
  for (const auto& p : wg.peers) {
    core::PeerView want;
    want.publicKey = p.publicKey;
    want.allowedIps = p.allowedIps;
    want.keepalive = p.keepalive;
    want.hasPsk = p.presharedKey.has_value();
    want.presharedKey = p.presharedKey;
    if (p.endpoint) {
      if (auto ip = IpAddress::parse(p.endpoint->host)) {
        want.endpoint = Endpoint{*ip, p.endpoint->port};
      }
    }
    auto it = std::find_if(v->wireguard->peers.begin(), v->wireguard->peers.end(),
                           [&](const core::PeerView& x) { return x.publicKey == p.publicKey; });
    if (it != v->wireguard->peers.end()) {
      core::PeerView kept = *it;  // counters and handshake survive
      bool same = kept.allowedIps == want.allowedIps &&
                  kept.keepalive.value_or(0) == want.keepalive.value_or(0) &&
                  kept.presharedKey == want.presharedKey &&
                  (!want.endpoint || kept.endpoint == want.endpoint);
      if (same) {
        next.push_back(kept);
        continue;
      }
      want.lastHandshake = kept.lastHandshake;
      want.rxBytes = kept.rxBytes;
      want.txBytes = kept.txBytes;
      if (!want.endpoint) {
        want.endpoint = kept.endpoint;
      }
    }
    touched.push_back(p.name);
    next.push_back(want);
  }
  for (const auto& x : v->wireguard->peers) {
    bool desired = std::any_of(wg.peers.begin(), wg.peers.end(), [&](const core::PeerTarget& p) {
      return p.publicKey == x.publicKey;
    });
    if (!desired) {
      touched.push_back("-" + x.publicKey.base64());
    }
  }
  v->wireguard->peers = next;
  k_.peerSyncs.push_back(touched);
  return {};
}

Result<std::vector<core::RouteView>> FakeRoutes::observe(const std::string& scope) {
  auto v = k_.observable(scope);
  if (!v) {
    return v.error();
  }
  return (*v)->routes;
}

Result<void> FakeRoutes::replace(const core::RouteTarget& rt) {
  if (auto r = k_.call("replaceRoute " + rt.ns + " " + rt.destination.str()); !r) {
    return r;
  }
  NetnsView* v = k_.view(rt.ns);
  if (v == nullptr) {
    return terminal("no namespace " + rt.ns);
  }
  auto& routes = v->routes;
  routes.erase(std::remove_if(routes.begin(), routes.end(),
                              [&](const core::RouteView& r) {
                                return r.owned && r.destination == rt.destination;
                              }),
               routes.end());
  routes.push_back(core::RouteView{rt.destination, rt.via, "", true, "edgeplane"});
  return {};
}

Result<void> FakeRoutes::remove(const std::string& ns, const IpPrefix& destination) {
  if (auto r = k_.call("deleteRoute " + ns + " " + destination.str()); !r) {
    return r;
  }
  if (NetnsView* v = k_.view(ns)) {
    auto& routes = v->routes;
    routes.erase(std::remove_if(routes.begin(), routes.end(),
                                [&](const core::RouteView& r) {
                                  return r.owned && r.destination == destination;
                                }),
                 routes.end());
  }
  return {};
}

Result<std::optional<core::NftTableView>> FakeNft::observe(const std::string& scope) {
  auto v = k_.observable(scope);
  if (!v) {
    return v.error();
  }
  return (*v)->table;
}

Result<void> FakeNft::sync(const std::string& scope, const core::NftTableView& table) {
  if (auto r = k_.call("syncTable " + (scope.empty() ? std::string("host") : scope)); !r) {
    return r;
  }
  NetnsView* v = k_.view(scope);
  if (v == nullptr) {
    return terminal("no namespace " + scope);
  }
  FakeKernel::Sync s{scope};
  if (!v->table || !v->table->intact) {
    s.rebuilt = true;
    s.added = table.mappings.size();
  } else {
    for (const auto& m : table.mappings) {
      s.added += std::count(v->table->mappings.begin(), v->table->mappings.end(), m) == 0;
    }
    for (const auto& m : v->table->mappings) {
      s.removed += std::count(table.mappings.begin(), table.mappings.end(), m) == 0;
    }
  }
  k_.syncs.push_back(s);
  v->table = table;
  v->table->intact = true;
  return {};
}

Result<void> FakeNft::remove(const std::string& scope) {
  if (auto r = k_.call("deleteTable " + (scope.empty() ? std::string("host") : scope)); !r) {
    return r;
  }
  if (NetnsView* v = k_.view(scope)) {
    v->table.reset();
  }
  return {};
}

}  // namespace edgeplane::testing
