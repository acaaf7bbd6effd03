// A Git run's source: the commit to apply fetched (in a bounded child), resolved, its
// signature checked and its config root exported for loading; the accepted tree kept.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/source/git_source.h"
#include "schema/store.h"

namespace edgeplane::cli {

// The commit a Git run is about, as the store records it.
struct CommitInfo {
  std::string id;
  std::string author;
  std::string subject;
};

// The outcome of preparing a Git commit for apply: either a directory to load (with the
// commit it holds) or a refusal/failure to record.
struct Prepared {
  std::optional<CommitInfo> commit;
  std::optional<std::filesystem::path> configDir;  // set: go on and load this
  // From Git: configDir's files as the commit holds them (exportCommit), which are loaded.
  std::optional<std::vector<ConfigFile>> files;
  std::optional<std::string> displayRoot;
  RunResult result = RunResult::Ok;  // Refused or Failed when configDir is unset
  std::string summary;
  std::string detail;
  bool retryable = false;
  std::string note;  // printed before the plan (signature, fallback)
  // Set when the commit was let through by the rollback override: what the override allowed.
  std::optional<std::string> rollback;
  // The head commit cannot be applied (the fetch failed, or it was refused) and configDir holds
  // the last good commit instead: drift repair goes on; the run is recorded as `result` says.
  bool fallback = false;
  // The commit whose tree configDir holds (the proxy snapshot's commit).
  std::optional<std::string> appliedCommit;
};

// Loads and validates what `p` prepared (p.configDir set), as apply does (loadConfig).
LoadOutcome loadPrepared(const Prepared& p, const Options& o,
                         const std::optional<ConfigCache>& cache);

// The bare cache of the config repository: <state-dir>/source/repo. `source` is a directory that
// stays (made 0700 here or by the proxy's unit, which hides it: whoever else writes the state
// directory must not write the cache, whose refs and config a fetch trusts; a link in its place
// is refused), and the cache is made inside it by rename. A cache of the earlier layout (the
// repository at `source` itself) is moved into source/repo, its history kept and the directory
// staying. Call with the state lock held.
Result<std::filesystem::path> sourceCacheIn(const std::string& stateDir);

// The tree the last Git run applied, kept for status's drift check and peer-config:
// <state-dir>/source/config, beside the cache where the proxy cannot write (it was
// <state-dir>/config, which the proxy could rewrite); the next tree is exported into
// <state-dir>/source/config.next and swapped in.
std::filesystem::path keptConfigDir(const std::string& stateDir);

// The last commit applied from Git and its source (gitSourceText), kept beside the cache in
// <state-dir>/source/applied (0600, replaced whole and synced), where the proxy, which writes the
// store, cannot write: the anti-rollback rules and the fallback to the last good commit read it
// there. Apply keeps each Git run that applied (ok or partial) here before it records the run in
// the store, and records a run whose commit could not be kept as failed. Called after the run's
// sourceCacheIn, which made the directory.
Result<void> recordAppliedCommit(const std::string& stateDir, const std::string& source,
                                 const std::string& commit);

// How a Git run is recorded: the repository, the ref and the config root.
std::string gitSourceText(const GitSettings& g);

source::SourceSpec specOf(const GitSettings& g, std::optional<std::string> ref = std::nullopt);

// Verifies the commit's signature when the source asks for it. Returns a refusal reason, or
// nullopt when the commit may be applied (`note` then says who signed it).
std::optional<std::string> checkSignature(const source::GitSource& src, const GitSettings& g,
                                          const std::string& commit, std::string& note);

// Anti-rollback: how far ahead of this host's clock a committer time may be.
inline constexpr std::int64_t kMaxCommitterSkewSeconds = 5 * 60;

// A commit as the anti-rollback rules see it; the time is unset when it cannot be read (the
// last applied commit is no longer in the cache).
struct HistoryPoint {
  std::string id;
  std::optional<std::int64_t> committerTime;  // seconds since the epoch
};

// What the anti-rollback rules say of a commit: refused (why, in full and in one line), or
// accepted, possibly only thanks to the rollback override (`rollback` then says what it let
// through).
struct HistoryVerdict {
  std::optional<std::string> refusal;
  std::string summary;
  std::optional<std::string> rollback;
};

// The rules, with no I/O and no clock of their own: `next` must be `last` or descend from it
// (`descends`; an error when that cannot be told) and not be dated before it, unless
// `allowRollback`; and never be dated more than kMaxCommitterSkewSeconds after `nowSeconds`.
// Without a last applied commit only the clock rule applies.
HistoryVerdict checkHistory(const HistoryPoint& next, const std::optional<HistoryPoint>& last,
                            const Result<bool>& descends, std::int64_t nowSeconds,
                            bool allowRollback);

// checkHistory for `commit` against the last applied commit (any source: it is the host's
// history) as kept beside the cache of `src` (recordAppliedCommit), or without that file as
// `store` records it (none without a store), read from the cache of `src`.
Result<HistoryVerdict> checkCommitHistory(const source::GitSource& src, const GitSettings& g,
                                          const source::FetchResult& commit, const Store* store,
                                          std::int64_t nowSeconds);

// What a run falls back to when the head commit cannot be applied (the fetch failed, or the
// commit was refused): the last good commit of this source, from the cache (no network), so
// drift repair goes on. An error says why there is none.
struct LastGood {
  source::GitSource src;
  source::FetchResult commit;
};
Result<LastGood> lastGoodFromCache(const std::filesystem::path& cache, const GitSettings& g,
                                   const Store* store);

// fetchInChild into `cache` with the options' helper and deadline (the commit fetched); on a
// terminal (and with o.progress) a progress line while it runs.
Result<std::string> fetchWithProgress(const Options& o, const std::filesystem::path& cache,
                                      const source::SourceSpec& spec);

// Exports `commit`'s config root into `dir` (atomic swap; see GitSource::exportTree). Returns
// the config files of the tree as read from the object database, named as under `dir`
// (configFilesOf): what to load, rather than the copy on disk.
Result<std::vector<ConfigFile>> exportCommit(const source::GitSource& src, const GitSettings& g,
                                             const std::string& commit,
                                             const std::filesystem::path& dir);

// Fetch (bounded), resolve, verify, export into <state-dir>/source/config.next. On a fetch failure,
// or when the head commit is refused, the last good commit still in the cache is exported
// instead (drift repair goes on while the remote is away or serves a commit that cannot be
// applied) and the run will be recorded as failed or refused.
// The commit must pass checkSignature and checkCommitHistory (at `nowSeconds`, this host's
// clock unless a test says otherwise).
Prepared prepareGit(const Options& o, Store& store, std::int64_t nowSeconds);
Prepared prepareGit(const Options& o, Store& store);

// The commit that was accepted is what keptConfigDir holds afterwards (status's drift
// check reads it).
void promoteConfig(const Options& o, std::ostream& err);

}  // namespace edgeplane::cli
