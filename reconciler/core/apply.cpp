// The executor: runs a Plan's ops in order, failing dependents of failed ops only.
#include "reconciler/core/apply.h"

#include <algorithm>
#include <map>
#include <set>

namespace edgeplane::core {

size_t ApplyResult::failed() const {
  return static_cast<size_t>(
      std::count_if(ops.begin(), ops.end(), [](const OpResult& r) { return !r.ok; }));
}

namespace {

std::string describe(const Op& op) {
  return std::string(toString(op.kind)) + " " + op.name;
}

class Executor {
 public:
  Executor(const Plan& p, HostDriver& d, CertDriver* c, const BeforeStep& before)
      : p_(p), d_(d), c_(c), before_(before) {
    r_.ops.resize(p.ops.size());
  }

  ApplyResult run() {
    // Pass 1: everything but nftables, in plan order.
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      const Op& op = p_.ops[i];
      if (op.kind == Kind::Forward || op.kind == Kind::NftTable) {
        continue;
      }
      if (!depsOk(i)) {
        continue;
      }
      // Known to fail before anything runs (an unobservable namespace, an unusable key file,
      // a "files" certificate that does not parse): the driver is not called.
      finish(i, op.error.empty() ? runOne(op) : Result<void>(terminal(op.error)));
    }
    // Pass 2: one sync per nftables scope, with what could be applied.
    syncTables();
    return std::move(r_);
  }

 private:
  // Table ops run in pass 2, together with the forwards that depend on them, so only
  // dependencies on other kinds are checked here.
  bool depsOk(size_t i) {
    for (size_t d : p_.ops[i].dependsOn) {
      if (d < i && p_.ops[d].kind != Kind::NftTable && !r_.ops[d].ok) {
        r_.ops[i] =
            OpResult{false, "skipped: depends on " + describe(p_.ops[d]) + ", which failed"};
        return false;
      }
    }
    return true;
  }

  void finish(size_t i, const Result<void>& r) {
    r_.ops[i] = r.ok() ? OpResult{true, ""} : OpResult{false, r.error().message};
  }

  // Announces a driver call to the caller's hook (the crash tests).
  void step(const std::string& what) const {
    if (before_) {
      before_(what);
    }
  }

  Result<void> runOne(const Op& op) {
    switch (op.kind) {
      case Kind::Namespace:
        step(describe(op));
        return op.action == Action::Delete ? d_.deleteNamespace(op.name)
                                           : d_.createNamespace(op.name);
      case Kind::Sysctl:
        step(describe(op));
        return d_.setHostForwarding(op.action != Action::Delete);
      case Kind::Uplink:
        step(describe(op));
        if (op.action == Action::Delete) {
          return d_.deleteUplink(op.name);
        }
        return d_.ensureUplink(p_.target.uplinks.at(op.scope));
      case Kind::Route: {
        auto route = std::find_if(
            p_.target.routes.begin(), p_.target.routes.end(), [&](const RouteTarget& rt) {
              return rt.ns == op.scope && op.name == rt.ns + " " + rt.destination.str();
            });
        if (op.action == Action::Delete || route == p_.target.routes.end()) {
          auto dest = IpPrefix::parse(op.name.substr(op.scope.size() + 1));
          if (!dest) {
            return terminal("route op with a malformed name: " + op.name);
          }
          step(describe(op));
          return d_.deleteRoute(op.scope, *dest);
        }
        step(describe(op));
        return d_.replaceRoute(*route);
      }
      case Kind::WireGuard:
        step(describe(op));
        if (op.action == Action::Delete) {
          return d_.deleteWireGuard(op.scope);
        }
        return d_.ensureWireGuard(p_.target.wireguard.at(op.scope));
      case Kind::Peer: {
        // All peers of a namespace go in one sync; every peer op shares its outcome.
        auto done = peerSyncs_.find(op.scope);
        if (done == peerSyncs_.end()) {
          auto wg = p_.target.wireguard.find(op.scope);
          if (wg != p_.target.wireguard.end()) {
            step("peers " + op.scope);
          }
          Result<void> r = wg == p_.target.wireguard.end()
                               ? Result<void>(terminal("no WireGuard target for " + op.scope))
                               : d_.syncPeers(wg->second);
          done = peerSyncs_.emplace(op.scope, r).first;
        }
        return done->second;
      }
      case Kind::Certificate:
        return runCertificate(op);
      case Kind::Site:
      case Kind::Passthrough:
      case Kind::Gateway:
      case Kind::ApiKey:
        return {};  // published with the snapshot after the ops (snapshotAfter)
      case Kind::NftTable:
      case Kind::Forward:
        break;
    }
    return terminal("unexpected op " + describe(op));
  }

