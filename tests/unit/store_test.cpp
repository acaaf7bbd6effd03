// Tests of the SQLite state store, each against a fresh temporary state directory.
#include "schema/store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <array>
#include <fstream>
#include <iterator>
#include <string>

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

struct RawCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using RawDb = std::unique_ptr<sqlite3, RawCloser>;

// A second, plain connection to the file, as another process (or the sqlite3 CLI) would have.
RawDb rawOpen(const fs::path& db) {
  sqlite3* raw = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  return RawDb(raw);
}

void rawExec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &msg), SQLITE_OK)
      << sql << ": " << (msg != nullptr ? msg : "");
  sqlite3_free(msg);
}

void rawExec(const fs::path& dbPath, const char* sql) {
  rawExec(rawOpen(dbPath).get(), sql);
}

// The first column of the first row, as text ("" when there is no row).
std::string rawQuery(const fs::path& dbPath, const char* sql) {
  RawDb db = rawOpen(dbPath);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db.get(), sql, -1, &stmt, nullptr), SQLITE_OK) << sql;
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  }
  sqlite3_finalize(stmt);
  return out;
}

std::string readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');
const std::string kHashC(64, 'c');

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "edgeplane-store-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    stateDir_ = tmp_ / "state";
    dbPath_ = stateDir_ / "state.db";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  std::unique_ptr<Store> open(const StoreOptions& options = {}) {
    auto store = Store::open(stateDir_, options);
    EXPECT_TRUE(store.ok()) << (store.ok() ? "" : store.error().message);
    return store.ok() ? std::move(store).value() : nullptr;
  }

  fs::path tmp_;
  fs::path stateDir_;
  fs::path dbPath_;
};

TEST_F(StoreTest, FreshOpenCreatesPrivateStoreInWalMode) {
  ASSERT_FALSE(fs::exists(stateDir_));
  auto store = open();
  ASSERT_NE(store, nullptr);

  EXPECT_EQ(fs::status(stateDir_).permissions(), fs::perms::owner_all);
  EXPECT_EQ(fs::status(dbPath_).permissions(), fs::perms::owner_read | fs::perms::owner_write);
  const fs::path wal = dbPath_.string() + "-wal";
  ASSERT_TRUE(fs::exists(wal));
  EXPECT_EQ(fs::status(wal).permissions(), fs::perms::owner_read | fs::perms::owner_write);

  EXPECT_EQ(rawQuery(dbPath_, "PRAGMA journal_mode"), "wal");
  EXPECT_GE(Store::knownSchemaVersion(), 1);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  EXPECT_EQ(rawQuery(dbPath_, "PRAGMA user_version"), std::to_string(Store::knownSchemaVersion()));
  EXPECT_EQ(store->path(), dbPath_);

  auto generation = store->latestGeneration();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(*generation, 0);
  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

TEST_F(StoreTest, ReopenKeepsDataAndAppliesNothing) {
  int64_t runId = 0;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    auto run = store->beginRun({"0123abcd", "https://git.example.com/edge.git main", 1000});
    ASSERT_TRUE(run.ok()) << run.error().message;
    runId = *run;
    ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.0/31"})", 1000));
  }
  const std::string schemaCookie = rawQuery(dbPath_, "PRAGMA schema_version");
  const std::string userVersion = rawQuery(dbPath_, "PRAGMA user_version");

  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  // schema_version counts every schema change: no migration ran again.
  EXPECT_EQ(rawQuery(dbPath_, "PRAGMA schema_version"), schemaCookie);
  EXPECT_EQ(rawQuery(dbPath_, "PRAGMA user_version"), userVersion);

  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front().id, runId);
  EXPECT_EQ(runs->front().commitId, "0123abcd");
  auto owned = store->getOwned("namespace", "tenant-a");
  ASSERT_TRUE(owned.ok());
  ASSERT_TRUE(owned->has_value());
  EXPECT_EQ((*owned)->data, R"({"uplink":"100.64.0.0/31"})");
}

// One of SQLite's method tables with xSync counted: a copy for WAL files, one for databases.
struct WrappedMethods {
  const sqlite3_io_methods* real = nullptr;
  sqlite3_io_methods wal{};
  sqlite3_io_methods db{};
};

// Syncs of the main database and of its WAL, counted by a VFS over SQLite's default one, made
// the default while it lives.
class SyncCounter {
 public:
  SyncCounter() {
    base_ = sqlite3_vfs_find(nullptr);
    vfs_ = *base_;
    vfs_.zName = "edgeplane-sync-counter";
    vfs_.xOpen = &open;
    EXPECT_EQ(sqlite3_vfs_register(&vfs_, 1), SQLITE_OK);
  }
  ~SyncCounter() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(base_, 1);
  }
  SyncCounter(const SyncCounter&) = delete;
  SyncCounter& operator=(const SyncCounter&) = delete;

  static inline int walSyncs = 0;
  static inline int dbSyncs = 0;
  static inline bool failWalSyncs = false;  // as a disk that refuses them (EIO)

 private:
  static int sync(sqlite3_file* f, int how) {
    for (const WrappedMethods& w : wrapped_) {
      if (f->pMethods == &w.wal || f->pMethods == &w.db) {
        ++(f->pMethods == &w.wal ? walSyncs : dbSyncs);
        if (failWalSyncs && f->pMethods == &w.wal) {
          return SQLITE_IOERR_FSYNC;
        }
        return w.real->xSync(f, how);
      }
    }
    ADD_FAILURE() << "a file of no wrapped table";
    return SQLITE_IOERR;
  }
  static int open(sqlite3_vfs*, const char* name, sqlite3_file* file, int flags, int* out) {
    const int rc = base_->xOpen(base_, name, file, flags, out);
    if (rc != SQLITE_OK || file->pMethods == nullptr ||
        (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_DB)) == 0) {
      return rc;
    }
    size_t i = 0;
    while (i < wrapped_.size() && wrapped_[i].real != nullptr &&
           wrapped_[i].real != file->pMethods) {
      ++i;
    }
    if (i == wrapped_.size()) {
      ADD_FAILURE() << "more method tables than wrapped";
      return rc;
    }
    WrappedMethods& w = wrapped_[i];
    if (w.real == nullptr) {
      w.real = file->pMethods;
      w.wal = w.db = *w.real;
      w.wal.xSync = w.db.xSync = &sync;
    }
    file->pMethods = (flags & SQLITE_OPEN_WAL) != 0 ? &w.wal : &w.db;
    return rc;
  }

  static inline sqlite3_vfs* base_ = nullptr;
  static inline std::array<WrappedMethods, 4> wrapped_{};
  sqlite3_vfs vfs_{};
};

