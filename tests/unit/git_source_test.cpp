// GitSource against repositories made by the real git in temporary directories (no network).
#include "reconciler/source/git_source.h"
#include "tests/support/command.h"

#include <git2.h>
#include <gtest/gtest.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <array>
#include <cctype>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace edgeplane::source {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::readFile;
using testing::runCommand;
using Files = std::map<std::string, std::string>;

void writeFile(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

mode_t modeOf(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Every regular file under `dir`, relative path -> content.
Files filesUnder(const fs::path& dir) {
  Files out;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) {
      out[fs::relative(entry.path(), dir).string()] = readFile(entry.path());
    }
  }
  return out;
}

class GitSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (runCommand("command -v git && command -v ssh-keygen").status != 0) {
      GTEST_SKIP() << "git and ssh-keygen are needed";
    }
    char tmpl[] = "/tmp/edgeplane-gitsource-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    home_ = root_ / "home";
    fs::create_directories(home_);
    // libgit2 reads no configuration from the real home either.
    git_libgit2_init();
    for (int level : {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL}) {
      git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, home_.c_str());
    }
    bare_ = root_ / "remote.git";
    work_ = root_ / "work";
    cache_ = root_ / "state" / "source";
    git(root_, "init -q --bare -b main " + bare_.string());
    git(root_, "init -q -b main " + work_.string());
    git(work_, "remote add origin " + bare_.string());
  }

  void TearDown() override {
    if (root_.empty()) {
      return;
    }
    git_libgit2_shutdown();
    std::error_code ec;
    fs::remove_all(root_, ec);
  }

  // Runs git in `dir` with a hermetic environment; fails the test on a non-zero exit.
  std::string git(const fs::path& dir, const std::string& args) {
    CommandResult r = tryGit(dir, args);
    EXPECT_EQ(r.status, 0) << "git " << args << ":\n" << r.output;
    return trimmed(r.output);
  }
  CommandResult tryGit(const fs::path& dir, const std::string& args) {
    return runCommand("cd " + dir.string() + " && env -i PATH=\"$PATH\" HOME=" + home_.string() +
                      " GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME='Ada Admin'"
                      " GIT_AUTHOR_EMAIL=ada@example.com GIT_COMMITTER_NAME='Ada Admin'"
                      " GIT_COMMITTER_EMAIL=ada@example.com git " +
                      args);
  }

  // Writes `files` into the work tree, commits them with `message` (signed with the SSH key
  // file `signingKey`, if given, as `git commit -S` does), pushes main and returns the id.
  std::string commit(const Files& files, const std::string& message,
                     const std::string& signingKey = "") {
    for (const auto& [path, content] : files) {
      writeFile(work_ / path, content);
    }
    git(work_, "add -A");
    const std::string sign =
        signingKey.empty() ? "" : "-c gpg.format=ssh -c user.signingkey=" + signingKey + " ";
    git(work_,
        sign + "commit -q --allow-empty -m '" + message + "'" + (signingKey.empty() ? "" : " -S"));
    git(work_, "push -q origin HEAD:main");
    return git(work_, "rev-parse HEAD");
  }

  Result<GitSource> open(const std::string& url, const std::string& ref) {
    return GitSource::open(cache_, SourceSpec{url, ref, std::nullopt});
  }

  // Opens the cache on the bare remote and fetches `ref`; fails the test if either fails.
  FetchResult fetched(const std::string& ref, const std::string& url = "") {
    auto source = open(url.empty() ? bare_.string() : url, ref);
    EXPECT_TRUE(source.ok()) << source.error().message;
    auto result = source->fetch();
    EXPECT_TRUE(result.ok()) << result.error().message;
    return result.ok() ? result.value() : FetchResult{};
  }

  // Writes `raw` as a commit object into the remote and points main at it, as a hostile
  // server or pusher could: libgit2's odb takes the bytes unchecked, unlike git's fsck.
  std::string writeRawCommit(const std::string& raw) {
    git_repository* repo = nullptr;
    EXPECT_EQ(git_repository_open_bare(&repo, bare_.c_str()), 0);
    git_odb* odb = nullptr;
    EXPECT_EQ(git_repository_odb(&odb, repo), 0);
    git_oid oid{};
    EXPECT_EQ(git_odb_write(&oid, odb, raw.data(), raw.size(), GIT_OBJECT_COMMIT), 0);
    git_reference* ref = nullptr;
    EXPECT_EQ(git_reference_create(&ref, repo, "refs/heads/main", &oid, 1, "test"), 0);
    git_reference_free(ref);
    git_odb_free(odb);
    git_repository_free(repo);
    char hex[GIT_OID_HEXSZ + 1] = {};
    git_oid_tostr(hex, sizeof hex, &oid);
    return hex;
  }

  std::string makeKey(const std::string& name) {
    const fs::path key = root_ / name;
    const CommandResult r =
        runCommand("ssh-keygen -q -t ed25519 -N '' -C " + name + " -f " + key.string());
    EXPECT_EQ(r.status, 0) << r.output;
    return key.string();
  }

  fs::path root_;
  fs::path home_;
  fs::path bare_;
  fs::path work_;
  fs::path cache_;
};

