// The planner: compares the target with the observed host and emits ordered, typed ops.
#include "reconciler/core/plan.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

namespace edgeplane::core {

bool StoreView::owns(std::string_view kind, std::string_view name) const {
  return applied.count(std::string(kind) + " " + std::string(name)) != 0;
}

bool StoreView::appliedAs(std::string_view kind, std::string_view name,
                          std::string_view spec) const {
  auto it = applied.find(std::string(kind) + " " + std::string(name));
  return it != applied.end() && it->second == spec;
}

std::string_view toString(Action a) {
  switch (a) {
    case Action::Create:
      return "create";
    case Action::Update:
      return "update";
    case Action::Delete:
      return "delete";
  }
  return "?";
}

std::string_view toString(Kind k) {
  switch (k) {
    case Kind::Namespace:
      return "namespace";
    case Kind::Sysctl:
      return "sysctl";
    case Kind::Uplink:
      return "uplink";
    case Kind::WireGuard:
      return "wireguard";
    case Kind::Peer:
      return "peer";
    case Kind::Route:
      return "route";
    case Kind::NftTable:
      return "nftables";
    case Kind::Forward:
      return "forward";
    case Kind::Certificate:
      return "certificate";
    case Kind::Site:
      return "site";
    case Kind::Passthrough:
      return "passthrough";
    case Kind::Gateway:
      return "gateway";
    case Kind::ApiKey:
      return "api_key";
  }
  return "?";
}

size_t Plan::count(Action a) const {
  return static_cast<size_t>(
      std::count_if(ops.begin(), ops.end(), [&](const Op& op) { return op.action == a; }));
}

size_t Plan::failing() const {
  return static_cast<size_t>(
      std::count_if(ops.begin(), ops.end(), [](const Op& op) { return !op.error.empty(); }));
}

NftTableView Plan::hostTable() const {
  NftTableView t = target.hostTable();
  std::set<IpAddress> held;
  for (const auto& ns : unobservable) {
    if (auto u = target.uplinks.find(ns); u != target.uplinks.end()) {
      held.insert(u->second.nsAddress.address);
    }
  }
  if (held.empty()) {
    return t;
  }
  std::erase_if(t.mappings, [&](const PortMapping& m) { return held.count(m.address) != 0; });
  t.mappings.insert(t.mappings.end(), heldHostMappings.begin(), heldHostMappings.end());
  std::sort(t.mappings.begin(), t.mappings.end());
  return t;
}

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

Op makeOp(Action action, Kind kind, std::string name, std::string scope = "") {
  Op op;
  op.action = action;
  op.kind = kind;
  op.name = std::move(name);
  op.scope = std::move(scope);
  return op;
}

std::string prefixes(const std::vector<IpPrefix>& v) {
  std::string out;
  for (const auto& p : v) {
    out += (out.empty() ? "" : ", ") + p.str();
  }
  return out.empty() ? "none" : out;
}

class Planner {
 public:
  Planner(const Target& t, const HostState& o, const StoreView& s, Plan& p)
      : t_(t), o_(o), s_(s), p_(p) {}

  void run() {
    for (const auto& [addrNs, u] : t_.uplinks) {
      nsByAddress_[u.nsAddress.address] = addrNs;
    }
    holdUnobservable();
    planForwardDeletes();
    planRouteDeletes();
    planPrune();
    for (const auto& ns : t_.namespaces) {
      planNamespace(ns);
    }
    planHostSysctl();
    // An unobservable namespace gets its one failing op (planNamespace) and nothing else: what
    // is inside it is unknown, so nothing is planned against it.
    for (const auto& ns : t_.namespaces) {
      if (!unobservable(ns)) {
        planUplink(ns);
      }
    }
    for (const auto& ns : t_.namespaces) {
      if (!unobservable(ns)) {
        planWireGuard(ns);
      }
    }
    for (const auto& ns : t_.namespaces) {
      if (!unobservable(ns)) {
        planRoutes(ns);
      }
    }
    planTables();
    planForwards();
    planTableElementDrift();
  }