// Closing never checkpoints (a sync of the WAL and one of the database at every run's end): a
// run that only records history syncs nothing, one that changes owned rows syncs the WAL once,
// and what it wrote is there for the next open.
TEST_F(StoreTest, ClosingSyncsTheWalOnlyAfterChangesBeyondHistory) {
  SyncCounter syncs;
  open().reset();  // created and migrated
  SyncCounter::walSyncs = SyncCounter::dbSyncs = 0;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    auto run = store->beginRun({std::nullopt, "/srv/config", 1000});  // from a directory
    ASSERT_TRUE(run.ok()) << run.error().message;
    const OpOutcome op{0, OpAction::Create, "namespace", "tenant-a", true, std::nullopt};
    ASSERT_TRUE(store->recordOps(*run, std::span(&op, 1)));
    ASSERT_TRUE(store->finishRun(*run, {2000, RunResult::Ok, "no changes", {}, ""}));
  }
  EXPECT_EQ(SyncCounter::walSyncs, 0);
  EXPECT_EQ(SyncCounter::dbSyncs, 0);
  EXPECT_TRUE(fs::exists(dbPath_.string() + "-wal"));

  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.0/31"})", 3000));
  }
  EXPECT_EQ(SyncCounter::walSyncs, 1);
  EXPECT_EQ(SyncCounter::dbSyncs, 0);

  // A run that makes its commit the last good one moves the anti-rollback marker: synced. A run
  // of that commit again is history only.
  auto runOf = [&](const char* commit) {
    SyncCounter::walSyncs = 0;
    auto store = open();
    ASSERT_NE(store, nullptr);
    auto run = store->beginRun({commit, "/srv/config", 4000});
    ASSERT_TRUE(run.ok()) << run.error().message;
    ASSERT_TRUE(store->finishRun(*run, {5000, RunResult::Ok, "no changes", {}, ""}));
  };
  runOf("4567cdef");
  EXPECT_EQ(SyncCounter::walSyncs, 1);
  runOf("4567cdef");
  EXPECT_EQ(SyncCounter::walSyncs, 0);

  // syncWal: what the connection or another committed is synced now (the next run does so for
  // one an interrupted process left running, whose close never came).
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    SyncCounter::walSyncs = 0;
    ASSERT_TRUE(store->syncWal());
    EXPECT_EQ(SyncCounter::walSyncs, 1);
  }

  auto store = open();
  ASSERT_NE(store, nullptr);
  auto owned = store->getOwned("namespace", "tenant-a");
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(owned->has_value());
  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 3u);
}

// syncChanges() is closing's sync, done when its failure can still be told: the error names the
// WAL. The changes stay counted as unsynced, so the next call or the close tries again (best
// effort: after a failed sync the kernel may have dropped the pages). History alone never syncs.
TEST_F(StoreTest, SyncingChangesTellsAFailedSyncAndKeepsThemToSync) {
  SyncCounter syncs;
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.0/31"})", 1000));
  SyncCounter::walSyncs = 0;
  SyncCounter::failWalSyncs = true;
  auto failed = store->syncChanges();
  SyncCounter::failWalSyncs = false;
  ASSERT_FALSE(failed.ok());
  const std::string& why = failed.error().message;
  EXPECT_NE(why.find(dbPath_.string() + ": syncing its write-ahead log failed"), std::string::npos)
      << why;
  EXPECT_EQ(SyncCounter::walSyncs, 1);

  ASSERT_TRUE(store->syncChanges());  // tried again after the failure
  EXPECT_EQ(SyncCounter::walSyncs, 2);
  ASSERT_TRUE(store->syncChanges());  // nothing new
  auto run = store->beginRun({std::nullopt, "/srv/config", 2000});
  ASSERT_TRUE(run.ok()) << run.error().message;
  ASSERT_TRUE(store->finishRun(*run, {3000, RunResult::Failed, "failed", {}, ""}));
  ASSERT_TRUE(store->syncChanges());  // history only
  EXPECT_EQ(SyncCounter::walSyncs, 2);
  ASSERT_TRUE(store->removeOwned("namespace", "tenant-a"));
  ASSERT_TRUE(store->syncChanges());
  EXPECT_EQ(SyncCounter::walSyncs, 3);
  store.reset();  // the close has nothing left to sync
  EXPECT_EQ(SyncCounter::walSyncs, 3);
}

// The store's file is in a directory others write (the proxy writes the store itself), so root
// opens it as SQLite advises for a file it did not write alone: triggers and views, which
// edgeplane's schema has none of, do not run. A trigger planted to
// rewrite ownership whenever a run is recorded does nothing.
TEST_F(StoreTest, APlantedTriggerDoesNotRunInTheReconcilersConnection) {
  open().reset();
  rawExec(dbPath_,
          "CREATE TRIGGER planted AFTER INSERT ON apply_runs BEGIN "
          "INSERT INTO owned_resources(kind, name, data, updated_at) VALUES ('netns', 'planted', "
          "'{}', 1); END;"
          "CREATE VIEW planted_view AS SELECT 1;");
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto run = store->beginRun(RunStart{std::nullopt, "cfg", 1});
  ASSERT_TRUE(run.ok()) << run.error().message;
  auto owned = store->listOwned(std::nullopt);
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(owned->empty()) << owned->front().name;
  EXPECT_EQ(rawQuery(dbPath_, "SELECT count(*) FROM owned_resources"), "0");
}

TEST_F(StoreTest, RefusesNewerSchemaWithoutTouchingTheFile) {
  ASSERT_NE(open(), nullptr);
  const int newer = Store::knownSchemaVersion() + 1;
  const std::string bump = "PRAGMA user_version = " + std::to_string(newer);
  rawExec(dbPath_, bump.c_str());
  const std::string before = readFile(dbPath_);
  ASSERT_FALSE(before.empty());

  auto store = Store::open(stateDir_);
  ASSERT_FALSE(store.ok());
  const Error& error = store.error();
  EXPECT_FALSE(error.retryable);
  EXPECT_TRUE(contains(error.message, dbPath_.string())) << error.message;
  EXPECT_TRUE(contains(error.message, "schema version " + std::to_string(newer))) << error.message;
  EXPECT_TRUE(contains(error.message, "(" + std::to_string(Store::knownSchemaVersion()) + ")"))
      << error.message;
  EXPECT_TRUE(contains(error.message, "--state-dir")) << error.message;

  EXPECT_EQ(readFile(dbPath_), before);
  EXPECT_EQ(rawQuery(dbPath_, "PRAGMA user_version"), std::to_string(newer));
}

TEST_F(StoreTest, OpenRefusesAStateDirThatIsAFile) {
  std::ofstream(stateDir_) << "not a directory";
  auto store = Store::open(stateDir_);
  ASSERT_FALSE(store.ok());
  EXPECT_FALSE(store.error().retryable);
  EXPECT_TRUE(contains(store.error().message, "not a directory")) << store.error().message;
}

