// One reconcile run (apply and the agent): a pipeline of named stages — lock, fetch/load the
// source, begin the record, load, observe, plan and execute, publish, record. Logs once, here.
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "reconciler/cli/acme_step.h"
#include "reconciler/cli/apply_record.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/execute.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/terminal_out.h"
#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "reconciler/system/certs.h"
#include "reconciler/system/host_driver.h"
#include "reconciler/system/lock.h"
#include "reconciler/system/netns.h"
#include "schema/git_url.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

// One run as it moves through the stages: what every stage reads, and the report they fill.
struct Run {
  Run(const Options& options, std::ostream& o, std::ostream& e)
      : opts(options), out(o), err(e), crash(e) {}

  const Options& opts;
  std::ostream& out;
  std::ostream& err;
  CrashPoint crash;
  RunReport report;
  std::optional<sys::StateLock> lock;  // held until the store is closed (declared before it)
  std::unique_ptr<Store> store;
  Prepared prep;
  std::string configSource;
  // The head commit could not be applied (the fetch failed: recorded failed; or it was
  // refused: recorded refused) and the last good commit is reconciled instead.
  bool fellBack = false;
  bool fetchFellBack = false;

  // A run that ends before anything is recorded (no lock, no store, no run row).
  void stopUnrecorded(const Error& e) {
    report.summary = e.message;
    report.retryable = e.retryable;
    err << "edgeplane apply: " << report.summary << "\n";
  }
  // Records the run's end.
  void finish(RunResult result, std::string summary, const std::string& detail,
              RunCounts counts = {}) {
    // The history the next Git run checks against, kept where the proxy cannot write, before
    // the store's record: a run whose commit cannot be kept there is recorded failed (the next
    // run tries again), so the two never disagree on the last applied commit.
    if ((result == RunResult::Ok || result == RunResult::Partial) && opts.git && prep.commit) {
      if (auto kept = recordAppliedCommit(opts.stateDir, configSource, prep.commit->id); !kept) {
        result = RunResult::Failed;
        summary += "; the applied commit could not be kept: " + kept.error().message;
        err << "edgeplane apply: " << kept.error().message << "\n";
      }
    }
    (void)store->finishRun(report.runId, RunFinish{nowMs(), result, summary, counts, detail});
    report.result = result;
    report.summary = summary;
  }
  // A recorded run that stops with `why` (and `retryable`), nothing applied past this point.
  void stop(RunResult result, const std::string& why, const std::string& detail, bool retryable) {
    report.retryable = retryable;
    finish(result, why, detail);
    err << "edgeplane apply: " << why << "\n";
  }
};

// What the observe stage hands on to the plan.
struct Observation {
  core::StoreView view;
  core::HostState host;
  core::Target target;
};

// Lock: one run at a time; what a killed run left of a namespace create is swept under it.
bool lock(Run& r) {
  auto lock = sys::StateLock::acquire(r.opts.stateDir, r.opts.lockTimeout, [&](long pid) {
    r.err << "edgeplane apply: waiting for another run"
          << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) << " to finish\n";
  });
  if (!lock) {
    r.stopUnrecorded(lock.error());
    return false;
  }
  r.lock.emplace(std::move(lock).value());
  sys::sweepInterruptedCreates();  // under the lock: no create of ours is in flight
  return true;
}

// The store, with runs a killed process left "running" closed.
bool openStore(Run& r) {
  auto storeResult = Store::open(r.opts.stateDir);
  if (!storeResult) {
    r.stopUnrecorded(storeResult.error());
    return false;
  }
  r.store = std::move(storeResult).value();
  // Runs are begun only under the lock, which this process now holds: one still "running" was
  // cut short (the process killed, the host restarted). Said so, rather than running for ever.
  if (auto recent = r.store->recentRuns(50)) {
    for (const ApplyRun& run : *recent) {
      if (run.result == RunResult::Running) {
        // What it committed was to be synced at its close, which never came.
        if (auto synced = r.store->syncWal(); !synced) {
          r.stopUnrecorded(synced.error());
          return false;
        }
        (void)r.store->finishRun(
            run.id, RunFinish{nowMs(), RunResult::Failed,
                              "interrupted: the process ended before the run finished (killed, "
                              "or the host restarted); what it applied is observed again now",
                              run.counts, ""});
      }
    }
  }
  return true;
}

