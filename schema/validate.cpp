// Semantic checks across the whole desired state; every problem reported with its location.
#include "schema/validate.h"

#include <algorithm>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <type_traits>
#include <unordered_map>

#include "schema/managed_certs.h"

namespace edgeplane {
namespace {

bool rejected(const Origin& o, std::string_view key) {
  return o.isRejected(key);
}
bool loaded(const Origin& o, std::string_view key) {
  return o.isLoaded(key);
}

std::string where(const SourceLoc& loc) {
  return loc.file.str() + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}

// Reports a second use of the same name within one kind.
template <typename T, typename NameOf>
void checkUnique(const std::vector<T>& items, std::string_view kind, std::string_view key,
                 NameOf nameOf, Diagnostics& diags) {
  // Views of the items' own names, hashed: at 10k forwards an ordered map of copies was a third
  // of validating.
  static_assert(std::is_lvalue_reference_v<std::invoke_result_t<NameOf, const T&>>,
                "the names are viewed in place: nameOf returns a reference into the item");
  std::unordered_map<std::string_view, const T*> seen;
  seen.reserve(items.size());
  for (const T& item : items) {
    const std::string& name = nameOf(item);
    if (name.empty()) {
      continue;  // a missing name was already reported by the loader
    }
    auto [it, inserted] = seen.emplace(name, &item);
    if (!inserted) {
      diags.error(item.origin.at(key), "duplicate " + std::string(kind) + " " + std::string(key) +
                                           " " + quote(name) + " (first defined at " +
                                           where(it->second->origin.at(key)) + ")");
    }
  }
}

class Validator {
 public:
  Validator(const Desired& d, Diagnostics& diags) : d_(d), diags_(diags) {}

  void run() {
    auto byName = [](const auto& x) -> const std::string& { return x.name; };
    checkUnique(d_.hosts, "host", "name", byName, diags_);
    checkUnique(d_.namespaces, "namespace", "name", byName, diags_);
    checkUnique(d_.forwards, "forward", "name", byName, diags_);
    checkUnique(d_.certificates, "certificate", "name", byName, diags_);
    checkUnique(d_.sites, "site", "name", byName, diags_);
    checkUnique(d_.passthroughs, "passthrough", "name", byName, diags_);
    checkUnique(d_.gateways, "gateway", "name", byName, diags_);
    checkUnique(d_.api_keys, "api_key", "name", byName, diags_);
    checkUnique(
        d_.api_keys, "api_key", "id", [](const ApiKey& k) -> const std::string& { return k.id; },
        diags_);

    for (const auto& ns : d_.namespaces) {
      checkNamespace(ns);
    }
    checkListenPorts();
    checkUplinkPool();
    checkUplinkOverlap();
    for (const auto& f : d_.forwards) {
      const Namespace* ns = namespaceRef(f.namespace_name, f.origin);
      if (ns != nullptr && loaded(f.origin, "target")) {
        checkReachable(*ns, f.target, f.origin.at("target"), "target");
      }
    }
    checkForwardPorts();
    checkReservedPorts();
    for (const auto& c : d_.certificates) {
      checkCertificate(c);
    }
    for (const auto& s : d_.sites) {
      checkSite(s);
    }
    for (const auto& p : d_.passthroughs) {
      checkBackends(namespaceRef(p.namespace_name, p.origin), p.backends, p.origin);
    }
    for (const auto& g : d_.gateways) {
      const Namespace* ns = namespaceRef(g.namespace_name, g.origin);
      if (!g.hostname.empty()) {
        checkCovered(g.certificate, {g.hostname}, g.origin);
      }
      std::map<std::pair<std::string, std::string>, const GatewayEndpoint*> endpoints;
      for (const auto& e : g.endpoints) {
        checkBackends(ns, e.backends, e.origin);
        auto [it, inserted] = endpoints.emplace(std::make_pair(e.method, e.path), &e);
        if (!inserted && !e.path.empty()) {
          diags_.error(e.origin.at("path"), "duplicate endpoint " + e.method + " " + e.path +
                                                " in gateway " + quote(g.name) +
                                                " (first defined at " +
                                                where(it->second->origin.at("path")) + ")");
        }
      }
    }
    checkHostnames();
    for (const auto& g : d_.gateways) {
      auto& paths = pathsOfGateway_[g.name];  // also a gateway without endpoints
      for (const auto& ep : g.endpoints) {
        paths.insert(ep.path);
        anyGatewayPaths_.insert(ep.path);
      }
    }
    for (const auto& k : d_.api_keys) {
      checkApiKey(k);
    }
  }

