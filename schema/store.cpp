// The state store on SQLite: connection setup, versioned migrations and typed queries.
#include "schema/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>
#include <utility>

#include "schema/mode_text.h"
#include "schema/store_sql.h"

namespace edgeplane {

namespace fs = std::filesystem;

namespace {

using store_sql::Conn;
using store_sql::Stmt;

// Migrations in order: kMigrations[i] takes the schema from version i to i + 1. Append only;
// a released migration is never edited. Each runs in one transaction together with the
// user_version bump. foreign_keys cannot change inside a transaction, so a later migration
// that rebuilds a referenced table must use PRAGMA defer_foreign_keys.
constexpr std::array<const char*, 8> kMigrations = {
    R"sql(
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

CREATE TABLE apply_ops (
  run_id INTEGER NOT NULL REFERENCES apply_runs (id) ON DELETE CASCADE,
  seq    INTEGER NOT NULL,
  action TEXT    NOT NULL CHECK (action IN ('create', 'update', 'delete')),
  kind   TEXT    NOT NULL,
  name   TEXT    NOT NULL,
  ok     INTEGER NOT NULL CHECK (ok IN (0, 1)),
  error  TEXT,
  PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE owned_resources (
  kind       TEXT    NOT NULL,
  name       TEXT    NOT NULL,
  data       TEXT    NOT NULL CHECK (json_valid(data)),
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (kind, name)
) WITHOUT ROWID;

-- AUTOINCREMENT: a generation is never reused, even after the newest rows were pruned.
CREATE TABLE proxy_snapshots (
  generation INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  run_id     INTEGER REFERENCES apply_runs (id) ON DELETE SET NULL,
  body       TEXT    NOT NULL CHECK (json_valid(body))
);
CREATE INDEX proxy_snapshots_run_id ON proxy_snapshots (run_id);

CREATE TABLE api_keys (
  id         TEXT    NOT NULL PRIMARY KEY CHECK (length(id) > 0),
  name       TEXT    NOT NULL,
  sha256     TEXT    NOT NULL CHECK (length(sha256) = 64 AND sha256 NOT GLOB '*[^0-9a-f]*'),
  gateways   TEXT    NOT NULL CHECK (json_valid(gateways) AND json_type(gateways) = 'array'),
  role       TEXT    NOT NULL,
  enabled    INTEGER NOT NULL CHECK (enabled IN (0, 1)),
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Separate from api_keys so that re-syncing the verifiers never touches the counters.
CREATE TABLE api_key_usage (
  key_id        TEXT    NOT NULL PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
  request_count INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  last_used_at  INTEGER
) WITHOUT ROWID;

CREATE TABLE traffic_samples (
  route       TEXT    NOT NULL,
  at          INTEGER NOT NULL,
  bytes_in    INTEGER NOT NULL CHECK (bytes_in >= 0),
  bytes_out   INTEGER NOT NULL CHECK (bytes_out >= 0),
  connections INTEGER NOT NULL CHECK (connections >= 0)
);
CREATE INDEX traffic_samples_at ON traffic_samples (at);
)sql",
    // 2: runs applied from Git say whose commit it was; `detail` keeps what a run could not
    // fit in its summary line (every diagnostic of a refused config, a refusal's reason).
    R"sql(
ALTER TABLE apply_runs ADD COLUMN author TEXT;
ALTER TABLE apply_runs ADD COLUMN subject TEXT;
ALTER TABLE apply_runs ADD COLUMN detail TEXT NOT NULL DEFAULT '';
-- "The last good commit": the newest accepted run that came from Git.
CREATE INDEX apply_runs_good_commit ON apply_runs (id)
  WHERE commit_id IS NOT NULL AND result IN ('ok', 'partial');
)sql",
    // 3: API keys get their endpoint scope and when (and at which commit) they were first
    // seen; usage counts responses by status class and the last client address, and is kept
    // for ids the api_keys table does not know yet (the proxy may count before the
    // reconciler syncs), so its foreign key goes; blocks are the host's own, not config.
    R"sql(
ALTER TABLE api_keys ADD COLUMN endpoints TEXT NOT NULL DEFAULT '[]'
  CHECK (json_valid(endpoints) AND json_type(endpoints) = 'array');
ALTER TABLE api_keys ADD COLUMN first_seen_commit TEXT;
ALTER TABLE api_keys ADD COLUMN first_seen_at INTEGER NOT NULL DEFAULT 0;
UPDATE api_keys SET first_seen_at = updated_at;

CREATE TABLE api_key_usage_v3 (
  key_id        TEXT    NOT NULL PRIMARY KEY CHECK (length(key_id) > 0),
  request_count INTEGER NOT NULL DEFAULT 0 CHECK (request_count >= 0),
  last_used_at  INTEGER,
  last_ip       TEXT,
  responses_1xx INTEGER NOT NULL DEFAULT 0 CHECK (responses_1xx >= 0),
  responses_2xx INTEGER NOT NULL DEFAULT 0 CHECK (responses_2xx >= 0),
  responses_3xx INTEGER NOT NULL DEFAULT 0 CHECK (responses_3xx >= 0),
  responses_4xx INTEGER NOT NULL DEFAULT 0 CHECK (responses_4xx >= 0),
  responses_5xx INTEGER NOT NULL DEFAULT 0 CHECK (responses_5xx >= 0)
) WITHOUT ROWID;
INSERT INTO api_key_usage_v3 (key_id, request_count, last_used_at)
  SELECT key_id, request_count, last_used_at FROM api_key_usage;
DROP TABLE api_key_usage;
ALTER TABLE api_key_usage_v3 RENAME TO api_key_usage;

CREATE TABLE api_key_blocks (
  key_id     TEXT    NOT NULL PRIMARY KEY CHECK (length(key_id) BETWEEN 4 AND 64),
  blocked_at INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 4: pending ACME HTTP-01 answers, written by the reconciler while an order runs and
    // served by the proxy's :80 listener.
    R"sql(
CREATE TABLE acme_challenges (
  token             TEXT    NOT NULL PRIMARY KEY CHECK (length(token) BETWEEN 1 AND 256),
  domain            TEXT    NOT NULL CHECK (length(domain) > 0),
  key_authorization TEXT    NOT NULL CHECK (length(key_authorization) > 0),
  created_at        INTEGER NOT NULL
) WITHOUT ROWID;
)sql",
    // 5: the challenge's type; TLS-ALPN-01 answers are certificates the proxy's :443 serves.
    R"sql(
ALTER TABLE acme_challenges ADD COLUMN type TEXT NOT NULL DEFAULT 'http-01'
  CHECK (type IN ('http-01', 'tls-alpn-01'));
)sql",
    // 6: each ACME certificate's lifecycle on this host: the failed orders since its last
    // success (the CA's problem document or the local reason) and the backoff they set, and
    // when the certificate in place is due for renewal; `status` and the proxy's /metrics
    // read it. `spec` is the challenge and domains the failures were for: a changed one is
    // ordered at once.
    R"sql(
CREATE TABLE acme_state (
  name         TEXT    NOT NULL PRIMARY KEY CHECK (length(name) > 0),
  spec         TEXT    NOT NULL,
  failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
  last_error   TEXT    NOT NULL DEFAULT '',
  last_attempt INTEGER,
  next_attempt INTEGER,
  renew_at     INTEGER
) WITHOUT ROWID;
)sql",
    // 7: DNS-01 answers (TXT records the proxy's --dns responder serves). SQLite cannot change
    // a CHECK constraint in place, so the table is rebuilt with its pending rows.
    R"sql(
CREATE TABLE acme_challenges_new (
  token             TEXT    NOT NULL PRIMARY KEY CHECK (length(token) BETWEEN 1 AND 256),
  domain            TEXT    NOT NULL CHECK (length(domain) > 0),
  key_authorization TEXT    NOT NULL CHECK (length(key_authorization) > 0),
  created_at        INTEGER NOT NULL,
  type              TEXT    NOT NULL DEFAULT 'http-01'
    CHECK (type IN ('http-01', 'tls-alpn-01', 'dns-01'))
) WITHOUT ROWID;
INSERT INTO acme_challenges_new (token, domain, key_authorization, created_at, type)
  SELECT token, domain, key_authorization, created_at, type FROM acme_challenges;
DROP TABLE acme_challenges;
ALTER TABLE acme_challenges_new RENAME TO acme_challenges;
)sql",
    // 8: RFC 9773 (ARI): the CA's suggested renewal window for the certificate in place (by
    // fingerprint), the time chosen in it, and when its renewalInfo is asked again.
    R"sql(
