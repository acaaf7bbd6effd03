// `edgeplane plan`: the source (a directory, or a Git commit fetched and checked as apply would),
// load, observe, plan; prints the plan and changes nothing. With --json every failure is a JSON
// document too (json_report.h).
#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/json_report.h"
#include "reconciler/cli/terminal_out.h"
#include "reconciler/core/plan.h"
#include "reconciler/core/state_json.h"
#include "reconciler/source/git_source.h"
#include "reconciler/system/lock.h"
#include "schema/file_text.h"
#include "schema/git_url.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

// A plan that could not be made. Already said on stderr; with --json also on stdout.
using Failure = std::optional<PlanError>;

Failure failed(std::string kind, std::string message) {
  std::cerr << "edgeplane plan: " << message << "\n";
  return PlanError{std::move(kind), std::move(message), {}};
}

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
      const int err = errno;
      return terminal("cannot create a temporary directory: " + errnoText(err));
    }
    dirs.emplace_back(tmpl);
    return fs::path(tmpl);
  }
};

// Where the plan's config comes from.
struct PlanSource {
  std::optional<fs::path> configDir;
  std::optional<std::vector<ConfigFile>> files;  // from Git: configDir's, as the commit holds them
  std::optional<std::string> displayRoot;
  std::optional<std::string> commit;
  bool refused = false;  // the head commit would be refused: planned against the last good one
  TempDirs temps;
};

// A Git plan on its way to an exported config tree.
struct GitPlan {
  fs::path cache;
  std::optional<sys::StateLock> cacheLock;
  std::optional<source::GitSource> src;
  source::FetchResult resolved;
  std::unique_ptr<Store> store;  // the host's, for the anti-rollback rules (none offline)
  std::optional<LastGood> good;
};

// Lock: --offline plans touch nothing of this host: a throw-away cache. Otherwise the host's
// cache is reused (and updated) under the state lock, held until the commit is exported: the
// cache has one writer at a time (a fetch that times out removes the ref lock files it finds,
// which would break a concurrent agent's fetch).
Failure lockCache(const Options& o, TempDirs& temps, GitPlan& g) {
  if (o.offline) {
    auto t = temps.make();
    if (!t) {
      return failed("fetch", t.error().message);
    }
    g.cache = *t / "source";
    return std::nullopt;
  }
  auto lock = sys::StateLock::acquire(o.stateDir, o.lockTimeout, [](long pid) {
    std::cerr << "edgeplane plan: waiting for another run"
              << (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string())
              << " to finish with the source cache\n";
  });
  if (!lock) {
    return failed("lock", lock.error().message);
  }
  g.cacheLock.emplace(std::move(lock).value());
  auto cache = sourceCacheIn(o.stateDir);
  if (!cache) {
    return failed("fetch", cache.error().message);
  }
  g.cache = *cache;
  return std::nullopt;
}

// Fetch: the ref fetched (bounded, in a child) into the cache and resolved to a commit.
Failure fetchCommit(const Options& o, GitPlan& g) {
  const GitSettings& git = *o.git;
  auto opened = source::GitSource::open(g.cache, specOf(git));
  if (!opened) {
    return failed("fetch", scrubCredentials(opened.error().message, git.url));
  }
  auto fetched = fetchWithProgress(o, g.cache, opened->spec());
  if (!fetched) {
    return failed("fetch", scrubCredentials(fetched.error().message, git.url));
  }
  auto src = source::GitSource::open(g.cache, specOf(git));
  // The commit the child fetched, not the ref read again (others write the cache).
  auto resolved = src ? src->describeCommit(*fetched) : Result<source::FetchResult>(src.error());
  if (!resolved) {
    return failed("fetch", scrubCredentials(resolved.error().message, git.url));
  }
  g.src.emplace(std::move(src).value());
  g.resolved = std::move(resolved).value();
  std::cerr << "source: " << gitSourceText(git) << ": commit " << shortCommit(g.resolved.commitId)
            << " \"" << g.resolved.subject << "\" by " << g.resolved.author << "\n";
  return std::nullopt;
}