  Result<void> runCertificate(const Op& op) {
    if (c_ == nullptr) {
      return terminal("no certificate driver");
    }
    if (op.action == Action::Delete) {
      step(describe(op));
      return c_->remove(op.name);
    }
    const CertTarget* target = p_.target.certificate(op.name);
    if (target == nullptr) {
      return terminal("no certificate target for " + op.name);
    }
    if (target->source == CertSource::Acme && !op.placeholder) {
      return {};  // the certificate in place is served until the order after the snapshot
    }
    step(describe(op));
    auto view = target->generated() ? c_->issue(*target) : c_->read(*target);
    if (!view) {
      return view.error();
    }
    if (!view->error.empty()) {
      return terminal(view->error);
    }
    r_.certificates[op.name] = std::move(*view);
    return {};
  }

  const ForwardTarget* targetForward(const std::string& name) const {
    for (const auto& f : p_.target.forwards) {
      if (f.name == name) {
        return &f;
      }
    }
    return nullptr;
  }

  // The scopes to sync, each with the ops that depend on it: every scope a table or forward op
  // touches. `deleteScopes` gets the scopes whose table op deletes the table.
  std::map<std::string, std::vector<size_t>> scopesToSync(
      std::set<std::string>& deleteScopes) const {
    std::map<std::string, std::vector<size_t>> opsByScope;
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      const Op& op = p_.ops[i];
      if (op.kind == Kind::NftTable) {
        if (op.action == Action::Delete) {
          deleteScopes.insert(op.scope);
        }
        opsByScope[op.scope].push_back(i);
      } else if (op.kind == Kind::Forward) {
        // The host maps the public port to the namespace's uplink: an update that keeps the
        // namespace (a new target) leaves the host's table as it is, and it is not even read.
        const bool movesNamespace =
            std::any_of(op.changes.begin(), op.changes.end(),
                        [](const auto& c) { return c.field == "namespace"; });
        if (op.action != Action::Update || movesNamespace) {
          opsByScope[""].push_back(i);
        }
        opsByScope[op.scope].push_back(i);
        for (const auto& c : op.changes) {
          if (c.field == "namespace" && !c.before.empty()) {
            opsByScope[c.before].push_back(i);  // the namespace it moves away from
          }
        }
      }
    }
    return opsByScope;
  }

  // The names of the forwards that cannot be applied (a dependency failed; depsOk records them
  // as skipped). Their keys keep the old state.
  std::set<std::string> blockedForwards() {
    std::set<std::string> blocked;
    for (size_t i = 0; i < p_.ops.size(); ++i) {
      const Op& op = p_.ops[i];
      if (op.kind == Kind::Forward && !depsOk(i)) {
        blocked.insert(op.name);
      }
    }
    return blocked;
  }