 private:
  size_t add(Op op) {
    p_.ops.push_back(std::move(op));
    return p_.ops.size() - 1;
  }

  static void dep(Op& op, size_t index) {
    if (index != kNone) {
      op.dependsOn.push_back(index);
    }
  }

  size_t indexOf(const std::map<std::string, size_t, std::less<>>& m, std::string_view k) const {
    auto it = m.find(k);
    return it != m.end() ? it->second : kNone;
  }

  const NetnsView* view(std::string_view ns) const {
    auto it = o_.namespaces.find(netnsName(ns));
    return it != o_.namespaces.end() ? &it->second : nullptr;
  }

  // Whether tenant `ns` has a view that says it could not be observed.
  bool unobservable(std::string_view ns) const {
    const NetnsView* v = view(ns);
    return v != nullptr && !v->unobservable.empty();
  }

  // The host mappings into desired namespaces that cannot be observed stay as they are.
  void holdUnobservable() {
    for (const auto& ns : t_.namespaces) {
      if (!unobservable(ns)) {
        continue;
      }
      p_.unobservable.push_back(ns);
      if (!o_.host.table) {
        continue;
      }
      const IpAddress& address = t_.uplinks.at(ns).nsAddress.address;
      for (const auto& m : o_.host.table->mappings) {
        if (m.address == address) {
          p_.heldHostMappings.push_back(m);
        }
      }
    }
  }

  bool desiredNs(std::string_view ns) const {
    return std::find(t_.namespaces.begin(), t_.namespaces.end(), ns) != t_.namespaces.end();
  }

  std::string driftIf(bool owned, std::string what) const { return owned ? what : std::string(); }

  // --- deletes, in reverse dependency order -------------------------------------------

  void planForwardDeletes() {
    if (!o_.host.table) {
      return;
    }
    std::set<std::string> desired;
    for (const auto& f : t_.forwards) {
      desired.insert(f.key());
    }
    for (const auto& m : o_.host.table->mappings) {
      std::string key = std::string(toString(m.protocol)) + "/" + m.port.str();
      if (desired.count(key) != 0) {
        continue;
      }
      auto ns = observedNsOf(m.address);
      if (desiredNs(ns) && unobservable(ns)) {
        continue;  // held as observed until its namespace can be looked into
      }
      auto name = s_.forwardNames.find(key);
      Op op =
          makeOp(Action::Delete, Kind::Forward, name != s_.forwardNames.end() ? name->second : key);
      op.changes.push_back({"public_port", key, ""});
      op.changes.push_back({"namespace", ns, ""});
      op.scope = ns;
      touchedTables_.insert("");
      touchedTables_.insert(ns);
      add(std::move(op));
    }
  }

  // The tenant whose uplink holds `addr`, as observed (falls back to the address).
  std::string observedNsOf(const IpAddress& addr) const {
    for (const auto& [netns, v] : o_.namespaces) {
      for (const auto& l : v.links) {
        for (const auto& a : l.addresses) {
          if (a.address == addr && l.name.rfind(kNsLinkPrefix, 0) == 0) {
            return l.name.substr(kNsLinkPrefix.size());
          }
        }
      }
    }
    auto it = nsByAddress_.find(addr);
    return it != nsByAddress_.end() ? it->second : addr.str();
  }

  void planRouteDeletes() {
    for (const auto& ns : t_.namespaces) {
      const NetnsView* v = view(ns);
      if (v == nullptr) {
        continue;
      }
      for (const auto& r : v->routes) {
        if (!r.owned) {
          if (r.protocol != "kernel") {
            p_.foreign.push_back("route " + r.destination.str() +
                                 (r.via ? " via " + r.via->str() : std::string()) +
                                 " in namespace " + ns + " (proto " + r.protocol + ")");
          }
          continue;
        }
        if (r.destination.length == 0) {
          continue;  // the uplink's default route
        }
        bool wanted = std::any_of(t_.routes.begin(), t_.routes.end(), [&](const RouteTarget& rt) {
          return rt.ns == ns && rt.destination == r.destination;
        });
        if (!wanted) {
          Op op = makeOp(Action::Delete, Kind::Route, ns + " " + r.destination.str(), ns);
          op.changes.push_back({"via", r.via ? r.via->str() : "", ""});
          add(std::move(op));
        }
      }
    }
  }

