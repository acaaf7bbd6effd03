// GitSource on libgit2: a bare cache with remote-tracking branches, read without a checkout.
//
// The cache fetches "+refs/heads/*:refs/remotes/origin/*" and "+refs/tags/*:refs/tags/*" with
// pruning, so after a fetch it mirrors the remote exactly: a branch that moved (even by a
// force push) is seen moved, a deleted one is gone. Nothing ever reads a working tree.
#include "reconciler/source/git_source.h"

#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

namespace edgeplane::source {
namespace fs = std::filesystem;

namespace {

constexpr const char* kBranchSpec = "+refs/heads/*:refs/remotes/origin/*";
constexpr const char* kTagSpec = "+refs/tags/*:refs/tags/*";
constexpr std::string_view kRemoteBranchPrefix = "refs/remotes/origin/";
constexpr int kMaxTreeDepth = 64;

// libgit2 is reference counted and safe to initialise from several threads; we keep one
// reference for the life of the process and never shut it down.
void ensureLibgit2() {
  static const int initialised = git_libgit2_init();
  (void)initialised;
}

std::string lastGitError() {
  const git_error* e = git_error_last();
  return e != nullptr && e->message != nullptr ? std::string(e->message) : "unknown libgit2 error";
}

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

struct BufFree {
  void operator()(git_buf* b) const { git_buf_dispose(b); }
};

bool isFullCommitId(std::string_view s) {
  if (s.size() != GIT_OID_HEXSZ) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

bool looksLikeAbbreviatedId(std::string_view s) {
  if (s.size() < 4 || s.size() >= GIT_OID_HEXSZ) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

std::string oidHex(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), oid);
  return buf;
}

bool validRefName(const std::string& name) {
  int valid = 0;
  return git_reference_name_is_valid(&valid, name.c_str()) == 0 && valid != 0;
}

// scp-like "user@host:path": a colon before any slash, and not a single drive-ish letter.
bool isScpLike(std::string_view url) {
  const size_t colon = url.find(':');
  const size_t slash = url.find('/');
  return colon != std::string_view::npos && colon > 0 &&
         (slash == std::string_view::npos || colon < slash);
}

Result<std::string> normalizeUrl(const std::string& url) {
  if (url.empty()) {
    return terminal("source url is empty");
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return terminal("source url contains a control character");
    }
  }
  if (url.find("://") != std::string::npos || isScpLike(url)) {
    return url;
  }
  std::error_code ec;
  fs::path absolute = fs::absolute(url, ec);
  if (ec) {
    return terminal("source url '" + url + "': " + ec.message());
  }
  return absolute.lexically_normal().string();
}

Result<void> checkRef(const std::string& ref) {
  if (ref.empty()) {
    return terminal("source ref is empty");
  }
  if (isFullCommitId(ref)) {
    return {};
  }
  if (ref.starts_with("refs/")) {
    if (!ref.starts_with("refs/heads/") && !ref.starts_with("refs/tags/")) {
      return terminal("source ref '" + ref +
                      "': only branches (refs/heads/) and tags (refs/tags/) are fetched");
    }
    if (!validRefName(ref)) {
      return terminal("source ref '" + ref + "' is not a valid ref name");
    }
    return {};
  }
  if (!validRefName("refs/heads/" + ref)) {
    return terminal("source ref '" + ref + "' is not a valid branch or tag name");
  }
  return {};
}

// Records the url as remote.origin.url, for whoever inspects the cache with git. Fetches do
// not read it: they use an in-memory remote with our own refspecs (see fetch()).
Result<void> recordRemoteUrl(git_repository* repo, const std::string& url) {
  git_config* rawCfg = nullptr;
  if (git_repository_config(&rawCfg, repo) != 0) {
    return terminal("cannot open the source cache's config: " + lastGitError());
  }
  Config cfg(rawCfg);
  git_buf current = GIT_BUF_INIT;
  std::unique_ptr<git_buf, BufFree> guard(&current);
  if (git_config_get_string_buf(&current, cfg.get(), "remote.origin.url") == 0 &&
      std::string_view(current.ptr, current.size) == url) {
    return {};
  }
  if (git_config_set_string(cfg.get(), "remote.origin.url", url.c_str()) != 0) {
    return terminal("cannot record the source url in the cache: " + lastGitError());
  }
  return {};
}

bool isEmptyDir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec) && !ec;
}