 private:
  const Namespace* namespaceRef(const std::string& name, const Origin& origin) {
    if (name.empty()) {
      return nullptr;
    }
    const Namespace* ns = d_.findNamespace(name);
    if (ns == nullptr) {
      diags_.error(origin.at("namespace"), "namespace " + quote(name) + " is not defined");
    }
    return ns;
  }

  // Its gateways exist; each scoped endpoint is a path of one of them (of any gateway for an
  // admin key without `gateways`), looked up in the paths run() gathered once for all keys:
  // there may be tens of thousands of keys.
  void checkApiKey(const ApiKey& k) {
    for (size_t i = 0; i < k.gateways.size(); ++i) {
      if (pathsOfGateway_.count(k.gateways[i]) == 0) {
        diags_.error(k.origin.at("gateways", i),
                     "gateway " + quote(k.gateways[i]) + " is not defined");
      }
    }
    for (size_t i = 0; i < k.endpoints.size(); ++i) {
      const std::string& path = k.endpoints[i];
      const bool found =
          k.gateways.empty()
              ? anyGatewayPaths_.count(path) != 0
              : std::any_of(k.gateways.begin(), k.gateways.end(), [&](const std::string& g) {
                  auto it = pathsOfGateway_.find(g);
                  return it != pathsOfGateway_.end() && it->second.count(path) != 0;
                });
      if (!found) {
        diags_.error(k.origin.at("endpoints", i),
                     "endpoint " + quote(path) + " is not a path of " +
                         (k.gateways.empty() ? std::string("any gateway")
                                             : std::string("the key's gateways")));
      }
    }
  }

  // Each of `hosts` is a [[host]].
  void checkHostRefs(const std::optional<std::vector<std::string>>& hosts, const Origin& origin) {
    if (!hosts) {
      return;
    }
    for (size_t i = 0; i < hosts->size(); ++i) {
      const std::string& h = (*hosts)[i];
      bool known =
          std::any_of(d_.hosts.begin(), d_.hosts.end(), [&](const Host& x) { return x.name == h; });
      if (!known) {
        diags_.error(origin.at("hosts", i), "host " + quote(h) + " is not defined");
      }
    }
  }

  // A site without namespace fronts services of the host itself: its backends are loopback
  // addresses of the host's own network namespace, never an address of a tenant's range.
  // (`namespace` given but refused by the loader is a namespace site that failed: no more
  // errors for it here.)
  void checkSite(const Site& s) {
    const bool ofTheHost = s.origin.fields.count("namespace") == 0;
    if (ofTheHost) {
      checkHostRefs(s.hosts, s.origin);
      checkHostSiteBackends(s);
    } else {
      checkBackends(namespaceRef(s.namespace_name, s.origin), s.backends, s.origin);
      if (s.hosts) {
        diags_.error(s.origin.at("hosts"), "site " + quote(s.name) + " is served where namespace " +
                                               quote(s.namespace_name) +
                                               " is: 'hosts' is only for a site without namespace");
      }
    }
    checkCovered(s.certificate, s.hostnames, s.origin);
  }

