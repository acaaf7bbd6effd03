// plan / apply / status: load and validate, observe, plan, apply, record. Logs once, here.
#include "reconciler/cli/commands.h"

#include <unistd.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "reconciler/system/host_driver.h"
#include "reconciler/system/lock.h"
#include "reconciler/system/state_json.h"
#include "reconciler/system/wg_keys.h"
#include "schema/loader.h"
#include "schema/store.h"
#include "schema/validate.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string isoTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Loaded {
  Desired all;
  std::string host;
};

// The host this run converges: --host, else the machine's name if the config declares it,
// else "default" for a config without [[host]].
Result<std::string> chooseHost(const Desired& d, const std::optional<std::string>& flag) {
  auto hosts = targetHosts(d);
  if (flag) {
    if (std::find(hosts.begin(), hosts.end(), *flag) == hosts.end()) {
      return terminal("host \"" + *flag + "\" is not declared in the config");
    }
    return *flag;
  }
  if (d.hosts.empty()) {
    return std::string("default");
  }
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  if (std::find(hosts.begin(), hosts.end(), name) != hosts.end()) {
    return std::string(name);
  }
  return terminal("this machine (\"" + std::string(name) +
                  "\") is not a declared [[host]]; pass --host NAME");
}

// Loads and validates; prints every diagnostic. nullopt means "invalid, nothing applied".
std::optional<Loaded> load(const std::string& command, const Options& o) {
  if (!o.config) {
    std::cerr << "edgeplane " << command << ": --config DIR is required\n";
    return std::nullopt;
  }
  Diagnostics diags;
  Desired d = loadAndValidate(*o.config, diags);
  if (!diags.empty()) {
    std::cerr << diags.format() << "edgeplane " << command << ": " << diags.sorted().size()
              << " error(s) in " << *o.config << "; nothing applied\n";
    return std::nullopt;
  }
  auto host = chooseHost(d, o.host);
  if (!host) {
    std::cerr << "edgeplane " << command << ": " << host.error().message << "\n";
    return std::nullopt;
  }
  return Loaded{std::move(d), *host};
}

Result<core::StoreView> readStoreView(Store& store) {
  auto rows = store.listOwned(std::nullopt);
  if (!rows) {
    return rows.error();
  }
  return sys::storeViewFromOwned(*rows);
}

Result<std::unique_ptr<Store>> openStoreIfPresent(const std::string& stateDir) {
  if (!fs::exists(fs::path(stateDir) / "state.db")) {
    return std::unique_ptr<Store>();
  }
  return Store::open(stateDir);
}

OpAction storeAction(core::Action a) {
  switch (a) {
    case core::Action::Create:
      return OpAction::Create;
    case core::Action::Update:
      return OpAction::Update;
    case core::Action::Delete:
      return OpAction::Delete;
  }
  return OpAction::Update;
}

sys::KernelHost makeHost(const Options& o) {
  return sys::KernelHost(
      o.stateDir, sys::parseBackendChoice(o.wireguardBackend).value_or(sys::WgBackendChoice::Auto));
}

// What operators hand to their peers: each namespace's public key and listen port. Only the
// public half is derived from the key file; the private key is never printed.
struct WgInfo {
  std::string ns;
  std::string publicKey;
  std::string listenPort;
};