// Fetch: a directory as it is, or a Git commit exported into the state directory.
void fetchSource(Run& r) {
  const Options& o = r.opts;
  if (o.git) {
    r.configSource = gitSourceText(*o.git);
    r.prep = prepareGit(o, *r.store);
    // A password in the url (https credentials) is never printed nor recorded.
    for (std::string* text : {&r.prep.summary, &r.prep.detail, &r.prep.note}) {
      *text = scrubCredentials(std::move(*text), o.git->url);
    }
  } else if (o.config) {
    r.configSource = fs::absolute(*o.config).lexically_normal().string();
    r.prep.configDir = *o.config;
  } else {
    r.prep.result = RunResult::Failed;
    r.prep.summary = "no source: pass --config DIR, --agent FILE or --source URL";
  }
  r.fellBack = o.git && r.prep.configDir && r.prep.fallback;
  r.fetchFellBack = r.fellBack && r.prep.result == RunResult::Failed;
}

// The run's row in the store; a source that gave no directory ends the run here.
bool beginRecord(Run& r, int64_t startedAt) {
  const Prepared& prep = r.prep;
  RunStart start{prep.commit ? std::optional(prep.commit->id) : std::nullopt, r.configSource,
                 startedAt};
  if (prep.commit) {
    start.author = prep.commit->author;
    start.subject = prep.commit->subject;
    r.report.commit = prep.commit->id;
    r.out << "source: " << r.configSource << ": commit " << shortCommit(prep.commit->id) << " \""
          << prep.commit->subject << "\" by " << prep.commit->author << "\n";
  }
  if (!prep.note.empty()) {
    (r.fellBack ? r.err : r.out) << prep.note << "\n";
  }
  auto run = r.store->beginRun(start);
  if (!run) {
    r.stopUnrecorded(run.error());
    return false;
  }
  r.report.runId = *run;
  if (!prep.configDir) {
    r.report.retryable = prep.retryable;
    r.finish(prep.result, prep.summary, prep.detail);
    r.err << "edgeplane apply: " << prep.summary << "\n";
    if (!prep.detail.empty() && prep.detail != prep.summary) {
      r.err << prep.detail << "\n";
    }
    r.err << "edgeplane apply: nothing applied\n";
    return false;
  }
  return true;
}

// Load: the config validated; one with errors is refused (or fails a fallback run).
std::optional<Loaded> loadStage(Run& r) {
  LoadOutcome outcome = loadPrepared(r.prep, r.opts, configCacheIn(r.opts.stateDir));
  if (outcome.loaded) {
    return std::move(outcome.loaded);
  }
  const Prepared& prep = r.prep;
  std::string what =
      prep.appliedCommit ? "commit " + shortCommit(prep.appliedCommit) : r.configSource;
  std::string summary;
  std::string detail;
  if (outcome.errors != 0) {
    summary = "the config at " + what + " does not validate (" +
              plural(outcome.errors, "error", "errors") + ")";
    detail = outcome.diagnostics;
    r.err << outcome.diagnostics;
  } else {
    summary = outcome.hostError;
    detail = outcome.hostError;
  }
  if (r.fellBack) {
    summary = prep.summary + "; and the last good commit: " + summary;
  }
  r.report.retryable = r.fetchFellBack;
  r.finish(r.fellBack ? prep.result : RunResult::Refused, summary, detail);
  r.err << "edgeplane apply: " << summary << "; nothing applied\n";
  return std::nullopt;
}

// Observe: the store's view, the generated certificates and the live host (read meanwhile on
// threads of their own), this host's target and its "files" certificates. The target, which
// needs only the view, is built while the host and the certificates are still being read.
std::optional<Observation> observeStage(Run& r, const Loaded& loaded,
                                        std::future<Result<core::HostState>>& observing,
                                        StateDirReading& reading) {
  Result<core::StoreView> view = reading.view.get();
  if (!view) {
    r.stop(RunResult::Failed, view.error().message, "", false);
    return std::nullopt;
  }
  auto target = buildHostTarget(loaded, *view, r.opts.rotateKeys, true);
  auto observed = observing.get();
  if (!observed) {
    r.stop(RunResult::Failed, "observing the host failed: " + observed.error().message, "", true);
    return std::nullopt;
  }
  if (!target) {
    r.stop(RunResult::Refused, target.error().message, target.error().message, false);
    return std::nullopt;
  }
  // Only a tree that is about to be applied replaces the kept one (status's drift check).
  if (r.opts.git) {
    promoteConfig(r.opts, r.err);
  }
  Result<core::HostState> certs = reading.certs.get();
  if (!certs) {
    r.stop(RunResult::Failed, "observing certificates failed: " + certs.error().message, "", true);
    return std::nullopt;
  }
  observeCertificates(r.opts, *target, *certs, *observed);
  return Observation{std::move(*view), std::move(*observed), std::move(*target)};
}