// Verify: the signature, then the anti-rollback rules against the history this host's store
// records. `refusal` says why apply would refuse the commit.
Failure checkCommit(const Options& o, GitPlan& g, std::optional<std::string>& refusal) {
  const GitSettings& git = *o.git;
  std::string note;
  refusal = checkSignature(*g.src, git, g.resolved.commitId, note);
  if (!note.empty()) {
    std::cerr << note << "\n";
  }
  if (!o.offline) {
    auto present = openStoreIfPresent(o.stateDir);
    if (!present) {
      return failed("store", present.error().message);
    }
    g.store = std::move(present).value();
  }
  if (!o.offline && !refusal) {  // the host's history, even without a store (source/applied)
    auto history = checkCommitHistory(*g.src, git, g.resolved, g.store.get(), nowMs() / 1000);
    if (!history) {
      return failed("store", "reading the last applied commit failed: " + history.error().message);
    }
    refusal = history->refusal;
    if (history->rollback) {
      std::cerr << "rollback: " << *history->rollback << "\n";
    }
  }
  return std::nullopt;
}

// What apply does with a refused commit: reconcile against the last good one.
Failure fallBack(const Options& o, GitPlan& g, const std::string& refusal, PlanSource& s) {
  const std::string message =
      "apply would refuse commit " + shortCommit(g.resolved.commitId) + ": " + refusal;
  std::cerr << "edgeplane plan: " << message << "\n";
  const Failure refused = PlanError{"refused", message, {}};
  if (o.offline) {
    return refused;
  }
  auto last = lastGoodFromCache(g.cache, *o.git, g.store.get());
  std::string ignored;
  if (!last || checkSignature(last->src, *o.git, last->commit.commitId, ignored)) {
    return refused;
  }
  g.good.emplace(std::move(last).value());
  s.commit = g.good->commit.commitId;
  s.refused = true;
  std::cerr << "edgeplane plan: apply would reconcile against the last good commit "
            << shortCommit(s.commit) << " instead:\n";
  return std::nullopt;
}

// The Git source: fetched, checked, and the commit apply would take exported into a temporary
// directory.
Failure gitSource(const Options& o, PlanSource& s) {
  GitPlan g;
  if (auto f = lockCache(o, s.temps, g)) {
    return f;
  }
  if (auto f = fetchCommit(o, g)) {
    return f;
  }
  s.commit = g.resolved.commitId;
  std::optional<std::string> refusal;
  if (auto f = checkCommit(o, g, refusal)) {
    return f;
  }
  if (refusal) {
    if (auto f = fallBack(o, g, *refusal, s)) {
      return f;
    }
  }
  auto t = s.temps.make();
  if (!t) {
    return failed("fetch", t.error().message);
  }
  const source::GitSource& from = g.good ? g.good->src : *g.src;
  s.configDir = *t / "config";
  auto written = exportCommit(from, *o.git, *s.commit, *s.configDir);
  if (!written) {
    return failed("fetch", written.error().message);
  }
  s.files = std::move(*written);
  s.displayRoot = o.git->path;
  return std::nullopt;
}

// Load: the config validated; the diagnostics of one with errors.
Failure loadStage(const Options& o, const PlanSource& s, std::optional<Loaded>& loaded) {
  // Offline, the state directory is not this host's to use.
  LoadOutcome outcome = loadConfig(*s.configDir, s.displayRoot, o,
                                   o.offline ? std::nullopt : configCacheIn(o.stateDir),
                                   s.files ? &*s.files : nullptr);
  if (outcome.loaded) {
    loaded = std::move(outcome.loaded);
    return std::nullopt;
  }
  if (outcome.errors == 0) {
    PlanError e = *failed("config", outcome.hostError);
    e.diagnostics.push_back({{}, outcome.hostError});
    return e;
  }
  const std::string where = s.commit ? "commit " + shortCommit(s.commit) : *o.config;
  std::cerr << outcome.diagnostics << "edgeplane plan: " << outcome.errors << " error(s) in "
            << where << "; nothing applied\n";
  return PlanError{"config",
                   "the config in " + where + " does not validate (" +
                       plural(outcome.errors, "error", "errors") + ")",
                   outcome.items};
}