const Files kConfig = {
    {"config/fleet.toml", "[fleet]\nbase_domain = \"gw.example.com\"\n"},
    {"config/tenants/a.toml", "[[namespace]]\nname = \"tenant-a\"\n"},
    {"README.md", "the edge config\n"},
};

TEST_F(GitSourceTest, ClonesFromBarePathAndReadsTheConfigTree) {
  const std::string id = commit(kConfig, "first config");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok()) << source.error().message;
  auto result = source->fetch();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->commitId, id);
  EXPECT_EQ(result->kind, RefKind::Branch);
  EXPECT_EQ(result->refName, "refs/remotes/origin/main");
  EXPECT_EQ(result->author, "Ada Admin <ada@example.com>");
  EXPECT_EQ(result->subject, "first config");
  EXPECT_EQ(std::to_string(result->committerTime), git(work_, "log -1 --format=%ct"));

  const Files expected = {{"fleet.toml", kConfig.at("config/fleet.toml")},
                          {"tenants/a.toml", kConfig.at("config/tenants/a.toml")}};
  for (const std::string path : {"config/", "config", "config//"}) {
    auto tree = source->readTree(id, path);
    ASSERT_TRUE(tree.ok()) << tree.error().message;
    EXPECT_EQ(*tree, expected) << path;
  }
  auto whole = source->readTree(id, "");
  ASSERT_TRUE(whole.ok()) << whole.error().message;
  EXPECT_EQ(*whole, kConfig);
  auto sub = source->readTree(id, "config/tenants");
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ(*sub, (Files{{"a.toml", kConfig.at("config/tenants/a.toml")}}));
  // The cache is a bare repository: no working tree to pick edits up from.
  EXPECT_TRUE(fs::exists(cache_ / "HEAD"));
  EXPECT_FALSE(fs::exists(cache_ / "README.md"));
  EXPECT_FALSE(fs::is_directory(cache_ / "config"));
  EXPECT_FALSE(fs::exists(cache_.string() + ".init"));
}

TEST_F(GitSourceTest, ClonesFromFileUrl) {
  const std::string id = commit(kConfig, "first config");
  const FetchResult result = fetched("main", "file://" + bare_.string());
  EXPECT_EQ(result.commitId, id);
}

TEST_F(GitSourceTest, BranchFollowsPushesAfterFetch) {
  const std::string first = commit(kConfig, "one");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  EXPECT_EQ(source->resolve()->commitId, first);

  const std::string second = commit({{"config/fleet.toml", "[fleet]\n"}}, "two");
  // Not fetched yet: the cache still says `first`.
  EXPECT_EQ(source->resolve()->commitId, first);
  auto moved = source->fetch();
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ(moved->commitId, second);
  EXPECT_EQ(moved->subject, "two");
  EXPECT_EQ(source->readTree(second, "config").value().at("fleet.toml"), "[fleet]\n");

  // A force push backwards is followed too: the remote is the truth.
  git(work_, "reset -q --hard " + first);
  git(work_, "push -q --force origin HEAD:main");
  auto back = source->fetch();
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->commitId, first);
}

TEST_F(GitSourceTest, TagsAndCommitIdsStayPinnedWhenTheBranchMoves) {
  const std::string pinned = commit(kConfig, "release 1");
  git(work_, "tag v1");
  git(work_, "tag -a v1-annotated -m 'release one'");
  git(work_, "push -q origin --tags");
  const std::string later = commit({{"config/fleet.toml", "[fleet]\n"}}, "later");

  const FetchResult tag = fetched("v1");
  EXPECT_EQ(tag.commitId, pinned);
  EXPECT_EQ(tag.kind, RefKind::Tag);
  EXPECT_EQ(tag.refName, "refs/tags/v1");
  const FetchResult annotated = fetched("v1-annotated");
  EXPECT_EQ(annotated.commitId, pinned);  // peeled through the tag object
  EXPECT_EQ(annotated.kind, RefKind::Tag);
  const FetchResult byId = fetched(pinned);
  EXPECT_EQ(byId.commitId, pinned);
  EXPECT_EQ(byId.kind, RefKind::Commit);
  std::string upper = pinned;
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  EXPECT_EQ(fetched(upper).commitId, pinned);
  EXPECT_EQ(fetched("main").commitId, later);
  EXPECT_EQ(fetched("refs/heads/main").commitId, later);
  EXPECT_EQ(fetched("refs/tags/v1").commitId, pinned);

  // More pushes: still pinned.
  commit({{"config/more.toml", "\n"}}, "even later");
  EXPECT_EQ(fetched("v1").commitId, pinned);
  EXPECT_EQ(fetched(pinned).commitId, pinned);
}