ALTER TABLE acme_state ADD COLUMN ari_cert TEXT NOT NULL DEFAULT '';
ALTER TABLE acme_state ADD COLUMN ari_start INTEGER;
ALTER TABLE acme_state ADD COLUMN ari_end INTEGER;
ALTER TABLE acme_state ADD COLUMN ari_renew_at INTEGER;
ALTER TABLE acme_state ADD COLUMN ari_next_check INTEGER;
ALTER TABLE acme_state ADD COLUMN ari_explanation TEXT NOT NULL DEFAULT '';
)sql",
};

Error newerSchema(const fs::path& path, int64_t found) {
  return terminal("state store " + path.string() + " has schema version " + std::to_string(found) +
                  ", newer than this edgeplane knows (" +
                  std::to_string(Store::knownSchemaVersion()) +
                  "); upgrade edgeplane or use another --state-dir");
}

// An existing state directory: ours alone, or refused.
Result<void> checkStateDir(const fs::path& dir, const struct stat& st) {
  if (!S_ISDIR(st.st_mode)) {
    return terminal("state directory " + dir.string() + " is not a directory");
  }
  if (st.st_uid != ::geteuid()) {
    return terminal("state directory " + dir.string() + " is owned by uid " +
                    std::to_string(st.st_uid) + ", not by uid " + std::to_string(::geteuid()) +
                    " running edgeplane; refusing it (chown it, or use another --state-dir)");
  }
  if ((st.st_mode & 022) != 0) {
    return terminal("state directory " + dir.string() + " has mode " + modeText(st.st_mode) +
                    ": it must not be writable by group or others (chmod 700 " + dir.string() +
                    ")");
  }
  return {};
}

}  // namespace