// Observe: the store's view of the host, this host's target (which needs the view) built
// while the live host and the certificates are still being read, then the host (or, offline,
// what --observed saved) and its certificates.
Failure observeStage(const Options& o, const Loaded& loaded,
                     std::future<Result<core::HostState>>& observing, StateDirReading& reading,
                     std::optional<core::Target>& target, core::HostState& observed,
                     core::StoreView& view) {
  if (o.offline) {
    if (o.observed) {
      Result<std::string> text = readFileText(*o.observed);
      if (!text) {
        return failed("observed", text.error().message);
      }
      auto parsed = core::observedFromJson(*text);
      if (!parsed) {
        return failed("observed", *o.observed + ": " + parsed.error().message);
      }
      observed = std::move(parsed->host);
      view = std::move(parsed->store);
    }
  } else {
    Result<core::StoreView> seenView = reading.view.get();
    if (!seenView) {
      return failed("store", seenView.error().message);
    }
    view = std::move(*seenView);
  }
  Result<core::Target> built = buildHostTarget(loaded, view, {}, !o.offline);
  if (!o.offline) {
    Result<core::HostState> certs = reading.certs.get();
    if (!certs) {
      return failed("observe", "observing certificates failed: " + certs.error().message);
    }
    auto seen = observing.get();
    if (!seen) {
      return failed("observe", "observing the host failed: " + seen.error().message +
                                   " (run as root, or use --offline)");
    }
    observed = std::move(*seen);
    if (built) {
      observeCertificates(o, *built, *certs, observed);
    }
  }
  if (!built) {
    return failed("target", built.error().message);
  }
  target = std::move(*built);
  return std::nullopt;
}

// Everything before the plan; on success `plan` holds it.
Failure makePlan(const Options& o, PlanSource& s, std::optional<core::Plan>& plan) {
  s.configDir = o.config ? std::optional(fs::path(*o.config)) : std::nullopt;
  if (o.git) {
    if (auto f = gitSource(o, s)) {
      return f;
    }
  }
  if (!s.configDir) {
    return failed("source", "--config DIR, --agent FILE or --source URL is required");
  }
  // The live host is observed and the state directory (store, certificates) read, each on a
  // thread of its own, while the config loads.
  std::optional<sys::KernelHost> host;
  std::future<Result<core::HostState>> observing;
  StateDirReading reading;
  if (!o.offline) {
    host.emplace(o.stateDir, backendChoice(o));
    observing = observeInBackground(*host);
    reading = readStateDirInBackground(o.stateDir);
  }
  std::optional<Loaded> loaded;
  if (auto f = loadStage(o, s, loaded)) {
    return f;
  }
  std::optional<core::Target> target;
  core::HostState observed;
  core::StoreView view;
  if (auto f = observeStage(o, *loaded, observing, reading, target, observed, view)) {
    return f;
  }
  plan = core::plan(*target, observed, view);
  return std::nullopt;
}

}  // namespace

int cmdPlan(const Options& o) {
  PlanSource source;
  std::optional<core::Plan> p;
  if (Failure f = makePlan(o, source, p)) {
    if (o.json) {
      std::cout << renderPlanErrorJson(*f);
    }
    return 1;
  }
  if (o.json) {
    std::cout << core::renderJson(*p);
  } else {
    writePlan(std::cout, *p);
  }
  if (source.refused) {
    return 1;
  }
  return o.detailedExitcode && !p->empty() ? 2 : 0;
}

}  // namespace edgeplane::cli
