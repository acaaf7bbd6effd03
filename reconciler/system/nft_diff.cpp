// The nftables diff (observed vs desired table), its batch, and a dumped table interpreted.
#include "reconciler/system/nft_diff.h"

#include <algorithm>
#include <iterator>
#include <string>
#include <vector>

#include "reconciler/system/nft_ruleset.h"

namespace edgeplane::sys {

std::string_view toString(NftChange::Kind kind) {
  switch (kind) {
    case NftChange::Kind::None:
      return "none";
    case NftChange::Kind::Elements:
      return "elements";
    case NftChange::Kind::CreateTable:
      return "create-table";
    case NftChange::Kind::ReplaceTable:
      return "replace-table";
    case NftChange::Kind::DeleteTable:
      return "delete-table";
  }
  return "?";
}

namespace {

NftElementDelta diffElements(std::vector<NftMapping> observed, std::vector<NftMapping> desired) {
  std::sort(observed.begin(), observed.end());
  observed.erase(std::unique(observed.begin(), observed.end()), observed.end());
  std::sort(desired.begin(), desired.end());
  desired.erase(std::unique(desired.begin(), desired.end()), desired.end());
  NftElementDelta delta;
  std::set_difference(observed.begin(), observed.end(), desired.begin(), desired.end(),
                      std::back_inserter(delta.remove));
  std::set_difference(desired.begin(), desired.end(), observed.begin(), observed.end(),
                      std::back_inserter(delta.add));
  return delta;
}

}  // namespace

NftChange diffTable(const std::optional<NftTableState>& observed,
                    const std::optional<NftTableState>& desired) {
  NftChange change;
  if (!observed && !desired) {
    return change;
  }
  if (!observed) {
    change.kind = NftChange::Kind::CreateTable;
    return change;
  }
  if (!desired) {
    change.kind = NftChange::Kind::DeleteTable;
    return change;
  }
  if (!observed->intact || observed->role != desired->role) {
    change.kind = NftChange::Kind::ReplaceTable;
    return change;
  }
  change.tcp = diffElements(observed->tcp, desired->tcp);
  change.udp = diffElements(observed->udp, desired->udp);
  if (!change.tcp.empty() || !change.udp.empty()) {
    change.kind = NftChange::Kind::Elements;
  }
  return change;
}

Result<NftBatch> buildChange(const NftChange& change, const std::optional<NftTableState>& desired) {
  switch (change.kind) {
    case NftChange::Kind::None:
      return NftBatch{};
    case NftChange::Kind::DeleteTable:
      return buildDeleteTable();
    case NftChange::Kind::Elements:
      if (!desired) {
        return terminal("nft: element changes need the desired table");
      }
      return buildElementChanges(desired->role, change.tcp, change.udp);
    case NftChange::Kind::CreateTable:
    case NftChange::Kind::ReplaceTable:
      if (!desired) {
        return terminal("nft: creating the table needs the desired table");
      }
      return buildReplaceTable(*desired);
  }
  return terminal("nft: unknown change");
}

// ---- Interpreting what the kernel returned ----

namespace nft_detail {
namespace {

// The dumped table's skeleton, described as skeletonOf() describes a role's.
Skeleton skeletonOfDump(const ObservedTable& t) {
  Skeleton s;
  for (const ObservedMap& m : t.maps) {
    s.maps.push_back(describeMap(m.name, m.flags, m.keyType, m.keyLen, m.dataType, m.dataLen));
  }
  for (const ObservedChain& c : t.chains) {
    s.chains.push_back(describeChain(c.name, c.type, c.hook, c.prio, c.policy));
  }
  for (const ObservedRule& r : t.rules) {
    s.rules.emplace_back(r.chain, r.description);
  }
  normalise(s);
  return s;
}

const ObservedMap* findMap(const ObservedTable& t, const std::string& name) {
  const ObservedMap* found = nullptr;
  for (const ObservedMap& m : t.maps) {
    if (m.name == name) {
      found = &m;
    }
  }
  return found;
}

std::vector<NftMapping> sortedMappings(NftRole role, const ObservedMap* map) {
  std::vector<NftMapping> out;
  if (map != nullptr) {
    out = decodeMappings(role, *map);
    std::sort(out.begin(), out.end());
  }
  return out;
}

// Each of our counting rules takes the counter of the first unclaimed observed rule in the
// same chain that looks exactly like it.
NftCounters claimCounters(NftRole role, const std::vector<ObservedRule>& rules) {
  NftCounters counters;
  std::vector<bool> claimed(rules.size(), false);
  for (const RuleDef& def : ruleDefs(role)) {
    if (def.counter == nullptr) {
      continue;
    }
    const std::string want = describeExprs(def.exprs);
    for (size_t i = 0; i < rules.size(); ++i) {
      const ObservedRule& r = rules[i];
      if (!claimed[i] && r.chain == def.chain && r.description == want && r.counter) {
        claimed[i] = true;
        (counters.*def.counter) = *r.counter;
        break;
      }
    }
  }
  return counters;
}

}  // namespace

NftTableState interpret(const ObservedTable& t) {
  NftTableState state;
  state.intact = false;
  const ObservedMap* tcp = findMap(t, mapName(Protocol::Tcp));
  const ObservedMap* udp = findMap(t, mapName(Protocol::Udp));
  const Skeleton seen = skeletonOfDump(t);
  state.role = tcp != nullptr && tcp->dataLen == 8 ? NftRole::Namespace : NftRole::Host;
  for (NftRole role : {NftRole::Host, NftRole::Namespace}) {
    if (t.flags == 0 && skeletonOf(role) == seen) {
      state.role = role;
      state.intact = true;
    }
  }
  state.tcp = sortedMappings(state.role, tcp);
  state.udp = sortedMappings(state.role, udp);
  state.counters = claimCounters(state.role, t.rules);
  return state;
}

}  // namespace nft_detail
}  // namespace edgeplane::sys