TEST_F(GitSourceTest, NeverReadsUncommittedEdits) {
  const std::string id = commit(kConfig, "committed");
  // The work repository itself is the source: edited, staged and untracked files in its
  // working tree must not show.
  writeFile(work_ / "config/fleet.toml", "[fleet]\nbase_domain = \"evil.example.com\"\n");
  writeFile(work_ / "config/staged.toml", "# staged only\n");
  git(work_, "add config/staged.toml");
  writeFile(work_ / "config/untracked.toml", "# untracked\n");

  auto source = open(work_.string(), "main");
  ASSERT_TRUE(source.ok()) << source.error().message;
  auto result = source->fetch();
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->commitId, id);
  auto tree = source->readTree(id, "config/");
  ASSERT_TRUE(tree.ok()) << tree.error().message;
  EXPECT_EQ(*tree, (Files{{"fleet.toml", kConfig.at("config/fleet.toml")},
                          {"tenants/a.toml", kConfig.at("config/tenants/a.toml")}}));
  const fs::path dest = root_ / "applied";
  ASSERT_TRUE(source->exportTree(id, "config/", dest).ok());
  EXPECT_EQ(filesUnder(dest), *tree);
}

TEST_F(GitSourceTest, MissingRefIsTerminalAndNamesTheRef) {
  const std::string id = commit(kConfig, "one");
  auto check = [&](const std::string& ref, std::string_view why) {
    auto source = open(bare_.string(), ref);
    ASSERT_TRUE(source.ok()) << source.error().message;
    auto result = source->fetch();
    ASSERT_FALSE(result.ok()) << ref;
    EXPECT_FALSE(result.error().retryable);
    EXPECT_TRUE(contains(result.error().message, ref)) << result.error().message;
    EXPECT_TRUE(contains(result.error().message, why)) << result.error().message;
  };
  check("no-such-branch", "no branch or tag of that name");
  check("refs/heads/nope", "no such branch");
  check("refs/tags/nope", "no such tag");
  check(id.substr(0, 12), "abbreviated commit ids are not supported");
  check("0123456789abcdef0123456789abcdef01234567", "not found in");

  // A branch the remote deletes is gone after the next fetch (pruned), not served stale.
  git(work_, "push -q origin HEAD:refs/heads/feature");
  EXPECT_EQ(fetched("feature").commitId, id);
  git(work_, "push -q origin --delete feature");
  check("feature", "not found");
}

TEST_F(GitSourceTest, NameThatIsBothBranchAndTagMustBeSpelledOut) {
  const std::string one = commit(kConfig, "one");
  git(work_, "tag release");
  git(work_, "push -q origin --tags");
  const std::string two = commit({{"config/x.toml", "\n"}}, "two");
  git(work_, "push -q origin HEAD:refs/heads/release");
  auto source = open(bare_.string(), "release");
  ASSERT_TRUE(source.ok());
  auto result = source->fetch();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(contains(result.error().message, "both a branch and a tag"))
      << result.error().message;
  EXPECT_EQ(fetched("refs/tags/release").commitId, one);
  EXPECT_EQ(fetched("refs/heads/release").commitId, two);
}

TEST_F(GitSourceTest, InvalidSpecsAreRefusedAtOpen) {
  for (const auto& [url, ref] : std::vector<std::pair<std::string, std::string>>{
           {"", "main"},
           {bare_.string(), ""},
           {bare_.string(), "a..b"},
           {bare_.string(), "refs/remotes/origin/main"},
           {bare_.string(), "bad ref"},
           {"/tmp/x\nother", "main"},
       }) {
    auto source = open(url, ref);
    ASSERT_FALSE(source.ok()) << url << " " << ref;
    EXPECT_FALSE(source.error().retryable);
  }
  EXPECT_FALSE(fs::exists(cache_));
}

