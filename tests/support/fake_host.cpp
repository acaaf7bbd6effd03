// In-memory HostDriver for unit tests of the planner and executor.
#include "tests/support/fake_host.h"

#include <algorithm>

namespace edgeplane::testing {

using core::LinkView;
using core::NetnsView;

Result<void> FakeHost::call(const std::string& what) {
  calls.push_back(what);
  if (failOn.count(what) != 0) {
    return terminal(what + ": injected failure");
  }
  return {};
}

NetnsView* FakeHost::view(const std::string& scope) {
  if (scope.empty()) {
    return &state.host;
  }
  auto it = state.namespaces.find(core::netnsName(scope));
  return it != state.namespaces.end() ? &it->second : nullptr;
}

Result<core::HostState> FakeHost::observe() {
  return state;
}

Result<void> FakeHost::createNamespace(const std::string& ns) {
  if (auto r = call("createNamespace " + ns); !r) {
    return r;
  }
  if (state.namespaces.count(core::netnsName(ns)) != 0) {
    return terminal("namespace exists");
  }
  state.namespaces[core::netnsName(ns)] = NetnsView{};
  return {};
}

Result<void> FakeHost::deleteNamespace(const std::string& ns) {
  if (auto r = call("deleteNamespace " + ns); !r) {
    return r;
  }
  state.namespaces.erase(core::netnsName(ns));
  auto& links = state.host.links;  // the veth pair dies with its namespace
  links.erase(std::remove_if(links.begin(), links.end(),
                             [&](const LinkView& l) { return l.name == core::hostLinkName(ns); }),
              links.end());
  return {};
}

Result<void> FakeHost::setHostForwarding(bool on) {
  if (auto r = call(on ? "setHostForwarding on" : "setHostForwarding off"); !r) {
    return r;
  }
  state.host.ipForward = on;
  return {};
}

Result<void> FakeHost::ensureUplink(const core::UplinkTarget& u) {
  if (auto r = call("ensureUplink " + u.ns); !r) {
    return r;
  }
  NetnsView* v = view(u.ns);
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
  setLink(state.host, core::hostLinkName(u.ns), u.hostAddress);
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

Result<void> FakeHost::deleteUplink(const std::string& ns) {
  if (auto r = call("deleteUplink " + ns); !r) {
    return r;
  }
  auto drop = [](std::vector<LinkView>& links, const std::string& name) {
    links.erase(std::remove_if(links.begin(), links.end(),
                               [&](const LinkView& l) { return l.name == name; }),
                links.end());
  };
  drop(state.host.links, core::hostLinkName(ns));
  if (NetnsView* v = view(ns)) {
    drop(v->links, core::nsLinkName(ns));
  }
  return {};
}

Result<void> FakeHost::ensureWireGuard(const core::WireGuardTarget& wg) {
  if (auto r = call("ensureWireGuard " + wg.ns); !r) {
    return r;
  }
  NetnsView* v = view(wg.ns);
  if (v == nullptr) {
    return terminal("no namespace " + wg.ns);
  }
  if (keyFiles.count(wg.ns) == 0 && !wg.allowNewKey) {
    return terminal("private key file for " + wg.ns + " is missing");
  }
  WgKey pub;
  pub.bytes[0] = static_cast<uint8_t>(wg.ns.size());  // a stand-in; the fake has no crypto
  if (wg.rotateKey) {
    pub.bytes[1] = static_cast<uint8_t>(pub.bytes[1] + 1);
  }
  keyFiles.insert(wg.ns);
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

Result<void> FakeHost::deleteWireGuard(const std::string& ns) {
  if (auto r = call("deleteWireGuard " + ns); !r) {
    return r;
  }
  if (NetnsView* v = view(ns)) {
    v->wireguard.reset();
    v->links.erase(
        std::remove_if(v->links.begin(), v->links.end(),
                       [&](const LinkView& l) { return l.name == core::wgLinkName(ns); }),
        v->links.end());
  }
  return {};
}

Result<void> FakeHost::syncPeers(const core::WireGuardTarget& wg) {
  if (auto r = call("syncPeers " + wg.ns); !r) {
    return r;
  }
  NetnsView* v = view(wg.ns);
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
  peerSyncs.push_back(touched);
  return {};
}

Result<void> FakeHost::replaceRoute(const core::RouteTarget& rt) {
  if (auto r = call("replaceRoute " + rt.ns + " " + rt.destination.str()); !r) {
    return r;
  }
  NetnsView* v = view(rt.ns);
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

Result<void> FakeHost::deleteRoute(const std::string& ns, const IpPrefix& destination) {
  if (auto r = call("deleteRoute " + ns + " " + destination.str()); !r) {
    return r;
  }
  if (NetnsView* v = view(ns)) {
    auto& routes = v->routes;
    routes.erase(std::remove_if(routes.begin(), routes.end(),
                                [&](const core::RouteView& r) {
                                  return r.owned && r.destination == destination;
                                }),
                 routes.end());
  }
  return {};
}

Result<void> FakeHost::syncTable(const std::string& scope, const core::NftTableView& table) {
  if (auto r = call("syncTable " + (scope.empty() ? std::string("host") : scope)); !r) {
    return r;
  }
  NetnsView* v = view(scope);
  if (v == nullptr) {
    return terminal("no namespace " + scope);
  }
  Sync s{scope};
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
  syncs.push_back(s);
  v->table = table;
  v->table->intact = true;
  return {};
}

Result<void> FakeHost::deleteTable(const std::string& scope) {
  if (auto r = call("deleteTable " + (scope.empty() ? std::string("host") : scope)); !r) {
    return r;
  }
  if (NetnsView* v = view(scope)) {
    v->table.reset();
  }
  return {};
}

}  // namespace edgeplane::testing