// A fresh bare repository, built beside `dir` and renamed into place so that a crash never
// leaves a half-made cache where the next run would find it.
Result<void> initCache(const fs::path& dir, const std::string& url) {
  std::error_code ec;
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      return terminal("cannot create " + dir.parent_path().string() + ": " + ec.message());
    }
  }
  const fs::path tmp = dir.string() + ".init";
  fs::remove_all(tmp, ec);
  git_repository_init_options opts;
  git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
  opts.flags =
      GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
  git_repository* raw = nullptr;
  if (git_repository_init_ext(&raw, tmp.c_str(), &opts) != 0) {
    return terminal("cannot create the source cache in " + tmp.string() + ": " + lastGitError());
  }
  auto configured = recordRemoteUrl(raw, url);
  git_repository_free(raw);
  if (!configured) {
    fs::remove_all(tmp, ec);
    return configured.error();
  }
  if (::rename(tmp.c_str(), dir.c_str()) != 0) {
    const int err = errno;
    fs::remove_all(tmp, ec);
    return terminal("cannot move the source cache into " + dir.string() + ": " +
                    std::strerror(err));
  }
  return {};
}

// The fetch callbacks' payload (libgit2 passes one for all of them).
struct CredentialState {
  const SourceSpec* spec = nullptr;
  int calls = 0;
  std::uint64_t maxBytes = 0;  // capTransfer: the most the remote may send
  bool oversized = false;      // capTransfer aborted the fetch
};

// Stops the download once the remote has sent more than the cap; a non-zero return makes
// git_remote_fetch fail (GIT_EUSER) before any ref is updated.
int capTransfer(const git_indexer_progress* stats, void* payload) {
  auto* state = static_cast<CredentialState*>(payload);
  if (stats->received_bytes > state->maxBytes) {
    state->oversized = true;
    git_error_set_str(GIT_ERROR_NET, "fetch_max_size exceeded");
    return -1;
  }
  return 0;
}

// Asked again after every refusal; one offer of each kind, then give up rather than loop.
int acquireCredential(git_credential** out, const char* /*url*/, const char* usernameFromUrl,
                      unsigned int allowed, void* payload) {
  auto* state = static_cast<CredentialState*>(payload);
  if (++state->calls > 3) {
    git_error_set_str(GIT_ERROR_NET, "authentication failed");
    return GIT_EAUTH;
  }
  const char* user = usernameFromUrl != nullptr ? usernameFromUrl : "git";
  if ((allowed & GIT_CREDENTIAL_USERNAME) != 0) {
    return git_credential_username_new(out, user);
  }
  if ((allowed & GIT_CREDENTIAL_SSH_KEY) != 0) {
    if (state->spec->sshKey) {
      return git_credential_ssh_key_new(out, user, nullptr, state->spec->sshKey->c_str(), nullptr);
    }
    return git_credential_ssh_key_from_agent(out, user);
  }
  return GIT_PASSTHROUGH;
}

FetchResult describe(const git_commit* commit, RefKind kind, std::string refName) {
  FetchResult out;
  out.commitId = oidHex(git_commit_id(commit));
  out.kind = kind;
  out.refName = std::move(refName);
  if (const git_signature* author = git_commit_author(commit); author != nullptr) {
    out.author = std::string(author->name != nullptr ? author->name : "") + " <" +
                 (author->email != nullptr ? author->email : "") + ">";
  }
  out.committerTime = static_cast<std::int64_t>(git_commit_time(commit));
  // git_commit_summary caches in the commit object, hence the const_cast.
  if (const char* summary = git_commit_summary(const_cast<git_commit*>(commit));
      summary != nullptr) {
    out.subject = summary;
  }
  return out;
}

Result<Commit> lookupCommit(git_repository* repo, std::string_view commitId,
                            const std::string& where) {
  if (!isFullCommitId(commitId)) {
    return terminal("'" + std::string(commitId) + "' is not a full 40-hex commit id");
  }
  git_oid oid;
  if (git_oid_fromstrn(&oid, commitId.data(), commitId.size()) != 0) {
    return terminal("'" + std::string(commitId) + "' is not a commit id");
  }
  git_object* raw = nullptr;
  const int rc = git_object_lookup(&raw, repo, &oid, GIT_OBJECT_ANY);
  if (rc == GIT_ENOTFOUND) {
    return terminal("commit " + std::string(commitId) + " not found in " + where);
  }
  if (rc != 0) {
    return terminal("cannot read " + std::string(commitId) + ": " + lastGitError());
  }
  Object object(raw);
  if (git_object_type(object.get()) != GIT_OBJECT_COMMIT) {
    return terminal(std::string(commitId) + " is a " +
                    git_object_type2string(git_object_type(object.get())) + ", not a commit");
  }
  return Commit(reinterpret_cast<git_commit*>(object.release()));
}

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