TEST_F(GitSourceTest, MissingOrInvalidPathIsTerminal) {
  const std::string id = commit(kConfig, "one");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  auto check = [&](const std::string& path, std::string_view why) {
    auto tree = source->readTree(id, path);
    ASSERT_FALSE(tree.ok()) << path;
    EXPECT_FALSE(tree.error().retryable);
    EXPECT_TRUE(contains(tree.error().message, why)) << tree.error().message;
  };
  check("deploy/", "path 'deploy/' not found at commit " + id);
  check("config/fleet.toml", "is not a directory");
  check("../config", "not a plain relative path");
  check("/config", "relative to the repository");
  check("config/./tenants", "not a plain relative path");
  // The path exists at a later commit only: not at this one.
  const std::string later = commit({{"deploy/x.toml", "\n"}}, "later");
  ASSERT_TRUE(source->fetch().ok());
  check("deploy", "not found at commit " + id);
  EXPECT_TRUE(source->readTree(later, "deploy").ok());
  // Unknown commits and non-commit ids.
  auto unknown = source->readTree("0123456789abcdef0123456789abcdef01234567", "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(contains(unknown.error().message, "not found"));
  const std::string treeId = git(work_, "rev-parse HEAD^{tree}");
  auto notCommit = source->readTree(treeId, "");
  ASSERT_FALSE(notCommit.ok());
  EXPECT_TRUE(contains(notCommit.error().message, "is a tree, not a commit"))
      << notCommit.error().message;
  EXPECT_FALSE(source->readTree("main", "").ok());
}

TEST_F(GitSourceTest, UnreachableRemoteIsRetryableAndTheCacheSurvives) {
  const fs::path missing = root_ / "does-not-exist.git";
  auto never = open(missing.string(), "main");
  ASSERT_TRUE(never.ok()) << never.error().message;
  auto failed = never->fetch();
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.error().retryable);
  EXPECT_TRUE(contains(failed.error().message, missing.string())) << failed.error().message;
  // Nothing was ever fetched: resolving from the cache says so, terminally.
  auto nothing = never->resolve();
  ASSERT_FALSE(nothing.ok());
  EXPECT_TRUE(contains(nothing.error().message, "the cache of"));

  // The remote goes away mid-life and comes back.
  const std::string id = commit(kConfig, "one");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok()) << source.error().message;
  ASSERT_TRUE(source->fetch().ok());
  const fs::path away = root_ / "moved-away.git";
  fs::rename(bare_, away);
  auto down = source->fetch();
  ASSERT_FALSE(down.ok());
  EXPECT_TRUE(down.error().retryable);
  EXPECT_TRUE(contains(down.error().message, bare_.string())) << down.error().message;
  // The last good commit is still there to read.
  auto last = source->resolve();
  ASSERT_TRUE(last.ok()) << last.error().message;
  EXPECT_EQ(last->commitId, id);
  EXPECT_TRUE(source->readTree(id, "config").ok());
  fs::rename(away, bare_);
  const std::string next = commit({{"config/x.toml", "\n"}}, "two");
  auto up = source->fetch();
  ASSERT_TRUE(up.ok()) << up.error().message;
  EXPECT_EQ(up->commitId, next);
}

TEST_F(GitSourceTest, ReopensTheCacheAndFollowsANewUrl) {
  const std::string id = commit(kConfig, "one");
  EXPECT_EQ(fetched("main").commitId, id);
  // The same cache, now pointed at the file:// form of another clone of the remote.
  const fs::path mirror = root_ / "mirror.git";
  git(root_, "clone -q --bare " + bare_.string() + " " + mirror.string());
  const std::string two = commit({{"config/x.toml", "\n"}}, "two");
  EXPECT_EQ(fetched("main", "file://" + mirror.string()).commitId, id);
  EXPECT_EQ(fetched("main").commitId, two);
  // The cache records the url in use, for whoever looks at it with git.
  const std::string config = readFile(cache_ / "config");
  EXPECT_TRUE(contains(config, "url = " + bare_.string())) << config;
  EXPECT_FALSE(contains(config, "file://")) << config;
}

// A password in the url (https://user:TOKEN@host/..., as libgit2 takes https credentials) is
// not written into the cache's config, where `git remote -v` and a backup of the state directory
// would show it, nor into the errors about the cache that plan and apply print.
TEST_F(GitSourceTest, APasswordInTheUrlStaysOutOfTheCacheAndItsErrors) {
  const std::string url = "https://deploy:s3cr3t@git.example.invalid/r.git";
  auto source = open(url, "main");  // opening does not fetch
  ASSERT_TRUE(source.ok()) << source.error().message;
  const std::string config = readFile(cache_ / "config");
  EXPECT_FALSE(contains(config, "s3cr3t")) << config;
  EXPECT_TRUE(contains(config, "url = https://deploy:***@git.example.invalid/r.git")) << config;
  const std::string missing(40, 'a');
  auto descends = source->descendsFrom(missing, missing);
  ASSERT_FALSE(descends.ok());
  EXPECT_FALSE(contains(descends.error().message, "s3cr3t")) << descends.error().message;
  EXPECT_TRUE(contains(descends.error().message, "git.example.invalid"))
      << descends.error().message;
  auto tree = source->readTree(missing, "");
  ASSERT_FALSE(tree.ok());
  EXPECT_FALSE(contains(tree.error().message, "s3cr3t")) << tree.error().message;
}

