// The planner behind plan() (plan.h), one class whose steps live in three files by concern:
// plan.cpp (namespaces, the host sysctl, uplinks, routes, pruning), plan_wireguard.cpp (the
// interface and its peers) and plan_nft.cpp (tables and forwards). Pure. Not a public interface.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "reconciler/core/plan.h"

namespace edgeplane::core::planner {

inline constexpr size_t kNone = static_cast<size_t>(-1);

Op makeOp(Action action, Kind kind, std::string name, std::string scope = "");

// "a, b" for a list of prefixes, "none" for an empty one.
std::string prefixes(const std::vector<IpPrefix>& v);

class Planner {
 public:
  Planner(const Target& t, const HostState& o, const StoreView& s, Plan& p)
      : t_(t), o_(o), s_(s), p_(p) {}
  void run();

 private:
  // What a forward's ports are mapped to in a namespace now: the first port's endpoint, or why
  // there is none ("missing": a port is not mapped; "inconsistent": the range's ports disagree).
  struct SeenTarget {
    std::optional<Endpoint> endpoint;
    const char* problem = "missing";
    std::string str() const { return endpoint ? endpoint->str() : problem; }
  };

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

  bool desiredNs(std::string_view ns) const {
    return std::find(t_.namespaces.begin(), t_.namespaces.end(), ns) != t_.namespaces.end();
  }

  std::string driftIf(bool owned, std::string what) const { return owned ? what : std::string(); }

  // plan.cpp
  void holdUnobservable();
  void planRouteDeletes();
  void planPrune();
  void planNamespace(const std::string& ns);
  void planHostSysctl();
  void planUplink(const std::string& ns);
  void planRoutes(const std::string& ns);

  // plan_wireguard.cpp
  void planWireGuard(const std::string& ns);
  void planPeers(const WireGuardTarget& wt, const std::optional<WireGuardView>& seen);

  // plan_nft.cpp
  void planForwardDeletes();
  std::string observedNsOf(const IpAddress& addr) const;
  void planTable(const std::string& scope, const std::optional<NftTableView>& seen,
                 bool parentCreated, size_t parentOp);
  void planTables();
  void planForwards();
  SeenTarget observedTarget(const std::string& ns, const ForwardTarget& f);
  // The observed mappings of a scope's table in their sorted order (the view's own when it is
  // sorted, as observed tables are; a sorted copy otherwise); nullptr without a table.
  const std::vector<PortMapping>* sortedMappings(const std::string& scope);
  void planTableElementDrift();

  const Target& t_;
  const HostState& o_;
  const StoreView& s_;
  Plan& p_;
  std::map<IpAddress, std::string> nsByAddress_;
  std::map<IpAddress, std::string> observedNsByAddress_;
  std::map<std::string, size_t, std::less<>> nsOps_;
  std::map<std::string, size_t, std::less<>> uplinkOps_;
  std::map<std::string, size_t, std::less<>> wgOps_;
  std::map<std::string, size_t, std::less<>> tableOps_;
  std::set<std::string, std::less<>> touchedTables_;  // scopes whose elements an op changes
  std::map<std::string, const std::vector<PortMapping>*, std::less<>> sorted_;
  std::map<std::string, std::vector<PortMapping>, std::less<>> sortedCopies_;
  size_t hostSysctlOp_ = kNone;
};

}  // namespace edgeplane::core::planner
