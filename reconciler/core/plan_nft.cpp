// The planner's nftables steps: the tables, the forwards (map elements), their deletes and the
// element drift no forward explains (planner.h).
#include "reconciler/core/planner.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <tuple>

namespace edgeplane::core::planner {

namespace {

using PortKey = std::pair<Protocol, PortRange>;

// The mapping of (protocol, ports) in `sorted`, if any: a map's keys are unique.
const PortMapping* find(const std::vector<PortMapping>& sorted, Protocol protocol,
                        const PortRange& ports) {
  auto it = std::lower_bound(sorted.begin(), sorted.end(), PortKey{protocol, ports},
                             [](const PortMapping& m, const PortKey& k) {
                               return std::tie(m.protocol, m.port) < std::tie(k.first, k.second);
                             });
  return it != sorted.end() && it->protocol == protocol && it->port == ports ? &*it : nullptr;
}

}  // namespace

const std::vector<PortMapping>* Planner::sortedMappings(const std::string& scope) {
  if (auto known = sorted_.find(scope); known != sorted_.end()) {
    return known->second;
  }
  const NetnsView* v = scope.empty() ? &o_.host : view(scope);
  const std::vector<PortMapping>* out = nullptr;
  if (v != nullptr && v->table) {
    out = &v->table->mappings;
    if (!std::is_sorted(out->begin(), out->end())) {
      std::vector<PortMapping>& copy = sortedCopies_[scope];
      copy = *out;
      std::sort(copy.begin(), copy.end());
      out = &copy;
    }
  }
  sorted_[scope] = out;
  return out;
}

void Planner::planForwardDeletes() {
  if (!o_.host.table) {
    return;
  }
  std::vector<PortKey> desired;
  desired.reserve(t_.forwards.size());
  for (const auto& f : t_.forwards) {
    desired.emplace_back(f.protocol, f.publicPort);
  }
  std::sort(desired.begin(), desired.end());
  for (const auto& m : o_.host.table->mappings) {
    if (std::binary_search(desired.begin(), desired.end(), PortKey{m.protocol, m.port})) {
      continue;
    }
    std::string key = std::string(toString(m.protocol)) + "/" + m.port.str();
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
  if (auto seen = observedNsByAddress_.find(addr); seen != observedNsByAddress_.end()) {
    return seen->second;
  }
  auto it = nsByAddress_.find(addr);
  return it != nsByAddress_.end() ? it->second : addr.str();
}

void Planner::planTable(const std::string& scope, const std::optional<NftTableView>& seen,
                        bool parentCreated, size_t parentOp) {
  if (seen && seen->intact) {
    return;
  }
  const std::string name = scope.empty() ? "host" : scope;
  const NftTableView want = scope.empty() ? t_.hostTable() : t_.namespaceTable(scope);
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
  const std::vector<PortMapping>* host = sortedMappings("");
  for (const auto& f : t_.forwards) {
    const UplinkTarget& u = t_.uplinks.at(f.ns);
    const PortMapping* onHost = host != nullptr ? find(*host, f.protocol, f.publicPort) : nullptr;
    if (onHost != nullptr && onHost->address == u.nsAddress.address && unobservable(f.ns)) {
      continue;  // held: what its namespace maps it to cannot be seen
    }
    if (onHost != nullptr && onHost->address == u.nsAddress.address &&
        observedNsOf(onHost->address) == f.ns && observedTarget(f.ns, f).endpoint == f.target) {
      continue;  // as desired: no op (the common case, decided without building its changes)
    }
    Op op = makeOp(Action::Update, Kind::Forward, f.name, f.ns);
    if (onHost == nullptr) {
      op.action = Action::Create;
      op.changes.push_back({"protocol", "", std::string(toString(f.protocol))});
      op.changes.push_back({"public_port", "", f.publicPort.str()});
      op.changes.push_back({"namespace", "", f.ns});
      op.changes.push_back({"target", "", f.target.str()});
      op.drift = driftIf(s_.appliedAs("forward", f.name, f.describe()),
                         "forward was removed outside edgeplane");
    } else {
      std::string seenNs = observedNsOf(onHost->address);
      if (onHost->address != u.nsAddress.address) {
        op.changes.push_back({"namespace", seenNs, f.ns});
        touchedTables_.insert(seenNs);
        dep(op, unobservable(seenNs) ? indexOf(nsOps_, seenNs) : kNone);  // held there
      }
      const SeenTarget seenTarget = observedTarget(seenNs, f);
      if (seenTarget.endpoint != f.target) {
        op.changes.push_back({"target", seenTarget.str(), f.target.str()});
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

// How the forward's ports are mapped inside namespace `ns` now.
Planner::SeenTarget Planner::observedTarget(const std::string& ns, const ForwardTarget& f) {
  SeenTarget seen;
  const std::vector<PortMapping>* mappings = sortedMappings(ns);
  if (mappings == nullptr) {
    return seen;
  }
  for (uint32_t p = f.publicPort.first; p <= f.publicPort.last; ++p) {
    const auto port = static_cast<uint16_t>(p);
    const PortMapping* m = find(*mappings, f.protocol, PortRange{port, port});
    if (m == nullptr || !m->targetPort) {
      return seen.endpoint ? SeenTarget{std::nullopt, "inconsistent"} : SeenTarget{};
    }
    Endpoint e{m->address, static_cast<uint16_t>(*m->targetPort - (p - f.publicPort.first))};
    if (!seen.endpoint) {
      seen.endpoint = e;
    } else if (*seen.endpoint != e) {
      return SeenTarget{std::nullopt, "inconsistent"};
    }
  }
  return seen;
}

// A table whose elements differ from the target although no forward op explains it (an
// element added or removed by hand) gets an op of its own, so plan and apply agree.
void Planner::planTableElementDrift() {
  auto check = [&](const std::string& scope, const std::optional<NftTableView>& seen) {
    if (!seen || !seen->intact || touchedTables_.count(scope) != 0) {
      return;
    }
    const NftTableView want = scope.empty() ? p_.hostTable() : t_.namespaceTable(scope);
    const std::vector<PortMapping>& seenSorted = *sortedMappings(scope);
    if (seenSorted == want.mappings) {  // the target's list is sorted already
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