Result<void> errnoError(const std::string& what) {
  return terminal(what + ": " + std::strerror(errno));
}

Result<void> makeDir(const fs::path& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return errnoError("mkdir " + dir.string());
  }
  // mkdir's mode is filtered by the umask; the contract is 0755.
  if (::chmod(dir.c_str(), 0755) != 0) {
    return errnoError("chmod " + dir.string());
  }
  return {};
}

Result<void> writeFile(const fs::path& file, const std::string& content) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    return errnoError("create " + file.string());
  }
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      auto err = errnoError("write " + file.string());
      ::close(fd);
      return err;
    }
    done += static_cast<size_t>(n);
  }
  if (::fchmod(fd, 0644) != 0 || ::fsync(fd) != 0) {
    auto err = errnoError("write " + file.string());
    ::close(fd);
    return err;
  }
  if (::close(fd) != 0) {
    return errnoError("close " + file.string());
  }
  return {};
}

Result<void> writeTree(const fs::path& root, const std::map<std::string, std::string>& files) {
  if (auto ok = makeDir(root); !ok) {
    return ok;
  }
  for (const auto& [relPath, content] : files) {
    // Parents first; the map's order does not guarantee them, so make each on the way down.
    fs::path dir = root;
    std::string_view rest = relPath;
    for (size_t slash = rest.find('/'); slash != std::string_view::npos; slash = rest.find('/')) {
      dir /= std::string(rest.substr(0, slash));
      if (auto ok = makeDir(dir); !ok) {
        return ok;
      }
      rest.remove_prefix(slash + 1);
    }
    if (auto ok = writeFile(dir / std::string(rest), content); !ok) {
      return ok;
    }
  }
  return {};
}

}  // namespace

void GitSource::RepoFree::operator()(git_repository* repo) const {
  git_repository_free(repo);
}

GitSource::GitSource(fs::path cacheDir, SourceSpec spec, git_repository* repo)
    : cacheDir_(std::move(cacheDir)), spec_(std::move(spec)), repo_(repo) {}
GitSource::GitSource(GitSource&& other) noexcept = default;
GitSource& GitSource::operator=(GitSource&& other) noexcept = default;
GitSource::~GitSource() = default;

Result<GitSource> GitSource::open(const fs::path& cacheDir, SourceSpec spec) {
  ensureLibgit2();
  auto url = normalizeUrl(spec.url);
  if (!url) {
    return url.error();
  }
  spec.url = std::move(url).value();
  if (auto ok = checkRef(spec.ref); !ok) {
    return ok.error();
  }
  std::error_code ec;
  const bool fresh = !fs::exists(cacheDir, ec) || isEmptyDir(cacheDir);
  if (fresh) {
    if (auto ok = initCache(cacheDir, spec.url); !ok) {
      return ok.error();
    }
  }
  git_repository* raw = nullptr;
  // NO_SEARCH: never wander up into a repository that happens to contain the state dir.
  const int rc = git_repository_open_ext(
      &raw, cacheDir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, nullptr);
  if (rc != 0) {
    return terminal("source cache " + cacheDir.string() + " exists but is not a git repository (" +
                    lastGitError() + "); remove it to clone again");
  }
  GitSource source(cacheDir, std::move(spec), raw);
  if (!fresh) {
    if (auto ok = recordRemoteUrl(source.repo_.get(), source.spec_.url); !ok) {
      return ok.error();
    }
  }
  return source;
}

