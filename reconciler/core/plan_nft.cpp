// The planner's nftables steps: the tables, the forwards (map elements), their deletes and the
// element drift no forward explains (planner.h).
#include "reconciler/core/planner.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>

namespace edgeplane::core::planner {

void Planner::planForwardDeletes() {
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
std::string Planner::observedNsOf(const IpAddress& addr) const {
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

void Planner::planTable(const std::string& scope, const std::optional<NftTableView>& seen,
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

void Planner::planTables() {
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

void Planner::planForwards() {
  std::map<std::string, const PortMapping*> hostSeen;
  if (o_.host.table) {
    for (const auto& m : o_.host.table->mappings) {
      hostSeen[std::string(toString(m.protocol)) + "/" + m.port.str()] = &m;
    }
  }
  for (const auto& f : t_.forwards) {
    const UplinkTarget& u = t_.uplinks.at(f.ns);
    auto it = hostSeen.find(f.key());
    if (it != hostSeen.end() && it->second->address == u.nsAddress.address && unobservable(f.ns)) {
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
std::string Planner::observedTarget(const std::string& ns, const ForwardTarget& f) {
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

const Planner::PortIndex* Planner::nsIndex(const std::string& ns) {
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
void Planner::planTableElementDrift() {
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

}  // namespace edgeplane::core::planner