Result<void> ensureStateDir(fs::path dir) {
  if (!dir.has_filename() && dir.has_parent_path()) {
    dir = dir.parent_path();  // "state/" -> "state"
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    return checkStateDir(dir, st);
  }
  if (const int err = errno; err != ENOENT) {
    return terminal("state directory " + dir.string() + ": " + errnoText(err));
  }
  std::error_code ec;
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      return terminal("cannot create " + dir.parent_path().string() + ": " + ec.message());
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    const int err = errno;
    if (err == EEXIST && ::stat(dir.c_str(), &st) == 0) {
      return checkStateDir(dir, st);  // created concurrently
    }
    return terminal("cannot create state directory " + dir.string() + ": " + errnoText(err));
  }
  if (::chmod(dir.c_str(), 0700) != 0) {  // exactly 0700 whatever the umask
    const int err = errno;
    return terminal("cannot chmod state directory " + dir.string() + ": " + errnoText(err));
  }
  return {};
}

namespace {

// Creates the database file 0600 before SQLite does (it would use 0644 & ~umask); the WAL and
// shared-memory files SQLite adds later copy the database file's mode.
Result<void> ensurePrivateFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == EEXIST) {
      return {};  // SQLite opens it with SQLITE_OPEN_NOFOLLOW: a symbolic link is refused there
    }
    return terminal("cannot create state store " + path.string() + ": " + errnoText(err));
  }
  const int rc = ::fchmod(fd, 0600);
  const std::string why = rc != 0 ? errnoText(errno) : std::string();
  ::close(fd);
  if (rc != 0) {
    return terminal("cannot chmod state store " + path.string() + ": " + why);
  }
  return {};
}

Result<int64_t> userVersion(const Conn& c) {
  return c.scalar("read schema version", "PRAGMA user_version");
}

}  // namespace

void Store::DbCloser::operator()(sqlite3* db) const {
  // Finalize every statement still prepared (the cache's): close must not leave zombies.
  while (sqlite3_stmt* stmt = sqlite3_next_stmt(db, nullptr)) {
    sqlite3_finalize(stmt);
  }
  sqlite3_close_v2(db);
}

int Store::knownSchemaVersion() {
  return static_cast<int>(kMigrations.size());
}

Store::Store(fs::path path, std::unique_ptr<sqlite3, DbCloser> db, const StoreOptions& options)
    : path_(std::move(path)), db_(std::move(db)), options_(options) {}