Result<FetchResult> GitSource::fetch() {
  // An in-memory remote, not the configured "origin": our refspecs whatever the cache's
  // config says, and no url.*.insteadOf rewriting. (It also keeps libgit2 1.5 off its config
  // glob path, which leaks PCRE2 match data on every entry that does not match.)
  git_remote_create_options create;
  git_remote_create_options_init(&create, GIT_REMOTE_CREATE_OPTIONS_VERSION);
  create.repository = repo_.get();
  create.name = nullptr;
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  git_remote* raw = nullptr;
  if (git_remote_create_with_opts(&raw, spec_.url.c_str(), &create) != 0) {
    return terminal("source url '" + spec_.url + "': " + lastGitError());
  }
  Remote remote(raw);
  char* refspecList[] = {const_cast<char*>(kBranchSpec), const_cast<char*>(kTagSpec)};
  const git_strarray refspecs{refspecList, 2};
  CredentialState credentials{&spec_, 0, spec_.fetchMaxSize, false};
  git_fetch_options opts;
  git_fetch_options_init(&opts, GIT_FETCH_OPTIONS_VERSION);
  opts.prune = GIT_FETCH_PRUNE;
  opts.update_fetchhead = 0;
  // The tag refspec fetches every tag; auto-following would only add non-forced updates.
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  opts.callbacks.credentials = acquireCredential;
  opts.callbacks.transfer_progress = capTransfer;
  opts.callbacks.payload = &credentials;
  const int rc = git_remote_fetch(remote.get(), &refspecs, &opts, "edgeplane: fetch");
  if (credentials.oversized) {
    // Aborted from capTransfer: the indexer dropped its partial pack and no ref was moved.
    return terminal("fetch " + spec_.url + ": fetch exceeded fetch_max_size (" +
                    std::to_string(spec_.fetchMaxSize) + " bytes)");
  }
  if (rc != 0) {
    const std::string message = "fetch " + spec_.url + ": " + lastGitError();
    // Credentials and certificates do not fix themselves; everything else (no route, a
    // server down, a repository moved away for a while) may.
    if (rc == GIT_EAUTH || rc == GIT_ECERTIFICATE) {
      return terminal(message);
    }
    return retryable(message);
  }
  return resolveIn(true);
}

Result<FetchResult> GitSource::resolve() const {
  return resolveIn(false);
}

Result<FetchResult> GitSource::resolveIn(bool afterFetch) const {
  const std::string where = afterFetch ? spec_.url : "the cache of " + spec_.url;
  const std::string& ref = spec_.ref;
  if (isFullCommitId(ref)) {
    std::string lower = ref;
    for (char& c : lower) {
      if (c >= 'A' && c <= 'F') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    auto commit = lookupCommit(repo_.get(), lower, where);
    if (!commit) {
      return commit.error();
    }
    return describe(commit->get(), RefKind::Commit, lower);
  }

  std::optional<std::string> branchRef;
  std::optional<std::string> tagRef;
  if (ref.starts_with("refs/heads/")) {
    branchRef =
        std::string(kRemoteBranchPrefix) + ref.substr(std::string_view("refs/heads/").size());
  } else if (ref.starts_with("refs/tags/")) {
    tagRef = ref;
  } else {
    branchRef = std::string(kRemoteBranchPrefix) + ref;
    tagRef = "refs/tags/" + ref;
  }
  auto lookup = [this](const std::optional<std::string>& name) -> Reference {
    git_reference* raw = nullptr;
    if (!name || git_reference_lookup(&raw, repo_.get(), name->c_str()) != 0) {
      return nullptr;
    }
    return Reference(raw);
  };
  Reference branch = lookup(branchRef);
  Reference tag = lookup(tagRef);
  if (branch && tag) {
    return terminal("ref '" + ref + "' is both a branch and a tag in " + where +
                    "; say refs/heads/" + ref + " or refs/tags/" + ref);
  }
  if (!branch && !tag) {
    std::string message = "ref '" + ref + "' not found in " + where;
    message += branchRef && tagRef ? " (no branch or tag of that name)"
               : branchRef         ? " (no such branch)"
                                   : " (no such tag)";
    if (looksLikeAbbreviatedId(ref)) {
      message += "; abbreviated commit ids are not supported, give all 40 hex digits";
    }
    return terminal(message);
  }
  const bool isBranch = static_cast<bool>(branch);
  git_reference* found = isBranch ? branch.get() : tag.get();
  git_object* raw = nullptr;
  if (git_reference_peel(&raw, found, GIT_OBJECT_COMMIT) != 0) {
    return terminal("ref '" + ref + "' in " + where +
                    " does not point to a commit: " + lastGitError());
  }
  Object object(raw);
  return describe(reinterpret_cast<const git_commit*>(object.get()),
                  isBranch ? RefKind::Branch : RefKind::Tag, git_reference_name(found));
}

Result<std::map<std::string, std::string>> GitSource::readTree(std::string_view commitId,
                                                               std::string_view path,
                                                               const TreeLimits& limits) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + spec_.url);
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