  void syncTables() {
    std::set<std::string> deleteScopes;
    const auto opsByScope = scopesToSync(deleteScopes);
    const std::set<std::string> blocked = blockedForwards();
    for (const auto& entry : opsByScope) {
      const std::string& scope = entry.first;  // clang 14 cannot capture structured bindings
      const std::vector<size_t>& ops = entry.second;
      Result<void> result;
      const bool pruned = std::none_of(p_.target.namespaces.begin(), p_.target.namespaces.end(),
                                       [&](const std::string& n) { return n == scope; });
      auto tableOp = std::find_if(ops.begin(), ops.end(),
                                  [&](size_t i) { return p_.ops[i].kind == Kind::NftTable; });
      const bool unobservable =
          std::find(p_.unobservable.begin(), p_.unobservable.end(), scope) != p_.unobservable.end();
      if (tableOp != ops.end() && !depsOk(*tableOp)) {
        result = Error{r_.ops[*tableOp].error, false};
      } else if (unobservable) {
        result = terminal("skipped: namespace " + scope + " cannot be observed");
      } else if (deleteScopes.count(scope) != 0) {
        step("nftables delete " + scopeName(scope));
        result = d_.deleteTable(scope);
      } else if (!scope.empty() && pruned) {
        result = Result<void>();  // the namespace (and its table) is being removed
      } else {
        NftTableView want = scope.empty() ? p_.hostTable() : p_.target.namespaceTable(scope);
        if (!blocked.empty()) {
          removeBlocked(scope, blocked, want);
        }
        if (scope.empty()) {
          keepHeld(want);
        }
        step("nftables sync " + scopeName(scope));
        result = d_.syncTable(scope, want);
      }
      for (size_t i : ops) {
        const Op& op = p_.ops[i];
        if (op.kind == Kind::Forward && blocked.count(op.name) != 0) {
          continue;  // already failed with its dependency's reason
        }
        if (r_.ops[i].error.rfind("skipped:", 0) == 0) {
          continue;
        }
        if (!result.ok()) {
          r_.ops[i] = OpResult{false, result.error().message};
        } else if (r_.ops[i].error.empty()) {
          r_.ops[i] = OpResult{true, ""};
        }
      }
    }
  }

  // Leaves the mappings of blocked forwards out of a scope's target: a new forward is not
  // installed, and a changed one is withdrawn until its namespace or uplink is repaired
  // (without them it could not carry traffic anyway).
  void removeBlocked(const std::string& scope, const std::set<std::string>& blocked,
                     NftTableView& want) {
    for (const auto& name : blocked) {
      const ForwardTarget* f = targetForward(name);
      if (f == nullptr) {
        continue;
      }
      want.mappings.erase(std::remove_if(want.mappings.begin(), want.mappings.end(),
                                         [&](const PortMapping& m) {
                                           return m.protocol == f->protocol &&
                                                  m.port.first >= f->publicPort.first &&
                                                  m.port.last <= f->publicPort.last &&
                                                  (scope.empty() || f->ns == scope);
                                         }),
                          want.mappings.end());
    }
  }

  // The host mappings into unobservable namespaces stay as observed, also when a blocked
  // forward's ports were just taken out.
  void keepHeld(NftTableView& want) const {
    for (const auto& m : p_.heldHostMappings) {
      if (std::find(want.mappings.begin(), want.mappings.end(), m) == want.mappings.end()) {
        want.mappings.push_back(m);
      }
    }
    std::sort(want.mappings.begin(), want.mappings.end());
  }

  static std::string scopeName(const std::string& scope) { return scope.empty() ? "host" : scope; }

  const Plan& p_;
  HostDriver& d_;
  CertDriver* c_;
  const BeforeStep& before_;
  ApplyResult r_;
  std::map<std::string, Result<void>> peerSyncs_;
};

}  // namespace

ApplyResult apply(const Plan& plan, HostDriver& driver, CertDriver* certs,
                  const BeforeStep& beforeStep) {
  return Executor(plan, driver, certs, beforeStep).run();
}

}  // namespace edgeplane::core