// Closing leaves the WAL to SQLite's auto-checkpoint (at 1000 pages), instead of checkpointing at
// every close, which costs a sync of the WAL and one of the database: a no-op run then syncs
// nothing. What is lost to a power cut is bounded by what the connection changed: history and
// counters (LightWrites) may be; anything else it changed (owned resources, snapshots, keys and
// blocks, ACME state, migrations aside) is made durable here with one sync of the WAL, as
// synchronous = FULL does at each commit.
Store::~Store() {
  if (db_ != nullptr) {
    (void)syncChanges();  // nothing to tell a destructor's caller: syncChanges() is for that
  }
}

Result<void> Store::syncChanges() {
  const int64_t changes = totalChanges() - lightChanges_;
  if (changes == syncedChanges_) {
    return {};
  }
  if (auto synced = syncWal(); !synced) {
    return synced;
  }
  syncedChanges_ = changes;
  return {};
}

Result<void> Store::syncWal() {
  sqlite3_file* wal = nullptr;
  if (sqlite3_file_control(db_.get(), "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
      wal == nullptr || wal->pMethods == nullptr) {
    return {};  // no WAL open in this connection: it wrote nothing, read nothing yet
  }
  if (const int rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL); rc != SQLITE_OK) {
    return terminal("state store " + path_.string() +
                    ": syncing its write-ahead log failed: " + sqlite3_errstr(rc));
  }
  return {};
}

int64_t Store::totalChanges() const {
  return sqlite3_total_changes64(db_.get());
}

Result<std::unique_ptr<Store>> Store::open(const fs::path& stateDir, const StoreOptions& options) {
  if (auto made = ensureStateDir(stateDir); !made) {
    return made.error();
  }
  fs::path dbPath = stateDir / options.fileName;
  if (auto made = ensurePrivateFile(dbPath); !made) {
    return made.error();
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(dbPath.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW, nullptr);
  std::unique_ptr<sqlite3, DbCloser> db(raw);  // allocated even when the open failed
  if (rc != SQLITE_OK) {
    const char* detail = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    return Error{"cannot open state store " + dbPath.string() + ": " + detail,
                 (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED};
  }
  std::unique_ptr<Store> store(new Store(std::move(dbPath), std::move(db), options));
  if (auto configured = store->configure(); !configured) {
    return configured.error();
  }
  if (auto migrated = store->migrate(); !migrated) {
    return migrated.error();
  }
  return store;
}

Result<void> Store::configure() {
  sqlite3* db = db_.get();
  const Conn c(db, path_);
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, static_cast<int>(options_.busyTimeout.count()));
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  // The file may have been written by another process (the proxy writes the store): as SQLite
  // advises for such a file, triggers and views (edgeplane's schema has none) do not run, and
  // cell_size_check and no mmap below. (The schema stays trusted: its CHECKs call json_valid,
  // which SQLite 3.40 does not mark innocuous; no application function is registered and
  // extensions cannot be loaded, so a planted expression reaches only SQLite's built-ins.)
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, nullptr);
  // Closing never checkpoints: not into a file whose schema is not ours, and not at the end of
  // every run (see ~Store).
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, nullptr);

  auto version = userVersion(c);
  if (!version) {
    return version.error();
  }
  if (*version > knownSchemaVersion()) {
    return newerSchema(path_, *version);
  }

  auto mode = c.queryOne<std::string>("enable WAL", "PRAGMA journal_mode = WAL",
                                      [](const Stmt& s) { return std::optional(s.text(0)); });
  if (!mode) {
    return mode.error();
  }
  if (mode->value_or("") != "wal") {
    return terminal("state store " + path_.string() + ": cannot enable WAL (journal mode is " +
                    mode->value_or("unknown") + ")");
  }
  // The WAL is left at its size after a checkpoint up to 8 MiB (a 10k-forward apply writes
  // more), and cut back to that when it grew past.
  if (auto r = c.script("configure",
                        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; "
                        "PRAGMA journal_size_limit = 8388608; PRAGMA cell_size_check = ON; "
                        "PRAGMA mmap_size = 0");
      !r) {
    return r;
  }
  auto fk = c.scalar("configure", "PRAGMA foreign_keys");
  if (!fk) {
    return fk.error();
  }
  if (*fk != 1) {
    return terminal("state store " + path_.string() +
                    ": this SQLite library does not enforce foreign keys");
  }
  schemaVersion_ = static_cast<int>(*version);
  return {};
}