TEST_F(GitSourceTest, AdoptsABareCloneMadeByGit) {
  const std::string id = commit(kConfig, "one");
  // A mirror clone fetches "+refs/*:refs/*" into local branches; fetch() uses its own
  // refspecs whatever the cache's config says.
  git(root_, "clone -q --mirror " + bare_.string() + " " + cache_.string());
  const FetchResult result = fetched("main");
  EXPECT_EQ(result.commitId, id);
  EXPECT_EQ(result.refName, "refs/remotes/origin/main");
  const std::string two = commit({{"config/x.toml", "\n"}}, "two");
  EXPECT_EQ(fetched("main").commitId, two);
}

TEST_F(GitSourceTest, RefusesACacheDirectoryHoldingSomethingElse) {
  writeFile(cache_ / "precious.txt", "not a repository\n");
  auto source = open(bare_.string(), "main");
  ASSERT_FALSE(source.ok());
  EXPECT_TRUE(contains(source.error().message, "is not a git repository"))
      << source.error().message;
  EXPECT_EQ(readFile(cache_ / "precious.txt"), "not a repository\n");
  // An empty directory is fine: that is where the clone goes.
  fs::remove_all(cache_);
  fs::create_directories(cache_);
  commit(kConfig, "one");
  EXPECT_TRUE(open(bare_.string(), "main").ok());
}

// A tree whose entries point at the same subtree again and again is small in objects and
// huge walked: 20 levels of two entries each are 2^20 trees to read. The walk counts the trees
// it reads against a bound (found by an attacker's read: 64 levels would never finish).
TEST_F(GitSourceTest, ATreeThatReusesItsSubtreesIsBoundedByTheTreesRead) {
  commit(kConfig, "one");
  git_repository* repo = nullptr;
  ASSERT_EQ(git_repository_open_bare(&repo, bare_.c_str()), 0);
  git_oid tree{};
  git_treebuilder* builder = nullptr;
  ASSERT_EQ(git_treebuilder_new(&builder, repo, nullptr), 0);
  ASSERT_EQ(git_treebuilder_write(&tree, builder), 0);  // the empty tree at the bottom
  git_treebuilder_free(builder);
  for (int level = 0; level < 20; ++level) {
    ASSERT_EQ(git_treebuilder_new(&builder, repo, nullptr), 0);
    ASSERT_EQ(git_treebuilder_insert(nullptr, builder, "a", &tree, GIT_FILEMODE_TREE), 0);
    ASSERT_EQ(git_treebuilder_insert(nullptr, builder, "b", &tree, GIT_FILEMODE_TREE), 0);
    ASSERT_EQ(git_treebuilder_write(&tree, builder), 0);
    git_treebuilder_free(builder);
  }
  git_repository_free(repo);
  char hex[GIT_OID_HEXSZ + 1] = {};
  git_oid_tostr(hex, sizeof hex, &tree);
  const std::string id =
      writeRawCommit(std::string("tree ") + hex +
                     "\nauthor Ada <ada@example.com> 1700000000 +0000\n"
                     "committer Ada <ada@example.com> 1700000000 +0000\n\ndag\n");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok()) << source.error().message;
  auto fetched = source->fetch();
  ASSERT_TRUE(fetched.ok()) << fetched.error().message;
  ASSERT_EQ(fetched->commitId, id);
  auto files = source->readTree(id, "");
  ASSERT_FALSE(files.ok());
  EXPECT_TRUE(contains(files.error().message, "more than 10000 directories"))
      << files.error().message;
}