  void planPrune() {
    for (const auto& [netns, v] : o_.namespaces) {
      std::string ns = netns.rfind(kNetnsPrefix, 0) == 0 ? netns.substr(kNetnsPrefix.size()) : "";
      if (!ns.empty() && desiredNs(ns)) {
        continue;
      }
      if (ns.empty() || !s_.owns("namespace", ns)) {
        p_.foreign.push_back(
            "namespace " + netns +
            (v.unobservable.empty() ? "" : " (cannot observe: " + v.unobservable + ")"));
        continue;
      }
      if (!v.unobservable.empty()) {
        // Its links and WireGuard are unknown: nothing of it is removed blindly.
        Op op = makeOp(Action::Delete, Kind::Namespace, ns, ns);
        op.changes.push_back({"netns", netns, ""});
        op.error = "cannot observe: " + v.unobservable;
        add(std::move(op));
        continue;
      }
      size_t wgOp = kNone;
      if (v.wireguard || v.link(wgLinkName(ns)) != nullptr) {
        Op op = makeOp(Action::Delete, Kind::WireGuard, ns, ns);
        op.changes.push_back({"interface", wgLinkName(ns), ""});
        wgOp = add(std::move(op));
      }
      size_t uplinkOp = kNone;
      if (o_.host.link(hostLinkName(ns)) != nullptr || v.link(nsLinkName(ns)) != nullptr) {
        Op op = makeOp(Action::Delete, Kind::Uplink, ns, ns);
        op.changes.push_back({"host_link", hostLinkName(ns), ""});
        dep(op, wgOp);
        uplinkOp = add(std::move(op));
      }
      Op op = makeOp(Action::Delete, Kind::Namespace, ns, ns);
      op.changes.push_back({"netns", netns, ""});
      dep(op, uplinkOp);
      add(std::move(op));
    }
  }

  // --- creates and updates, in dependency order ---------------------------------------

  void planNamespace(const std::string& ns) {
    if (unobservable(ns)) {
      Op op = makeOp(Action::Update, Kind::Namespace, ns, ns);
      op.error = "cannot observe: " + view(ns)->unobservable;
      nsOps_[ns] = add(std::move(op));
      return;
    }
    if (view(ns) != nullptr) {
      return;
    }
    Op op = makeOp(Action::Create, Kind::Namespace, ns, ns);
    op.changes.push_back({"netns", "", netnsName(ns)});
    // Only one that was made (not one a killed run meant to make: kPendingSpec) is drift.
    op.drift =
        driftIf(s_.appliedAs("namespace", ns, ""), "namespace was deleted outside edgeplane");
    nsOps_[ns] = add(std::move(op));
  }

  // Routing into the namespaces needs the host's ip_forward on. With no namespace left it is
  // turned off again only when edgeplane turned it on (the store says so): a host that had it
  // on before edgeplane, for Docker or a VPN, keeps it.
  void planHostSysctl() {
    const std::string name(kHostForwardSysctl);
    if (!t_.namespaces.empty()) {
      if (!o_.host.ipForward) {
        Op op = makeOp(Action::Update, Kind::Sysctl, name, "");
        op.changes.push_back({"value", "0", "1"});
        hostSysctlOp_ = add(std::move(op));
      }
      return;
    }
    if (o_.host.ipForward && s_.owns("sysctl", name)) {
      Op op = makeOp(Action::Delete, Kind::Sysctl, name, "");
      op.changes.push_back({"value", "1", "0 (edgeplane turned it on)"});
      add(std::move(op));
    }
  }

