// libgit2 handles as unique_ptrs, and the lookups libgit2_repo.cpp and libgit2_tree.cpp share.
#pragma once

#include <git2.h>

#include <memory>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::source::git {

template <typename T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using GitPtr = std::unique_ptr<T, GitFree<T, Free>>;

using Commit = GitPtr<git_commit, git_commit_free>;
using Tree = GitPtr<git_tree, git_tree_free>;
using TreeEntry = GitPtr<git_tree_entry, git_tree_entry_free>;
using Blob = GitPtr<git_blob, git_blob_free>;
using Object = GitPtr<git_object, git_object_free>;
using Reference = GitPtr<git_reference, git_reference_free>;
using Remote = GitPtr<git_remote, git_remote_free>;
using Config = GitPtr<git_config, git_config_free>;
using Odb = GitPtr<git_odb, git_odb_free>;
using OdbObject = GitPtr<git_odb_object, git_odb_object_free>;

// The message of the calling thread's last libgit2 error.
std::string lastGitError();

// The commit `commitId` (a full 40-hex id) in `repo`; `where` names the repository in the
// messages. Anything else, or an id that is not there, is a terminal error.
Result<Commit> lookupCommit(git_repository* repo, std::string_view commitId,
                            const std::string& where);

}  // namespace edgeplane::source::git