// Plan and execute: the plan printed, its ops run, their record and the first snapshot.
std::optional<Executed> executeStage(Run& r, const core::Plan& p, const Observation& seen,
                                     sys::KernelHost& host, sys::CertStore& certStore) {
  writePlan(r.out, p);
  auto executed = executePlan(r.opts, *r.store, r.report.runId, p, seen.view, seen.host, host,
                              certStore, r.prep.appliedCommit, "apply", r.crash, r.out, r.err);
  if (!executed) {
    r.report.retryable = executed.error().retryable;
    r.finish(RunResult::Failed, executed.error().message, "");
    r.err << "edgeplane apply: " << executed.error().message << "; nothing applied\n";
    return std::nullopt;
  }
  return std::move(executed).value();
}

// Publish: ACME orders, after the kernel operations and the first snapshot; what is issued is
// published with a second snapshot. A failed order keeps the certificate in place.
AcmeOrders publishStage(Run& r, const Loaded& loaded, const core::Plan& p, const Observation& seen,
                        sys::CertStore& certStore, Executed& x) {
  AcmeOrders orders;
  if (!x.published) {
    return orders;
  }
  orders = orderAcmeCertificates(r.opts, *loaded.all, seen.target, *r.store, certStore, x.result);
  if (orders.issued.empty()) {
    return orders;
  }
  std::string issued;
  for (const auto& name : orders.issued) {
    issued += (issued.empty() ? "" : ", ") + name;
  }
  std::vector<std::string> leftOutAgain;
  ProxySnapshot again = core::snapshotAfter(p, x.result, seen.host, leftOutAgain);
  again.commit = x.proxy.commit;
  auto republished = publishAndNotify(r.opts, *r.store, again, r.report.runId, "apply",
                                      "certificates issued: " + issued, r.out, r.err);
  if (!republished) {
    r.err << "edgeplane apply: proxy snapshot with the new certificates not written: "
          << republished.error().message << "\n";
    orders.failed.push_back("the snapshot with " + issued +
                            " not written: " + republished.error().message);
  } else if (republished->changed) {
    x.snapshot = *republished;
  }
  return orders;
}

// How a run that got as far as executing ends: its result, summary line and detail.
struct Outcome {
  RunResult result = RunResult::Failed;
  std::string summary;
  std::string detail;
};

Outcome runOutcome(Run& r, const core::Plan& p, const Executed& x, const AcmeOrders& orders) {
  const Prepared& prep = r.prep;
  Outcome o;
  o.summary = countsText(x.counts);
  if (!orders.failed.empty()) {
    o.summary += ", " + plural(orders.failed.size(), "ACME order", "ACME orders") + " failed";
  }
  if (!x.leftOut.empty()) {
    o.summary += ", " + plural(x.leftOut.size(), "route", "routes") + " left out";
  }
  o.result = x.counts.failed == 0 && x.published && x.keysSynced && x.leftOut.empty() &&
                     orders.failed.empty()
                 ? RunResult::Ok
             : x.counts.failed < static_cast<int64_t>(p.ops.size()) || p.ops.empty()
                 ? RunResult::Partial
                 : RunResult::Failed;
  if (x.published && !x.keysSynced) {
    o.summary += ", API keys not synced";
  }
  if (!x.published) {
    o.summary += ", proxy snapshot not written";
  } else if (x.snapshot->changed) {
    // A change that lives only in the proxy (a hostname) shows in the one-line run log too.
    o.summary += ", proxy snapshot generation " + std::to_string(x.snapshot->generation);
  }
  o.detail = prep.detail;
  for (const auto& why : x.leftOut) {
    o.detail += (o.detail.empty() ? "" : "\n") + ("left out of the proxy snapshot: " + why);
  }
  for (const auto& why : orders.failed) {
    o.detail += (o.detail.empty() ? "" : "\n") + ("ACME order failed: " + why);
  }
  if (prep.rollback) {
    o.summary = "rollback (the override is set): " + o.summary;
  }
  if (r.fetchFellBack) {
    o.result = RunResult::Failed;
    r.report.retryable = true;
    o.detail = "fetch failed: " + prep.summary + "\nreconciled against the last good commit " +
               prep.appliedCommit.value_or("?") + " from the cache: " + o.summary;
    o.summary = "fetch failed (" + prep.summary + "); last good commit reconciled: " + o.summary;
  } else if (r.fellBack) {
    o.result = RunResult::Refused;
    o.detail = prep.detail + "\nreconciled against the last good commit " +
               prep.appliedCommit.value_or("?") + " from the cache: " + o.summary;
    o.summary = prep.summary + "; last good commit " + shortCommit(prep.appliedCommit) +
                " reconciled: " + o.summary;
  }
  return o;
}