  // Loopback only; and not a TCP forward's public port on a host both are on: the host's
  // nftables output chain sends local connections to that port into the forward (IPv4 only).
  void checkHostSiteBackends(const Site& s) {
    const auto siteHosts = hostsOfSite(s);
    for (size_t i = 0; i < s.backends.size(); ++i) {
      const Endpoint& b = s.backends[i];
      if (!b.address.isLoopback()) {
        diags_.error(s.origin.at("backends", i),
                     "backend " + b.str() + " of site " + quote(s.name) +
                         " is not a loopback address: a site without namespace reaches only "
                         "this host's own services (127.0.0.0/8, ::1)");
        continue;
      }
      if (b.address.family != IpAddress::Family::V4) {
        continue;
      }
      for (const Forward& f : d_.forwards) {
        if (f.protocol != Protocol::Tcp || !f.public_port.overlaps(PortRange{b.port, b.port})) {
          continue;
        }
        if (auto host = sharedHost(hostsOfNamespaceName(f.namespace_name), siteHosts)) {
          diags_.error(s.origin.at("backends", i),
                       "backend " + b.str() + " of site " + quote(s.name) +
                           " is on the public port of forward " + quote(f.name) + " on host " +
                           quote(*host) +
                           ": the host sends local connections to that port into the forward");
          break;
        }
      }
    }
  }

  void checkNamespace(const Namespace& ns) {
    checkHostRefs(ns.hosts, ns.origin);
    checkUnique(
        ns.peers, "peer", "name", [](const Peer& p) -> const std::string& { return p.name; },
        diags_);
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
                       "allowed_ips " + quote(p.allowed_ips[i].str()) + " of peer " +
                           quote(p.name) + " is also claimed by peer " + quote(it->second->name));
        } else if (!inserted) {  // the kernel keeps it once: every plan would see a change
          diags_.error(p.origin.at("allowed_ips", i),
                       "allowed_ips " + quote(p.allowed_ips[i].str()) +
                           " is listed twice in peer " + quote(p.name));
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
  bool peersKnown(const Namespace& ns) {
    auto [it, first] = peersKnown_.try_emplace(&ns, false);
    if (first) {
      it->second = !rejected(ns.origin, "peer") &&
                   std::all_of(ns.peers.begin(), ns.peers.end(),
                               [](const Peer& p) { return loaded(p.origin, "allowed_ips"); });
    }
    return it->second;
  }

  static bool coveredByPeer(const Namespace& ns, const IpPrefix& p) {
    for (const auto& peer : ns.peers) {
      for (const auto& a : peer.allowed_ips) {
        if (a.length <= p.length && a.contains(p.address)) {
          return true;
        }
      }
    }
    return false;
  }

  void checkReachable(const Namespace& ns, const Endpoint& e, const SourceLoc& loc,
                      std::string_view what) {
    IpPrefix host{e.address, static_cast<uint8_t>(e.address.bits())};
    if (peersKnown(ns) && !coveredByPeer(ns, host)) {
      diags_.error(loc, std::string(what) + " " + e.str() +
                            " is not inside any peer's allowed_ips in namespace " + quote(ns.name));
    }
  }

  void checkBackends(const Namespace* ns, const std::vector<Endpoint>& backends,
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
  std::vector<std::string> placedOn(const Origin& origin, OnHost onHost) const {
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
  const std::vector<std::string>& hostsOf(const Namespace& ns) const {
    auto [it, added] = nsHosts_.try_emplace(&ns);
    if (added) {
      it->second =
          placedOn(ns.origin, [&](const std::string& h) { return namespaceOnHost(ns, h); });
    }
    return it->second;
  }

  std::vector<std::string> hostsOfNamespaceName(const std::string& name) const {
    const Namespace* ns = d_.findNamespace(name);
    return ns != nullptr ? hostsOf(*ns) : std::vector<std::string>{};
  }

  // The hosts a site is served on: its namespace's, or for a site of the host itself its own.
  std::vector<std::string> hostsOfSite(const Site& s) const {
    if (!s.namespace_name.empty()) {
      return hostsOfNamespaceName(s.namespace_name);
    }
    return placedOn(s.origin, [&](const std::string& h) { return hostSiteOnHost(s, h); });
  }

  static std::optional<std::string> sharedHost(const std::vector<std::string>& a,
                                               const std::vector<std::string>& b) {
    for (const auto& h : a) {
      if (std::find(b.begin(), b.end(), h) != b.end()) {
        return h;
      }
    }
    return std::nullopt;
  }

  void checkListenPorts() {
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
                       "listen_port " + std::to_string(ns.wireguard->listen_port) +
                           " of namespace " + quote(ns.name) + " is already used by namespace " +
                           quote(other->name) + " on host " + quote(*host));
          break;
        }
      }
      seen.push_back(&ns);
    }
  }