  void planUplink(const std::string& ns) {
    const UplinkTarget& u = t_.uplinks.at(ns);
    const NetnsView* v = view(ns);
    const LinkView* hl = o_.host.link(hostLinkName(ns));
    const LinkView* nl = v != nullptr ? v->link(nsLinkName(ns)) : nullptr;
    const bool owned = s_.appliedAs("uplink", ns, u.nsAddress.str());
    if (v == nullptr || hl == nullptr || nl == nullptr) {
      Op op = makeOp(Action::Create, Kind::Uplink, ns, ns);
      op.changes.push_back({"host", "", hostLinkName(ns) + " " + u.hostAddress.str()});
      op.changes.push_back({"namespace", "", nsLinkName(ns) + " " + u.nsAddress.str()});
      op.changes.push_back({"default_route", "", "via " + u.hostAddress.address.str()});
      op.drift = driftIf(owned && v != nullptr, "uplink was deleted outside edgeplane");
      dep(op, indexOf(nsOps_, ns));
      dep(op, hostSysctlOp_);
      uplinkOps_[ns] = add(std::move(op));
      return;
    }
    Op op = makeOp(Action::Update, Kind::Uplink, ns, ns);
    if (hl->addresses != std::vector<IpPrefix>{u.hostAddress}) {
      op.changes.push_back({"host_address", prefixes(hl->addresses), u.hostAddress.str()});
    }
    if (nl->addresses != std::vector<IpPrefix>{u.nsAddress}) {
      op.changes.push_back({"namespace_address", prefixes(nl->addresses), u.nsAddress.str()});
    }
    if (!hl->up || !nl->up) {
      op.changes.push_back({"state", "down", "up"});
    }
    auto def = std::find_if(v->routes.begin(), v->routes.end(), [](const RouteView& r) {
      return r.owned && r.destination.length == 0;
    });
    if (def == v->routes.end() || def->via != u.hostAddress.address) {
      op.changes.push_back({"default_route",
                            def == v->routes.end() ? "none" : "via " + def->via->str(),
                            "via " + u.hostAddress.address.str()});
    }
    if (!v->ipForward) {
      op.changes.push_back({"ip_forward", "0", "1"});
    }
    if (!op.changes.empty()) {
      op.drift = driftIf(owned, "uplink changed outside edgeplane");
      dep(op, hostSysctlOp_);
      uplinkOps_[ns] = add(std::move(op));
    }
  }

  void planRoutes(const std::string& ns) {
    const NetnsView* v = view(ns);
    for (const auto& rt : t_.routes) {
      if (rt.ns != ns) {
        continue;
      }
      const std::string name = ns + " " + rt.destination.str();
      const RouteView* seen = nullptr;
      if (v != nullptr) {
        for (const auto& r : v->routes) {
          if (r.owned && r.destination == rt.destination) {
            seen = &r;
          }
        }
      }
      if (seen != nullptr && seen->via == rt.via) {
        continue;
      }
      Op op = makeOp(seen == nullptr ? Action::Create : Action::Update, Kind::Route, name, ns);
      op.changes.push_back(
          {"via", seen == nullptr || !seen->via ? "" : seen->via->str(), rt.via.str()});
      op.drift = driftIf(s_.appliedAs("route", name, rt.via.str()) && v != nullptr,
                         seen == nullptr ? "route was deleted outside edgeplane"
                                         : "route changed outside edgeplane");
      dep(op, indexOf(nsOps_, ns));
      dep(op, indexOf(uplinkOps_, ns));
      dep(op, indexOf(wgOps_, ns));
      add(std::move(op));
    }
  }

  static std::string joinPrefixes(const std::vector<IpPrefix>& v) {
    std::string out;
    for (const auto& p : v) {
      out += (out.empty() ? "" : ", ") + p.str();
    }
    return out.empty() ? "none" : out;
  }