// The export's temporary tree (<dest>.tmp) is in the state directory, which others write too
// (the proxy). Whoever puts a symbolic link there between the removal of the old one and the
// mkdir must not have root change the mode of, or write the commit's files into, the directory
// it points to. A child process keeps planting the link while exports run (bounded: 400 exports
// or 4 s); the export either fails or writes its own tree, and the victim is never touched.
TEST_F(GitSourceTest, AnExportNeverFollowsALinkPlantedAtItsTemporaryTree) {
  const std::string id = commit(kConfig, "one");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  const fs::path victim = root_ / "victim";
  fs::create_directories(victim);
  ASSERT_EQ(::chmod(victim.c_str(), 0700), 0);
  const fs::path dest = root_ / "state" / "config.next";
  fs::create_directories(dest.parent_path());
  const std::string tmp = dest.string() + ".tmp";
  const pid_t planter = ::fork();
  ASSERT_GE(planter, 0);
  if (planter == 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(6);
    while (std::chrono::steady_clock::now() < until) {
      (void)::symlink(victim.c_str(), tmp.c_str());
    }
    ::_exit(0);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  for (int i = 0; i < 400 && std::chrono::steady_clock::now() < until; ++i) {
    (void)source->exportTree(id, "config", dest);
    if (modeOf(victim) != 0700u || !fs::is_empty(victim)) {
      break;
    }
  }
  ::kill(planter, SIGKILL);
  int status = 0;
  ::waitpid(planter, &status, 0);
  EXPECT_EQ(modeOf(victim), 0700u);
  EXPECT_TRUE(fs::is_empty(victim)) << "the commit's files were written through the link";
}

TEST_F(GitSourceTest, ExportTreeReplacesTheDirectoryWhole) {
  Files files = kConfig;
  files["config/bin/hook.sh"] = "#!/bin/sh\n";
  const std::string one = commit(files, "one");
  git(work_, "update-index --chmod=+x config/bin/hook.sh");
  git(work_, "commit -q -m exec");
  git(work_, "push -q origin HEAD:main");
  const std::string withExec = git(work_, "rev-parse HEAD");
  git(work_, "rm -q config/tenants/a.toml");
  git(work_, "commit -q -m 'drop tenant'");
  git(work_, "push -q origin HEAD:main");
  const std::string dropped = git(work_, "rev-parse HEAD");

  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  const fs::path dest = root_ / "state" / "config";
  ASSERT_TRUE(source->exportTree(withExec, "config", dest).ok());
  EXPECT_EQ(filesUnder(dest), source->readTree(withExec, "config").value());
  EXPECT_EQ(modeOf(dest), 0755u);
  EXPECT_EQ(modeOf(dest / "tenants"), 0755u);
  EXPECT_EQ(modeOf(dest / "fleet.toml"), 0644u);
  EXPECT_EQ(modeOf(dest / "bin/hook.sh"), 0644u);  // executable in Git, plain data here

  writeFile(dest / "stray.toml", "# left by hand\n");
  ASSERT_TRUE(source->exportTree(dropped, "config/", dest).ok());
  const Files after = filesUnder(dest);
  EXPECT_EQ(after, source->readTree(dropped, "config").value());
  EXPECT_EQ(after.count("tenants/a.toml"), 0u);
  EXPECT_EQ(after.count("stray.toml"), 0u);
  EXPECT_FALSE(fs::exists(dest.string() + ".tmp"));
  EXPECT_FALSE(fs::exists(dest.string() + ".old"));

  // A failed export (no such path) leaves the previous tree alone.
  ASSERT_FALSE(source->exportTree(one, "nope", dest).ok());
  EXPECT_EQ(filesUnder(dest), after);
  // A leftover dest.tmp from a crash is cleared, not merged; "dest/" means dest.
  writeFile(dest.string() + ".tmp/junk.toml", "junk\n");
  ASSERT_TRUE(source->exportTree(one, "config", dest.string() + "/").ok());
  EXPECT_EQ(filesUnder(dest), source->readTree(one, "config").value());
  EXPECT_FALSE(fs::exists(dest.string() + ".tmp"));
  EXPECT_FALSE(fs::exists(dest / ".tmp"));
}

TEST_F(GitSourceTest, RefusesSymlinksInTheConfigTree) {
  commit(kConfig, "one");
  fs::create_symlink("/etc/passwd", work_ / "config" / "link.toml");
  const std::string id = commit({}, "symlink");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  auto tree = source->readTree(id, "config");
  ASSERT_FALSE(tree.ok());
  EXPECT_TRUE(contains(tree.error().message, "link.toml is a symlink")) << tree.error().message;
  EXPECT_TRUE(source->readTree(id, "config/tenants").ok());
}

TEST_F(GitSourceTest, TreeLimitsAreEnforced) {
  const std::string id = commit(kConfig, "one");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  auto tooMany = source->readTree(id, "", TreeLimits{2, 1 << 20});
  ASSERT_FALSE(tooMany.ok());
  EXPECT_TRUE(contains(tooMany.error().message, "more than 2 files"));
  auto tooBig = source->readTree(id, "", TreeLimits{100, 10});
  ASSERT_FALSE(tooBig.ok());
  EXPECT_TRUE(contains(tooBig.error().message, "larger than 10 bytes"));
  EXPECT_TRUE(source->readTree(id, "", TreeLimits{3, 1 << 20}).ok());
}

// --- Signed commits, made by git itself (gpg.format=ssh) ---

TEST_F(GitSourceTest, VerifiesCommitsSignedByGit) {
  const std::string alice = makeKey("alice");
  const std::string mallory = makeKey("mallory");
  auto allowed = parseAllowedSigners("alice@example.com " + readFile(alice + ".pub"));
  ASSERT_TRUE(allowed.ok()) << allowed.error().message;

  const std::string unsignedId = commit(kConfig, "unsigned");
  const std::string signedId = commit({{"config/x.toml", "\n"}}, "signed", alice);
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  auto result = source->fetch();
  ASSERT_TRUE(result.ok()) << result.error().message;
  ASSERT_EQ(result->commitId, signedId);

  auto extracted = source->extractSignature(signedId);
  ASSERT_TRUE(extracted.ok()) << extracted.error().message;
  ASSERT_TRUE(extracted->has_value());
  const SshSignedCommit& sc = **extracted;
  EXPECT_TRUE(sc.signature.starts_with("-----BEGIN SSH SIGNATURE-----\n")) << sc.signature;
  EXPECT_TRUE(contains(sc.payload, "\n\nsigned\n"));
  EXPECT_FALSE(contains(sc.payload, "gpgsig"));
  auto direct = verifySshSig(sc.signature, sc.payload, kGitNamespace, *allowed);
  ASSERT_TRUE(direct.ok()) << direct.error().message;
  auto verified = source->verifyCommit(signedId, *allowed);
  ASSERT_TRUE(verified.ok()) << verified.error().message;
  EXPECT_EQ(verified->principal, "alice@example.com");
  EXPECT_EQ(verified->keyType, "ssh-ed25519");

  // git agrees that this is the signature it made, with the same allowed signers.
  writeFile(root_ / "allowed_signers", "alice@example.com " + readFile(alice + ".pub"));
  const CommandResult gitVerify =
      tryGit(work_, "-c gpg.ssh.allowedSignersFile=" + (root_ / "allowed_signers").string() +
                        " verify-commit " + signedId);
  EXPECT_EQ(gitVerify.status, 0) << gitVerify.output;

  // Unsigned.
  auto none = source->extractSignature(unsignedId);
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_FALSE(none->has_value());
  auto refusedUnsigned = source->verifyCommit(unsignedId, *allowed);
  ASSERT_FALSE(refusedUnsigned.ok());
  EXPECT_TRUE(contains(refusedUnsigned.error().message, "is not signed"))
      << refusedUnsigned.error().message;
  EXPECT_FALSE(refusedUnsigned.error().retryable);

  // Signed, by a key that is not allowed.
  const std::string byMallory = commit({{"config/y.toml", "\n"}}, "mallory", mallory);
  ASSERT_TRUE(source->fetch().ok());
  auto refusedUnknown = source->verifyCommit(byMallory, *allowed);
  ASSERT_FALSE(refusedUnknown.ok());
  EXPECT_TRUE(contains(refusedUnknown.error().message, "not an allowed signer"))
      << refusedUnknown.error().message;
  EXPECT_TRUE(contains(refusedUnknown.error().message, byMallory));

  // Signed by alice, then its content changed with the signature kept.
  std::string raw = git(work_, "cat-file commit " + signedId) + "\n";
  const size_t subject = raw.rfind("\nsigned\n");
  ASSERT_NE(subject, std::string::npos);
  raw.replace(subject, 8, "\nsigned, then changed\n");
  writeFile(root_ / "tampered", raw);
  const std::string tampered =
      git(work_, "hash-object -t commit -w " + (root_ / "tampered").string());
  git(work_, "push -q --force origin " + tampered + ":refs/heads/main");
  auto fetchedTampered = source->fetch();
  ASSERT_TRUE(fetchedTampered.ok()) << fetchedTampered.error().message;
  ASSERT_EQ(fetchedTampered->commitId, tampered);
  EXPECT_EQ(fetchedTampered->subject, "signed, then changed");
  auto refusedTampered = source->verifyCommit(tampered, *allowed);
  ASSERT_FALSE(refusedTampered.ok());
  EXPECT_TRUE(contains(refusedTampered.error().message, "does not match"))
      << refusedTampered.error().message;
}

// A signed commit taken apart: the header without its signature, the `gpgsig` header with its
// continuation lines, and the message.
struct SignedParts {
  std::string header;  // every header line but the signature's, each ending in '\n'
  std::string gpgsig;  // "gpgsig -----BEGIN SSH SIGNATURE-----\n ...\n -----END ...\n"
  std::string message;
};

SignedParts splitSigned(const std::string& raw) {
  SignedParts parts;
  const size_t headerEnd = raw.find("\n\n") + 1;
  parts.message = raw.substr(headerEnd + 1);
  const size_t sigStart = raw.find("\ngpgsig ") + 1;
  size_t sigEnd = raw.find('\n', sigStart) + 1;
  while (sigEnd < headerEnd && raw[sigEnd] == ' ') {
    sigEnd = raw.find('\n', sigEnd) + 1;
  }
  parts.gpgsig = raw.substr(sigStart, sigEnd - sigStart);
  parts.header = raw.substr(0, sigStart) + raw.substr(sigEnd, headerEnd - sigEnd);
  return parts;
}

TEST_F(GitSourceTest, TakesTheSignatureFromTheCommitHeaderOnly) {
  const std::string alice = makeKey("alice");
  auto allowed = parseAllowedSigners("alice@example.com " + readFile(alice + ".pub"));
  ASSERT_TRUE(allowed.ok()) << allowed.error().message;
  writeFile(root_ / "allowed_signers", "alice@example.com " + readFile(alice + ".pub"));
  const std::string signedId = commit(kConfig, "signed", alice);
  const std::string raw = git(work_, "cat-file commit " + signedId) + "\n";
  const std::string quotingId =
      commit({{"config/q.toml", "\n"}}, "quoting\n\ngpgsig quoted\n trailer\nend", alice);
  const SignedParts parts = splitSigned(raw);
  ASSERT_TRUE(parts.gpgsig.starts_with("gpgsig -----BEGIN SSH SIGNATURE-----\n")) << raw;
  ASSERT_EQ(parts.message, "signed\n");
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());

  // Each commit is written to the remote, fetched, and judged by us and by git alike.
  auto check = [&](const std::string& name, const std::string& object, bool gitAccepts,
                   const std::string& refusal) {
    SCOPED_TRACE(name + ":\n" + object);
    const std::string id = writeRawCommit(object);
    auto fetched = source->fetch();
    ASSERT_TRUE(fetched.ok()) << fetched.error().message;
    ASSERT_EQ(fetched->commitId, id);
    git(work_, "fetch -q origin");
    const CommandResult byGit =
        tryGit(work_, "-c gpg.ssh.allowedSignersFile=" + (root_ / "allowed_signers").string() +
                          " verify-commit " + id);
    EXPECT_EQ(byGit.status == 0, gitAccepts) << byGit.output;
    auto verified = source->verifyCommit(id, *allowed);
    if (refusal.empty()) {
      EXPECT_TRUE(verified.ok()) << verified.error().message;
      auto extracted = source->extractSignature(id);
      ASSERT_TRUE(extracted.ok() && extracted->has_value());
      const SignedParts expected = splitSigned(object);
      EXPECT_TRUE((*extracted)->signature.starts_with("-----BEGIN SSH SIGNATURE-----\nU1NI"));
      EXPECT_TRUE(contains((*extracted)->signature, "\n-----END SSH SIGNATURE-----"));
      EXPECT_EQ((*extracted)->payload, expected.header + "\n" + expected.message);
      return;
    }
    ASSERT_FALSE(verified.ok()) << "signature: good";
    EXPECT_TRUE(contains(verified.error().message, refusal)) << verified.error().message;
    EXPECT_FALSE(verified.error().retryable);
  };

  check("as git signed it", parts.header + parts.gpgsig + "\n" + parts.message, true, "");
  // The message may quote a gpgsig line; it is not the signature and is signed like the rest.
  const std::string quoting = git(work_, "cat-file commit " + quotingId) + "\n";
  ASSERT_TRUE(contains(quoting, "\n\nquoting\n\ngpgsig quoted\n trailer\nend\n")) << quoting;
  check("a gpgsig line in the message", quoting, true, "");
  // The signature moved out of the header into the message: git sees an unsigned commit.
  check("signature moved into the message", parts.header + "\n" + parts.gpgsig + parts.message,
        false, "is not signed");
  // Two: git joins them and ssh-keygen reads the first armor only; which one was meant is
  // ambiguous, so it is refused.
  check("two gpgsig headers", parts.header + parts.gpgsig + parts.gpgsig + "\n" + parts.message,
        true, "more than one gpgsig header");
  // Other header keys are not the signature, however close the name.
  for (const std::string key : {"gpgsig-sha256", "xgpgsig", "gpgsigx"}) {
    check(key, parts.header + key + parts.gpgsig.substr(6) + "\n" + parts.message, false,
          "is not signed");
  }
}

TEST_F(GitSourceTest, SignerValidityIsCheckedAtTheCommitTime) {
  const std::string alice = makeKey("alice");
  const std::string pub = readFile(alice + ".pub");
  const std::string id = commit(kConfig, "signed", alice);
  auto source = open(bare_.string(), "main");
  ASSERT_TRUE(source.ok());
  ASSERT_TRUE(source->fetch().ok());
  auto current = parseAllowedSigners("a valid-after=\"20000101Z\" " + pub);
  ASSERT_TRUE(current.ok());
  EXPECT_TRUE(source->verifyCommit(id, *current).ok());
  auto expired = parseAllowedSigners("a valid-before=\"20000101Z\" " + pub);
  ASSERT_TRUE(expired.ok());
  auto refused = source->verifyCommit(id, *expired);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.error().message, "expired")) << refused.error().message;
}

}  // namespace
}  // namespace edgeplane::source