TEST_F(StoreTest, RunsRoundTripWithOpsNewestFirst) {
  auto store = open();
  ASSERT_NE(store, nullptr);

  auto first = store->beginRun({"c0ffee", "git main", 1000});
  ASSERT_TRUE(first.ok()) << first.error().message;
  const OpOutcome create{1, OpAction::Create, "namespace", "tenant-a", true, std::nullopt};
  const OpOutcome update{2, OpAction::Update, "forward", "vm-ssh", false, "netlink: EPERM"};
  const OpOutcome remove{3, OpAction::Delete, "site", "old-web", true, std::nullopt};
  // Recorded out of plan order: runOps returns them by seq.
  ASSERT_TRUE(store->recordOp(*first, update));
  ASSERT_TRUE(store->recordOp(*first, create));
  ASSERT_TRUE(store->recordOp(*first, remove));
  const RunFinish finish{1500, RunResult::Partial, "1 added, 1 destroyed, 1 failed",
                         RunCounts{1, 0, 1, 1}};
  ASSERT_TRUE(store->finishRun(*first, finish));

  auto second = store->beginRun({std::nullopt, "/etc/edgeplane/config", 2000});
  ASSERT_TRUE(second.ok());
  EXPECT_GT(*second, *first);

  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok()) << runs.error().message;
  ASSERT_EQ(runs->size(), 2u);
  const ApplyRun& running = (*runs)[0];
  EXPECT_EQ(running.id, *second);
  EXPECT_EQ(running.commitId, std::nullopt);
  EXPECT_EQ(running.configSource, "/etc/edgeplane/config");
  EXPECT_EQ(running.startedAt, 2000);
  EXPECT_EQ(running.finishedAt, std::nullopt);
  EXPECT_EQ(running.result, RunResult::Running);
  EXPECT_EQ(running.summary, "");
  EXPECT_EQ(running.counts, RunCounts{});
  const ApplyRun& done = (*runs)[1];
  EXPECT_EQ(done.id, *first);
  EXPECT_EQ(done.commitId, "c0ffee");
  EXPECT_EQ(done.finishedAt, 1500);
  EXPECT_EQ(done.result, RunResult::Partial);
  EXPECT_EQ(done.summary, finish.summary);
  EXPECT_EQ(done.counts, finish.counts);

  auto limited = store->recentRuns(1);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 1u);
  EXPECT_EQ(limited->front().id, *second);

  auto ops = store->runOps(*first);
  ASSERT_TRUE(ops.ok()) << ops.error().message;
  EXPECT_EQ(*ops, (std::vector<OpOutcome>{create, update, remove}));
  auto none = store->runOps(*second);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  EXPECT_EQ(toString(RunResult::Refused), "refused");
  EXPECT_EQ(toString(OpAction::Delete), "delete");
}

TEST_F(StoreTest, ManyOpsAndOwnedRowsGoInSeveralRowsToAStatement) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto run = store->beginRun({std::nullopt, "dir", 1});
  ASSERT_TRUE(run.ok());
  // 130: two statements of 64 rows and one of 2.
  std::vector<OpOutcome> ops;
  std::vector<OwnedResource> rows;
  for (int i = 0; i < 130; ++i) {
    const bool ok = i % 3 != 0;
    ops.push_back(OpOutcome{i, i % 2 == 0 ? OpAction::Create : OpAction::Delete, "forward",
                            "f" + std::to_string(i), ok,
                            ok ? std::nullopt : std::optional("failed " + std::to_string(i))});
    rows.push_back(OwnedResource{"forward", "f" + std::to_string(1000 + i),
                                 R"({"spec":")" + std::to_string(i) + R"("})", 10});
  }
  ASSERT_TRUE(store->transaction([&] { return store->recordOps(*run, ops); }));
  auto got = store->runOps(*run);
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(*got, ops);
  ASSERT_TRUE(store->transaction([&] { return store->putOwnedRows(rows); }));
  // Again, one row changed: only that one takes the new time.
  for (auto& r : rows) {
    r.updatedAt = 20;
  }
  rows[70].data = R"({"spec":"changed"})";
  ASSERT_TRUE(store->putOwnedRows(rows));
  auto owned = store->listOwned("forward");
  ASSERT_TRUE(owned.ok());
  ASSERT_EQ(owned->size(), 130U);
  for (const OwnedResource& r : *owned) {
    const bool changed = r.name == "f1070";
    EXPECT_EQ(r.updatedAt, changed ? 20 : 10) << r.name;
    EXPECT_EQ(r.data == R"({"spec":"changed"})", changed) << r.name;
  }
  // A refused row (a seq already recorded) fails the call, in whichever statement it is.
  std::vector<OpOutcome> again(ops.begin() + 60, ops.begin() + 100);
  EXPECT_FALSE(store->recordOps(*run, again).ok());
}

TEST_F(StoreTest, RunMisuseIsRejected) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto run = store->beginRun({std::nullopt, "dir", 1});
  ASSERT_TRUE(run.ok());
  const OpOutcome op{1, OpAction::Create, "namespace", "a", true, std::nullopt};
  ASSERT_TRUE(store->recordOp(*run, op));

  auto duplicate = store->recordOp(*run, op);
  ASSERT_FALSE(duplicate.ok());
  EXPECT_FALSE(duplicate.error().retryable);
  EXPECT_FALSE(store->recordOp(*run + 100, op).ok());  // no such run: foreign key
  EXPECT_FALSE(store->finishRun(*run + 100, {2, RunResult::Ok, "", {}}).ok());
  EXPECT_FALSE(store->finishRun(*run, {2, RunResult::Running, "", {}}).ok());
  EXPECT_FALSE(store->finishRun(*run, {2, RunResult::Ok, "", RunCounts{-1, 0, 0, 0}}).ok());
}

