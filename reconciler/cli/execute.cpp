// A planned run carried out on this host: intent, ops, record, snapshot, API keys.
#include "reconciler/cli/execute.h"

#include <chrono>
#include <cstdlib>
#include <sstream>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/progress.h"
#include "reconciler/cli/proxy_admin.h"

namespace edgeplane::cli {
namespace {

RunCounts countOutcomes(const core::Plan& p, const core::ApplyResult& result, std::ostream& err) {
  RunCounts counts;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const core::Op& op = p.ops[i];
    const core::OpResult& r = result.ops[i];
    if (!r.ok) {
      ++counts.failed;
      err << "error: " << core::toString(op.action) << " " << core::toString(op.kind) << " "
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
  return counts;
}

void printNftSyncs(const Options& o, Store& store, sys::KernelHost& host, std::ostream& out) {
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
        out << "nftables " << scope << ": counters saved before the rebuild ("
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
    out << "nftables " << (sync.scope.empty() ? "host" : sync.scope) << ": "
        << sys::toString(sync.change) << ", one batch of " << sync.ops.size() << " messages ("
        << added << " elements added, " << removed << " removed)\n";
    if (o.verbose) {
      for (const auto& op : sync.ops) {
        out << "    " << op.str() << "\n";
      }
    }
  }
}

// The driver calls EDGEPLANE_FAIL_OPS names ("createNamespace tenant-b,..."), for the lab.
std::vector<std::string> injectedFailures(std::string_view who, std::ostream& err) {
  std::vector<std::string> failOn;
  if (const char* env = std::getenv("EDGEPLANE_FAIL_OPS"); env != nullptr && *env != '\0') {
    std::stringstream list(env);
    for (std::string item; std::getline(list, item, ',');) {
      failOn.push_back(item);
    }
    err << "edgeplane " << who << ": EDGEPLANE_FAIL_OPS is set: failing " << env << " on purpose\n";
  }
  return failOn;
}

}  // namespace

// How long traffic samples stay in the store: as long as the proxy keeps its own
// (ControllerOptions::trafficRetention).
constexpr std::chrono::milliseconds kStoredTrafficRetention = std::chrono::hours(24 * 30);

std::string countsText(const RunCounts& c) {
  return std::to_string(c.added) + " added, " + std::to_string(c.changed) + " changed, " +
         std::to_string(c.destroyed) + " destroyed, " + std::to_string(c.failed) + " failed";
}

Result<Published> publishAndNotify(const Options& o, Store& store, const ProxySnapshot& snapshot,
                                   int64_t runId, std::string_view who, std::string_view why,
                                   std::ostream& out, std::ostream& err) {
  auto published = publishSnapshot(store, snapshot, runId, nowMs());
  if (!published) {
    return published;
  }
  // The files the proxy reads; also brought up to date when the snapshot did not change (the
  // first run after an upgrade, or one after a run that died between the two).
  auto fed = publishProxyFeed(o.stateDir, store);
  if (!fed) {
    return Error{"the proxy's files not written: " + fed.error().message, fed.error().retryable};
  }
  if (!published->changed && !*fed) {
    out << "proxy snapshot: unchanged (generation " << published->generation << ")\n";
    return published;
  }
  if (published->changed) {
    out << "proxy snapshot: generation " << published->generation << " (" << why << ")\n";
  } else {
    out << "proxy snapshot: unchanged (generation " << published->generation
        << "); the proxy's files brought up to date\n";
  }
  if (auto told = notifyProxy(o.proxyAdmin, kProxyNotifyTimeout, o.proxyAdminTokenFile); !told) {
    err << "edgeplane " << who << ": warning: the proxy was not told about generation "
        << published->generation << " (" << o.proxyAdmin << "): " << told.error().message
        << "; it picks the snapshot up within a second\n";
  }
  return published;
}

Result<Executed> executePlan(const Options& o, Store& store, int64_t runId, const core::Plan& p,
                             const core::StoreView& view, const core::HostState& observed,
                             sys::KernelHost& host, sys::CertStore& certStore,
                             const std::optional<std::string>& commit, std::string_view who,
                             CrashPoint& crash, std::ostream& out, std::ostream& err) {
  const std::string prefix = "edgeplane " + std::string(who) + ": ";
  sys::FaultInjectingHost driver(host, injectedFailures(who, err));
  // Write-ahead: the namespaces about to be made are owned before they exist, so a run killed
  // midway leaves nothing edgeplane made that a later run would take for a foreign namespace.
  const std::optional<core::StoreView> intent = core::recordIntent(p, view);
  if (intent && *intent != view) {
    if (auto r = writeOwnership(store, view, *intent, nowMs()); !r) {
      Error e = r.error();
      e.message = "recording the namespaces about to be made failed: " + e.message;
      return e;
    }
  }
  Executed x;
  {
    std::optional<Progress> progress;
    if (o.progress) {
      progress.emplace();
    }
    size_t step = 0;
    x.result = core::apply(p, driver, &certStore, [&](const std::string& what) {
      crash.before(what);
      if (progress) {
        progress->update(applyProgressText(++step, what));
      }
    });
  }  // the progress line is cleared before anything else is printed
  printNftSyncs(o, store, host, out);
  // The samples kept in the store (nftables counters saved before a rebuild, and what a proxy
  // of an earlier version wrote there) are kept for as long as the proxy keeps its own.
  (void)store.pruneTrafficBefore(nowMs() - kStoredTrafficRetention.count());
  Result<void> saved =
      recordApply(store, runId, p, x.result, view, intent ? *intent : view, err, crash);
  x.saved = saved.ok();
  if (!saved) {
    err << prefix << "recording what was applied failed: " << saved.error().message << "\n";
  }
  x.counts = countOutcomes(p, x.result, err);

  // The proxy's routing table, after the system operations, as part of this run.
  x.proxy = core::snapshotAfter(p, x.result, observed, x.leftOut);
  x.proxy.commit = commit;
  for (const auto& why : x.leftOut) {
    err << prefix << "route left out of the proxy snapshot: " << why << "\n";
  }
  crash.before("publishing the proxy snapshot");
  auto snapshot = publishAndNotify(o, store, x.proxy, runId, who,
                                   plural(x.proxy.routes.size(), "route", "routes"), out, err);
  if (!snapshot) {
    err << prefix << "proxy snapshot not written: " << snapshot.error().message << "\n";
    return x;
  }
  x.published = true;
  x.snapshot = *snapshot;
  // The API keys table follows the snapshot the proxy serves (usage, `apikey list`).
  crash.before("publishing the API keys");
  auto synced = publishApiKeys(store, x.proxy, x.proxy.commit, nowMs());
  x.keysSynced = synced.ok();
  if (!synced) {
    err << prefix << "API keys not synced: " << synced.error().message << "\n";
  }
  return x;
}

}  // namespace edgeplane::cli
