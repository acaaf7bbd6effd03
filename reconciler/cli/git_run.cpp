// A Git run's source (see git_run.h).
#include "reconciler/cli/git_run.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/progress.h"
#include "reconciler/system/dir_at.h"
#include "reconciler/system/file_write.h"
#include "schema/encoding.h"
#include "schema/file_text.h"
#include "schema/git_url.h"
#include "schema/unique_fd.h"

namespace edgeplane::cli {

namespace fs = std::filesystem;

// How a Git run is recorded: the repository, the ref and the config root.
std::string gitSourceText(const GitSettings& g) {
  return redactUrl(g.url) + " " + g.ref + (g.path.empty() ? "" : " " + g.path);
}

source::SourceSpec specOf(const GitSettings& g, std::optional<std::string> ref) {
  source::SourceSpec spec{g.url, ref.value_or(g.ref), std::nullopt};
  spec.fetchMaxSize = g.fetchMaxSize;
  if (g.sshKey) {
    spec.sshKey = *g.sshKey;
  }
  return spec;
}

// Verifies the commit's signature when the source asks for it. Returns a refusal reason, or
// nullopt when the commit may be applied (`note` then says who signed it).
std::optional<std::string> checkSignature(const source::GitSource& src, const GitSettings& g,
                                          const std::string& commit, std::string& note) {
  if (!g.allowedSigners) {
    return std::nullopt;
  }
  Result<std::string> text = readFileText(*g.allowedSigners);
  if (!text) {
    return "cannot read allowed_signers file " + *g.allowedSigners +
           "; no commit is applied without it";
  }
  std::vector<std::string> warnings;
  auto signers = source::parseAllowedSigners(*text, &warnings);
  if (!signers) {
    return *g.allowedSigners + ": " + signers.error().message;
  }
  // Lines skipped for a key type that is not supported: "allowed_signers:3: ..." -> the path.
  std::string skipped;
  for (const std::string& w : warnings) {
    skipped += "\nwarning: " + *g.allowedSigners + w.substr(w.find(':'));
  }
  auto verified = src.verifyCommit(commit, *signers);
  if (!verified) {
    // "commit <id>: signed by … which is not an allowed signer" -> without the id, which the
    // summary names already.
    std::string why = verified.error().message;
    if (const std::string prefix = "commit " + commit; why.starts_with(prefix)) {
      why = why.substr(prefix.size());
      why = why.starts_with(": ") ? why.substr(2) : "it" + why;
    }
    return why + " (checked against allowed_signers " + *g.allowedSigners + ")" + skipped;
  }
  note = "signature: good, by " + verified->principal + " (" + verified->keyType + " " +
         verified->fingerprint + ")" + skipped;
  return std::nullopt;
}

namespace {

std::string dated(std::int64_t seconds) {
  return isoTime(seconds * 1000);
}

constexpr const char* kHowToRollBack =
    "to roll back on purpose: `edgeplane apply --allow-rollback`, or allow_rollback = true in "
    "the agent file's [source] for the time of the rollback";

}  // namespace

HistoryVerdict checkHistory(const HistoryPoint& next, const std::optional<HistoryPoint>& last,
                            const Result<bool>& descends, std::int64_t nowSeconds,
                            bool allowRollback) {
  HistoryVerdict v;
  // A commit dated ahead of the clock would make every later (correctly dated) commit look
  // older than it: no override for it.
  if (next.committerTime && *next.committerTime > nowSeconds + kMaxCommitterSkewSeconds) {
    v.refusal = "commit " + next.id + " is dated " + dated(*next.committerTime) +
                ", in the future: this host's clock says " + dated(nowSeconds) + " and allows " +
                std::to_string(kMaxCommitterSkewSeconds / 60) +
                " minutes of skew; check the committer's clock (the rollback override does not "
                "apply to this)";
    v.summary = "dated " + dated(*next.committerTime) + ", in the future";
    return v;
  }
  if (!last || last->id == next.id) {
    return v;
  }
  std::string why;
  std::string summary;
  const std::string lastShort = shortCommit(last->id);
  if (!descends) {
    why = "commit " + next.id + " cannot be checked against the last applied commit " + last->id +
          ": " + descends.error().message;
    summary = "cannot be checked against the last applied commit " + lastShort;
  } else if (!descends.value()) {
    why = "commit " + next.id + " does not descend from the last applied commit " + last->id +
          " (a force-push back in history, or a commit of another branch)";
    summary = "does not descend from the last applied commit " + lastShort;
  } else if (next.committerTime && last->committerTime &&
             *next.committerTime < *last->committerTime) {
    // The committer time is the signer's to choose; going back in it is going back.
    why = "commit " + next.id + " is dated " + dated(*next.committerTime) +
          ", before the last applied commit " + last->id + " (" + dated(*last->committerTime) + ")";
    summary = "dated before the last applied commit " + lastShort;
  } else {
    return v;
  }
  if (allowRollback) {
    v.rollback = why + "; applied anyway: the rollback override is set";
    return v;
  }
  v.refusal = why + "\n" + kHowToRollBack;
  v.summary = summary;
  return v;
}

namespace {

constexpr const char* kAppliedFile = "applied";  // in <state-dir>/source, beside the cache

// <state-dir>/source: the cache, the applied commit and the kept trees (hidden from the proxy).
fs::path sourceDir(const std::string& stateDir) {
  return fs::path(stateDir) / "source";
}
constexpr std::string_view kAppliedHeader = "edgeplane applied commit\n";

// The last commit applied from Git and its source, as recordAppliedCommit kept it beside the
// cache `cache` (<state-dir>/source/repo); without that file (a host upgraded from a version
// that kept it in the store only, or an offline plan's throw-away cache), as the store has it
// (none without a store).
struct LastApplied {
  std::string source;
  std::string commit;
};
Result<std::optional<LastApplied>> lastApplied(const fs::path& cache, const Store* store) {
  const fs::path file = cache.parent_path() / kAppliedFile;
  auto read = sys::readOwnFile(file.string());
  if (!read) {
    return read.error();
  }
  if (!*read) {
    if (store == nullptr) {
      return std::optional<LastApplied>();
    }
    auto last = store->lastGoodCommitRun();
    if (!last) {
      return last.error();
    }
    if (!last->has_value() || !(*last)->commitId) {
      return std::optional<LastApplied>();
    }
    return std::optional(LastApplied{(*last)->configSource, *(*last)->commitId});
  }
  // The header, the commit's id and a newline, then the source as it was written (any bytes).
  const std::string& text = **read;
  const size_t at = kAppliedHeader.size();
  if (!text.starts_with(kAppliedHeader) || text.size() < at + 41 ||
      !isFullCommitId(std::string_view(text).substr(at, 40)) || text[at + 40] != '\n') {
    return terminal(file.string() +
                    " is damaged; removing it makes runs take the last applied commit from the "
                    "store, which the proxy can write");
  }
  return std::optional(LastApplied{text.substr(at + 41), text.substr(at, 40)});
}

}  // namespace

Result<HistoryVerdict> checkCommitHistory(const source::GitSource& src, const GitSettings& g,
                                          const source::FetchResult& commit, const Store* store,
                                          std::int64_t nowSeconds) {
  const HistoryPoint next{commit.commitId, commit.committerTime};
  auto last = lastApplied(src.cacheDir(), store);
  if (!last) {
    return last.error();
  }
  if (!*last) {
    return checkHistory(next, std::nullopt, true, nowSeconds, g.allowRollback);
  }
  HistoryPoint lastPoint{(*last)->commit, std::nullopt};
  if (auto described = src.describeCommit(lastPoint.id)) {
    lastPoint.committerTime = described->committerTime;
  }
  return checkHistory(next, lastPoint, src.descendsFrom(next.id, lastPoint.id), nowSeconds,
                      g.allowRollback);
}

fs::path keptConfigDir(const std::string& stateDir) {
  return sourceDir(stateDir) / "config";
}

Result<void> recordAppliedCommit(const std::string& stateDir, const std::string& source,
                                 const std::string& commit) {
  // The run prepared the directory (sourceCacheIn) before it got here.
  const fs::path file = sourceDir(stateDir) / kAppliedFile;
  if (!isFullCommitId(commit)) {
    return terminal("cannot keep " + commit + " as the applied commit: not a full commit id");
  }
  if (auto kept = sys::replaceFile(file.string(), file.string() + ".tmp",
                                   std::string(kAppliedHeader) + commit + "\n" + source, 0600);
      !kept) {
    return kept;
  }
  return sys::fsyncDir(file.parent_path().string());
}

namespace {

// The earlier layout, the bare repository at `source` itself (open as `dir`), moved into
// source/repo inside the directory, so that the directory stays (and so does its hiding) and the
// history stays (the fallback and the anti-rollback rules need the last applied commit): every
// entry into source/repo.new, HEAD last, then repo.new renamed to repo. A run that dies
// meanwhile is finished by the next (HEAD still there: go on moving; gone: rename).
Result<void> moveEarlierLayout(int dir, const fs::path& base) {
  struct stat st {};
  const bool earlier = ::fstatat(dir, "HEAD", &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (earlier) {
    auto made = sys::openDirAt(dir, "repo.new", (base / "repo.new").string(), true);
    if (!made) {
      return made.error();
    }
    const UniqueFd into(*made);
    auto names = sys::namesIn(dir, base.string());
    if (!names) {
      return names.error();
    }
    std::erase(*names, std::string("repo.new"));
    std::stable_partition(names->begin(), names->end(),
                          [](const std::string& n) { return n != "HEAD"; });
    for (const std::string& name : *names) {
      if (::renameat(dir, name.c_str(), into.get(), name.c_str()) != 0) {
        const int err = errno;
        return terminal("move " + (base / name).string() + " into " + (base / "repo.new").string() +
                        ": " + errnoText(err));
      }
    }
  }
  if ((earlier || ::fstatat(dir, "repo.new", &st, AT_SYMLINK_NOFOLLOW) == 0) &&
      ::renameat(dir, "repo.new", dir, "repo") != 0) {
    const int err = errno;
    return terminal("move the source cache into " + (base / "repo").string() + ": " +
                    errnoText(err));
  }
  return {};
}

}  // namespace

Result<fs::path> sourceCacheIn(const std::string& stateDir) {
  const fs::path base = sourceDir(stateDir);
  if (::mkdir(base.c_str(), 0700) != 0 && errno != EEXIST) {
    const int err = errno;
    return terminal("create " + base.string() + ": " + errnoText(err));
  }
  auto opened = sys::openDirAt(AT_FDCWD, base.string(), base.string(), false);
  if (!opened || *opened < 0) {  // a link in its place is refused, not followed
    return opened ? terminal(base.string() + " vanished") : opened.error();
  }
  const UniqueFd dir(*opened);
  if (auto moved = moveEarlierLayout(dir.get(), base); !moved) {
    return moved.error();
  }
  return base / "repo";
}

// Exports `commit`'s config root into `dir` (atomic swap; see GitSource::exportTree).
Result<std::vector<ConfigFile>> exportCommit(const source::GitSource& src, const GitSettings& g,
                                             const std::string& commit, const fs::path& dir) {
  auto files = src.exportTree(commit, g.path, dir);
  if (!files) {
    return files.error();
  }
  return configFilesOf(*files, dir);
}

// Fetch (bounded), resolve, verify, export into <state-dir>/source/config.next. On a fetch failure,
// the last good commit still in the cache is used instead (drift repair goes on while the
// remote is away) and the run will be recorded as failed.
Prepared prepareGit(const Options& o, Store& store) {
  return prepareGit(o, store,
                    std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count());
}

Result<LastGood> lastGoodFromCache(const fs::path& cache, const GitSettings& g,
                                   const Store* store) {
  auto last = lastApplied(cache, store);
  if (!last) {
    return last.error();
  }
  if (!*last || (*last)->source != gitSourceText(g)) {
    return terminal("no commit from " + gitSourceText(g) +
                    " was applied before; nothing to fall back to");
  }
  const std::string& id = (*last)->commit;
  // A full commit id as the ref: resolve() finds it in the cache, no network.
  auto pinned = source::GitSource::open(cache, specOf(g, id));
  auto resolved = pinned ? pinned->resolve() : Result<source::FetchResult>(pinned.error());
  if (!pinned || !resolved) {
    return terminal("the last good commit " + id + " is no longer in the cache");
  }
  return LastGood{std::move(pinned).value(), std::move(resolved).value()};
}

Result<std::string> fetchWithProgress(const Options& o, const fs::path& cache,
                                      const source::SourceSpec& spec) {
  const std::vector<std::string>& helper =
      o.fetchHelper.empty() ? defaultFetchHelper() : o.fetchHelper;
  if (!o.progress) {
    return fetchInChild(cache, spec, o.git->fetchTimeout, helper);
  }
  Progress progress;
  return fetchInChild(cache, spec, o.git->fetchTimeout, helper,
                      fetchProgress(progress, redactUrl(o.git->url)));
}

namespace {

// A Git run's commit on its way to an exported tree: what prepareGit's stages share.
struct GitPrep {
  const Options& o;
  Store& store;
  fs::path cache;
  Prepared p;
  std::optional<source::GitSource> src;
  std::optional<source::FetchResult> resolved;
  bool fetchFailed = false;
  std::string exported;  // the commit whose tree is exported
};

// Fetch (bounded) and resolve the ref; when that fails, the last good commit from the cache
// instead. False when there is not even that (`p` says why).
bool fetchOrLastGood(GitPrep& x) {
  const GitSettings& g = *x.o.git;
  auto opened = source::GitSource::open(x.cache, specOf(g));
  if (!opened) {
    x.p.result = RunResult::Failed;
    x.p.summary = "source: " + opened.error().message;
    x.p.retryable = opened.error().retryable;
    return false;
  }
  std::optional<Error> fetchError;
  auto fetched = fetchWithProgress(x.o, x.cache, opened->spec());
  if (!fetched) {
    fetchError = fetched.error();
  } else if (auto reopened = source::GitSource::open(x.cache, specOf(g)); !reopened) {
    fetchError = reopened.error();  // a fresh handle sees what the child wrote into the cache
  } else {
    x.src.emplace(std::move(reopened).value());
    // The commit the child fetched, not the ref read again (others write the cache).
    if (auto resolved = x.src->describeCommit(*fetched); !resolved) {
      fetchError = resolved.error();
    } else {
      x.resolved = std::move(resolved).value();
    }
  }
  if (!fetchError) {
    return true;
  }
  x.fetchFailed = true;
  x.p.retryable = fetchError->retryable;
  x.p.result = RunResult::Failed;
  x.p.summary = fetchError->message;  // completed with what the fallback run did
  auto good = lastGoodFromCache(x.cache, g, &x.store);
  if (!good) {
    x.p.detail = good.error().message;
    return false;
  }
  x.src.emplace(std::move(good->src));
  x.resolved = std::move(good->commit);
  x.p.fallback = true;
  x.p.note = "fetch failed: " + fetchError->message +
             "\nreconciling against the last good commit " + shortCommit(x.resolved->commitId) +
             " from the cache instead";
  return true;
}

// Verify the signature, then the anti-rollback rules (a refusal is recorded in `p`). False
// when the history could not be read.
bool verifyCommit(GitPrep& x, std::int64_t nowSeconds) {
  const GitSettings& g = *x.o.git;
  Prepared& p = x.p;
  const std::string& commit = x.resolved->commitId;
  std::string signatureNote;
  if (auto refusal = checkSignature(*x.src, g, commit, signatureNote)) {
    p.result = RunResult::Refused;
    p.summary = "commit " + shortCommit(commit) + " refused: " + firstLine(*refusal);
    p.detail = "commit " + commit + " refused: " + *refusal;
    return true;
  }
  if (!signatureNote.empty()) {
    p.note += (p.note.empty() ? "" : "\n") + signatureNote;
    if (!x.fetchFailed) {
      p.detail = signatureNote;
    }
  }
  auto history = checkCommitHistory(*x.src, g, *x.resolved, &x.store, nowSeconds);
  if (!history) {
    p.result = RunResult::Failed;
    p.summary = "reading the last applied commit failed: " + history.error().message;
    p.retryable = history.error().retryable;
    return false;
  }
  if (history->refusal) {
    p.result = RunResult::Refused;
    p.summary = "commit " + shortCommit(commit) + " refused: " + history->summary;
    p.detail = *history->refusal;
  } else if (history->rollback) {
    p.rollback = *history->rollback;
    p.note += (p.note.empty() ? "" : "\n") + ("rollback: " + *history->rollback);
    p.detail += (p.detail.empty() ? "" : "\n") + ("rollback: " + *history->rollback);
  }
  return true;
}

// A refused commit leaves the host reconciled against the last good one: drift repair goes
// on, as it does while the remote is away, and the run is recorded refused. False when there
// is none to fall back to.
bool fallBackFromRefusal(GitPrep& x) {
  Prepared& p = x.p;
  p.retryable = false;
  if (p.fallback) {
    return false;  // the last good commit itself is refused now (allowed_signers changed)
  }
  auto good = lastGoodFromCache(x.cache, *x.o.git, &x.store);
  if (!good) {
    return false;
  }
  std::string ignored;
  if (auto refusal = checkSignature(good->src, *x.o.git, good->commit.commitId, ignored)) {
    p.detail += "\nthe last good commit " + good->commit.commitId + " is refused too: " + *refusal +
                "; nothing applied";
    return false;
  }
  x.src.emplace(std::move(good->src));
  x.exported = good->commit.commitId;
  p.fallback = true;
  p.note = p.detail + "\nreconciling against the last good commit " + shortCommit(x.exported) +
           " from the cache instead";
  return true;
}

// Export the commit's config root into <state-dir>/source/config.next.
void exportPrepared(GitPrep& x) {
  Prepared& p = x.p;
  const fs::path next = keptConfigDir(x.o.stateDir).string() + ".next";
  auto written = exportCommit(*x.src, *x.o.git, x.exported, next);
  if (!written) {
    if (p.result == RunResult::Refused) {
      p.detail += "\nthe last good commit " + x.exported +
                  " could not be exported: " + written.error().message + "; nothing applied";
      p.fallback = false;
      return;
    }
    p.result = written.error().retryable ? RunResult::Failed : RunResult::Refused;
    p.summary = "commit " + shortCommit(x.exported) + ": " + written.error().message;
    p.detail = written.error().message;
    p.retryable = written.error().retryable;
    p.fallback = false;
    return;
  }
  p.configDir = next;
  p.files = std::move(*written);
  p.appliedCommit = x.exported;
  p.displayRoot = x.o.git->path;
}

}  // namespace

Prepared prepareGit(const Options& o, Store& store, std::int64_t nowSeconds) {
  auto cache = sourceCacheIn(o.stateDir);
  if (!cache) {
    Prepared failedPrep;
    failedPrep.result = RunResult::Failed;
    failedPrep.summary = "source: " + cache.error().message;
    return failedPrep;
  }
  GitPrep x{o, store, *cache, {}, {}, {}, false, {}};
  if (!fetchOrLastGood(x)) {
    return x.p;
  }
  x.p.commit = CommitInfo{x.resolved->commitId, x.resolved->author, x.resolved->subject};
  x.exported = x.resolved->commitId;
  if (!verifyCommit(x, nowSeconds)) {
    return x.p;
  }
  if (x.p.result == RunResult::Refused && !fallBackFromRefusal(x)) {
    return x.p;
  }
  exportPrepared(x);
  return x.p;
}

LoadOutcome loadPrepared(const Prepared& p, const Options& o,
                         const std::optional<ConfigCache>& cache) {
  return loadConfig(*p.configDir, p.displayRoot, o, cache, p.files ? &*p.files : nullptr);
}

// The commit that was accepted is what keptConfigDir holds afterwards (status's drift
// check reads it).
void promoteConfig(const Options& o, std::ostream& err) {
  const fs::path live = keptConfigDir(o.stateDir);
  const fs::path next = live.string() + ".next";
  std::error_code ec;
  // Where the tree was kept before it moved beside the cache (the proxy could write there).
  fs::remove_all(fs::path(o.stateDir) / "config", ec);
  if (!fs::exists(live, ec)) {
    fs::rename(next, live, ec);
  } else {
    // Swap, then drop the old tree: readers of `config` never see a half-written one.
    if (::renameat2(AT_FDCWD, next.c_str(), AT_FDCWD, live.c_str(), RENAME_EXCHANGE) != 0) {
      ec = std::error_code(errno, std::system_category());
    } else {
      fs::remove_all(next, ec);
    }
  }
  if (ec) {
    err << "edgeplane apply: warning: could not keep the applied tree in " << live.string() << ": "
        << ec.message() << "\n";
  }
}

}  // namespace edgeplane::cli