TEST_F(StoreTest, GitRunsKeepAuthorSubjectAndDetail) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const std::string commitA(40, 'a');
  const std::string commitB(40, 'b');
  auto good = store->beginRun({commitA, "file:///srv/edge.git main config", 1000,
                               "Alice <alice@example.com>", "add tenant b"});
  ASSERT_TRUE(good.ok()) << good.error().message;
  ASSERT_TRUE(store->finishRun(*good, {1100, RunResult::Ok, "1 added", RunCounts{1, 0, 0, 0}, ""}));
  const std::string diagnostics =
      "config/a.toml:3:1: error: unknown key \"nmae\"\nconfig/b.toml:7:9: error: bad port\n";
  auto refused = store->beginRun(
      {commitB, "file:///srv/edge.git main config", 2000, "Mallory <m@example.com>", "break it"});
  ASSERT_TRUE(refused.ok());
  ASSERT_TRUE(store->finishRun(
      *refused, {2100, RunResult::Refused, "the config does not validate", {}, diagnostics}));
  auto plain = store->beginRun({std::nullopt, "/etc/edgeplane/config", 3000});
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(store->finishRun(*plain, {3100, RunResult::Ok, "", {}}));

  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok()) << runs.error().message;
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].author, std::nullopt);
  EXPECT_EQ((*runs)[0].subject, std::nullopt);
  EXPECT_EQ((*runs)[0].detail, "");
  EXPECT_EQ((*runs)[1].commitId, commitB);
  EXPECT_EQ((*runs)[1].author, "Mallory <m@example.com>");
  EXPECT_EQ((*runs)[1].subject, "break it");
  EXPECT_EQ((*runs)[1].result, RunResult::Refused);
  EXPECT_EQ((*runs)[1].detail, diagnostics);
  EXPECT_EQ((*runs)[2].author, "Alice <alice@example.com>");

  // The last good commit skips the refused run and the run without a commit.
  auto last = store->lastGoodCommitRun();
  ASSERT_TRUE(last.ok()) << last.error().message;
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->id, *good);
  EXPECT_EQ((*last)->commitId, commitA);
  EXPECT_EQ((*last)->subject, "add tenant b");
}

TEST_F(StoreTest, LastGoodCommitIsNoneWithoutAnAcceptedCommit) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto empty = store->lastGoodCommitRun();
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());
  auto failed = store->beginRun({std::string(40, 'c'), "repo main", 1});
  ASSERT_TRUE(failed.ok());
  ASSERT_TRUE(store->finishRun(*failed, {2, RunResult::Failed, "fetch failed", {}}));
  auto running = store->beginRun({std::string(40, 'd'), "repo main", 3});
  ASSERT_TRUE(running.ok());
  auto none = store->lastGoodCommitRun();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// The frozen version-1 (and 2) definition of the API-key tables, which migration 3 rebuilds.
constexpr const char* kApiKeyTablesV1 = R"sql(
CREATE TABLE api_keys (
  id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
  name       TEXT    NOT NULL,
  sha256     TEXT    NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
  gateways   TEXT    NOT NULL CHECK (json_valid(gateways) AND json_type(gateways) = 'array'),
  role       TEXT    NOT NULL,
  enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE api_key_usage (
  key_id        TEXT    NOT NULL PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
  request_count INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  last_used_at  INTEGER
) WITHOUT ROWID;
)sql";

// A store written by the first release (schema version 1) is upgraded in place: its runs are
// kept and read back with empty author/subject/detail, and new runs carry the new columns.
TEST_F(StoreTest, VersionOneStoreIsUpgraded) {
  fs::create_directories(stateDir_);
  std::ofstream(dbPath_).close();  // an empty file is an empty SQLite database
  {
    RawDb db = rawOpen(dbPath_);
    // The frozen version-1 definition of the tables this migration touches.
    rawExec(db.get(), R"sql(
CREATE TABLE apply_runs (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  commit_id     TEXT,
  config_source TEXT    NOT NULL,
  started_at    INTEGER NOT NULL,
  finished_at   INTEGER,
  result        TEXT    NOT NULL DEFAULT 'running'
                CHECK (result IN ('running', 'ok', 'partial', 'failed', 'refused')),
  summary       TEXT    NOT NULL DEFAULT '',
  added         INTEGER NOT NULL DEFAULT 0 CHECK (added >= 0),
  changed       INTEGER NOT NULL DEFAULT 0 CHECK (changed >= 0),
  destroyed     INTEGER NOT NULL DEFAULT 0 CHECK (destroyed >= 0),
  failed        INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0)
);
INSERT INTO apply_runs (commit_id, config_source, started_at, finished_at, result, summary, added)
  VALUES ('0123456789abcdef0123456789abcdef01234567', 'repo main', 10, 20, 'ok', '2 added', 2);
PRAGMA user_version = 1;
)sql");
    rawExec(db.get(), kApiKeyTablesV1);
  }
  ASSERT_EQ(rawQuery(dbPath_, "PRAGMA user_version"), "1");

  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  EXPECT_GE(Store::knownSchemaVersion(), 2);
  for (const char* column : {"author", "subject", "detail"}) {
    const std::string sql =
        std::string("SELECT count(*) FROM pragma_table_info('apply_runs') WHERE name = '") +
        column + "'";
    EXPECT_EQ(rawQuery(dbPath_, sql.c_str()), "1") << column;
  }
  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok()) << runs.error().message;
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ(runs->front().summary, "2 added");
  EXPECT_EQ(runs->front().counts.added, 2);
  EXPECT_EQ(runs->front().author, std::nullopt);
  EXPECT_EQ(runs->front().detail, "");
  auto last = store->lastGoodCommitRun();
  ASSERT_TRUE(last.ok());
  ASSERT_TRUE(last->has_value());
  EXPECT_EQ((*last)->commitId, "0123456789abcdef0123456789abcdef01234567");

  auto run = store->beginRun({std::nullopt, "dir", 30, "A <a@b>", "subject"});
  ASSERT_TRUE(run.ok()) << run.error().message;
  ASSERT_TRUE(store->finishRun(*run, {40, RunResult::Refused, "", {}, "why"}));
  EXPECT_EQ(rawQuery(dbPath_, "SELECT detail FROM apply_runs ORDER BY id DESC LIMIT 1"), "why");
}

// A version-2 store keeps its keys and their usage: first seen is taken from updated_at, the
// usage table loses its foreign key (counts for unknown ids are kept), blocks start empty.
TEST_F(StoreTest, VersionTwoStoreIsUpgraded) {
  fs::create_directories(stateDir_);
  std::ofstream(dbPath_).close();
  {
    RawDb db = rawOpen(dbPath_);
    rawExec(db.get(), kApiKeyTablesV1);
    rawExec(db.get(), R"sql(
INSERT INTO api_keys VALUES ('k7Hq2xPz', 'Old',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '["ping"]', 'worker', 1, 42);
INSERT INTO api_key_usage VALUES ('k7Hq2xPz', 9, 77);
PRAGMA user_version = 2;
)sql");
  }
  ASSERT_EQ(rawQuery(dbPath_, "PRAGMA user_version"), "2");

  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  auto keys = store->listApiKeys();
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ(keys->front().name, "Old");
  EXPECT_TRUE(keys->front().endpoints.empty());
  EXPECT_EQ(keys->front().firstSeenAt, 42);
  EXPECT_EQ(keys->front().firstSeenCommit, std::nullopt);
  auto used = store->usage("k7Hq2xPz");
  ASSERT_TRUE(used.ok()) << used.error().message;
  ASSERT_TRUE(used->has_value());
  EXPECT_EQ((*used)->requestCount, 9);
  EXPECT_EQ((*used)->lastUsedAt, 77);
  ASSERT_TRUE(store->addUsageBatch({{"notYetKnown", 1, 80, "192.0.2.9", {}}}));
  EXPECT_EQ(rawQuery(dbPath_, "SELECT count(*) FROM pragma_foreign_key_list('api_key_usage')"),
            "0");
  auto blocks = store->listApiKeyBlocks();
  ASSERT_TRUE(blocks.ok()) << blocks.error().message;
  EXPECT_TRUE(blocks->empty());
}

