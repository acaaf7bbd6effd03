// LibGit2Repo's config tree: read from a commit in the object database (no checkout), bounded,
// and exported to disk as one whole tree swapped in with a single rename.
#include "reconciler/source/libgit2_repo.h"
#include "schema/unique_fd.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "reconciler/source/libgit2_handles.h"
#include "schema/git_url.h"

namespace edgeplane::source {
namespace fs = std::filesystem;

namespace {

using git::Blob;
using git::lastGitError;
using git::lookupCommit;
using git::Tree;
using git::TreeEntry;

constexpr int kMaxTreeDepth = 64;

// "" -> "", "config/" -> "config", "a//b" and "../x" -> error.
Result<std::string> normalizeTreePath(std::string_view path) {
  while (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  if (path.empty()) {
    return std::string();
  }
  if (path.front() == '/') {
    return terminal("config path '" + std::string(path) + "' must be relative to the repository");
  }
  std::string_view rest = path;
  while (true) {
    const size_t slash = rest.find('/');
    const std::string_view part = rest.substr(0, slash);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string_view::npos) {
      return terminal("config path '" + std::string(path) + "' is not a plain relative path");
    }
    if (slash == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  return std::string(path);
}

struct TreeReader {
  git_repository* repo;
  const TreeLimits& limits;
  std::string commitId;
  std::map<std::string, std::string> files;
  size_t totalBytes = 0;
  size_t trees = 0;

  Result<void> walk(const git_tree* tree, const std::string& prefix, int depth) {
    if (depth > kMaxTreeDepth) {
      return terminal("tree deeper than " + std::to_string(kMaxTreeDepth) + " levels at " + prefix);
    }
    const size_t count = git_tree_entrycount(tree);
    for (size_t i = 0; i < count; ++i) {
      const git_tree_entry* entry = git_tree_entry_byindex(tree, i);
      const std::string_view name = git_tree_entry_name(entry);
      // Trees from a hostile remote may name entries anything; these reach the filesystem.
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string_view::npos) {
        return terminal("commit " + commitId + " has an invalid tree entry '" + std::string(name) +
                        "' under '" + prefix + "'");
      }
      const std::string relPath = prefix + std::string(name);
      switch (git_tree_entry_filemode(entry)) {
        case GIT_FILEMODE_TREE: {
          if (++trees > limits.maxTrees) {
            return terminal("config tree has more than " + std::to_string(limits.maxTrees) +
                            " directories");
          }
          git_tree* raw = nullptr;
          if (git_tree_lookup(&raw, repo, git_tree_entry_id(entry)) != 0) {
            return terminal("cannot read tree " + relPath + ": " + lastGitError());
          }
          Tree sub(raw);
          if (auto ok = walk(sub.get(), relPath + "/", depth + 1); !ok) {
            return ok;
          }
          break;
        }
        case GIT_FILEMODE_BLOB:
        case GIT_FILEMODE_BLOB_EXECUTABLE: {
          if (files.size() == limits.maxFiles) {
            return terminal("config tree has more than " + std::to_string(limits.maxFiles) +
                            " files");
          }
          git_blob* raw = nullptr;
          if (git_blob_lookup(&raw, repo, git_tree_entry_id(entry)) != 0) {
            return terminal("cannot read " + relPath + ": " + lastGitError());
          }
          Blob blob(raw);
          const auto size = static_cast<size_t>(git_blob_rawsize(blob.get()));
          if (size > limits.maxTotalBytes - totalBytes) {
            return terminal("config tree is larger than " + std::to_string(limits.maxTotalBytes) +
                            " bytes");
          }
          totalBytes += size;
          std::string content(static_cast<const char*>(git_blob_rawcontent(blob.get())), size);
          if (!files.emplace(relPath, std::move(content)).second) {
            return terminal("commit " + commitId + " has two entries named " + relPath);
          }
          break;
        }
        case GIT_FILEMODE_LINK:
          return terminal(relPath + " is a symlink; symlinks are not supported in the config tree");
        case GIT_FILEMODE_COMMIT:
          return terminal(relPath +
                          " is a submodule; submodules are not supported in the config tree");
        default:
          return terminal(relPath + " has an unknown file mode");
      }
    }
    return {};
  }
};

Result<void> errnoError(const std::string& what, int err) {
  return terminal(what + ": " + errnoText(err));
}

// The directory `name` in `parent` (a descriptor; AT_FDCWD with a path for the root), made 0755
// and opened without following a symbolic link: what the tree is written into is the directory
// made here, never one that a link put in its place points to. An existing directory is used
// only when `mayExist` (a parent shared by two files of the tree).
// `path` names it in errors.
Result<UniqueFd> makeDir(int parent, const std::string& name, const fs::path& path, bool mayExist) {
  if (::mkdirat(parent, name.c_str(), 0755) != 0) {
    const int err = errno;
    if (err != EEXIST || !mayExist) {
      return errnoError("mkdir " + path.string(), err).error();
    }
  }
  UniqueFd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) {
    const int err = errno;
    return errnoError("open " + path.string(), err).error();
  }
  // mkdir's mode is filtered by the umask; the contract is 0755.
  if (::fchmod(dir.get(), 0755) != 0) {
    const int err = errno;
    return errnoError("chmod " + path.string(), err).error();
  }
  return dir;
}

Result<void> writeFile(int dir, const std::string& name, const fs::path& path,
                       const std::string& content) {
  const UniqueFd fd(
      ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (fd.get() < 0) {
    const int err = errno;
    return errnoError("create " + path.string(), err);
  }
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      const int e = errno;
      return errnoError("write " + path.string(), e);
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd.get(), 0644) != 0 || ::fsync(fd.get()) != 0) {
    const int e = errno;
    return errnoError("write " + path.string(), e);
  }
  return {};
}

// `files` written under the new directory `root`, which must not exist yet: every directory and
// file is made through the descriptor of its parent.
Result<void> writeTree(const fs::path& root, const std::map<std::string, std::string>& files) {
  auto top = makeDir(AT_FDCWD, root.string(), root, false);
  if (!top) {
    return top.error();
  }
  for (const auto& [relPath, content] : files) {
    // Parents first; the map's order does not guarantee them, so make each on the way down.
    std::optional<UniqueFd> sub;
    fs::path path = root;
    std::string_view rest = relPath;
    for (size_t slash = rest.find('/'); slash != std::string_view::npos; slash = rest.find('/')) {
      const std::string name(rest.substr(0, slash));
      path /= name;
      auto made = makeDir(sub ? sub->get() : top->get(), name, path, true);
      if (!made) {
        return made.error();
      }
      sub = std::move(*made);
      rest.remove_prefix(slash + 1);
    }
    const std::string name(rest);
    if (auto ok = writeFile(sub ? sub->get() : top->get(), name, path / name, content); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace

Result<std::map<std::string, std::string>> LibGit2Repo::readTree(std::string_view commitId,
                                                                 std::string_view path,
                                                                 const TreeLimits& limits) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + redactUrl(spec_.url));
  if (!commit) {
    return commit.error();
  }
  auto relPath = normalizeTreePath(path);
  if (!relPath) {
    return relPath.error();
  }
  git_tree* rawTree = nullptr;
  if (git_commit_tree(&rawTree, commit->get()) != 0) {
    return terminal("cannot read the tree of " + std::string(commitId) + ": " + lastGitError());
  }
  Tree tree(rawTree);
  if (!relPath->empty()) {
    git_tree_entry* rawEntry = nullptr;
    const int rc = git_tree_entry_bypath(&rawEntry, tree.get(), relPath->c_str());
    if (rc == GIT_ENOTFOUND) {
      return terminal("path '" + std::string(path) + "' not found at commit " +
                      std::string(commitId));
    }
    if (rc != 0) {
      return terminal("cannot read '" + std::string(path) + "' at commit " + std::string(commitId) +
                      ": " + lastGitError());
    }
    TreeEntry entry(rawEntry);
    if (git_tree_entry_type(entry.get()) != GIT_OBJECT_TREE) {
      return terminal("path '" + std::string(path) + "' at commit " + std::string(commitId) +
                      " is not a directory");
    }
    git_tree* sub = nullptr;
    if (git_tree_lookup(&sub, repo_.get(), git_tree_entry_id(entry.get())) != 0) {
      return terminal("cannot read '" + std::string(path) + "': " + lastGitError());
    }
    tree.reset(sub);
  }
  TreeReader reader{repo_.get(), limits, std::string(commitId), {}, 0};
  if (auto ok = reader.walk(tree.get(), "", 0); !ok) {
    return ok.error();
  }
  return std::move(reader.files);
}

Result<std::map<std::string, std::string>> LibGit2Repo::exportTree(
    std::string_view commitId, std::string_view path, const fs::path& destination) const {
  // "dir/" names dir: the temporary tree must be its sibling, not inside it.
  const fs::path dest = destination.has_filename() ? destination : destination.parent_path();
  if (dest.empty()) {
    return terminal("no destination directory for the config tree");
  }
  auto files = readTree(commitId, path, TreeLimits{});
  if (!files) {
    return files.error();
  }
  std::error_code ec;
  const fs::path tmp = dest.string() + ".tmp";
  fs::remove_all(tmp, ec);
  if (ec) {
    return terminal("cannot remove " + tmp.string() + ": " + ec.message());
  }
  if (dest.has_parent_path()) {
    fs::create_directories(dest.parent_path(), ec);
    if (ec) {
      return terminal("cannot create " + dest.parent_path().string() + ": " + ec.message());
    }
  }
  if (auto ok = writeTree(tmp, *files); !ok) {
    fs::remove_all(tmp, ec);
    return ok.error();
  }
  // Swap in one step when dest exists (RENAME_EXCHANGE), then drop the old tree now at tmp.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp, ec);
    return files;
  }
  if (const int exchangeErr = errno; exchangeErr == ENOENT && !fs::exists(dest, ec)) {
    if (::rename(tmp.c_str(), dest.c_str()) == 0) {
      return files;
    }
  } else if (exchangeErr == EINVAL || exchangeErr == ENOSYS) {
    // A filesystem without RENAME_EXCHANGE: move the old tree aside first.
    const fs::path old = dest.string() + ".old";
    fs::remove_all(old, ec);
    if (::rename(dest.c_str(), old.c_str()) == 0 && ::rename(tmp.c_str(), dest.c_str()) == 0) {
      fs::remove_all(old, ec);
      return files;
    }
  }
  const int err = errno;
  fs::remove_all(tmp, ec);
  return terminal("cannot move the config tree into " + dest.string() + ": " + errnoText(err));
}

}  // namespace edgeplane::source
