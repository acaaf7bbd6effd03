// The desired state's addresses, placement on hosts and ports, checked (validator.h): peers
// and routes inside a namespace, the uplink pool, WireGuard listen ports and forwards' public
// ports on the hosts they share.
#include <algorithm>
#include <tuple>

#include "schema/validator.h"

namespace edgeplane::detail {

void Validator::checkNamespace(const Namespace& ns) {
  checkHostRefs(ns.hosts, ns.origin);
  checkUnique(
      ns.peers, "peer", "name", [](const Peer& p) -> const std::string& { return p.name; }, diags_);
  std::map<WgKey, const Peer*> keys;
  std::map<IpPrefix, const Peer*> prefixes;
  for (const auto& p : ns.peers) {
    if (p.origin.fields.count("public_key") != 0 && p.public_key != WgKey{}) {
      auto [it, inserted] = keys.emplace(p.public_key, &p);
      if (!inserted) {
        diags_.error(p.origin.at("public_key"), "peer " + quote(p.name) +
                                                    " has the same public_key as peer " +
                                                    quote(it->second->name));
      }
    }
    for (size_t i = 0; i < p.allowed_ips.size(); ++i) {
      auto [it, inserted] = prefixes.emplace(p.allowed_ips[i].network(), &p);
      if (!inserted && it->second != &p) {
        diags_.error(p.origin.at("allowed_ips", i),
                     "allowed_ips " + quote(p.allowed_ips[i].str()) + " of peer " + quote(p.name) +
                         " is also claimed by peer " + quote(it->second->name));
      } else if (!inserted) {  // the kernel keeps it once: every plan would see a change
        diags_.error(p.origin.at("allowed_ips", i), "allowed_ips " + quote(p.allowed_ips[i].str()) +
                                                        " is listed twice in peer " +
                                                        quote(p.name));
      }
    }
  }
  if (ns.wireguard) {
    // An IPv6 address is one address whatever its length (a second would change the first);
    // IPv4 keeps one per length.
    std::set<IpPrefix> addresses;
    for (size_t i = 0; i < ns.wireguard->address.size(); ++i) {
      IpPrefix key = ns.wireguard->address[i];
      if (key.address.family == IpAddress::Family::V6) {
        key.length = 128;
      }
      if (!addresses.insert(key).second) {
        diags_.error(ns.wireguard->origin.at("address", i),
                     "address " + ns.wireguard->address[i].str() +
                         " is listed twice in namespace " + quote(ns.name));
      }
    }
  }
  // One route per destination in the kernel: a second would be applied over the first, and
  // every plan after would see the other.
  std::map<IpPrefix, const NamespaceRoute*> destinations;
  for (const auto& r : ns.routes) {
    if (!loaded(r.origin, "destination") || rejected(r.origin, "destination")) {
      continue;
    }
    auto [it, inserted] = destinations.emplace(r.destination, &r);  // host bits: an error
    if (!inserted) {
      diags_.error(r.origin.at("destination"),
                   "route destination " + r.destination.str() + " is routed twice in namespace " +
                       quote(ns.name) + " (first at " +
                       where(it->second->origin.at("destination")) + ")");
    }
  }
  // Addresses or allowed_ips the loader rejected may be the ones a route needed.
  const bool addressesKnown = !rejected(ns.origin, "wireguard") &&
                              (!ns.wireguard || !rejected(ns.wireguard->origin, "address"));
  for (const auto& r : ns.routes) {
    bool onLink =
        ns.wireguard && std::any_of(ns.wireguard->address.begin(), ns.wireguard->address.end(),
                                    [&](const IpPrefix& a) { return a.contains(r.via); });
    if (!onLink && loaded(r.origin, "via") && addressesKnown) {
      diags_.error(r.origin.at("via"), "route via " + r.via.str() +
                                           " is not on a subnet of namespace " + quote(ns.name) +
                                           "'s wireguard address");
    }
    if (loaded(r.origin, "destination") && peersKnown(ns) && !coveredByPeer(ns, r.destination)) {
      diags_.error(r.origin.at("destination"),
                   "route destination " + r.destination.str() +
                       " is not inside any peer's allowed_ips in namespace " + quote(ns.name));
    }
  }
}

// Whether every peer's allowed_ips loaded, so that "not inside any" can be trusted. Asked for
// every forward and backend, so answered once per namespace.
bool Validator::peersKnown(const Namespace& ns) {
  auto [it, first] = peersKnown_.try_emplace(&ns, false);
  if (first) {
    it->second = !rejected(ns.origin, "peer") &&
                 std::all_of(ns.peers.begin(), ns.peers.end(),
                             [](const Peer& p) { return loaded(p.origin, "allowed_ips"); });
  }
  return it->second;
}

bool Validator::coveredByPeer(const Namespace& ns, const IpPrefix& p) {
  for (const auto& peer : ns.peers) {
    for (const auto& a : peer.allowed_ips) {
      if (a.length <= p.length && a.contains(p.address)) {
        return true;
      }
    }
  }
  return false;
}

void Validator::checkReachable(const Namespace& ns, const Endpoint& e, const SourceLoc& loc,
                               std::string_view what) {
  IpPrefix host{e.address, static_cast<uint8_t>(e.address.bits())};
  if (peersKnown(ns) && !coveredByPeer(ns, host)) {
    diags_.error(loc, std::string(what) + " " + e.str() +
                          " is not inside any peer's allowed_ips in namespace " + quote(ns.name));
  }
}

void Validator::checkBackends(const Namespace* ns, const std::vector<Endpoint>& backends,
                              const Origin& origin) {
  if (ns == nullptr) {
    return;
  }
  for (size_t i = 0; i < backends.size(); ++i) {
    checkReachable(*ns, backends[i], origin.at("backends", i), "backend");
  }
}

// The target hosts something with this origin is placed on, `onHost` deciding (the implicit
// single host when none are declared). None when its `hosts` was rejected: its placement is
// unknown, so it clashes with nothing.
template <typename OnHost>
std::vector<std::string> Validator::placedOn(const Origin& origin, OnHost onHost) const {
  std::vector<std::string> out;
  if (rejected(origin, "hosts")) {
    return out;
  }
  if (!targets_) {
    targets_ = targetHosts(d_);
  }
  for (const auto& h : *targets_) {
    if (onHost(h)) {
      out.push_back(h);
    }
  }
  return out;
}

// The hosts a namespace lands on; worked out once per namespace (the port checks ask for
// every pair they compare).
const std::vector<std::string>& Validator::hostsOf(const Namespace& ns) const {
  auto [it, added] = nsHosts_.try_emplace(&ns);
  if (added) {
    it->second = placedOn(ns.origin, [&](const std::string& h) { return namespaceOnHost(ns, h); });
  }
  return it->second;
}

std::vector<std::string> Validator::hostsOfNamespaceName(const std::string& name) const {
  const Namespace* ns = d_.findNamespace(name);
  return ns != nullptr ? hostsOf(*ns) : std::vector<std::string>{};
}

// The hosts a site is served on: its namespace's, or for a site of the host itself its own.
std::vector<std::string> Validator::hostsOfSite(const Site& s) const {
  if (!s.namespace_name.empty()) {
    return hostsOfNamespaceName(s.namespace_name);
  }
  return placedOn(s.origin, [&](const std::string& h) { return hostSiteOnHost(s, h); });
}

std::optional<std::string> Validator::sharedHost(const std::vector<std::string>& a,
                                                 const std::vector<std::string>& b) {
  for (const auto& h : a) {
    if (std::find(b.begin(), b.end(), h) != b.end()) {
      return h;
    }
  }
  return std::nullopt;
}

void Validator::checkListenPorts() {
  std::vector<const Namespace*> seen;
  for (const auto& ns : d_.namespaces) {
    if (!ns.wireguard || ns.wireguard->listen_port == 0) {
      continue;
    }
    for (const Namespace* other : seen) {
      if (other->wireguard->listen_port != ns.wireguard->listen_port) {
        continue;
      }
      if (auto host = sharedHost(hostsOf(*other), hostsOf(ns))) {
        diags_.error(ns.wireguard->origin.at("listen_port"),
                     "listen_port " + std::to_string(ns.wireguard->listen_port) + " of namespace " +
                         quote(ns.name) + " is already used by namespace " + quote(other->name) +
                         " on host " + quote(*host));
        break;
      }
    }
    seen.push_back(&ns);
  }
}

void Validator::checkUplinkPool() {
  if (!d_.fleet || !d_.fleet->uplink_pool) {
    return;
  }
  const IpPrefix& pool = *d_.fleet->uplink_pool;
  const SourceLoc& loc = d_.fleet->origin.at("uplink_pool");
  if (pool.address.family != IpAddress::Family::V4 || pool.length > 30) {
    diags_.error(loc, "uplink_pool " + quote(pool.str()) +
                          " must be an IPv4 prefix of length 30 or shorter");
    return;
  }
  if (pool.network() != pool) {
    diags_.error(loc, "uplink_pool " + quote(pool.str()) + " has host bits set; did you mean " +
                          quote(pool.network().str()) + "?");
    return;
  }
  uint64_t links = (uint64_t{1} << (32 - pool.length)) / 2;
  if (d_.namespaces.size() > links) {
    diags_.error(loc, "uplink_pool " + quote(pool.str()) + " has room for " +
                          std::to_string(links) + " namespace uplinks, but " +
                          std::to_string(d_.namespaces.size()) + " namespaces are declared");
  }
}

// The uplink /31s (from uplink_pool, or its default) must not collide with a tenant's own
// addresses, or traffic for one would be routed to the other.
void Validator::checkUplinkOverlap() {
  const bool explicitPool =
      d_.fleet && d_.fleet->uplink_pool && loaded(d_.fleet->origin, "uplink_pool");
  const IpPrefix pool =
      explicitPool ? d_.fleet->uplink_pool->network() : *IpPrefix::parse(kDefaultUplinkPool);
  const std::string name = explicitPool ? "uplink_pool " + quote(pool.str())
                                        : "the default uplink_pool " + quote(pool.str());
  for (const auto& ns : d_.namespaces) {
    if (ns.wireguard) {
      for (size_t i = 0; i < ns.wireguard->address.size(); ++i) {
        const IpPrefix& a = ns.wireguard->address[i];
        if (a.overlaps(pool)) {
          diags_.error(ns.wireguard->origin.at("address", i),
                       "wireguard address " + a.str() + " of namespace " + quote(ns.name) +
                           " overlaps " + name + " (host<->namespace uplinks)");
        }
      }
    }
    for (const auto& p : ns.peers) {
      for (size_t i = 0; i < p.allowed_ips.size(); ++i) {
        const IpPrefix& a = p.allowed_ips[i];
        if (a.overlaps(pool)) {
          diags_.error(p.origin.at("allowed_ips", i), "allowed_ips " + a.str() + " of peer " +
                                                          quote(p.name) + " overlaps " + name +
                                                          " (host<->namespace uplinks)");
        }
      }
    }
  }
}

// Ports the host itself needs: the proxy's HTTP and HTTPS listeners (tcp/80, tcp/443) and
// every namespace's WireGuard listen_port (udp) on the hosts it runs on. A forward must not
// DNAT them away.
void Validator::checkReservedPorts() {
  for (const auto& f : d_.forwards) {
    if (f.public_port.first == 0 || !loaded(f.origin, "protocol")) {
      continue;
    }
    // Only for an error: most forwards have none.
    auto port = [&f] {
      return std::string(toString(f.protocol)) + "/" + f.public_port.str() + " of forward " +
             quote(f.name);
    };
    if (f.protocol == Protocol::Tcp) {
      for (uint16_t p : {uint16_t{80}, uint16_t{443}}) {
        if (f.public_port.overlaps(PortRange{p, p})) {
          diags_.error(f.origin.at("public_port"), "public port " + port() + " takes tcp/" +
                                                       std::to_string(p) +
                                                       ", where edgeplane-proxy listens");
        }
      }
      continue;
    }
    const Namespace* own = d_.findNamespace(f.namespace_name);
    if (own == nullptr) {
      continue;
    }
    const auto hosts = hostsOf(*own);
    for (const auto& ns : d_.namespaces) {
      if (!ns.wireguard || ns.wireguard->listen_port == 0) {
        continue;
      }
      const uint16_t lp = ns.wireguard->listen_port;
      if (!f.public_port.overlaps(PortRange{lp, lp})) {
        continue;
      }
      if (auto host = sharedHost(hostsOf(ns), hosts)) {
        diags_.error(f.origin.at("public_port"), "public port " + port() + " takes udp/" +
                                                     std::to_string(lp) +
                                                     ", the WireGuard listen_port of namespace " +
                                                     quote(ns.name) + " on host " + quote(*host));
      }
    }
  }
}

// Two forwards clash when protocol and public ports overlap on a host they share. A sweep
// over the forwards sorted by first port keeps this near-linear at 10k forwards; each clash
// is reported once, at the later forward, naming the earliest one it overlaps.
void Validator::checkForwardPorts() {
  std::map<std::string, std::vector<std::string>, std::less<>> hostsByNamespace;
  for (const auto& ns : d_.namespaces) {
    hostsByNamespace.emplace(ns.name, hostsOf(ns));
  }
  const std::vector<std::string> none;
  auto hosts = [&](const Forward& f) -> const std::vector<std::string>& {
    auto it = hostsByNamespace.find(f.namespace_name);
    return it != hostsByNamespace.end() ? it->second : none;
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < d_.forwards.size(); ++i) {
    const Forward& f = d_.forwards[i];
    if (f.public_port.first != 0 && loaded(f.origin, "protocol")) {
      order.push_back(i);
    }
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Forward& x = d_.forwards[a];
    const Forward& y = d_.forwards[b];
    return std::tie(x.protocol, x.public_port.first, a) <
           std::tie(y.protocol, y.public_port.first, b);
  });
  std::map<size_t, size_t> firstClash;  // later forward -> earliest forward it overlaps
  std::vector<size_t> active;           // same protocol, may still overlap what follows
  for (size_t i : order) {
    const Forward& f = d_.forwards[i];
    active.erase(std::remove_if(active.begin(), active.end(),
                                [&](size_t a) {
                                  const Forward& x = d_.forwards[a];
                                  return x.protocol != f.protocol ||
                                         x.public_port.last < f.public_port.first;
                                }),
                 active.end());
    for (size_t a : active) {
      if (!sharedHost(hosts(d_.forwards[a]), hosts(f))) {
        continue;
      }
      size_t later = std::max(a, i);
      size_t earlier = std::min(a, i);
      auto it = firstClash.find(later);
      if (it == firstClash.end() || earlier < it->second) {
        firstClash[later] = earlier;
      }
    }
    active.push_back(i);
  }
  for (const auto& [later, earlier] : firstClash) {
    const Forward& f = d_.forwards[later];
    const Forward& other = d_.forwards[earlier];
    diags_.error(f.origin.at("public_port"),
                 "public port " + std::string(toString(f.protocol)) + "/" + f.public_port.str() +
                     " of forward " + quote(f.name) + " overlaps forward " + quote(other.name) +
                     " (" + std::string(toString(other.protocol)) + "/" + other.public_port.str() +
                     ")");
  }
}

}  // namespace edgeplane::detail