// Record: the run's end in the store, and the closing lines.
void recordStage(Run& r, const core::Plan& p, const Executed& x, const AcmeOrders& orders) {
  const Outcome outcome = runOutcome(r, p, x, orders);
  r.crash.before("recording the run's end");
  r.finish(outcome.result, outcome.summary, outcome.detail, x.counts);
  r.out << "\nApply " << (outcome.result == RunResult::Ok ? "complete" : "finished with errors")
        << "! Resources: " << countsText(x.counts) << ".\n";
  if (r.prep.rollback) {
    r.out << "This run was a rollback, applied because the rollback override is set: "
          << *r.prep.rollback << "\n";
  }
  if (r.fetchFellBack) {
    r.err << "edgeplane apply: the fetch failed; the host was reconciled against the last good "
             "commit "
          << shortCommit(r.prep.appliedCommit) << "\n";
  } else if (r.fellBack) {
    r.err << "edgeplane apply: commit " << shortCommit(r.report.commit)
          << " was refused; the host was reconciled against the last good commit "
          << shortCommit(r.prep.appliedCommit) << "\n";
  }
  if (!x.saved) {
    r.report.result = RunResult::Failed;
  }
}

// What the run committed to the store, made durable where a failure can still be told (closing
// would sync it silently). The host is as the run left it and the run's result stands, but its
// record (ownership, the last good commit) may be lost in a crash. Running again does not mend
// it: after a failed sync the kernel may have dropped the pages, so a later sync succeeds
// without them.
void syncStore(Run& r) {
  if (!r.store) {
    return;
  }
  if (auto synced = r.store->syncChanges(); !synced) {
    r.report.unsynced = synced.error().message + "; what this run recorded may not survive a crash";
    r.err << "edgeplane apply: " << r.report.unsynced << "\n";
  }
}

void runStages(Run& r) {
  const Options& o = r.opts;
  const int64_t startedAt = nowMs();
  if (!lock(r)) {
    return;
  }
  // The host observed on a thread of its own while the config loads, and the state directory
  // (store, certificates) read on another. From a directory, the observing starts as soon as
  // the lock is held (nothing of ours changes the host meanwhile) and goes on while the store
  // opens; from Git, after the fetch, whose time has no bound: the host is observed fresh.
  sys::KernelHost host = makeHost(o);
  std::future<Result<core::HostState>> observing;
  if (!o.git) {
    observing = observeInBackground(host);
  }
  if (!openStore(r)) {
    return;
  }
  // What the proxy serves from, brought up to the store first: the first run after an upgrade
  // hands the proxy its snapshot even when it stops early (a fetch or a config refused).
  if (auto fed = publishProxyFeed(o.stateDir, *r.store); !fed) {
    r.err << "edgeplane apply: warning: the proxy's files are not up to date: "
          << fed.error().message << "\n";
  } else if (*fed) {
    (void)notifyProxy(o.proxyAdmin, kProxyNotifyTimeout, o.proxyAdminTokenFile);
  }
  fetchSource(r);
  if (!beginRecord(r, startedAt)) {
    return;
  }
  if (!observing.valid()) {
    observing = observeInBackground(host);
  }
  auto reading = readStateDirInBackground(o.stateDir);
  std::optional<Loaded> loaded = loadStage(r);
  if (!loaded) {
    return;
  }
  std::optional<Observation> seen = observeStage(r, *loaded, observing, reading);
  if (!seen) {
    return;
  }
  const core::Plan p = core::plan(seen->target, seen->host, seen->view);
  sys::CertStore certStore(o.stateDir);
  std::optional<Executed> executed = executeStage(r, p, *seen, host, certStore);
  if (!executed) {
    return;
  }
  const AcmeOrders orders = publishStage(r, *loaded, p, *seen, certStore, *executed);
  recordStage(r, p, *executed, orders);
}

}  // namespace

RunReport reconcileOnce(const Options& o, std::ostream& out, std::ostream& err) {
  Run r(o, out, err);
  runStages(r);
  syncStore(r);
  return r.report;
}

}  // namespace edgeplane::cli