namespace edgeplane::core {

namespace {

// recordApplied's pass: what the run leaves owned, resource kind by kind.
class OwnershipRecorder {
 public:
  OwnershipRecorder(const Plan& plan, const ApplyResult& result, const StoreView& before)
      : plan_(plan), t_(plan.target), before_(before) {
    for (size_t i = 0; i < plan.ops.size(); ++i) {
      const Op& op = plan.ops[i];
      std::string key = std::string(toString(op.kind)) + " " + op.name;
      bool ok = i < result.ops.size() && result.ops[i].ok;
      if (!ok) {
        (op.action == Action::Delete ? keep_ : failed_).insert(key);
      }
    }
  }

  StoreView run() {
    namespaces();
    wireguardAndRoutes();
    forwards();
    for (const auto& c : t_.certificates) {
      own("certificate " + c.name, c.describe());
    }
    failedDeletes();
    return std::move(out_);
  }

 private:
  // A failed create/update keeps whatever was applied before (so drift stays drift).
  // Keys come kind by kind in ascending order, so each one goes right after the one before
  // (`next_`, a hint: a key elsewhere still lands in place).
  // True when the key is owned after it.
  bool own(std::string key, std::string spec) {
    if (failed_.count(key) == 0) {
      next_ = std::next(out_.applied.insert_or_assign(next_, std::move(key), std::move(spec)));
      return true;
    }
    if (auto it = before_.applied.find(key); it != before_.applied.end()) {
      next_ = std::next(out_.applied.insert_or_assign(next_, std::move(key), it->second));
      return true;
    }
    return false;
  }

  // Keeps what was owned before under `prefix` (exactly that key, or every key it starts).
  void carry(const std::string& prefix, bool exact) {
    for (auto it = before_.applied.lower_bound(prefix);
         it != before_.applied.end() && it->first.starts_with(prefix); ++it) {
      if (!exact || it->first == prefix) {
        out_.applied[it->first] = it->second;
      }
    }
  }

  bool usable(const std::string& ns) const {
    return out_.applied.count("namespace " + ns) != 0 && held_.count(ns) == 0;
  }

  // A namespace whose own op failed (it could not be created, or not even observed) keeps all
  // it owned before, unchanged: forgetting its WireGuard would let a later run make a new key,
  // forgetting its uplink index would give its /31 away.
  void namespaces() {
    for (const auto& ns : t_.namespaces) {
      if (failed_.count("namespace " + ns) != 0) {
        held_.insert(ns);
        for (const char* kind : {"namespace ", "uplink ", "nftables ", "wireguard "}) {
          carry(kind + ns, true);
        }
        carry("peer " + ns + "/", false);
        carry("route " + ns + " ", false);
        if (auto it = before_.uplinkIndex.find(ns); it != before_.uplinkIndex.end()) {
          out_.uplinkIndex[ns] = it->second;
        }
        continue;
      }
      const UplinkTarget& u = t_.uplinks.at(ns);
      own("namespace " + ns, "");
      own("uplink " + ns, u.nsAddress.str());
      own("nftables " + ns, "");
      out_.uplinkIndex[ns] = u.index;
    }
    if (t_.namespaces.empty()) {
      return;
    }
    own("nftables host", "");
    // ip_forward is edgeplane's to turn off again only when this run or an earlier one turned
    // it on; one that was on already stays the host's.
    const std::string sysctl = "sysctl " + std::string(kHostForwardSysctl);
    const bool turnedOn = std::any_of(plan_.ops.begin(), plan_.ops.end(), [](const Op& op) {
      return op.kind == Kind::Sysctl && op.action == Action::Update;
    });
    if (turnedOn) {
      own(sysctl, "1");
    } else {
      carry(sysctl, true);
    }
  }

  void wireguardAndRoutes() {
    for (const auto& [ns, wg] : t_.wireguard) {
      if (!usable(ns)) {
        continue;
      }
      own("wireguard " + ns, wg.describe());
      for (const auto& p : wg.peers) {
        own("peer " + ns + "/" + p.name, p.describe());
      }
    }
    for (const auto& r : t_.routes) {
      if (usable(r.ns)) {
        own("route " + r.ns + " " + r.destination.str(), r.via.str());
      }
    }
  }

