// GitRepo on libgit2 (libgit2_repo.h): a bare cache with remote-tracking branches, read without
// a checkout.
//
// The cache fetches "+refs/heads/*:refs/remotes/origin/*" and "+refs/tags/*:refs/tags/*" with
// pruning, so after a fetch it mirrors the remote exactly: a branch that moved (even by a
// force push) is seen moved, a deleted one is gone. Nothing ever reads a working tree: the
// config tree is read from the object database (libgit2_tree.cpp).
#include "reconciler/source/libgit2_repo.h"

#include <git2.h>
#include <stdio.h>

#include <cerrno>
#include <system_error>
#include <utility>

#include "reconciler/source/libgit2_handles.h"
#include "schema/encoding.h"
#include "schema/git_url.h"

namespace edgeplane::source {
namespace fs = std::filesystem;

namespace {

using git::Commit;
using git::Config;
using git::lastGitError;
using git::lookupCommit;
using git::Object;
using git::Odb;
using git::OdbObject;
using git::Reference;
using git::Remote;

constexpr const char* kBranchSpec = "+refs/heads/*:refs/remotes/origin/*";
constexpr const char* kTagSpec = "+refs/tags/*:refs/tags/*";
constexpr std::string_view kRemoteBranchPrefix = "refs/remotes/origin/";

// libgit2 is reference counted and safe to initialise from several threads; we keep one
// reference for the life of the process and never shut it down.
void ensureLibgit2() {
  static const int initialised = git_libgit2_init();
  (void)initialised;
}

struct BufFree {
  void operator()(git_buf* b) const { git_buf_dispose(b); }
};

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

// Records the url as remote.origin.url, for whoever inspects the cache with git, with its
// password (if any) redacted. Fetches do not read it: they use an in-memory remote with our own
// refspecs (see fetch()).
Result<void> recordRemoteUrl(git_repository* repo, const std::string& fullUrl) {
  const std::string url = redactUrl(fullUrl);
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
    return terminal("cannot move the source cache into " + dir.string() + ": " + errnoText(err));
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

}  // namespace

// Outside the anonymous namespace: libgit2_tree.cpp uses them too.
namespace git {

std::string lastGitError() {
  const git_error* e = git_error_last();
  return e != nullptr && e->message != nullptr ? std::string(e->message) : "unknown libgit2 error";
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

}  // namespace git

void LibGit2Repo::RepoFree::operator()(git_repository* repo) const {
  git_repository_free(repo);
}

LibGit2Repo::LibGit2Repo(fs::path cacheDir, SourceSpec spec, git_repository* repo)
    : cacheDir_(std::move(cacheDir)), spec_(std::move(spec)), repo_(repo) {}

Result<std::unique_ptr<GitRepo>> LibGit2Repo::open(const fs::path& cacheDir, SourceSpec spec) {
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
  std::unique_ptr<LibGit2Repo> repo(new LibGit2Repo(cacheDir, std::move(spec), raw));
  if (!fresh) {
    if (auto ok = recordRemoteUrl(repo->repo_.get(), repo->spec_.url); !ok) {
      return ok.error();
    }
  }
  return std::unique_ptr<GitRepo>(std::move(repo));
}

Result<FetchResult> LibGit2Repo::fetch() {
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
    return terminal(
        scrubCredentials("source url '" + spec_.url + "': " + lastGitError(), spec_.url));
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
    return terminal("fetch " + redactUrl(spec_.url) + ": fetch exceeded fetch_max_size (" +
                    std::to_string(spec_.fetchMaxSize) + " bytes)");
  }
  if (rc != 0) {
    const std::string message =
        scrubCredentials("fetch " + spec_.url + ": " + lastGitError(), spec_.url);
    // Credentials and certificates do not fix themselves; everything else (no route, a
    // server down, a repository moved away for a while) may.
    if (rc == GIT_EAUTH || rc == GIT_ECERTIFICATE) {
      return terminal(message);
    }
    return retryable(message);
  }
  return resolveIn(true);
}

Result<FetchResult> LibGit2Repo::resolve() const {
  return resolveIn(false);
}

Result<FetchResult> LibGit2Repo::resolveIn(bool afterFetch) const {
  const std::string shown = redactUrl(spec_.url);
  const std::string where = afterFetch ? shown : "the cache of " + shown;
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

Result<std::optional<SshSignedCommit>> LibGit2Repo::extractSignature(
    std::string_view commitId) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + redactUrl(spec_.url));
  if (!commit) {
    return commit.error();
  }
  // The object as stored, taken apart by splitSignedCommit as git does it, not by
  // git_commit_extract_signature: libgit2 1.5 takes `gpgsig` lines from anywhere in the
  // object, the message included, so a signature moved out of the header still verified.
  git_odb* odbRaw = nullptr;
  if (git_repository_odb(&odbRaw, repo_.get()) != 0) {
    return terminal("cannot open the object database of the cache of " + redactUrl(spec_.url) +
                    ": " + lastGitError());
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

Result<FetchResult> LibGit2Repo::describeCommit(std::string_view commitId) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + redactUrl(spec_.url));
  if (!commit) {
    return commit.error();
  }
  return describe(commit->get(), RefKind::Commit, std::string(commitId));
}

Result<bool> LibGit2Repo::descendsFrom(std::string_view commitId,
                                       std::string_view ancestorId) const {
  const std::string where = "the cache of " + redactUrl(spec_.url);
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

Result<VerifiedSignature> LibGit2Repo::verifyCommit(
    std::string_view commitId, const std::vector<AllowedSigner>& signers) const {
  auto commit = lookupCommit(repo_.get(), commitId, "the cache of " + redactUrl(spec_.url));
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