  // The namespace's WireGuard interface, then its peers one by one (like `wg syncconf`: an
  // unchanged peer gets no op, so its session survives).
  void planWireGuard(const std::string& ns) {
    const NetnsView* v = view(ns);
    auto it = t_.wireguard.find(ns);
    if (it == t_.wireguard.end()) {
      if (v != nullptr && (v->wireguard || v->link(wgLinkName(ns)) != nullptr) &&
          s_.owns("wireguard", ns)) {
        Op op = makeOp(Action::Delete, Kind::WireGuard, ns, ns);
        op.changes.push_back({"interface", wgLinkName(ns), ""});
        add(std::move(op));
      }
      return;
    }
    const WireGuardTarget& wt = it->second;
    const bool owned = s_.owns("wireguard", ns);
    const LinkView* link = v != nullptr ? v->link(wt.ifname) : nullptr;
    const std::optional<WireGuardView> seen =
        v != nullptr && link != nullptr ? v->wireguard : std::nullopt;
    const std::optional<WgKey> stored = v != nullptr ? v->storedPublicKey : std::nullopt;
    // A key file that exists but cannot be read is never replaced on edgeplane's own: a new
    // key would change the public key every peer knows.
    const bool keyUnusable = v != nullptr && !v->keyError.empty() && !wt.rotateKey;
    const bool keyLost = owned && !stored && !wt.rotateKey && !keyUnusable;
    const std::string keyLostNote =
        "the private key file is missing: the public key peers know would change; apply "
        "refuses until it is restored or --rotate-key " +
        ns + " is given";

    Op op = makeOp(seen ? Action::Update : Action::Create, Kind::WireGuard, ns, ns);
    if (!seen) {
      op.changes.push_back({"interface", "", wt.ifname});
      op.changes.push_back({"listen_port", "", std::to_string(wt.listenPort)});
      op.changes.push_back({"address", "", joinPrefixes(wt.addresses)});
      op.changes.push_back({"public_key", "",
                            keyUnusable               ? "(the key file is unusable)"
                            : stored && !wt.rotateKey ? stored->base64()
                                                      : "(generated on apply)"});
      if (owned && v != nullptr) {
        op.drift = "interface missing (wireguard-go not running?)";
      }
    } else {
      if (seen->listenPort != wt.listenPort) {
        op.changes.push_back(
            {"listen_port", std::to_string(seen->listenPort), std::to_string(wt.listenPort)});
      }
      std::vector<IpPrefix> addrs = link->addresses;
      std::sort(addrs.begin(), addrs.end());
      if (addrs != wt.addresses) {
        op.changes.push_back({"address", joinPrefixes(addrs), joinPrefixes(wt.addresses)});
      }
      if (!link->up) {
        op.changes.push_back({"state", "down", "up"});
      }
      if (wt.rotateKey) {
        op.changes.push_back({"public_key", seen->publicKey ? seen->publicKey->base64() : "",
                              "(new key, generated on apply)"});
      } else if (stored && seen->publicKey != stored) {
        op.changes.push_back(
            {"public_key", seen->publicKey ? seen->publicKey->base64() : "", stored->base64()});
      }
      if (!op.changes.empty() && s_.appliedAs("wireguard", ns, wt.describe())) {
        op.drift = "interface changed outside edgeplane";
      }
    }
    if (keyLost) {
      op.changes.push_back({"private_key", "missing", "(refused)"});
      op.drift = op.drift.empty() ? keyLostNote : op.drift + "; " + keyLostNote;
    }
    if (keyUnusable) {
      op.error = v->keyError +
                 "; the namespace's WireGuard is left as it is: repair the file, or "
                 "replace the key with --rotate-key " +
                 ns + " (peers must then learn the new public key)";
    }
    if (!seen || !op.changes.empty() || keyUnusable) {
      dep(op, indexOf(nsOps_, ns));
      wgOps_[ns] = add(std::move(op));
    }
    planPeers(wt, seen);
  }

  // Both sides have a preshared key and both values are known, and they differ.
  static bool pskChanged(const PeerView& pv, const PeerTarget& p) {
    return pv.hasPsk && p.pskFile && pv.presharedKey && p.presharedKey &&
           *pv.presharedKey != *p.presharedKey;
  }