  void forwards() {
    // The forwards whose host mappings were held as observed (their namespace could not be
    // observed) stay owned under their names, also those that left the config meanwhile.
    for (const auto& m : plan_.heldHostMappings) {
      const std::string port = std::string(toString(m.protocol)) + "/" + m.port.str();
      if (auto it = before_.forwardNames.find(port); it != before_.forwardNames.end()) {
        carry("forward " + it->second, true);
        out_.forwardNames[port] = it->second;
      }
    }
    // The forwards' ports (owned now, or kept for a held namespace), in the forwards' order,
    // then put into the map in its own order: one comparison each instead of a search (there
    // are 10k). Of two forwards with one port, the later one's name stays.
    std::vector<std::pair<std::string, const std::string*>> ports;
    ports.reserve(t_.forwards.size());
    for (const auto& f : t_.forwards) {
      std::string key = "forward " + f.name;
      if (held_.count(f.ns) != 0) {
        carry(key, true);
        for (const auto& [port, name] : before_.forwardNames) {
          if (name == f.name) {
            ports.emplace_back(port, &name);
          }
        }
        continue;
      }
      if (own(std::move(key), f.describe())) {
        ports.emplace_back(f.key(), &f.name);
      }
    }
    std::stable_sort(ports.begin(), ports.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [port, name] : ports) {
      out_.forwardNames.insert_or_assign(out_.forwardNames.end(), std::move(port), *name);
    }
  }

  // Resources whose delete failed stay owned, with their allocation, so the next run prunes
  // them again and nothing else takes their /31 meanwhile.
  void failedDeletes() {
    if (keep_.empty()) {
      return;
    }
    for (const auto& key : keep_) {
      if (auto it = before_.applied.find(key); it != before_.applied.end()) {
        out_.applied[key] = it->second;
      }
    }
    for (const auto& [ns, idx] : before_.uplinkIndex) {
      if (keep_.count("namespace " + ns) != 0 || keep_.count("uplink " + ns) != 0) {
        out_.uplinkIndex[ns] = idx;
      }
    }
    for (const auto& [key, name] : before_.forwardNames) {
      if (keep_.count("forward " + name) != 0) {
        out_.forwardNames[key] = name;
      }
    }
  }

  const Plan& plan_;
  const Target& t_;
  const StoreView& before_;
  std::set<std::string> failed_;  // "kind name" of failed creates/updates
  std::set<std::string> keep_;    // "kind name" of failed deletes
  std::set<std::string> held_;    // namespaces whose own op failed
  StoreView out_;
  std::map<std::string, std::string, std::less<>>::iterator next_ = out_.applied.end();
};

}  // namespace

StoreView recordApplied(const Plan& plan, const ApplyResult& result, const StoreView& before) {
  return OwnershipRecorder(plan, result, before).run();
}

std::optional<StoreView> recordIntent(const Plan& plan, const StoreView& before) {
  auto createsNamespace = [](const Op& op) {
    return op.action == Action::Create && op.kind == Kind::Namespace;
  };
  if (std::none_of(plan.ops.begin(), plan.ops.end(), createsNamespace)) {
    return std::nullopt;
  }
  StoreView out = before;
  for (const Op& op : plan.ops) {
    if (!createsNamespace(op)) {
      continue;
    }
    out.applied.emplace("namespace " + op.name, kPendingSpec);
    out.applied.emplace("uplink " + op.name, kPendingSpec);
    if (auto u = plan.target.uplinks.find(op.name); u != plan.target.uplinks.end()) {
      out.uplinkIndex.emplace(op.name, u->second.index);
    }
  }
  return out;
}

}  // namespace edgeplane::core