std::vector<WgInfo> wireguardInfo(const Options& o, const std::vector<OwnedResource>& owned) {
  std::vector<WgInfo> out;
  auto view = sys::storeViewFromOwned(owned);
  if (!view) {
    return out;
  }
  for (const auto& [key, spec] : view->applied) {
    if (key.rfind("wireguard ", 0) != 0) {
      continue;
    }
    WgInfo info{key.substr(10), "(key file missing)", "?"};
    if (auto k = sys::loadOrCreateKey(sys::wireguardKeyPath(o.stateDir, info.ns), false)) {
      info.publicKey = k->publicKey.base64();
    }
    // The spec it was applied with: "wg-<ns> port=<listen port> address=…".
    std::istringstream words(spec);
    for (std::string word; words >> word;) {
      if (word.rfind("port=", 0) == 0) {
        info.listenPort = word.substr(5);
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

int cmdPlan(const Options& o) {
  auto loaded = load("plan", o);
  if (!loaded) {
    return 1;
  }
  core::HostState observed;
  core::StoreView view;
  if (o.offline) {
    if (o.observed) {
      auto parsed = sys::observedFromJson(readFile(*o.observed));
      if (!parsed) {
        std::cerr << "edgeplane plan: " << *o.observed << ": " << parsed.error().message << "\n";
        return 1;
      }
      observed = std::move(parsed->host);
      view = std::move(parsed->store);
    }
  } else {
    auto store = openStoreIfPresent(o.stateDir);
    if (!store) {
      std::cerr << "edgeplane plan: " << store.error().message << "\n";
      return 1;
    }
    if (*store) {
      auto v = readStoreView(**store);
      if (!v) {
        std::cerr << "edgeplane plan: " << v.error().message << "\n";
        return 1;
      }
      view = std::move(*v);
    }
    sys::KernelHost host = makeHost(o);
    auto seen = host.observe();
    if (!seen) {
      std::cerr << "edgeplane plan: observing the host failed: " << seen.error().message
                << " (run as root, or use --offline)\n";
      return 1;
    }
    observed = std::move(*seen);
  }
  auto target = core::buildTarget(resolveFor(loaded->all, loaded->host), loaded->host, view);
  if (!target) {
    std::cerr << "edgeplane plan: " << target.error().message << "\n";
    return 1;
  }
  core::Plan p = core::plan(*target, observed, view);
  std::cout << (o.json ? core::renderJson(p) : core::renderText(p));
  return o.detailedExitcode && !p.empty() ? 2 : 0;
}

int cmdApply(const Options& o) {
  auto lock = sys::StateLock::acquire(o.stateDir, o.lockTimeout, [&](long pid) {
    std::cerr << "edgeplane apply: waiting for another run"
              << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) << " to finish\n";
  });
  if (!lock) {
    std::cerr << "edgeplane apply: " << lock.error().message << "\n";
    return 1;
  }
  auto storeResult = Store::open(o.stateDir);
  if (!storeResult) {
    std::cerr << "edgeplane apply: " << storeResult.error().message << "\n";
    return 1;
  }
  Store& store = **storeResult;
  const std::string source = o.config ? fs::absolute(*o.config).lexically_normal().string() : "";
  auto run = store.beginRun(RunStart{std::nullopt, source, nowMs()});
  if (!run) {
    std::cerr << "edgeplane apply: " << run.error().message << "\n";
    return 1;
  }
  auto fail = [&](RunResult result, const std::string& why) {
    (void)store.finishRun(*run, RunFinish{nowMs(), result, why, {}});
    std::cerr << "edgeplane apply: " << why << "\n";
    return 1;
  };
  auto loaded = load("apply", o);
  if (!loaded) {
    return fail(RunResult::Refused, "the config does not validate; nothing applied");
  }
  auto view = readStoreView(store);
  if (!view) {
    return fail(RunResult::Failed, view.error().message);
  }
  sys::KernelHost host = makeHost(o);
  auto observed = host.observe();
  if (!observed) {
    return fail(RunResult::Failed, "observing the host failed: " + observed.error().message);
  }
  auto target =
      core::buildTarget(resolveFor(loaded->all, loaded->host), loaded->host, *view, o.rotateKeys);
  if (!target) {
    return fail(RunResult::Refused, target.error().message);
  }
  core::Plan p = core::plan(*target, *observed, *view);
  std::cout << core::renderText(p);
  std::vector<std::string> failOn;
  if (const char* env = std::getenv("EDGEPLANE_FAIL_OPS"); env != nullptr && *env != '\0') {
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ',');) {
      failOn.push_back(item);
    }
    std::cerr << "edgeplane apply: EDGEPLANE_FAIL_OPS is set: failing " << env << " on purpose\n";
  }
  sys::FaultInjectingHost driver(host, failOn);
  core::ApplyResult result = core::apply(p, driver);
  for (const auto& sync : host.tableSyncs()) {
    if (sync.countersBeforeReset) {
      // A rebuilt table starts its counters at zero: keep what they had counted.
      const sys::NftCounters& c = *sync.countersBeforeReset;
      const std::string scope = sync.scope.empty() ? "host" : sync.scope;
      (void)store.addTraffic(
          TrafficSample{"nftables:" + scope + ":dnat", nowMs(),
                        static_cast<int64_t>(c.dnatTcp.bytes + c.dnatUdp.bytes), 0,
                        static_cast<int64_t>(c.dnatTcp.packets + c.dnatUdp.packets)});
      if (c.dnatTcp.packets + c.dnatUdp.packets != 0) {
        std::cout << "nftables " << scope << ": counters saved before the rebuild ("
                  << c.dnatTcp.packets + c.dnatUdp.packets << " forwarded connections)\n";
      }
    }
    if (sync.ops.empty()) {
      continue;
    }
    size_t added = 0;
    size_t removed = 0;
    for (const auto& op : sync.ops) {
      added += op.kind == sys::NftBatchOp::Kind::AddElement ? 1 : 0;
      removed += op.kind == sys::NftBatchOp::Kind::DeleteElement ? 1 : 0;
    }
    std::cout << "nftables " << (sync.scope.empty() ? "host" : sync.scope) << ": "
              << sys::toString(sync.change) << ", one batch of " << sync.ops.size() << " messages ("
              << added << " elements added, " << removed << " removed)\n";
    if (o.verbose) {
      for (const auto& op : sync.ops) {
        std::cout << "    " << op.str() << "\n";
      }
    }
  }

  // Every op's outcome, in one transaction (a 10k-forward apply records 10k rows).
  auto recorded = store.transaction([&]() -> Result<void> {
    for (size_t i = 0; i < p.ops.size(); ++i) {
      const core::Op& op = p.ops[i];
      const core::OpResult& r = result.ops[i];
      auto rec = store.recordOp(*run, OpOutcome{static_cast<int64_t>(i), storeAction(op.action),
                                                std::string(core::toString(op.kind)), op.name, r.ok,
                                                r.ok ? std::nullopt : std::optional(r.error)});
      if (!rec) {
        return rec;
      }
    }
    return {};
  });
  if (!recorded) {
    std::cerr << "edgeplane apply: recording the run's operations failed: "
              << recorded.error().message << "\n";
  }
  RunCounts counts;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const core::Op& op = p.ops[i];
    const core::OpResult& r = result.ops[i];
    if (!r.ok) {
      ++counts.failed;
      std::cerr << "error: " << core::toString(op.action) << " " << core::toString(op.kind) << " "
                << op.name << ": " << r.error << "\n";
      continue;
    }
    switch (op.action) {
      case core::Action::Create:
        ++counts.added;
        break;
      case core::Action::Update:
        ++counts.changed;
        break;
      case core::Action::Delete:
        ++counts.destroyed;
        break;
    }
  }
  core::StoreView next = core::recordApplied(p, result, *view);
  // Ownership changes only when the view does: a no-op run writes nothing here.
  Result<void> saved;
  if (!(next == *view)) {
    saved = store.transaction([&]() -> Result<void> {
      auto old = store.listOwned(std::nullopt);
      if (!old) {
        return old.error();
      }
      auto rows = sys::ownedFromStoreView(next, nowMs());
      std::set<std::pair<std::string, std::string>> kept;
      for (const auto& r : rows) {
        kept.emplace(r.kind, r.name);
      }
      for (const auto& row : *old) {
        if (kept.count({row.kind, row.name}) == 0) {
          if (auto r = store.removeOwned(row.kind, row.name); !r) {
            return r;
          }
        }
      }
      for (const auto& row : rows) {
        if (auto r = store.putOwned(row.kind, row.name, row.data, row.updatedAt); !r) {
          return r;
        }
      }
      return {};
    });
  }
  if (!saved) {
    std::cerr << "edgeplane apply: recording what was applied failed: " << saved.error().message
              << "\n";
  }
  std::string summary = std::to_string(counts.added) + " added, " + std::to_string(counts.changed) +
                        " changed, " + std::to_string(counts.destroyed) + " destroyed, " +
                        std::to_string(counts.failed) + " failed";
  RunResult outcome = counts.failed == 0                                   ? RunResult::Ok
                      : counts.failed < static_cast<int64_t>(p.ops.size()) ? RunResult::Partial
                                                                           : RunResult::Failed;
  (void)store.finishRun(*run, RunFinish{nowMs(), outcome, summary, counts});
  std::cout << "\nApply " << (counts.failed == 0 ? "complete" : "finished with errors")
            << "! Resources: " << summary << ".\n";
  return counts.failed == 0 && saved ? 0 : 1;
}

