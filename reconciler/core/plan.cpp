// The planner: compares the target with the observed host and emits ordered, typed ops. This file:
// the entry point, namespaces, the host sysctl, uplinks, routes and pruning (planner.h).
#include "reconciler/core/plan.h"
#include "reconciler/core/planner.h"

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

namespace planner {

Op makeOp(Action action, Kind kind, std::string name, std::string scope) {
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

void Planner::run() {
  // Whose uplink holds an address: as observed first (the first namespace, in name order, with
  // it on an epn- link), then as the target allocates them.
  for (const auto& [netns, v] : o_.namespaces) {
    for (const auto& l : v.links) {
      if (l.name.rfind(kNsLinkPrefix, 0) != 0) {
        continue;
      }
      for (const auto& a : l.addresses) {
        observedNsByAddress_.emplace(a.address, l.name.substr(kNsLinkPrefix.size()));
      }
    }
  }
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

// The host mappings into desired namespaces that cannot be observed stay as they are.
void Planner::holdUnobservable() {
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

void Planner::planRouteDeletes() {
  for (const auto& ns : t_.namespaces) {
    const NetnsView* v = view(ns);
    if (v == nullptr) {
      continue;
    }
    for (const auto& r : v->routes) {
      if (!r.owned) {
        if (r.protocol != "kernel") {
          p_.foreign.push_back("route " + r.destination.str() +
                               (r.via ? " via " + r.via->str() : std::string()) + " in namespace " +
                               ns + " (proto " + r.protocol + ")");
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

void Planner::planPrune() {
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

void Planner::planNamespace(const std::string& ns) {
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
  op.drift = driftIf(s_.appliedAs("namespace", ns, ""), "namespace was deleted outside edgeplane");
  nsOps_[ns] = add(std::move(op));
}

// Routing into the namespaces needs the host's ip_forward on. With no namespace left it is
// turned off again only when edgeplane turned it on (the store says so): a host that had it
// on before edgeplane, for Docker or a VPN, keeps it.
void Planner::planHostSysctl() {
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

void Planner::planUplink(const std::string& ns) {
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
  auto def = std::find_if(v->routes.begin(), v->routes.end(),
                          [](const RouteView& r) { return r.owned && r.destination.length == 0; });
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

void Planner::planRoutes(const std::string& ns) {
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

}  // namespace planner

Plan plan(const Target& target, const HostState& observed, const StoreView& store) {
  Plan p;
  p.host = target.host;
  p.target = target;
  planner::Planner(target, observed, store, p).run();
  planProxy(target, observed, store, p);
  std::sort(p.foreign.begin(), p.foreign.end());
  return p;
}

}  // namespace edgeplane::core
