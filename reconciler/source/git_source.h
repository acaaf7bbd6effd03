// The desired-state source: a bare libgit2 cache of the config repository, a ref pinned to a
// commit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/source/sshsig.h"
#include "schema/agent_config.h"
#include "schema/result.h"

namespace edgeplane::source {

struct SourceSpec {
  // A local path (made absolute), file://, https:// or ssh:// (also scp-like user@host:path).
  std::string url;
  // A branch, a tag, or a full 40-hex commit id; "refs/heads/X" and "refs/tags/X" say which
  // when a name is both.
  std::string ref;
  // ssh:// only: a private key file; without it the SSH agent is asked.
  std::optional<std::filesystem::path> sshKey;
  // fetch() aborts once the remote has sent more than this many bytes (agent.toml [source]
  // fetch_max_size): a remote cannot fill the disk, and the cache keeps its last state.
  std::uint64_t fetchMaxSize = kDefaultFetchMaxSize;
};

enum class RefKind { Branch, Tag, Commit };

struct FetchResult {
  std::string commitId;  // 40 lowercase hex
  RefKind kind = RefKind::Branch;
  std::string refName;  // what was resolved: "refs/remotes/origin/main", "refs/tags/v1", the id
  std::string author;   // "Name <email>"
  std::int64_t committerTime = 0;  // seconds since the epoch
  std::string subject;
};

// Bounds on what one config tree may hold; more is an error, not a huge allocation.
struct TreeLimits {
  std::size_t maxFiles = 10000;
  std::size_t maxTotalBytes = std::size_t{64} << 20;
  // Directories read: a tree may name one subtree many times, and its walk would multiply.
  std::size_t maxTrees = 10000;
};

// The config repository's cache, as GitSource reaches it. Its one implementation, on libgit2
// (libgit2_repo.h), lives in the net module (reconciler/net/module.h), so that a run from a
// directory does not map libgit2 and what it pulls in at start-up. The methods are
// GitSource's, documented there.
class GitRepo {
 public:
  virtual ~GitRepo() = default;
  virtual Result<FetchResult> fetch() = 0;
  virtual Result<FetchResult> resolve() const = 0;
  virtual Result<std::map<std::string, std::string>> readTree(std::string_view commitId,
                                                              std::string_view path,
                                                              const TreeLimits& limits) const = 0;
  virtual Result<std::map<std::string, std::string>> exportTree(
      std::string_view commitId, std::string_view path,
      const std::filesystem::path& destination) const = 0;
  virtual Result<FetchResult> describeCommit(std::string_view commitId) const = 0;
  virtual Result<bool> descendsFrom(std::string_view commitId,
                                    std::string_view ancestorId) const = 0;
  virtual Result<std::optional<SshSignedCommit>> extractSignature(
      std::string_view commitId) const = 0;
  virtual Result<VerifiedSignature> verifyCommit(
      std::string_view commitId, const std::vector<AllowedSigner>& signers) const = 0;
  virtual const SourceSpec& spec() const = 0;
  virtual const std::filesystem::path& cacheDir() const = 0;
};

class GitSource {
 public:
  // Opens the bare cache at `cacheDir` (`<state-dir>/source/repo`), creating it (no network) if the
  // directory is absent or empty, and records spec.url as its remote.origin.url (for people
  // inspecting it with git; fetch() uses spec.url as given, without url.*.insteadOf). A
  // directory that holds something else is refused, never deleted. Bad specs are terminal, and
  // so is a net module that cannot be loaded.
  static Result<GitSource> open(const std::filesystem::path& cacheDir, SourceSpec spec);

  explicit GitSource(std::unique_ptr<GitRepo> repo) : repo_(std::move(repo)) {}

  // Fetches every branch (to refs/remotes/origin/*) and tag, pruning what the remote deleted,
  // then resolves the ref as resolve() does. A remote that cannot be reached is retryable and
  // leaves the cache as it was; rejected credentials or certificates and a ref that is not
  // there are terminal, and so is a remote that sends more than spec.fetchMaxSize bytes ("fetch
  // exceeded fetch_max_size (N bytes)"; the pack is discarded, no ref moves). libgit2 1.5 has
  // no connect timeout: bound the run from outside.
  Result<FetchResult> fetch() { return repo_->fetch(); }
  // Resolves the ref against the cache as the last fetch left it (no network): a branch is the
  // remote's branch, a tag is peeled to its commit, a full id must be in the cache.
  Result<FetchResult> resolve() const { return repo_->resolve(); }

  // Every file under `path` ("" is the whole tree; "config" and "config/" are the same) at
  // the commit, keyed by its '/'-separated path relative to `path`. Read from the object
  // database: no working tree is involved, so uncommitted edits never show. A symlink or a
  // submodule under `path` is an error rather than a file silently left out.
  Result<std::map<std::string, std::string>> readTree(std::string_view commitId,
                                                      std::string_view path,
                                                      const TreeLimits& limits = {}) const {
    return repo_->readTree(commitId, path, limits);
  }
  // Writes readTree's files under `destination` (files 0644, directories 0755) and returns
  // them: a caller loads these, not the files on disk, which others may change after. The tree
  // is built in "<destination>.tmp" and swapped in with one rename (RENAME_EXCHANGE), so the
  // destination always holds one whole tree, the old or the new.
  Result<std::map<std::string, std::string>> exportTree(
      std::string_view commitId, std::string_view path,
      const std::filesystem::path& destination) const {
    return repo_->exportTree(commitId, path, destination);
  }

  // The commit `commitId` (a full id) as it is in the cache, described as resolve() does; an
  // id the cache does not hold is a terminal error.
  Result<FetchResult> describeCommit(std::string_view commitId) const {
    return repo_->describeCommit(commitId);
  }
  // Whether `commitId` is `ancestorId` or descends from it (git_graph_descendant_of): the
  // anti-rollback check. Either one missing from the cache is a terminal error.
  Result<bool> descendsFrom(std::string_view commitId, std::string_view ancestorId) const {
    return repo_->descendsFrom(commitId, ancestorId);
  }

  // The commit's `gpgsig` header and the bytes it signs; nullopt when the commit is unsigned.
  Result<std::optional<SshSignedCommit>> extractSignature(std::string_view commitId) const {
    return repo_->extractSignature(commitId);
  }
  // The commit must carry an SSH signature, in namespace "git", by one of `signers`; validity
  // times on a signer line are checked against the committer time, as git does.
  Result<VerifiedSignature> verifyCommit(std::string_view commitId,
                                         const std::vector<AllowedSigner>& signers) const {
    return repo_->verifyCommit(commitId, signers);
  }

  const SourceSpec& spec() const { return repo_->spec(); }
  const std::filesystem::path& cacheDir() const { return repo_->cacheDir(); }

 private:
  std::unique_ptr<GitRepo> repo_;
};

}  // namespace edgeplane::source