Result<void> GitSource::exportTree(std::string_view commitId, std::string_view path,
                                   const fs::path& destination) const {
  // "dir/" names dir: the temporary tree must be its sibling, not inside it.
  const fs::path dest = destination.has_filename() ? destination : destination.parent_path();
  if (dest.empty()) {
    return terminal("no destination directory for the config tree");
  }
  auto files = readTree(commitId, path);
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
    return ok;
  }
  // Swap in one step when dest exists (RENAME_EXCHANGE), then drop the old tree now at tmp.
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp, ec);
    return {};
  }
  if (errno == ENOENT && !fs::exists(dest, ec)) {
    if (::rename(tmp.c_str(), dest.c_str()) == 0) {
      return {};
    }
  } else if (errno == EINVAL || errno == ENOSYS) {
    // A filesystem without RENAME_EXCHANGE: move the old tree aside first.
    const fs::path old = dest.string() + ".old";
    fs::remove_all(old, ec);
    if (::rename(dest.c_str(), old.c_str()) == 0 && ::rename(tmp.c_str(), dest.c_str()) == 0) {
      fs::remove_all(old, ec);
      return {};
    }
  }
  const int err = errno;
  fs::remove_all(tmp, ec);
  return terminal("cannot move the config tree into " + dest.string() + ": " + std::strerror(err));
}

Result<std::optional<SshSignedCommit>> GitSource::extractSignature(
    std::string_view commitId) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + spec_.url);
  if (!commit) {
    return commit.error();
  }
  // The object as stored, taken apart by splitSignedCommit as git does it, not by
  // git_commit_extract_signature: libgit2 1.5 takes `gpgsig` lines from anywhere in the
  // object, the message included, so a signature moved out of the header still verified.
  git_odb* odbRaw = nullptr;
  if (git_repository_odb(&odbRaw, repo_.get()) != 0) {
    return terminal("cannot open the object database of the cache of " + spec_.url + ": " +
                    lastGitError());
  }
  const Odb odb(odbRaw);
  const git_oid* oid = git_commit_id(commit->get());
  size_t size = 0;
  git_object_t type = GIT_OBJECT_INVALID;
  if (git_odb_read_header(&size, &type, odb.get(), oid) != 0) {
    return terminal("cannot read " + std::string(commitId) + ": " + lastGitError());
  }
  if (size > kMaxCommitObjectBytes) {
    return terminal("commit " + std::string(commitId) + " is larger than " +
                    std::to_string(kMaxCommitObjectBytes) + " bytes");
  }
  git_odb_object* objectRaw = nullptr;
  if (git_odb_read(&objectRaw, odb.get(), oid) != 0) {
    return terminal("cannot read " + std::string(commitId) + ": " + lastGitError());
  }
  const OdbObject object(objectRaw);
  if (git_odb_object_type(object.get()) != GIT_OBJECT_COMMIT) {
    return terminal(std::string(commitId) + " is not a commit");
  }
  auto split = splitSignedCommit(
      std::string_view(static_cast<const char*>(git_odb_object_data(object.get())),
                       git_odb_object_size(object.get())));
  if (!split) {
    return terminal("commit " + std::string(commitId) + ": " + split.error().message);
  }
  return split;
}

Result<FetchResult> GitSource::describeCommit(std::string_view commitId) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + spec_.url);
  if (!commit) {
    return commit.error();
  }
  return describe(commit->get(), RefKind::Commit, std::string(commitId));
}

Result<bool> GitSource::descendsFrom(std::string_view commitId, std::string_view ancestorId) const {
  const std::string where = "the cache of " + spec_.url;
  auto commit = lookupCommit(repo_.get(), commitId, where);
  if (!commit) {
    return commit.error();
  }
  auto ancestor = lookupCommit(repo_.get(), ancestorId, where);
  if (!ancestor) {
    return ancestor.error();
  }
  if (git_oid_equal(git_commit_id(commit->get()), git_commit_id(ancestor->get())) != 0) {
    return true;
  }
  const int rc = git_graph_descendant_of(repo_.get(), git_commit_id(commit->get()),
                                         git_commit_id(ancestor->get()));
  if (rc < 0) {
    return terminal("cannot tell whether " + std::string(commitId) + " descends from " +
                    std::string(ancestorId) + ": " + lastGitError());
  }
  return rc == 1;
}

Result<VerifiedSignature> GitSource::verifyCommit(std::string_view commitId,
                                                  const std::vector<AllowedSigner>& signers) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + spec_.url);
  if (!commit) {
    return commit.error();
  }
  auto signedCommit = extractSignature(commitId);
  if (!signedCommit) {
    return signedCommit.error();
  }
  if (!signedCommit->has_value()) {
    return terminal("commit " + std::string(commitId) + " is not signed");
  }
  const auto committerTime = static_cast<std::int64_t>(git_commit_time(commit->get()));
  auto verified = verifySshSig((*signedCommit)->signature, (*signedCommit)->payload, kGitNamespace,
                               signers, committerTime);
  if (!verified) {
    return terminal("commit " + std::string(commitId) + ": " + verified.error().message);
  }
  return verified;
}

}  // namespace edgeplane::source
