// plan / apply / status / history: the source (a directory or a Git commit), load and
// validate, observe, plan, apply, publish, record. Logs once, here.
#include "reconciler/cli/commands.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/cli/git_run.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "reconciler/cli/acme_step.h"
#include "reconciler/cli/apply_record.h"
#include "reconciler/cli/execute.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/json_report.h"
#include "reconciler/cli/publish.h"
#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "reconciler/source/git_source.h"
#include "reconciler/system/certs.h"
#include "reconciler/system/host_driver.h"
#include "reconciler/system/lock.h"
#include "reconciler/system/netns.h"
#include "reconciler/core/state_json.h"
#include "reconciler/system/wg_keys.h"
#include "schema/loader.h"
#include "schema/snapshot.h"
#include "schema/validate.h"

namespace edgeplane::cli {

std::string plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

namespace {

namespace fs = std::filesystem;

// The host this run converges: --host, which must be declared; else the agent file's host
// (for a config without [[host]] tables, "default"); else the machine's name if the config
// declares it, or "default" for a config without [[host]].
Result<std::string> chooseHost(const Desired& d, const Options& o) {
  auto hosts = targetHosts(d);
  if (o.host) {
    if (std::find(hosts.begin(), hosts.end(), *o.host) == hosts.end()) {
      return terminal("host \"" + *o.host + "\" is not declared in the config");
    }
    return *o.host;
  }
  if (d.hosts.empty()) {
    return std::string("default");
  }
  if (o.agentHost) {
    if (std::find(hosts.begin(), hosts.end(), *o.agentHost) == hosts.end()) {
      return terminal("the agent file's host \"" + *o.agentHost +
                      "\" is not a declared [[host]] in the config");
    }
    return *o.agentHost;
  }
  char name[256] = {};
  ::gethostname(name, sizeof(name) - 1);
  if (std::find(hosts.begin(), hosts.end(), name) != hosts.end()) {
    return std::string(name);
  }
  return terminal("this machine (\"" + std::string(name) +
                  "\") is not a declared [[host]]; pass --host NAME");
}

}  // namespace

LoadOutcome loadConfig(const fs::path& dir, const std::optional<std::string>& displayRoot,
                       const Options& o) {
  LoadOutcome out;
  Diagnostics diags;
  Desired d = loadAndValidate(dir, diags);
  if (!diags.empty()) {
    const std::string root = dir.lexically_normal().string();
    for (Diagnostic diag : diags.sorted()) {
      if (displayRoot) {
        std::string& file = diag.loc.file;
        if (file == root) {
          file = displayRoot->empty() ? "." : *displayRoot;
        } else if (file.starts_with(root + "/")) {
          file = (displayRoot->empty() ? "" : *displayRoot + "/") + file.substr(root.size() + 1);
        }
      }
      out.diagnostics += formatDiagnostic(diag) + "\n";
      out.items.push_back(diag);
      ++out.errors;
    }
    return out;
  }
  auto host = chooseHost(d, o);
  if (!host) {
    out.hostError = host.error().message;
    return out;
  }
  out.loaded = Loaded{std::move(d), *host};
  return out;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<core::StoreView> readStoreView(Store& store) {
  auto rows = store.listOwned(std::nullopt);
  if (!rows) {
    return rows.error();
  }
  auto view = core::storeViewFromOwned(*rows);
  if (!view) {
    return view;
  }
  // The routes the proxy serves now: what route ops are diffed against. A stored snapshot of
  // an older codec version is treated as none (every route plans as added, and is rewritten).
  auto latest = store.latestSnapshot();
  if (!latest) {
    return latest.error();
  }
  if (latest->has_value()) {
    if (auto decoded = snapshotFromJson((*latest)->body)) {
      view->snapshot = std::move(*decoded);
    }
  }
  auto acme = store.listAcmeStates();
  if (!acme) {
    return acme.error();
  }
  for (const AcmeState& st : *acme) {
    if (!st.ariCert.empty() && st.ariRenewAt) {
      view->ariRenewals[st.name] = {st.ariCert, *st.ariRenewAt / 1000};
    }
  }
  auto blocks = store.listApiKeyBlocks();
  if (!blocks) {
    return blocks.error();
  }
  for (const ApiKeyBlock& b : *blocks) {
    view->blockedApiKeys.insert(b.keyId);
  }
  return view;
}

namespace {

// Observes the certificates the target uses (and every generated one) into `observed`.
Result<void> observeCertificates(const Options& o, const core::Target& target,
                                 core::HostState& observed) {
  return sys::CertStore(o.stateDir).observe(target.certificates, observed);
}

}  // namespace

Result<std::unique_ptr<Store>> openStoreIfPresent(const std::string& stateDir) {
  if (!fs::exists(fs::path(stateDir) / "state.db")) {
    return std::unique_ptr<Store>();
  }
  return Store::open(stateDir);
}

sys::KernelHost makeHost(const Options& o) {
  return sys::KernelHost(
      o.stateDir, sys::parseBackendChoice(o.wireguardBackend).value_or(sys::WgBackendChoice::Auto));
}

Result<core::Target> buildHostTarget(const Loaded& loaded, const core::StoreView& view,
                                     const std::set<std::string>& rotateKeys, bool readKeys) {
  auto target =
      core::buildTarget(resolveFor(loaded.all, loaded.host), loaded.host, view, rotateKeys);
  if (!target || !readKeys) {
    return target;
  }
  std::string problems;
  for (auto& [ns, wg] : target->wireguard) {
    for (auto& p : wg.peers) {
      if (!p.pskFile) {
        continue;
      }
      auto key = sys::readPresharedKeyFile(*p.pskFile);
      if (!key) {
        problems += (problems.empty() ? "" : "; ") + ("peer " + ns + "/" + p.name + ": ") +
                    key.error().message;
        continue;
      }
      p.presharedKey = *key;
    }
  }
  if (!problems.empty()) {
    return terminal(problems);
  }
  return target;
}

namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

RunReport reconcileOnce(const Options& o, std::ostream& out, std::ostream& err) {
  RunReport report;
  const int64_t startedAt = nowMs();
  auto lock = sys::StateLock::acquire(o.stateDir, o.lockTimeout, [&](long pid) {
    err << "edgeplane apply: waiting for another run"
        << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) << " to finish\n";
  });
  if (!lock) {
    report.summary = lock.error().message;
    report.retryable = lock.error().retryable;
    err << "edgeplane apply: " << report.summary << "\n";
    return report;
  }
  auto storeResult = Store::open(o.stateDir);
  if (!storeResult) {
    report.summary = storeResult.error().message;
    report.retryable = storeResult.error().retryable;
    err << "edgeplane apply: " << report.summary << "\n";
    return report;
  }
  Store& store = **storeResult;
  sys::sweepInterruptedCreates();  // under the lock: no create of ours is in flight
  // Runs are begun only under the lock, which this process now holds: one still "running" was
  // cut short (the process killed, the host restarted). Said so, rather than running for ever.
  if (auto recent = store.recentRuns(50)) {
    for (const ApplyRun& r : *recent) {
      if (r.result == RunResult::Running) {
        (void)store.finishRun(
            r.id, RunFinish{nowMs(), RunResult::Failed,
                            "interrupted: the process ended before the run finished (killed, "
                            "or the host restarted); what it applied is observed again now",
                            r.counts, ""});
      }
    }
  }

  // The source: a directory as it is, or a Git commit exported into the state directory.
  Prepared prep;
  std::string configSource;
  if (o.git) {
    configSource = gitSourceText(*o.git);
    prep = prepareGit(o, store);
    // A password in the url (https credentials) is never printed nor recorded.
    for (std::string* text : {&prep.summary, &prep.detail, &prep.note}) {
      *text = scrubCredentials(std::move(*text), o.git->url);
    }
  } else if (o.config) {
    configSource = fs::absolute(*o.config).lexically_normal().string();
    prep.configDir = *o.config;
  } else {
    prep.result = RunResult::Failed;
    prep.summary = "no source: pass --config DIR, --agent FILE or --source URL";
  }
  // The head commit could not be applied (the fetch failed: recorded failed; or it was
  // refused: recorded refused) and the last good commit is reconciled instead.
  const bool fellBack = o.git && prep.configDir && prep.fallback;
  const bool fetchFellBack = fellBack && prep.result == RunResult::Failed;
  RunStart start{prep.commit ? std::optional(prep.commit->id) : std::nullopt, configSource,
                 startedAt};
  if (prep.commit) {
    start.author = prep.commit->author;
    start.subject = prep.commit->subject;
    report.commit = prep.commit->id;
    out << "source: " << configSource << ": commit " << shortCommit(prep.commit->id) << " \""
        << prep.commit->subject << "\" by " << prep.commit->author << "\n";
  }
  if (!prep.note.empty()) {
    (fellBack ? err : out) << prep.note << "\n";
  }
  auto run = store.beginRun(start);
  if (!run) {
    report.summary = run.error().message;
    report.retryable = run.error().retryable;
    err << "edgeplane apply: " << report.summary << "\n";
    return report;
  }
  report.runId = *run;
  auto finish = [&](RunResult result, const std::string& summary, const std::string& detail,
                    RunCounts counts = {}) {
    (void)store.finishRun(*run, RunFinish{nowMs(), result, summary, counts, detail});
    report.result = result;
    report.summary = summary;
  };
  if (!prep.configDir) {
    report.retryable = prep.retryable;
    finish(prep.result, prep.summary, prep.detail);
    err << "edgeplane apply: " << prep.summary << "\n";
    if (!prep.detail.empty() && prep.detail != prep.summary) {
      err << prep.detail << "\n";
    }
    err << "edgeplane apply: nothing applied\n";
    return report;
  }

  LoadOutcome loadedOutcome = loadConfig(*prep.configDir, prep.displayRoot, o);
  if (!loadedOutcome.loaded) {
    std::string what =
        prep.appliedCommit ? "commit " + shortCommit(prep.appliedCommit) : configSource;
    std::string summary;
    std::string detail;
    if (loadedOutcome.errors != 0) {
      summary = "the config at " + what + " does not validate (" +
                plural(loadedOutcome.errors, "error", "errors") + ")";
      detail = loadedOutcome.diagnostics;
      err << loadedOutcome.diagnostics;
    } else {
      summary = loadedOutcome.hostError;
      detail = loadedOutcome.hostError;
    }
    if (fellBack) {
      summary = prep.summary + "; and the last good commit: " + summary;
    }
    report.retryable = fetchFellBack;
    finish(fellBack ? prep.result : RunResult::Refused, summary, detail);
    err << "edgeplane apply: " << summary << "; nothing applied\n";
    return report;
  }
  Loaded& loaded = *loadedOutcome.loaded;

  auto view = readStoreView(store);
  if (!view) {
    finish(RunResult::Failed, view.error().message, "");
    err << "edgeplane apply: " << view.error().message << "\n";
    return report;
  }
  sys::KernelHost host = makeHost(o);
  auto observed = host.observe();
  if (!observed) {
    const std::string why = "observing the host failed: " + observed.error().message;
    report.retryable = true;
    finish(RunResult::Failed, why, "");
    err << "edgeplane apply: " << why << "\n";
    return report;
  }
  auto target = buildHostTarget(loaded, *view, o.rotateKeys, true);
  if (!target) {
    finish(RunResult::Refused, target.error().message, target.error().message);
    err << "edgeplane apply: " << target.error().message << "\n";
    return report;
  }
  // Only a tree that is about to be applied replaces the kept one (status's drift check).
  if (o.git) {
    promoteConfig(o, err);
  }
  if (auto certs = observeCertificates(o, *target, *observed); !certs) {
    const std::string why = "observing certificates failed: " + certs.error().message;
    report.retryable = true;
    finish(RunResult::Failed, why, "");
    err << "edgeplane apply: " << why << "\n";
    return report;
  }
  core::Plan p = core::plan(*target, *observed, *view);
  out << core::renderText(p);
  sys::CertStore certStore(o.stateDir);
  CrashPoint crash(err);
  auto executed = executePlan(o, store, *run, p, *view, *observed, host, certStore,
                              prep.appliedCommit, "apply", crash, out, err);
  if (!executed) {
    report.retryable = executed.error().retryable;
    finish(RunResult::Failed, executed.error().message, "");
    err << "edgeplane apply: " << executed.error().message << "; nothing applied\n";
    return report;
  }
  core::ApplyResult& result = executed->result;
  const RunCounts& counts = executed->counts;
  const bool published = executed->published;
  const bool keysSynced = executed->keysSynced;
  const std::vector<std::string>& leftOut = executed->leftOut;
  std::optional<Published> snapshot = executed->snapshot;

  // ACME orders, after the kernel operations and the first snapshot; what is issued is
  // published with a second snapshot. A failed order keeps the certificate in place.
  AcmeOrders orders;
  if (published) {
    orders = orderAcmeCertificates(o, loaded.all, *target, store, certStore, result);
    if (!orders.issued.empty()) {
      std::string issued;
      for (const auto& name : orders.issued) {
        issued += (issued.empty() ? "" : ", ") + name;
      }
      std::vector<std::string> leftOutAgain;
      ProxySnapshot again = core::snapshotAfter(p, result, *observed, leftOutAgain);
      again.commit = executed->proxy.commit;
      auto republished = publishAndNotify(o, store, again, *run, "apply",
                                          "certificates issued: " + issued, out, err);
      if (!republished) {
        err << "edgeplane apply: proxy snapshot with the new certificates not written: "
            << republished.error().message << "\n";
        orders.failed.push_back("the snapshot with " + issued +
                                " not written: " + republished.error().message);
      } else if (republished->changed) {
        snapshot = *republished;
      }
    }
  }

  std::string summary = countsText(counts);
  if (!orders.failed.empty()) {
    summary += ", " + plural(orders.failed.size(), "ACME order", "ACME orders") + " failed";
  }
  if (!leftOut.empty()) {
    summary += ", " + plural(leftOut.size(), "route", "routes") + " left out";
  }
  RunResult outcome =
      counts.failed == 0 && published && keysSynced && leftOut.empty() && orders.failed.empty()
          ? RunResult::Ok
      : counts.failed < static_cast<int64_t>(p.ops.size()) || p.ops.empty() ? RunResult::Partial
                                                                            : RunResult::Failed;
  if (published && !keysSynced) {
    summary += ", API keys not synced";
  }
  if (!published) {
    summary += ", proxy snapshot not written";
  } else if (snapshot->changed) {
    // A change that lives only in the proxy (a hostname) shows in the one-line run log too.
    summary += ", proxy snapshot generation " + std::to_string(snapshot->generation);
  }
  std::string detail = prep.detail;
  for (const auto& why : leftOut) {
    detail += (detail.empty() ? "" : "\n") + ("left out of the proxy snapshot: " + why);
  }
  for (const auto& why : orders.failed) {
    detail += (detail.empty() ? "" : "\n") + ("ACME order failed: " + why);
  }
  if (prep.rollback) {
    summary = "rollback (the override is set): " + summary;
  }
  if (fetchFellBack) {
    outcome = RunResult::Failed;
    report.retryable = true;
    detail = "fetch failed: " + prep.summary + "\nreconciled against the last good commit " +
             prep.appliedCommit.value_or("?") + " from the cache: " + summary;
    summary = "fetch failed (" + prep.summary + "); last good commit reconciled: " + summary;
  } else if (fellBack) {
    outcome = RunResult::Refused;
    detail = prep.detail + "\nreconciled against the last good commit " +
             prep.appliedCommit.value_or("?") + " from the cache: " + summary;
    summary = prep.summary + "; last good commit " + shortCommit(prep.appliedCommit) +
              " reconciled: " + summary;
  }
  crash.before("recording the run's end");
  finish(outcome, summary, detail, counts);
  out << "\nApply " << (outcome == RunResult::Ok ? "complete" : "finished with errors")
      << "! Resources: " << countsText(counts) << ".\n";
  if (prep.rollback) {
    out << "This run was a rollback, applied because the rollback override is set: "
        << *prep.rollback << "\n";
  }
  if (fetchFellBack) {
    err << "edgeplane apply: the fetch failed; the host was reconciled against the last good "
           "commit "
        << shortCommit(prep.appliedCommit) << "\n";
  } else if (fellBack) {
    err << "edgeplane apply: commit " << shortCommit(report.commit)
        << " was refused; the host was reconciled against the last good commit "
        << shortCommit(prep.appliedCommit) << "\n";
  }
  if (!executed->saved) {
    report.result = RunResult::Failed;
  }
  return report;
}

int cmdApply(const Options& o) {
  const int64_t startedAt = nowMs();
  // --json: stdout holds the run record and nothing else; every human line goes to stderr.
  RunReport r = reconcileOnce(o, o.json ? std::cerr : std::cout, std::cerr);
  const int status = r.runId != 0 && r.result == RunResult::Ok ? 0 : 1;
  if (!o.json) {
    return status;
  }
  std::optional<ApplyRun> run;
  if (r.runId != 0) {
    auto store = Store::open(o.stateDir);
    auto recorded = store ? (*store)->run(r.runId) : Result<std::optional<ApplyRun>>(store.error());
    if (!recorded) {
      std::cerr << "edgeplane apply: reading the run record back failed: "
                << recorded.error().message << "\n";
    } else {
      run = std::move(*recorded);
    }
  }
  if (!run) {
    // Nothing recorded (the lock or the store could not be had): the same shape, id null.
    run = ApplyRun{0,
                   r.commit,
                   o.git ? gitSourceText(*o.git) : o.config.value_or(""),
                   startedAt,
                   nowMs(),
                   r.result,
                   r.summary,
                   {},
                   std::nullopt,
                   std::nullopt,
                   ""};
  }
  std::cout << renderRunJson(*run);
  return status;
}

int cmdPlan(const Options& o) {
  std::optional<fs::path> configDir = o.config ? std::optional(fs::path(*o.config)) : std::nullopt;
  std::optional<std::string> displayRoot;
  std::optional<std::string> commit;
  bool refused = false;  // the head commit would be refused: planned against the last good one
  // Temporary directories of a Git plan, removed on the way out.
  struct TempDirs {
    std::vector<fs::path> dirs;
    ~TempDirs() {
      for (const auto& d : dirs) {
        std::error_code ec;
        fs::remove_all(d, ec);
      }
    }
    Result<fs::path> make() {
      std::string tmpl = (fs::temp_directory_path() / "edgeplane-plan-XXXXXX").string();
      if (::mkdtemp(tmpl.data()) == nullptr) {
        return terminal("cannot create a temporary directory: " + errnoText(errno));
      }
      dirs.emplace_back(tmpl);
      return fs::path(tmpl);
    }
  } temps;
  if (o.git) {
    const GitSettings& g = *o.git;
    // --offline plans touch nothing of this host: a throw-away cache. Otherwise the host's
    // cache is reused (and updated) under the state lock, held until the commit is exported
    // (the end of this block): the cache has one writer at a time (a fetch that times out
    // removes the ref lock files it finds, which would break a concurrent agent's fetch).
    fs::path cache = fs::path(o.stateDir) / "source";
    std::optional<sys::StateLock> cacheLock;
    if (!o.offline) {
      auto lock = sys::StateLock::acquire(o.stateDir, o.lockTimeout, [](long pid) {
        std::cerr << "edgeplane plan: waiting for another run"
                  << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string())
                  << " to finish with the source cache\n";
      });
      if (!lock) {
        std::cerr << "edgeplane plan: " << lock.error().message << "\n";
        return 1;
      }
      cacheLock.emplace(std::move(lock).value());
    }
    if (o.offline) {
      auto t = temps.make();
      if (!t) {
        std::cerr << "edgeplane plan: " << t.error().message << "\n";
        return 1;
      }
      cache = *t / "source";
    }
    auto opened = source::GitSource::open(cache, specOf(g));
    if (!opened) {
      std::cerr << "edgeplane plan: " << scrubCredentials(opened.error().message, g.url) << "\n";
      return 1;
    }
    if (auto fetched = fetchInChild(cache, opened->spec(), g.fetchTimeout,
                                    o.fetchHelper.empty() ? defaultFetchHelper() : o.fetchHelper);
        !fetched) {
      std::cerr << "edgeplane plan: " << scrubCredentials(fetched.error().message, g.url) << "\n";
      return 1;
    }
    auto src = source::GitSource::open(cache, specOf(g));
    auto resolved = src ? src->resolve() : Result<source::FetchResult>(src.error());
    if (!resolved) {
      std::cerr << "edgeplane plan: " << scrubCredentials(resolved.error().message, g.url) << "\n";
      return 1;
    }
    commit = resolved->commitId;
    std::cerr << "source: " << gitSourceText(g) << ": commit " << shortCommit(commit) << " \""
              << resolved->subject << "\" by " << resolved->author << "\n";
    std::string note;
    std::optional<std::string> refusal = checkSignature(*src, g, resolved->commitId, note);
    if (!note.empty()) {
      std::cerr << note << "\n";
    }
    // The anti-rollback rules, against the history this host's store records.
    std::unique_ptr<Store> store;
    if (!o.offline) {
      auto present = openStoreIfPresent(o.stateDir);
      if (!present) {
        std::cerr << "edgeplane plan: " << present.error().message << "\n";
        return 1;
      }
      store = std::move(present).value();
    }
    if (store && !refusal) {
      auto history = checkCommitHistory(*src, g, *resolved, *store, nowMs() / 1000);
      if (!history) {
        std::cerr << "edgeplane plan: reading the last applied commit failed: "
                  << history.error().message << "\n";
        return 1;
      }
      refusal = history->refusal;
      if (history->rollback) {
        std::cerr << "rollback: " << *history->rollback << "\n";
      }
    }
    // What apply does with a refused commit: reconcile against the last good one.
    const source::GitSource* from = &*src;
    std::string exported = resolved->commitId;
    std::optional<LastGood> good;
    if (refusal) {
      std::cerr << "edgeplane plan: apply would refuse commit " << shortCommit(commit) << ": "
                << *refusal << "\n";
      if (!store) {
        return 1;
      }
      auto last = lastGoodFromCache(cache, g, *store);
      std::string ignored;
      if (!last || checkSignature(last->src, g, last->commit.commitId, ignored)) {
        return 1;
      }
      good.emplace(std::move(last).value());
      from = &good->src;
      exported = good->commit.commitId;
      commit = exported;
      refused = true;
      std::cerr << "edgeplane plan: apply would reconcile against the last good commit "
                << shortCommit(exported) << " instead:\n";
    }
    auto t = temps.make();
    if (!t) {
      std::cerr << "edgeplane plan: " << t.error().message << "\n";
      return 1;
    }
    configDir = *t / "config";
    if (auto written = exportCommit(*from, g, exported, *configDir); !written) {
      std::cerr << "edgeplane plan: " << written.error().message << "\n";
      return 1;
    }
    displayRoot = g.path;
  }
  if (!configDir) {
    std::cerr << "edgeplane plan: --config DIR, --agent FILE or --source URL is required\n";
    return 1;
  }
  LoadOutcome loadedOutcome = loadConfig(*configDir, displayRoot, o);
  if (!loadedOutcome.loaded) {
    if (o.json) {  // the same document as validate --json
      std::vector<Diagnostic> found = loadedOutcome.items;
      if (found.empty()) {
        found.push_back({{}, loadedOutcome.hostError});
      }
      std::cout << renderDiagnosticsJson(found);
    }
    if (loadedOutcome.errors != 0) {
      std::cerr << loadedOutcome.diagnostics << "edgeplane plan: " << loadedOutcome.errors
                << " error(s) in " << (commit ? "commit " + shortCommit(commit) : *o.config)
                << "; nothing applied\n";
    } else {
      std::cerr << "edgeplane plan: " << loadedOutcome.hostError << "\n";
    }
    return 1;
  }
  Loaded& loaded = *loadedOutcome.loaded;
  core::HostState observed;
  core::StoreView view;
  if (o.offline) {
    if (o.observed) {
      auto parsed = core::observedFromJson(readFile(*o.observed));
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
  auto target = buildHostTarget(loaded, view, {}, !o.offline);
  if (!target) {
    std::cerr << "edgeplane plan: " << target.error().message << "\n";
    return 1;
  }
  if (!o.offline) {
    if (auto certs = observeCertificates(o, *target, observed); !certs) {
      std::cerr << "edgeplane plan: observing certificates failed: " << certs.error().message
                << "\n";
      return 1;
    }
  }
  core::Plan p = core::plan(*target, observed, view);
  std::cout << (o.json ? core::renderJson(p) : core::renderText(p));
  if (refused) {
    return 1;
  }
  return o.detailedExitcode && !p.empty() ? 2 : 0;
}

}  // namespace edgeplane::cli