TEST_F(StoreTest, OwnedPutUpdateRemoveList) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->putOwned("namespace", "tenant-b", R"({"uplink":"100.64.0.2/31"})", 10));
  ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.0/31"})", 11));
  ASSERT_TRUE(store->putOwned("link", "ep-tenant-a", "{}", 12));

  auto all = store->listOwned(std::nullopt);
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0], (OwnedResource{"link", "ep-tenant-a", "{}", 12}));
  EXPECT_EQ((*all)[1].name, "tenant-a");
  EXPECT_EQ((*all)[2].name, "tenant-b");
  auto namespaces = store->listOwned("namespace");
  ASSERT_TRUE(namespaces.ok());
  ASSERT_EQ(namespaces->size(), 2u);

  // An update bumps updated_at; a put of the same data is not a change.
  ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.4/31"})", 20));
  ASSERT_TRUE(store->putOwned("namespace", "tenant-a", R"({"uplink":"100.64.0.4/31"})", 30));
  auto got = store->getOwned("namespace", "tenant-a");
  ASSERT_TRUE(got.ok());
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->data, R"({"uplink":"100.64.0.4/31"})");
  EXPECT_EQ((*got)->updatedAt, 20);

  auto missing = store->getOwned("namespace", "nope");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(store->removeOwned("namespace", "tenant-a"));
  ASSERT_TRUE(store->removeOwned("namespace", "tenant-a"));  // absent: still fine
  auto after = store->listOwned("namespace");
  ASSERT_TRUE(after.ok());
  ASSERT_EQ(after->size(), 1u);
  EXPECT_EQ(after->front().name, "tenant-b");

  auto bad = store->putOwned("namespace", "broken", "{not json", 40);
  ASSERT_FALSE(bad.ok());
  EXPECT_FALSE(bad.error().retryable);
  auto broken = store->getOwned("namespace", "broken");
  ASSERT_TRUE(broken.ok());
  EXPECT_FALSE(broken->has_value());

  // An empty string_view (null data pointer) is stored as '', not NULL.
  ASSERT_TRUE(store->putOwned("marker", std::string_view(), "[]", 50));
  auto empty = store->getOwned("marker", "");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->has_value());
}

TEST_F(StoreTest, SnapshotGenerationsIncreaseAndSurvivePruning) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto empty = store->latestSnapshot();
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->has_value());

  auto run = store->beginRun({std::nullopt, "dir", 1});
  ASSERT_TRUE(run.ok());
  int64_t previous = 0;
  for (int i = 1; i <= 25; ++i) {
    const std::string body = R"({"n":)" + std::to_string(i) + "}";
    auto generation =
        store->writeSnapshot(body, 100 + i, i == 25 ? std::optional(*run) : std::nullopt);
    ASSERT_TRUE(generation.ok()) << generation.error().message;
    EXPECT_GT(*generation, previous);
    previous = *generation;
  }
  EXPECT_EQ(previous, 25);

  auto latestGeneration = store->latestGeneration();
  ASSERT_TRUE(latestGeneration.ok());
  EXPECT_EQ(*latestGeneration, 25);
  auto latest = store->latestSnapshot();
  ASSERT_TRUE(latest.ok());
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->generation, 25);
  EXPECT_EQ((*latest)->createdAt, 125);
  EXPECT_EQ((*latest)->runId, *run);
  EXPECT_EQ((*latest)->body, R"({"n":25})");
  EXPECT_EQ(rawQuery(dbPath_, "SELECT count(*) FROM proxy_snapshots"), "20");
  EXPECT_EQ(rawQuery(dbPath_, "SELECT min(generation) FROM proxy_snapshots"), "6");

  // Even with every row gone, a generation number is never handed out twice.
  rawExec(dbPath_, "DELETE FROM proxy_snapshots");
  auto next = store->writeSnapshot("{}", 200, std::nullopt);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, 26);

  auto bad = store->writeSnapshot("{oops", 300, std::nullopt);
  ASSERT_FALSE(bad.ok());
  auto unchanged = store->latestGeneration();
  ASSERT_TRUE(unchanged.ok());
  EXPECT_EQ(*unchanged, 26);
}