  // The preshared key's change, never the key: set, removed or changed. Without both values
  // (an offline plan, an observation read from JSON) only whether one is set is compared.
  static std::optional<FieldChange> pskChange(const PeerView& pv, const PeerTarget& p) {
    if (!pv.hasPsk && p.pskFile) {
      return FieldChange{"preshared_key", "", "set"};
    }
    if (pv.hasPsk && !p.pskFile) {
      return FieldChange{"preshared_key", "set", ""};
    }
    if (pskChanged(pv, p)) {
      return FieldChange{"preshared_key", "set", "changed"};
    }
    return std::nullopt;
  }

  void planPeers(const WireGuardTarget& wt, const std::optional<WireGuardView>& seen) {
    const std::string& ns = wt.ns;
    std::map<WgKey, const PeerView*> observed;
    if (seen) {
      for (const auto& p : seen->peers) {
        observed[p.publicKey] = &p;
      }
    }
    std::map<WgKey, std::string> desiredNames;
    for (const auto& p : wt.peers) {
      desiredNames[p.publicKey] = p.name;
      const std::string name = ns + "/" + p.name;
      auto o = observed.find(p.publicKey);
      Op op = makeOp(Action::Update, Kind::Peer, name, ns);
      if (o == observed.end()) {
        op.action = Action::Create;
        op.changes.push_back({"public_key", "", p.publicKey.base64()});
        op.changes.push_back({"allowed_ips", "", joinPrefixes(p.allowedIps)});
        if (p.endpoint) {
          op.changes.push_back({"endpoint", "", p.endpoint->str()});
        }
        if (p.keepalive) {
          op.changes.push_back({"persistent_keepalive", "", std::to_string(*p.keepalive)});
        }
        if (p.pskFile) {
          op.changes.push_back({"preshared_key", "", "set"});
        }
        if (seen && s_.appliedAs("peer", name, p.describe())) {
          op.drift = "peer was removed outside edgeplane";
        }
      } else {
        const PeerView& pv = *o->second;
        if (pv.allowedIps != p.allowedIps) {
          op.changes.push_back(
              {"allowed_ips", joinPrefixes(pv.allowedIps), joinPrefixes(p.allowedIps)});
        }
        // A configured IP endpoint is enforced; a DNS one is resolved by the driver, and an
        // unset one lets the peer roam (as `wg syncconf` does).
        if (p.endpoint && IpAddress::parse(p.endpoint->host)) {
          const std::string want =
              Endpoint{*IpAddress::parse(p.endpoint->host), p.endpoint->port}.str();
          const std::string have = pv.endpoint ? pv.endpoint->str() : "";
          if (have != want) {
            op.changes.push_back({"endpoint", have, want});
          }
        }
        if (pv.keepalive.value_or(0) != p.keepalive.value_or(0)) {
          op.changes.push_back({"persistent_keepalive",
                                pv.keepalive ? std::to_string(*pv.keepalive) : "",
                                p.keepalive ? std::to_string(*p.keepalive) : ""});
        }
        const bool keyChangedOnly = op.changes.empty() && pskChanged(pv, p);
        if (auto c = pskChange(pv, p)) {
          op.changes.push_back(*c);
        }
        if (op.changes.empty()) {
          continue;
        }
        // A new key in the same file is the operator's change, not drift.
        if (!keyChangedOnly && s_.appliedAs("peer", name, p.describe())) {
          op.drift = "peer changed outside edgeplane";
        }
      }
      dep(op, indexOf(nsOps_, ns));
      dep(op, indexOf(wgOps_, ns));
      add(std::move(op));
    }
    for (const auto& [key, pv] : observed) {
      if (desiredNames.count(key) != 0) {
        continue;
      }
      Op op = makeOp(Action::Delete, Kind::Peer, ns + "/" + key.base64(), ns);
      op.changes.push_back({"allowed_ips", joinPrefixes(pv->allowedIps), ""});
      dep(op, indexOf(wgOps_, ns));
      add(std::move(op));
    }
  }