int cmdStatus(const Options& o) {
  auto storeResult = openStoreIfPresent(o.stateDir);
  if (!storeResult) {
    std::cerr << "edgeplane status: " << storeResult.error().message << "\n";
    return 1;
  }
  if (!*storeResult) {
    std::cout << (o.json ? "{\"last_run\":null,\"resources\":[],\"drift\":[]}\n"
                         : "Nothing applied yet (no state in " + o.stateDir + ").\n");
    return 0;
  }
  Store& store = **storeResult;
  auto runs = store.recentRuns(1);
  auto owned = store.listOwned(std::nullopt);
  if (!runs || !owned) {
    std::cerr << "edgeplane status: " << (!runs ? runs.error() : owned.error()).message << "\n";
    return 1;
  }
  std::vector<OpOutcome> failedOps;
  if (!runs->empty()) {
    if (auto ops = store.runOps(runs->front().id)) {
      for (const auto& op : *ops) {
        if (!op.ok) {
          failedOps.push_back(op);
        }
      }
    }
  }
  // Drift: re-plan the last applied config against the live host, if both can be had.
  std::vector<std::string> drift;
  std::string driftNote;
  if (!runs->empty() && !runs->front().configSource.empty()) {
    Options po = o;
    po.config = o.config ? o.config : std::optional(runs->front().configSource);
    Diagnostics diags;
    Desired d = loadAndValidate(*po.config, diags);
    auto host = diags.empty() ? chooseHost(d, o.host) : Result<std::string>(terminal("invalid"));
    auto view = readStoreView(store);
    sys::KernelHost kernel = makeHost(o);
    auto seen = host && view ? kernel.observe() : Result<core::HostState>(terminal("skipped"));
    if (host && view && seen) {
      auto target = core::buildTarget(resolveFor(d, *host), *host, *view);
      if (target) {
        core::Plan p = core::plan(*target, *seen, *view);
        for (const auto& op : p.ops) {
          drift.push_back(std::string(core::toString(op.action)) + " " +
                          std::string(core::toString(op.kind)) + " " + op.name +
                          (op.drift.empty() ? "" : " (drift: " + op.drift + ")"));
        }
      }
    } else {
      driftNote = "drift not checked: " +
                  (!diags.empty() ? std::string("the last applied config no longer validates")
                   : !host        ? host.error().message
                   : !view        ? view.error().message
                                  : seen.error().message);
    }
  }
  if (o.json) {
    using Poco::JSON::Array;
    using Poco::JSON::Object;
    Object::Ptr root = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    if (runs->empty()) {
      root->set("last_run", Poco::Dynamic::Var());
    } else {
      const ApplyRun& r = runs->front();
      Object::Ptr jr = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
      jr->set("id", r.id);
      jr->set("result", std::string(toString(r.result)));
      jr->set("started_at", isoTime(r.startedAt));
      jr->set("finished_at", r.finishedAt ? isoTime(*r.finishedAt) : std::string());
      jr->set("config", r.configSource);
      jr->set("summary", r.summary);
      jr->set("added", r.counts.added);
      jr->set("changed", r.counts.changed);
      jr->set("destroyed", r.counts.destroyed);
      jr->set("failed", r.counts.failed);
      Array::Ptr fo = new Array;
      for (const auto& op : failedOps) {
        Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
        jo->set("action", std::string(toString(op.action)));
        jo->set("kind", op.kind);
        jo->set("name", op.name);
        jo->set("error", op.error.value_or(""));
        fo->add(jo);
      }
      jr->set("failed_ops", fo);
      root->set("last_run", jr);
    }
    Array::Ptr res = new Array;
    for (const auto& row : *owned) {
      Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
      jo->set("kind", row.kind);
      jo->set("name", row.name);
      jo->set("data", row.data);
      res->add(jo);
    }
    root->set("resources", res);
    Array::Ptr dr = new Array;
    for (const auto& d : drift) {
      dr->add(d);
    }
    root->set("pending", dr);
    Array::Ptr wgs = new Array;
    for (const auto& w : wireguardInfo(o, *owned)) {
      Object::Ptr jo = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
      jo->set("namespace", w.ns);
      jo->set("public_key", w.publicKey);
      jo->set("listen_port", w.listenPort);
      wgs->add(jo);
    }
    root->set("wireguard", wgs);
    if (!driftNote.empty()) {
      root->set("note", driftNote);
    }
    Poco::JSON::Stringifier::stringify(root, std::cout, 2);
    std::cout << "\n";
    return 0;
  }
  if (runs->empty()) {
    std::cout << "No apply run recorded yet.\n";
  } else {
    const ApplyRun& r = runs->front();
    std::cout << "Last run #" << r.id << ": " << toString(r.result) << ", started "
              << isoTime(r.startedAt) << ", config " << r.configSource << "\n  " << r.summary
              << "\n";
    for (const auto& op : failedOps) {
      std::cout << "  failed: " << toString(op.action) << " " << op.kind << " " << op.name << ": "
                << op.error.value_or("") << "\n";
    }
  }
  auto wgs = wireguardInfo(o, *owned);
  if (!wgs.empty()) {
    std::cout << "\nWireGuard (give peers the public key and <host address>:<listen port>):\n";
    for (const auto& w : wgs) {
      std::cout << "  " << w.ns << ": public key " << w.publicKey << ", listen port "
                << w.listenPort << "\n";
    }
  }
  std::cout << "\nResources owned (" << owned->size() << "):\n";
  for (const auto& row : *owned) {
    std::cout << "  " << row.kind << " " << row.name << "\n";
  }
  if (!driftNote.empty()) {
    std::cout << "\n" << driftNote << "\n";
  } else if (drift.empty()) {
    std::cout << "\nIn sync: the host matches the last applied config.\n";
  } else {
    std::cout << "\nPending changes (" << drift.size() << "):\n";
    for (const auto& d : drift) {
      std::cout << "  " << d << "\n";
    }
  }
  return 0;
}

}  // namespace edgeplane::cli