TEST_F(StoreTest, ApiKeySyncKeepsUsageOfKeptKeysOnly) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::string upperB = kHashB;
  upperB[0] = 'B';
  const ApiKeyRecord a{"k-a", "Ping worker #1", kHashA, {"ping", "pong"}, "worker", true};
  const ApiKeyRecord b{"k-b", "Admin", upperB, {}, "admin", true};
  const ApiKeyRecord c{"k-c", "Leaving", kHashC, {"we\"ird\\gw"}, "worker", true};
  ASSERT_TRUE(store->syncApiKeys({c, a, b}, 100));

  auto listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ(static_cast<const ApiKeyRecord&>((*listed)[0]), a);
  EXPECT_EQ((*listed)[0].updatedAt, 100);
  EXPECT_EQ((*listed)[1].sha256, kHashB);  // stored lower-case
  EXPECT_TRUE((*listed)[1].gateways.empty());
  EXPECT_EQ((*listed)[2].gateways, std::vector<std::string>{"we\"ird\\gw"});

  auto recorded = store->addUsageBatch({{"k-a", 3, 150, "192.0.2.1", {0, 3, 0, 0, 0}}});
  ASSERT_TRUE(recorded.ok()) << recorded.error().message;
  EXPECT_EQ(*recorded, 1);
  // An older timestamp does not go back; an unknown id is counted too (until the next sync).
  auto more = store->addUsageBatch({{"k-a", 2, 140, "192.0.2.2", {}},
                                    {"k-b", 1, 160, "", {}},
                                    {"k-c", 7, 170, "", {}},
                                    {"k-zz", 1, 180, "", {}}});
  ASSERT_TRUE(more.ok()) << more.error().message;
  EXPECT_EQ(*more, 4);
  auto unknown = store->usage("k-zz");
  ASSERT_TRUE(unknown.ok());
  ASSERT_TRUE(unknown->has_value());
  EXPECT_EQ((*unknown)->requestCount, 1);

  // Re-sync: a unchanged, b changed, c removed, d added.
  ApiKeyRecord b2 = b;
  b2.enabled = false;
  const ApiKeyRecord d{"k-d", "New", kHashC, {"ping"}, "worker", true};
  ASSERT_TRUE(store->syncApiKeys({a, b2, d}, 200));

  listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].id, "k-a");
  EXPECT_EQ((*listed)[0].updatedAt, 100);
  EXPECT_EQ((*listed)[1].id, "k-b");
  EXPECT_FALSE((*listed)[1].enabled);
  EXPECT_EQ((*listed)[1].updatedAt, 200);
  EXPECT_EQ((*listed)[2].id, "k-d");

  auto usageA = store->usage("k-a");
  ASSERT_TRUE(usageA.ok());
  ASSERT_TRUE(usageA->has_value());
  EXPECT_EQ((*usageA)->requestCount, 5);
  EXPECT_EQ((*usageA)->lastUsedAt, 150);
  EXPECT_EQ((*usageA)->lastIp, "192.0.2.1");  // the newest use's address
  auto usageB = store->usage("k-b");
  ASSERT_TRUE(usageB.ok());
  ASSERT_TRUE(usageB->has_value());
  EXPECT_EQ((*usageB)->requestCount, 1);
  auto usageC = store->usage("k-c");
  ASSERT_TRUE(usageC.ok());
  EXPECT_FALSE(usageC->has_value());
  auto usageD = store->usage("k-d");
  ASSERT_TRUE(usageD.ok());
  EXPECT_FALSE(usageD->has_value());  // never used
  auto usageZ = store->usage("k-zz");
  ASSERT_TRUE(usageZ.ok());
  EXPECT_FALSE(usageZ->has_value());  // not configured: dropped by the sync

  // Invalid input changes nothing.
  EXPECT_FALSE(store->syncApiKeys({a, a}, 300).ok());
  ApiKeyRecord badHash = d;
  badHash.sha256 = "abc";
  EXPECT_FALSE(store->syncApiKeys({badHash}, 300).ok());
  listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 3u);

  ASSERT_TRUE(store->syncApiKeys({}, 400));
  listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->empty());
  EXPECT_EQ(rawQuery(dbPath_, "SELECT count(*) FROM api_key_usage"), "0");
}

TEST_F(StoreTest, ApiKeyFirstSeenAndEndpointsSurviveResyncs) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ApiKeyRecord a{"k7Hq2xPz", "Worker", kHashA, {"ping"}, "worker", true};
  a.endpoints = {"/api/gateway/result", "/api/gateway/target"};
  ASSERT_TRUE(store->syncApiKeys({a}, 100, std::string("c0ffee00c0ffee00")));
  ApiKeyRecord a2 = a;
  a2.enabled = false;
  a2.endpoints = {"/api/gateway/target"};
  const ApiKeyRecord b{"adminKey", "Admin", kHashB, {}, "admin", true};
  ASSERT_TRUE(store->syncApiKeys({a2, b}, 200, std::string("deadbeefdeadbeef")));
  ASSERT_TRUE(store->syncApiKeys({a2, b}, 300));  // a plain directory: no commit

  auto listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2u);
  const StoredApiKey& k = (*listed)[1];
  EXPECT_EQ(k.id, "k7Hq2xPz");
  EXPECT_EQ(k.endpoints, std::vector<std::string>{"/api/gateway/target"});
  EXPECT_EQ(k.gateways, std::vector<std::string>{"ping"});
  EXPECT_FALSE(k.enabled);
  EXPECT_EQ(k.updatedAt, 200);
  EXPECT_EQ(k.firstSeenCommit, "c0ffee00c0ffee00");
  EXPECT_EQ(k.firstSeenAt, 100);
  EXPECT_EQ((*listed)[0].id, "adminKey");
  EXPECT_TRUE((*listed)[0].endpoints.empty());
  EXPECT_EQ((*listed)[0].firstSeenCommit, "deadbeefdeadbeef");
  EXPECT_EQ((*listed)[0].firstSeenAt, 200);

  // Removed and configured again: seen anew.
  ASSERT_TRUE(store->syncApiKeys({b}, 400));
  ASSERT_TRUE(store->syncApiKeys({a, b}, 500));
  listed = store->listApiKeys();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ((*listed)[1].firstSeenCommit, std::nullopt);
  EXPECT_EQ((*listed)[1].firstSeenAt, 500);
  EXPECT_EQ((*listed)[1].endpoints, a.endpoints);
}

TEST_F(StoreTest, UsageBatchAddsUpKeepsNewestIpAndIsAllOrNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto first = store->addUsageBatch({{"k-a", 2, 1000, "198.51.100.7", {0, 1, 0, 1, 0}},
                                     {"k-b", 1, 0, "", {0, 0, 0, 0, 1}},
                                     {"k-a", 1, 900, "198.51.100.8", {0, 1, 0, 0, 0}}});
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(*first, 3);
  auto second = store->addUsageBatch({{"k-a", 4, 2000, "2001:db8::1", {1, 1, 1, 0, 1}}});
  ASSERT_TRUE(second.ok());

  auto all = store->listUsage();
  ASSERT_TRUE(all.ok()) << all.error().message;
  ASSERT_EQ(all->size(), 2u);
  const ApiKeyUsage& a = (*all)[0];
  EXPECT_EQ(a.keyId, "k-a");
  EXPECT_EQ(a.requestCount, 7);
  EXPECT_EQ(a.lastUsedAt, 2000);
  EXPECT_EQ(a.lastIp, "2001:db8::1");
  EXPECT_EQ(a.responses, (std::array<int64_t, 5>{1, 3, 1, 1, 1}));
  const ApiKeyUsage& b = (*all)[1];
  EXPECT_EQ(b.keyId, "k-b");
  EXPECT_EQ(b.lastUsedAt, std::nullopt);  // 0: unknown
  EXPECT_EQ(b.lastIp, std::nullopt);      // "": unknown
  EXPECT_EQ(b.responses[4], 1);

  // One bad delta: nothing of the batch is recorded.
  EXPECT_FALSE(store->addUsageBatch({{"k-a", 1, 3000, "", {}}, {"k-c", -1, 3000, "", {}}}).ok());
  EXPECT_FALSE(store->addUsageBatch({{"", 1, 3000, "", {}}}).ok());
  auto after = store->listUsage();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *all);
  auto none = store->addUsageBatch({});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
}