  void planTable(const std::string& scope, const std::optional<NftTableView>& seen,
                 bool parentCreated, size_t parentOp) {
    const std::string name = scope.empty() ? "host" : scope;
    const NftTableView want = scope.empty() ? t_.hostTable() : t_.namespaceTable(scope);
    if (seen && seen->intact) {
      return;
    }
    Op op = makeOp(seen ? Action::Update : Action::Create, Kind::NftTable, name, scope);
    if (seen) {
      op.changes.push_back({"chains", "altered", "rebuilt"});
      op.drift = "table " + std::string(kTableName) + " was changed outside edgeplane";
    } else {
      op.changes.push_back({"table", "", "ip " + std::string(kTableName)});
      op.changes.push_back({"mappings", "", std::to_string(want.mappings.size())});
      op.drift = driftIf(s_.owns("nftables", name) && !parentCreated,
                         "table " + std::string(kTableName) + " was deleted outside edgeplane");
    }
    dep(op, parentOp);
    tableOps_[scope] = add(std::move(op));
  }

  void planTables() {
    if (!t_.namespaces.empty()) {
      planTable("", o_.host.table, false, kNone);
    } else if (o_.host.table) {
      Op op = makeOp(Action::Delete, Kind::NftTable, "host", "");
      op.changes.push_back({"table", "ip " + std::string(kTableName), ""});
      add(std::move(op));
    }
    for (const auto& ns : t_.namespaces) {
      if (unobservable(ns)) {
        continue;
      }
      const NetnsView* v = view(ns);
      size_t nsOp = indexOf(nsOps_, ns);
      planTable(ns, v != nullptr ? v->table : std::nullopt, nsOp != kNone, nsOp);
    }
  }

  void planForwards() {
    std::map<std::string, const PortMapping*> hostSeen;
    if (o_.host.table) {
      for (const auto& m : o_.host.table->mappings) {
        hostSeen[std::string(toString(m.protocol)) + "/" + m.port.str()] = &m;
      }
    }
    for (const auto& f : t_.forwards) {
      const UplinkTarget& u = t_.uplinks.at(f.ns);
      auto it = hostSeen.find(f.key());
      if (it != hostSeen.end() && it->second->address == u.nsAddress.address &&
          unobservable(f.ns)) {
        continue;  // held: what its namespace maps it to cannot be seen
      }
      Op op = makeOp(Action::Update, Kind::Forward, f.name, f.ns);
      if (it == hostSeen.end()) {
        op.action = Action::Create;
        op.changes.push_back({"protocol", "", std::string(toString(f.protocol))});
        op.changes.push_back({"public_port", "", f.publicPort.str()});
        op.changes.push_back({"namespace", "", f.ns});
        op.changes.push_back({"target", "", f.target.str()});
        op.drift = driftIf(s_.appliedAs("forward", f.name, f.describe()),
                           "forward was removed outside edgeplane");
      } else {
        std::string seenNs = observedNsOf(it->second->address);
        if (it->second->address != u.nsAddress.address) {
          op.changes.push_back({"namespace", seenNs, f.ns});
          touchedTables_.insert(seenNs);
          dep(op, unobservable(seenNs) ? indexOf(nsOps_, seenNs) : kNone);  // held there
        }
        std::string seenTarget = observedTarget(seenNs, f);
        if (seenTarget != f.target.str()) {
          op.changes.push_back({"target", seenTarget, f.target.str()});
        }
        if (op.changes.empty()) {
          continue;
        }
        // Applied exactly like this before: the config did not change, the host did.
        op.drift = driftIf(s_.appliedAs("forward", f.name, f.describe()),
                           "forward changed outside edgeplane");
      }
      touchedTables_.insert("");
      touchedTables_.insert(f.ns);
      dep(op, indexOf(nsOps_, f.ns));
      dep(op, indexOf(uplinkOps_, f.ns));
      dep(op, indexOf(tableOps_, ""));
      dep(op, indexOf(tableOps_, f.ns));
      add(std::move(op));
    }
  }

