// GitRepo on libgit2 (git_source.h): part of the net module, never of the executable itself.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/source/git_source.h"

struct git_repository;

namespace edgeplane::source {

class LibGit2Repo final : public GitRepo {
 public:
  // GitSource::open's work: the spec checked and normalised, the cache created or opened.
  static Result<std::unique_ptr<GitRepo>> open(const std::filesystem::path& cacheDir,
                                               SourceSpec spec);

  Result<FetchResult> fetch() override;
  Result<FetchResult> resolve() const override;
  Result<std::map<std::string, std::string>> readTree(std::string_view commitId,
                                                      std::string_view path,
                                                      const TreeLimits& limits) const override;
  Result<std::map<std::string, std::string>> exportTree(
      std::string_view commitId, std::string_view path,
      const std::filesystem::path& destination) const override;
  Result<FetchResult> describeCommit(std::string_view commitId) const override;
  Result<bool> descendsFrom(std::string_view commitId, std::string_view ancestorId) const override;
  Result<std::optional<SshSignedCommit>> extractSignature(std::string_view commitId) const override;
  Result<VerifiedSignature> verifyCommit(std::string_view commitId,
                                         const std::vector<AllowedSigner>& signers) const override;
  const SourceSpec& spec() const override { return spec_; }
  const std::filesystem::path& cacheDir() const override { return cacheDir_; }

 private:
  struct RepoFree {
    void operator()(git_repository* repo) const;
  };
  LibGit2Repo(std::filesystem::path cacheDir, SourceSpec spec, git_repository* repo);
  Result<FetchResult> resolveIn(bool afterFetch) const;

  std::filesystem::path cacheDir_;
  SourceSpec spec_;
  std::unique_ptr<git_repository, RepoFree> repo_;
};

}  // namespace edgeplane::source