TEST_F(StoreTest, BlocksSurviveSyncsAndReopen) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    auto blocked = store->blockApiKey("k7Hq2xPz", 100);
    ASSERT_TRUE(blocked.ok()) << blocked.error().message;
    EXPECT_TRUE(*blocked);
    auto again = store->blockApiKey("k7Hq2xPz", 200);
    ASSERT_TRUE(again.ok());
    EXPECT_FALSE(*again);
    ASSERT_TRUE(store->blockApiKey("another_key-1", 300));
    auto bad = store->blockApiKey("no", 300);
    ASSERT_FALSE(bad.ok());
    EXPECT_TRUE(contains(bad.error().message, "\"no\" is not an API key id"))
        << bad.error().message;
    EXPECT_FALSE(store->blockApiKey("has space", 300).ok());
    EXPECT_FALSE(store->unblockApiKey(std::string(65, 'a')).ok());
    ASSERT_TRUE(store->syncApiKeys({}, 400));  // blocks are not config
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto listed = store->listApiKeyBlocks();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  EXPECT_EQ(*listed, (std::vector<ApiKeyBlock>{{"another_key-1", 300}, {"k7Hq2xPz", 100}}));
  auto lifted = store->unblockApiKey("k7Hq2xPz");
  ASSERT_TRUE(lifted.ok());
  EXPECT_TRUE(*lifted);
  auto notBlocked = store->unblockApiKey("k7Hq2xPz");
  ASSERT_TRUE(notBlocked.ok());
  EXPECT_FALSE(*notBlocked);
  listed = store->listApiKeyBlocks();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);
}

TEST_F(StoreTest, TrafficSinceFilters) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const TrafficSample s1{"site/web", 100, 10, 20, 1};
  const TrafficSample s2{"passthrough/secure", 200, 30, 40, 2};
  const TrafficSample s3{"site/web", 300, 50, 60, 3};
  ASSERT_TRUE(store->addTraffic(s3));
  ASSERT_TRUE(store->addTraffic(s1));
  ASSERT_TRUE(store->addTraffic(s2));

  auto since = store->trafficSince(200);
  ASSERT_TRUE(since.ok()) << since.error().message;
  EXPECT_EQ(*since, (std::vector<TrafficSample>{s2, s3}));
  auto none = store->trafficSince(301);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  auto pruned = store->pruneTrafficBefore(200);
  ASSERT_TRUE(pruned.ok());
  EXPECT_EQ(*pruned, 1);
  auto all = store->trafficSince(0);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<TrafficSample>{s2, s3}));
}

TEST_F(StoreTest, RolledBackTransactionLeavesNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto failed = store->transaction([&]() -> Result<void> {
    if (auto r = store->putOwned("namespace", "tenant-a", "{}", 1); !r) {
      return r;
    }
    if (auto r = store->writeSnapshot("{}", 1, std::nullopt); !r) {
      return r.error();
    }
    if (auto r = store->beginRun({std::nullopt, "dir", 1}); !r) {
      return r.error();
    }
    return terminal("driver failed");
  });
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.error().message, "driver failed");

  auto owned = store->listOwned(std::nullopt);
  ASSERT_TRUE(owned.ok());
  EXPECT_TRUE(owned->empty());
  auto runs = store->recentRuns(10);
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
  auto generation = store->latestGeneration();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(*generation, 0);

  // A committed transaction keeps everything; its value is passed through. The rolled-back
  // one did not use up generation 1. An inner transaction that fails undoes only itself.
  auto committed = store->transaction([&]() -> Result<int64_t> {
    if (auto r = store->putOwned("namespace", "tenant-a", "{}", 2); !r) {
      return r.error();
    }
    auto inner = store->transaction([&]() -> Result<void> {
      if (auto r = store->putOwned("namespace", "tenant-b", "{}", 2); !r) {
        return r;
      }
      return terminal("inner failed");
    });
    EXPECT_FALSE(inner.ok());
    return store->writeSnapshot("{}", 2, std::nullopt);
  });
  ASSERT_TRUE(committed.ok()) << committed.error().message;
  EXPECT_EQ(*committed, 1);
  owned = store->listOwned(std::nullopt);
  ASSERT_TRUE(owned.ok());
  ASSERT_EQ(owned->size(), 1u);
  EXPECT_EQ(owned->front().name, "tenant-a");
}

TEST_F(StoreTest, BusyDatabaseIsRetryable) {
  StoreOptions options;
  options.busyTimeout = std::chrono::milliseconds(20);
  auto store = open(options);
  ASSERT_NE(store, nullptr);

  RawDb other = rawOpen(dbPath_);
  rawExec(other.get(), "BEGIN IMMEDIATE");
  auto busy = store->putOwned("namespace", "tenant-a", "{}", 1);
  ASSERT_FALSE(busy.ok());
  EXPECT_TRUE(busy.error().retryable) << busy.error().message;
  auto busyTx = store->transaction([] { return Result<void>(); });
  ASSERT_FALSE(busyTx.ok());
  EXPECT_TRUE(busyTx.error().retryable);
  // Readers are not blocked by a writer in WAL mode.
  EXPECT_TRUE(store->listOwned(std::nullopt).ok());

  rawExec(other.get(), "ROLLBACK");
  EXPECT_TRUE(store->putOwned("namespace", "tenant-a", "{}", 1).ok());
  EXPECT_TRUE(store->transaction([] { return Result<void>(); }).ok());
}

TEST_F(StoreTest, AcmeChallengesPutReplaceListRemove) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->putAcmeChallenge({"tok-B", "b.example.com", "tok-B.thumb", 10}));
  ASSERT_TRUE(store->putAcmeChallenge({"tok-A", "a.example.com", "old", 20}));
  ASSERT_TRUE(store->putAcmeChallenge({"tok-A", "a.example.com", "tok-A.thumb", 30}));
  auto listed = store->listAcmeChallenges();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2U);
  EXPECT_EQ((*listed)[0], (AcmeChallenge{"tok-A", "a.example.com", "tok-A.thumb", 30}));
  EXPECT_EQ((*listed)[1].token, "tok-B");
  EXPECT_FALSE(store->putAcmeChallenge({"", "a.example.com", "x", 1}).ok());
  ASSERT_TRUE(store->removeAcmeChallenges({"tok-A", "never-there"}));
  listed = store->listAcmeChallenges();
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ((*listed)[0].token, "tok-B");
}

// A version-5 store keeps its pending challenges and starts with no ACME state; the state
// DNS-01 answers are stored with their type (schema version 7 admits it), beside the others.
TEST_F(StoreTest, AcmeChallengesKeepTheDns01Type) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const AcmeChallenge dns{"tok-D", "example.com", "tok-D.thumb", 40, AcmeChallengeType::Dns01};
  const AcmeChallenge alpn{"tok-T", "t.example.com", "tok-T.thumb", 50,
                           AcmeChallengeType::TlsAlpn01};
  auto put = store->putAcmeChallenge(dns);
  ASSERT_TRUE(put.ok()) << put.error().message;
  ASSERT_TRUE(store->putAcmeChallenge(alpn));
  auto listed = store->listAcmeChallenges();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 2U);
  EXPECT_EQ((*listed)[0], dns);
  EXPECT_EQ((*listed)[1], alpn);
}