  // How the forward's ports are mapped inside namespace `ns` now, as "addr:port" of the first
  // port ("missing" if not, "inconsistent" if the range's ports disagree).
  std::string observedTarget(const std::string& ns, const ForwardTarget& f) {
    const auto* index = nsIndex(ns);
    if (index == nullptr) {
      return "missing";
    }
    std::optional<Endpoint> first;
    for (uint32_t p = f.publicPort.first; p <= f.publicPort.last; ++p) {
      auto it = index->find({f.protocol, static_cast<uint16_t>(p)});
      if (it == index->end()) {
        return first ? "inconsistent" : "missing";
      }
      Endpoint e{it->second->address,
                 static_cast<uint16_t>(*it->second->targetPort - (p - f.publicPort.first))};
      if (!first) {
        first = e;
      } else if (*first != e) {
        return "inconsistent";
      }
    }
    return first ? first->str() : "missing";
  }

  // (protocol, port) -> mapping of a namespace's observed table, built once per namespace.
  using PortIndex = std::map<std::pair<Protocol, uint16_t>, const PortMapping*>;
  const PortIndex* nsIndex(const std::string& ns) {
    auto cached = portIndex_.find(ns);
    if (cached != portIndex_.end()) {
      return &cached->second;
    }
    const NetnsView* v = view(ns);
    if (v == nullptr || !v->table) {
      return nullptr;
    }
    PortIndex& index = portIndex_[ns];
    for (const auto& m : v->table->mappings) {
      if (m.targetPort && m.port.first == m.port.last) {
        index.emplace(std::make_pair(m.protocol, m.port.first), &m);
      }
    }
    return &index;
  }

  // A table whose elements differ from the target although no forward op explains it (an
  // element added or removed by hand) gets an op of its own, so plan and apply agree.
  void planTableElementDrift() {
    auto check = [&](const std::string& scope, const std::optional<NftTableView>& seen) {
      if (!seen || !seen->intact || touchedTables_.count(scope) != 0) {
        return;
      }
      const NftTableView want = scope.empty() ? p_.hostTable() : t_.namespaceTable(scope);
      std::vector<PortMapping> seenSorted = seen->mappings;
      std::sort(seenSorted.begin(), seenSorted.end());  // the target's list is sorted already
      if (seenSorted == want.mappings) {
        return;
      }
      Op op = makeOp(Action::Update, Kind::NftTable, scope.empty() ? "host" : scope, scope);
      std::vector<PortMapping> extra;
      std::vector<PortMapping> missing;
      std::set_difference(seenSorted.begin(), seenSorted.end(), want.mappings.begin(),
                          want.mappings.end(), std::back_inserter(extra));
      std::set_difference(want.mappings.begin(), want.mappings.end(), seenSorted.begin(),
                          seenSorted.end(), std::back_inserter(missing));
      op.changes.push_back({"unexpected_elements", std::to_string(extra.size()), "0"});
      op.changes.push_back({"missing_elements", std::to_string(missing.size()), "0"});
      op.drift = "map elements changed outside edgeplane";
      add(std::move(op));
    };
    if (!t_.namespaces.empty()) {
      check("", o_.host.table);
    }
    for (const auto& ns : t_.namespaces) {
      const NetnsView* v = view(ns);
      if (v != nullptr && !unobservable(ns)) {
        check(ns, v->table);
      }
    }
  }

  const Target& t_;
  const HostState& o_;
  const StoreView& s_;
  Plan& p_;
  std::map<IpAddress, std::string> nsByAddress_;
  std::map<std::string, size_t, std::less<>> nsOps_;
  std::map<std::string, size_t, std::less<>> uplinkOps_;
  std::map<std::string, size_t, std::less<>> wgOps_;
  std::map<std::string, size_t, std::less<>> tableOps_;
  std::set<std::string, std::less<>> touchedTables_;  // scopes whose elements an op changes
  std::map<std::string, PortIndex, std::less<>> portIndex_;
  size_t hostSysctlOp_ = kNone;
};

}  // namespace

Plan plan(const Target& target, const HostState& observed, const StoreView& store) {
  Plan p;
  p.host = target.host;
  p.target = target;
  Planner(target, observed, store, p).run();
  planProxy(target, observed, store, p);
  std::sort(p.foreign.begin(), p.foreign.end());
  return p;
}

}  // namespace edgeplane::core