Result<void> Store::migrate() {
  if (schemaVersion_ == knownSchemaVersion()) {
    return {};  // the common case takes no write lock
  }
  const Conn c(db_.get(), path_, &statements_);
  for (;;) {
    // The version is re-read under the write lock: another process may be migrating too.
    auto applied = transaction([&]() -> Result<bool> {
      auto version = userVersion(c);
      if (!version) {
        return version.error();
      }
      if (*version > knownSchemaVersion()) {
        return newerSchema(path_, *version);
      }
      schemaVersion_ = static_cast<int>(*version);
      if (*version == knownSchemaVersion()) {
        return false;
      }
      const int next = schemaVersion_ + 1;
      const std::string what = "migration to schema version " + std::to_string(next);
      if (auto r = c.script(what, kMigrations[schemaVersion_]); !r) {
        return r.error();
      }
      // PRAGMA takes no bound parameters; the value is this build's own constant.
      const std::string bump = "PRAGMA user_version = " + std::to_string(next);
      if (auto r = c.script(what, bump.c_str()); !r) {
        return r.error();
      }
      return true;
    });
    if (!applied) {
      return applied.error();
    }
    if (!*applied) {
      return {};
    }
    ++schemaVersion_;
  }
}

// ---- transactions ----

// The outermost level takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction
// that later upgrades to a writer can fail with SQLITE_BUSY without waiting for the timeout.
Result<void> Store::beginTx() {
  const Conn c(db_.get(), path_, &statements_);
  const char* sql = txDepth_ == 0 ? "BEGIN IMMEDIATE" : "SAVEPOINT edgeplane_tx";
  if (auto r = c.script("begin transaction", sql); !r) {
    return r;
  }
  ++txDepth_;
  return {};
}

Result<void> Store::commitTx() {
  const Conn c(db_.get(), path_, &statements_);
  if (sqlite3_get_autocommit(db_.get()) != 0) {
    // SQLite already rolled everything back (e.g. after SQLITE_FULL or an I/O error).
    --txDepth_;
    return terminal("state store " + path_.string() + ": transaction was rolled back");
  }
  const char* sql = txDepth_ == 1 ? "COMMIT" : "RELEASE edgeplane_tx";
  if (auto r = c.script("commit transaction", sql); !r) {
    rollbackTx();
    return r;
  }
  --txDepth_;
  return {};
}

void Store::rollbackTx() {
  if (txDepth_ == 0) {
    return;
  }
  // Best effort: if it fails, SQLite rolls back when the connection closes.
  if (sqlite3_get_autocommit(db_.get()) == 0) {
    const char* sql = txDepth_ == 1 ? "ROLLBACK" : "ROLLBACK TO edgeplane_tx; RELEASE edgeplane_tx";
    sqlite3_exec(db_.get(), sql, nullptr, nullptr, nullptr);
  }
  --txDepth_;
}

// ---- traffic ----

Result<void> Store::addTraffic(const TrafficSample& sample) {
  const LightWrites light(*this);
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("add traffic sample",
                  "INSERT INTO traffic_samples (route, at, bytes_in, bytes_out, connections) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  sample.route, sample.at, sample.bytesIn, sample.bytesOut, sample.connections);
  if (!r) {
    return r.error();
  }
  return {};
}

Result<std::vector<TrafficSample>> Store::trafficSince(int64_t at) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<TrafficSample>(
      "read traffic",
      "SELECT route, at, bytes_in, bytes_out, connections FROM traffic_samples "
      "WHERE at >= ?1 ORDER BY at, rowid",
      [](const Stmt& s) {
        return std::optional(
            TrafficSample{s.text(0), s.int64(1), s.int64(2), s.int64(3), s.int64(4)});
      },
      at);
}

Result<int64_t> Store::pruneTrafficBefore(int64_t at) {
  const LightWrites light(*this);
  const Conn c(db_.get(), path_, &statements_);
  return c.exec("prune traffic", "DELETE FROM traffic_samples WHERE at < ?1", at);
}

}  // namespace edgeplane