// A version-5 store's pending answers survive the rebuild of acme_challenges (migration 7).
TEST_F(StoreTest, VersionFiveAcmeChallengesAreKept) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
  }
  {
    RawDb db = rawOpen(dbPath_);
    rawExec(db.get(), R"sql(
DROP TABLE acme_state;
DROP TABLE acme_challenges;
CREATE TABLE acme_challenges (
  token             TEXT    NOT NULL PRIMARY KEY CHECK (length(token) BETWEEN 1 AND 256),
  domain            TEXT    NOT NULL CHECK (length(domain) > 0),
  key_authorization TEXT    NOT NULL CHECK (length(key_authorization) > 0),
  created_at        INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE acme_challenges ADD COLUMN type TEXT NOT NULL DEFAULT 'http-01'
  CHECK (type IN ('http-01', 'tls-alpn-01'));
INSERT INTO acme_challenges VALUES ('tok-1', 'a.example.com', 'tok-1.thumb', 7, 'tls-alpn-01');
PRAGMA user_version = 5;
)sql");
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  auto listed = store->listAcmeChallenges();
  ASSERT_TRUE(listed.ok()) << listed.error().message;
  ASSERT_EQ(listed->size(), 1U);
  EXPECT_EQ((*listed)[0], (AcmeChallenge{"tok-1", "a.example.com", "tok-1.thumb", 7,
                                         AcmeChallengeType::TlsAlpn01}));
  EXPECT_TRUE(
      store->putAcmeChallenge({"tok-2", "example.com", "tok-2.thumb", 8, AcmeChallengeType::Dns01})
          .ok());
}

// round-trips (unset times stay unset) and retain drops the certificates no longer wanted.
TEST_F(StoreTest, VersionFiveStoreIsUpgradedWithAcmeState) {
  fs::create_directories(stateDir_);
  std::ofstream(dbPath_).close();
  {
    RawDb db = rawOpen(dbPath_);
    // The frozen version-5 definition of the ACME table.
    rawExec(db.get(), R"sql(
CREATE TABLE acme_challenges (
  token             TEXT    NOT NULL PRIMARY KEY CHECK (length(token) BETWEEN 1 AND 256),
  domain            TEXT    NOT NULL CHECK (length(domain) > 0),
  key_authorization TEXT    NOT NULL CHECK (length(key_authorization) > 0),
  created_at        INTEGER NOT NULL,
  type TEXT NOT NULL DEFAULT 'http-01' CHECK (type IN ('http-01', 'tls-alpn-01'))
) WITHOUT ROWID;
INSERT INTO acme_challenges VALUES ('tok', 'a.example.com', 'tok.thumb', 5, 'tls-alpn-01');
PRAGMA user_version = 5;
)sql");
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  EXPECT_GE(Store::knownSchemaVersion(), 6);
  auto pending = store->listAcmeChallenges();
  ASSERT_TRUE(pending.ok()) << pending.error().message;
  ASSERT_EQ(pending->size(), 1U);
  EXPECT_EQ(pending->front().type, AcmeChallengeType::TlsAlpn01);
  auto states = store->listAcmeStates();
  ASSERT_TRUE(states.ok()) << states.error().message;
  EXPECT_TRUE(states->empty());

  const AcmeState shop{"shop",      "http-01 shop.example.com",
                       3,           "urn:ietf:params:acme:error:connection: refused",
                       1000,        5000,
                       std::nullopt};
  const AcmeState blog{"blog", "tls-alpn-01 blog.example.com", 0, "", 900, std::nullopt, 7000};
  ASSERT_TRUE(store->putAcmeState(shop));
  ASSERT_TRUE(store->putAcmeState(blog));
  AcmeState shopAgain = shop;
  shopAgain.failures = 4;
  shopAgain.nextAttempt = 9000;
  ASSERT_TRUE(store->putAcmeState(shopAgain));
  EXPECT_FALSE(store->putAcmeState({"", "x", 0, "", {}, {}, {}}).ok());
  states = store->listAcmeStates();
  ASSERT_TRUE(states.ok()) << states.error().message;
  EXPECT_EQ(*states, (std::vector<AcmeState>{blog, shopAgain}));

  ASSERT_TRUE(store->retainAcmeStates({"shop", "never-there"}));
  states = store->listAcmeStates();
  ASSERT_TRUE(states.ok());
  EXPECT_EQ(*states, std::vector<AcmeState>{shopAgain});
}

// Version 8 (RFC 9773): a version-7 store keeps its ACME state rows, with no window; the
// window's fields round-trip, unset ones stay unset.
TEST_F(StoreTest, VersionSevenStoreIsUpgradedWithAriWindows) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->putAcmeState({"shop", "http-01 shop.example.com", 0, "", 900, {}, 7000}));
  }
  {
    // Back to the frozen version-7 acme_state (SQLite 3.35+ drops columns in place).
    RawDb db = rawOpen(dbPath_);
    rawExec(db.get(), R"sql(
ALTER TABLE acme_state DROP COLUMN ari_cert;
ALTER TABLE acme_state DROP COLUMN ari_start;
ALTER TABLE acme_state DROP COLUMN ari_end;
ALTER TABLE acme_state DROP COLUMN ari_renew_at;
ALTER TABLE acme_state DROP COLUMN ari_next_check;
ALTER TABLE acme_state DROP COLUMN ari_explanation;
PRAGMA user_version = 7;
)sql");
  }
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schemaVersion(), Store::knownSchemaVersion());
  EXPECT_GE(Store::knownSchemaVersion(), 8);
  auto states = store->listAcmeStates();
  ASSERT_TRUE(states.ok()) << states.error().message;
  const AcmeState kept{"shop", "http-01 shop.example.com", 0, "", 900, {}, 7000};
  EXPECT_EQ(*states, std::vector<AcmeState>{kept});

  AcmeState withWindow = kept;
  withWindow.ariCert = "ab12";
  withWindow.ariStart = 10000;
  withWindow.ariEnd = 20000;
  withWindow.ariRenewAt = 15000;
  withWindow.ariNextCheck = 30000;
  withWindow.ariExplanation = "https://ca.example/why";
  ASSERT_TRUE(store->putAcmeState(withWindow));
  AcmeState noWindow = kept;
  noWindow.name = "blog";
  noWindow.ariCert = "cd34";
  noWindow.ariNextCheck = 40000;  // asked, the CA has no ARI
  ASSERT_TRUE(store->putAcmeState(noWindow));
  states = store->listAcmeStates();
  ASSERT_TRUE(states.ok()) << states.error().message;
  EXPECT_EQ(*states, (std::vector<AcmeState>{noWindow, withWindow}));
}

}  // namespace
}  // namespace edgeplane