  void checkUplinkPool() {
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
  void checkUplinkOverlap() {
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
  void checkReservedPorts() {
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
  void checkForwardPorts() {
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
                       " (" + std::string(toString(other.protocol)) + "/" +
                       other.public_port.str() + ")");
    }
  }

  // (That issuer "files" needs cert_file and key_file is checked by the loader, which can tell
  // a missing key from a misspelt one.)
  void checkCertificate(const Certificate& c) {
    if (c.managed_for.empty() && !c.name.empty()) {
      checkCertificateName(c);
    } else if (!c.managed_for.empty() && !validCertificateName(c.name)) {
      checkManagedName(c);
    }
    if (c.domains.empty() && loaded(c.origin, "domains")) {
      diags_.error(c.origin.at("domains"), "'domains' must list at least one domain");
    }
    if (rejected(c.origin, "issuer")) {
      return;  // whatever was meant, the rules of some other issuer would only add noise
    }
    const bool files = c.issuer == Issuer::Files;
    for (const char* key : {"cert_file", "key_file"}) {
      if (!files && c.origin.fields.count(key) != 0) {
        diags_.error(c.origin.at(key), "'" + std::string(key) + "' is only for issuer \"files\"");
      }
    }
    // RFC 8555 section 7.1.3: a CA validates a wildcard's base domain by DNS-01 only.
    if (c.issuer == Issuer::Acme && !rejected(c.origin, "challenge") &&
        c.challenge != AcmeChallengeType::Dns01) {
      const std::string challenge(toString(c.challenge.value_or(AcmeChallengeType::Http01)));
      for (size_t i = 0; i < c.domains.size(); ++i) {
        if (c.domains[i].rfind("*.", 0) == 0) {
          diags_.error(c.origin.at("domains", i), "wildcard domain " + quote(c.domains[i]) +
                                                      " needs challenge = \"dns-01\" (" +
                                                      challenge + " cannot validate a wildcard)");
        }
      }
    }
  }

  static bool validCertificateName(const std::string& name) {
    static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    return name.size() <= 128 && std::regex_match(name, re);
  }

  // A route without 'certificate' gets one named after it (auto.site.<name>), a directory under
  // <state-dir>/certs/: a route name that cannot make one is an error at the route, not a
  // refusal at apply after a real ACME order on every retry.
  void checkManagedName(const Certificate& c) {
    const size_t space = c.managed_for.find(' ');
    const std::string kind = c.managed_for.substr(0, space);
    const std::string route = c.managed_for.substr(space + 1);
    auto nameOf = [&](const auto& routes) -> std::optional<SourceLoc> {
      auto it = std::find_if(routes.begin(), routes.end(),
                             [&](const auto& r) { return r.name == route; });
      return it != routes.end() ? std::optional(it->origin.at("name")) : std::nullopt;
    };
    const std::optional<SourceLoc> at = kind == "site" ? nameOf(d_.sites) : nameOf(d_.gateways);
    diags_.error(at.value_or(c.origin.table),
                 kind + " name " + quote(route) + " cannot name its certificate " + quote(c.name) +
                     ", which must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} (a directory): "
                     "rename it, or give it a 'certificate'");
  }

  // The name is a directory under <state-dir>/certs/ and must not take a managed one's.
  void checkCertificateName(const Certificate& c) {
    if (!validCertificateName(c.name)) {
      diags_.error(c.origin.at("name"), "certificate name " + quote(c.name) +
                                            " must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}");
    } else if (c.name.rfind(kManagedCertPrefix, 0) == 0) {
      diags_.error(c.origin.at("name"),
                   "certificate name " + quote(c.name) + " is reserved: names starting with " +
                       quote(std::string(kManagedCertPrefix)) +
                       " are edgeplane's managed certificates of routes without 'certificate'");
    }
  }

  static bool domainCovers(std::string_view domain, std::string_view host) {
    if (domain == host) {
      return true;
    }
    if (domain.rfind("*.", 0) == 0 && host.rfind("*.", 0) != 0) {
      auto dot = host.find('.');
      return dot != std::string_view::npos && host.substr(dot) == domain.substr(1);
    }
    return false;
  }

  void checkCovered(const std::string& certName, const std::vector<std::string>& hostnames,
                    const Origin& origin) {
    if (certName.empty()) {
      return;
    }
    const Certificate* cert = d_.findCertificate(certName);
    if (cert == nullptr) {
      diags_.error(origin.at("certificate"), "certificate " + quote(certName) + " is not defined");
      return;
    }
    for (const auto& h : hostnames) {
      bool covered = std::any_of(cert->domains.begin(), cert->domains.end(),
                                 [&](const std::string& dom) { return domainCovers(dom, h); });
      if (!covered) {
        diags_.error(origin.at("certificate"),
                     "hostname " + quote(h) + " is not covered by certificate " + quote(certName));
      }
    }
  }

  // One hostname may be claimed by one route (site, passthrough or gateway) per host.
  void checkHostnames() {
    struct Claim {
      std::string route;  // `site "x"`
      std::vector<std::string> hosts;
    };
    std::map<std::string, std::vector<Claim>> claims;
    auto claim = [&](const std::string& hostname, const SourceLoc& loc, std::string route,
                     std::vector<std::string> hosts) {
      auto& list = claims[hostname];
      for (const Claim& c : list) {
        if (c.route == route) {
          diags_.error(loc, "hostname " + quote(hostname) + " is listed twice in " + route);
          return;
        }
        if (sharedHost(c.hosts, hosts)) {
          diags_.error(loc, "hostname " + quote(hostname) + " of " + route +
                                " is already claimed by " + c.route);
          return;
        }
      }
      list.push_back(Claim{std::move(route), std::move(hosts)});
    };
    for (const auto& s : d_.sites) {
      for (size_t i = 0; i < s.hostnames.size(); ++i) {
        claim(s.hostnames[i], s.subdomain ? s.origin.at("subdomain") : s.origin.at("hostnames", i),
              "site " + quote(s.name), hostsOfSite(s));
      }
    }
    for (const auto& p : d_.passthroughs) {
      for (size_t i = 0; i < p.hostnames.size(); ++i) {
        claim(p.hostnames[i], p.subdomain ? p.origin.at("subdomain") : p.origin.at("hostnames", i),
              "passthrough " + quote(p.name), hostsOfNamespaceName(p.namespace_name));
      }
    }
    for (const auto& g : d_.gateways) {
      if (!g.hostname.empty()) {
        claim(g.hostname, g.subdomain ? g.origin.at("subdomain") : g.origin.at("hostname"),
              "gateway " + quote(g.name), hostsOfNamespaceName(g.namespace_name));
      }
    }
  }

  const Desired& d_;
  Diagnostics& diags_;
  // Each gateway's endpoint paths, and all of them (for checkApiKey).
  std::map<std::string_view, std::set<std::string_view, std::less<>>, std::less<>> pathsOfGateway_;
  std::set<std::string_view, std::less<>> anyGatewayPaths_;
  std::map<const Namespace*, bool> peersKnown_;
  mutable std::optional<std::vector<std::string>> targets_;                         // targetHosts
  mutable std::unordered_map<const Namespace*, std::vector<std::string>> nsHosts_;  // hostsOf
};

}  // namespace

std::vector<std::string> targetHosts(const Desired& d) {
  if (d.hosts.empty()) {
    return {"default"};
  }
  std::vector<std::string> out;
  for (const auto& h : d.hosts) {
    out.push_back(h.name);
  }
  return out;
}

void validate(const Desired& d, Diagnostics& diags) {
  Validator(d, diags).run();
}

}  // namespace edgeplane
