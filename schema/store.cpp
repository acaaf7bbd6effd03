// The state store on SQLite: connection setup, versioned migrations and typed queries.
#include "schema/store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <set>
#include <system_error>
#include <utility>

namespace edgeplane {

namespace fs = std::filesystem;

namespace {

// Migrations in order: kMigrations[i] takes the schema from version i to i + 1. Append only;
// a released migration is never edited. Each runs in one transaction together with the
// user_version bump. foreign_keys cannot change inside a transaction, so a later migration
// that rebuilds a referenced table must use PRAGMA defer_foreign_keys.
constexpr std::array<const char*, 2> kMigrations = {
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
};

constexpr std::array<std::string_view, 5> kRunResultNames = {"running", "ok", "partial", "failed",
                                                             "refused"};
constexpr std::array<std::string_view, 3> kOpActionNames = {"create", "update", "delete"};

template <typename Enum, size_t N>
std::optional<Enum> parseEnum(const std::array<std::string_view, N>& names, std::string_view text) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == text) {
      return static_cast<Enum>(i);
    }
  }
  return std::nullopt;
}

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// A prepared statement. Bind errors are remembered and reported by the first step().
class Stmt {
 public:
  // A cached statement is reset for its next use instead of finalized.
  explicit Stmt(sqlite3_stmt* stmt, bool cached = false) : stmt_(stmt), cached_(cached) {}
  ~Stmt() {
    if (stmt_ == nullptr) {
      return;  // moved from
    }
    if (cached_) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }
  Stmt(Stmt&& other) noexcept
      : stmt_(std::exchange(other.stmt_, nullptr)),
        cached_(other.cached_),
        bindRc_(other.bindRc_) {}
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds the arguments to ?1, ?2, ... in order.
  template <typename... Args>
  void bindAll(const Args&... args) {
    int index = 0;
    (bind(++index, args), ...);
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int step() { return bindRc_ != SQLITE_OK ? bindRc_ : sqlite3_step(stmt_); }

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    const int n = sqlite3_column_bytes(stmt_, col);
    return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
  }
  std::optional<std::string> optText(int col) const {
    return isNull(col) ? std::nullopt : std::optional(text(col));
  }
  std::optional<int64_t> optInt64(int col) const {
    return isNull(col) ? std::nullopt : std::optional(int64(col));
  }

 private:
  template <typename T>
  void bind(int index, const T& value) {
    int rc = SQLITE_OK;
    if constexpr (std::is_same_v<T, std::nullopt_t>) {
      rc = sqlite3_bind_null(stmt_, index);
    } else if constexpr (IsOptional<T>::value) {
      if (value) {
        bind(index, *value);
      } else {
        rc = sqlite3_bind_null(stmt_, index);
      }
    } else if constexpr (std::is_integral_v<T>) {
      rc = sqlite3_bind_int64(stmt_, index, static_cast<sqlite3_int64>(value));
    } else {
      const std::string_view sv(value);
      // An empty view may have a null data(), which SQLite would bind as NULL, not ''.
      rc = sqlite3_bind_text64(stmt_, index, sv.data() != nullptr ? sv.data() : "", sv.size(),
                               SQLITE_TRANSIENT, SQLITE_UTF8);
    }
    if (bindRc_ == SQLITE_OK) {
      bindRc_ = rc;
    }
  }

  sqlite3_stmt* stmt_;
  bool cached_ = false;
  int bindRc_ = SQLITE_OK;
};

// The connection plus the path for error messages: the query helpers every method uses.
class Conn {
 public:
  Conn(sqlite3* db, const fs::path& path,
       std::unordered_map<std::string, sqlite3_stmt*>* cache = nullptr)
      : db_(db), path_(path), cache_(cache) {}

  Error error(std::string_view what, int rc) const {
    const int primary = rc & 0xff;
    const char* detail =
        sqlite3_errcode(db_) != SQLITE_OK ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    return Error{"state store " + path_.string() + ": " + std::string(what) + ": " + detail,
                 primary == SQLITE_BUSY || primary == SQLITE_LOCKED};
  }

  Result<Stmt> prepare(std::string_view what, std::string_view sql) const {
    if (cache_ != nullptr) {
      auto it = cache_->find(std::string(sql));
      if (it != cache_->end() && sqlite3_stmt_busy(it->second) == 0) {
        return Stmt(it->second, true);
      }
      if (it == cache_->end()) {
        sqlite3_stmt* stmt = nullptr;
        const int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                                          SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) {
          sqlite3_finalize(stmt);
          return error(what, rc);
        }
        cache_->emplace(std::string(sql), stmt);
        return Stmt(stmt, true);
      }
      // In use further up the stack: fall through to a one-off statement.
    }
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return error(what, rc);
    }
    return Stmt(stmt);
  }

  // A statement without result rows; returns the number of rows it changed.
  template <typename... Args>
  Result<int64_t> exec(std::string_view what, std::string_view sql, const Args&... args) const {
    auto stmt = prepare(what, sql);
    if (!stmt) {
      return stmt.error();
    }
    stmt->bindAll(args...);
    const int rc = stmt->step();
    if (rc != SQLITE_DONE) {
      return error(what, rc);
    }
    return static_cast<int64_t>(sqlite3_changes(db_));
  }

  // Parameterless SQL, possibly several statements (migrations, transaction control).
  Result<void> script(std::string_view what, const char* sql) const {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return error(what, rc);
    }
    return {};
  }

  // Every row, converted by `read` (Stmt -> std::optional<Row>; nullopt: a malformed row).
  template <typename Row, typename Read, typename... Args>
  Result<std::vector<Row>> query(std::string_view what, std::string_view sql, Read read,
                                 const Args&... args) const {
    auto stmt = prepare(what, sql);
    if (!stmt) {
      return stmt.error();
    }
    stmt->bindAll(args...);
    std::vector<Row> rows;
    for (;;) {
      const int rc = stmt->step();
      if (rc == SQLITE_DONE) {
        return rows;
      }
      if (rc != SQLITE_ROW) {
        return error(what, rc);
      }
      std::optional<Row> row = read(*stmt);
      if (!row) {
        return terminal("state store " + path_.string() + ": " + std::string(what) +
                        ": unexpected value in the database");
      }
      rows.push_back(std::move(*row));
    }
  }

  template <typename Row, typename Read, typename... Args>
  Result<std::optional<Row>> queryOne(std::string_view what, std::string_view sql, Read read,
                                      const Args&... args) const {
    auto rows = query<Row>(what, sql, read, args...);
    if (!rows) {
      return rows.error();
    }
    if (rows->empty()) {
      return std::optional<Row>();
    }
    return std::optional<Row>(std::move(rows->front()));
  }

  Result<int64_t> scalar(std::string_view what, std::string_view sql) const {
    auto row =
        queryOne<int64_t>(what, sql, [](const Stmt& s) { return std::optional(s.int64(0)); });
    if (!row) {
      return row.error();
    }
    return row->value_or(0);
  }

  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_;
  const fs::path& path_;
  std::unordered_map<std::string, sqlite3_stmt*>* cache_;
};

Error newerSchema(const fs::path& path, int64_t found) {
  return terminal("state store " + path.string() + " has schema version " + std::to_string(found) +
                  ", newer than this edgeplane knows (" +
                  std::to_string(Store::knownSchemaVersion()) +
                  "); upgrade edgeplane or use another --state-dir");
}

// Creates the state directory owner-only if missing; an existing one is left as it is.
Result<void> ensurePrivateDir(fs::path dir) {
  if (!dir.has_filename() && dir.has_parent_path()) {
    dir = dir.parent_path();  // "state/" -> "state"
  }
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) {
      return terminal("state directory " + dir.string() + " is not a directory");
    }
    return {};
  }
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) {
      return terminal("cannot create " + dir.parent_path().string() + ": " + ec.message());
    }
  }
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST && fs::is_directory(dir, ec)) {
      return {};  // created concurrently
    }
    return terminal("cannot create state directory " + dir.string() + ": " + errnoText(errno));
  }
  if (::chmod(dir.c_str(), 0700) != 0) {  // exactly 0700 whatever the umask
    return terminal("cannot chmod state directory " + dir.string() + ": " + errnoText(errno));
  }
  return {};
}

// Creates the database file 0600 before SQLite does (it would use 0644 & ~umask); the WAL and
// shared-memory files SQLite adds later copy the database file's mode.
Result<void> ensurePrivateFile(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) {
      return {};
    }
    return terminal("cannot create state store " + path.string() + ": " + errnoText(errno));
  }
  const int rc = ::fchmod(fd, 0600);
  const std::string why = rc != 0 ? errnoText(errno) : std::string();
  ::close(fd);
  if (rc != 0) {
    return terminal("cannot chmod state store " + path.string() + ": " + why);
  }
  return {};
}

// JSON array of strings. The items are names; escaping covers what JSON requires.
std::string jsonStringArray(const std::vector<std::string>& items) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "[";
  for (const std::string& item : items) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"';
    for (const char c : item) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (u < 0x20) {
        out += "\\u00";
        out += kHex[u >> 4];
        out += kHex[u & 0xf];
      } else {
        out += c;
      }
    }
    out += '"';
  }
  out += ']';
  return out;
}

bool isHex64(std::string_view s) {
  if (s.size() != 64) {
    return false;
  }
  for (const char c : s) {
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex) {
      return false;
    }
  }
  return true;
}

Result<int64_t> userVersion(const Conn& c) {
  return c.scalar("read schema version", "PRAGMA user_version");
}

}  // namespace

std::string_view toString(RunResult r) {
  return kRunResultNames.at(static_cast<size_t>(r));
}
std::string_view toString(OpAction a) {
  return kOpActionNames.at(static_cast<size_t>(a));
}

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

Store::~Store() = default;

Result<std::unique_ptr<Store>> Store::open(const fs::path& stateDir, const StoreOptions& options) {
  if (auto made = ensurePrivateDir(stateDir); !made) {
    return made.error();
  }
  fs::path dbPath = stateDir / "state.db";
  if (auto made = ensurePrivateFile(dbPath); !made) {
    return made.error();
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(dbPath.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
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
  // Until the schema version is known to be ours, closing must not checkpoint into the file.
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
  if (auto r = c.script("configure", "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON"); !r) {
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
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, nullptr);
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

// ---- apply history ----

Result<int64_t> Store::beginRun(const RunStart& start) {
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("begin run",
                  "INSERT INTO apply_runs (commit_id, config_source, started_at, author, subject) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  start.commitId, start.configSource, start.startedAt, start.author, start.subject);
  if (!r) {
    return r.error();
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.get()));
}

Result<void> Store::recordOp(int64_t runId, const OpOutcome& op) {
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("record operation",
                  "INSERT INTO apply_ops (run_id, seq, action, kind, name, ok, error) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  runId, op.seq, toString(op.action), op.kind, op.name, op.ok, op.error);
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> Store::finishRun(int64_t runId, const RunFinish& finish) {
  if (finish.result == RunResult::Running) {
    return terminal("state store " + path_.string() + ": finish run " + std::to_string(runId) +
                    ": a finished run needs a final result, not 'running'");
  }
  const Conn c(db_.get(), path_, &statements_);
  auto r =
      c.exec("finish run",
             "UPDATE apply_runs SET finished_at = ?2, result = ?3, summary = ?4, "
             "added = ?5, changed = ?6, destroyed = ?7, failed = ?8, detail = ?9 WHERE id = ?1",
             runId, finish.finishedAt, toString(finish.result), finish.summary, finish.counts.added,
             finish.counts.changed, finish.counts.destroyed, finish.counts.failed, finish.detail);
  if (!r) {
    return r.error();
  }
  if (*r == 0) {
    return terminal("state store " + path_.string() + ": finish run: no run " +
                    std::to_string(runId));
  }
  return {};
}

namespace {
constexpr std::string_view kRunColumns =
    "SELECT id, commit_id, config_source, started_at, finished_at, result, summary, added, "
    "changed, destroyed, failed, author, subject, detail FROM apply_runs ";

std::optional<ApplyRun> readRun(const Stmt& s) {
  auto result = parseEnum<RunResult>(kRunResultNames, s.text(5));
  if (!result) {
    return std::nullopt;
  }
  ApplyRun run{s.int64(0),    s.optText(1),
               s.text(2),     s.int64(3),
               s.optInt64(4), *result,
               s.text(6),     RunCounts{s.int64(7), s.int64(8), s.int64(9), s.int64(10)}};
  run.author = s.optText(11);
  run.subject = s.optText(12);
  run.detail = s.text(13);
  return run;
}
}  // namespace

Result<std::vector<ApplyRun>> Store::recentRuns(int limit) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<ApplyRun>("list runs", std::string(kRunColumns) + "ORDER BY id DESC LIMIT ?1",
                           readRun, limit < 0 ? 0 : limit);
}

Result<std::optional<ApplyRun>> Store::lastGoodCommitRun() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<ApplyRun>("find the last good commit",
                              std::string(kRunColumns) +
                                  "WHERE commit_id IS NOT NULL AND result IN ('ok', 'partial') "
                                  "ORDER BY id DESC LIMIT 1",
                              readRun);
}

Result<std::vector<OpOutcome>> Store::runOps(int64_t runId) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<OpOutcome>(
      "list run operations",
      "SELECT seq, action, kind, name, ok, error FROM apply_ops WHERE run_id = ?1 ORDER BY seq",
      [](const Stmt& s) -> std::optional<OpOutcome> {
        auto action = parseEnum<OpAction>(kOpActionNames, s.text(1));
        if (!action) {
          return std::nullopt;
        }
        return OpOutcome{s.int64(0), *action, s.text(2), s.text(3), s.int64(4) != 0, s.optText(5)};
      },
      runId);
}

// ---- owned resources ----

namespace {
std::optional<OwnedResource> readOwned(const Stmt& s) {
  return OwnedResource{s.text(0), s.text(1), s.text(2), s.int64(3)};
}
}  // namespace

Result<void> Store::putOwned(std::string_view kind, std::string_view name,
                             std::string_view dataJson, int64_t at) {
  const Conn c(db_.get(), path_, &statements_);
  // updated_at records the last change, so an unchanged put writes nothing.
  auto r = c.exec("record owned resource",
                  "INSERT INTO owned_resources (kind, name, data, updated_at) "
                  "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (kind, name) DO UPDATE SET "
                  "data = excluded.data, updated_at = excluded.updated_at "
                  "WHERE data IS NOT excluded.data",
                  kind, name, dataJson, at);
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> Store::removeOwned(std::string_view kind, std::string_view name) {
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("remove owned resource",
                  "DELETE FROM owned_resources WHERE kind = ?1 AND name = ?2", kind, name);
  if (!r) {
    return r.error();
  }
  return {};
}

Result<std::vector<OwnedResource>> Store::listOwned(std::optional<std::string> kind) const {
  const Conn c(db_.get(), path_, &statements_);
  if (kind) {
    return c.query<OwnedResource>("list owned resources",
                                  "SELECT kind, name, data, updated_at FROM owned_resources "
                                  "WHERE kind = ?1 ORDER BY kind, name",
                                  readOwned, *kind);
  }
  return c.query<OwnedResource>(
      "list owned resources",
      "SELECT kind, name, data, updated_at FROM owned_resources ORDER BY kind, name", readOwned);
}

Result<std::optional<OwnedResource>> Store::getOwned(std::string_view kind,
                                                     std::string_view name) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<OwnedResource>("read owned resource",
                                   "SELECT kind, name, data, updated_at FROM owned_resources "
                                   "WHERE kind = ?1 AND name = ?2",
                                   readOwned, kind, name);
}

// ---- proxy snapshots ----

Result<int64_t> Store::writeSnapshot(std::string_view bodyJson, int64_t at,
                                     std::optional<int64_t> runId) {
  const Conn c(db_.get(), path_, &statements_);
  return transaction([&]() -> Result<int64_t> {
    auto inserted = c.exec("write snapshot",
                           "INSERT INTO proxy_snapshots (created_at, run_id, body) "
                           "VALUES (?1, ?2, ?3)",
                           at, runId, bodyJson);
    if (!inserted) {
      return inserted.error();
    }
    const int64_t generation = sqlite3_last_insert_rowid(db_.get());
    const int64_t keep = options_.snapshotsKept < 1 ? 1 : options_.snapshotsKept;
    auto pruned = c.exec("prune snapshots",
                         "DELETE FROM proxy_snapshots WHERE generation NOT IN "
                         "(SELECT generation FROM proxy_snapshots "
                         "ORDER BY generation DESC LIMIT ?1)",
                         keep);
    if (!pruned) {
      return pruned.error();
    }
    return generation;
  });
}

Result<std::optional<Snapshot>> Store::latestSnapshot() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<Snapshot>(
      "read latest snapshot",
      "SELECT generation, created_at, run_id, body FROM proxy_snapshots "
      "ORDER BY generation DESC LIMIT 1",
      [](const Stmt& s) {
        return std::optional(Snapshot{s.int64(0), s.int64(1), s.optInt64(2), s.text(3)});
      });
}

Result<int64_t> Store::latestGeneration() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.scalar("read latest generation",
                  "SELECT coalesce(max(generation), 0) FROM proxy_snapshots");
}

// ---- API keys and usage ----

Result<void> Store::syncApiKeys(const std::vector<ApiKeyRecord>& keys, int64_t at) {
  std::set<std::string, std::less<>> wanted;
  for (const ApiKeyRecord& key : keys) {
    if (key.id.empty()) {
      return terminal("state store " + path_.string() + ": sync api keys: empty key id");
    }
    if (!wanted.insert(key.id).second) {
      return terminal("state store " + path_.string() + ": sync api keys: duplicate key id " +
                      key.id);
    }
    if (!isHex64(key.sha256)) {
      return terminal("state store " + path_.string() + ": sync api keys: key " + key.id +
                      ": sha256 must be 64 hex digits");
    }
  }
  const Conn c(db_.get(), path_, &statements_);
  return transaction([&]() -> Result<void> {
    for (const ApiKeyRecord& key : keys) {
      // An upsert, never REPLACE: a REPLACE deletes the row and would cascade to its usage.
      auto r = c.exec("sync api keys",
                      "INSERT INTO api_keys (id, name, sha256, gateways, role, enabled, "
                      "updated_at) VALUES (?1, ?2, lower(?3), ?4, ?5, ?6, ?7) "
                      "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                      "sha256 = excluded.sha256, gateways = excluded.gateways, "
                      "role = excluded.role, enabled = excluded.enabled, "
                      "updated_at = excluded.updated_at "
                      "WHERE name IS NOT excluded.name OR sha256 IS NOT excluded.sha256 "
                      "OR gateways IS NOT excluded.gateways OR role IS NOT excluded.role "
                      "OR enabled IS NOT excluded.enabled",
                      key.id, key.name, key.sha256, jsonStringArray(key.gateways), key.role,
                      key.enabled, at);
      if (!r) {
        return r.error();
      }
    }
    auto existing = c.query<std::string>("sync api keys", "SELECT id FROM api_keys",
                                         [](const Stmt& s) { return std::optional(s.text(0)); });
    if (!existing) {
      return existing.error();
    }
    for (const std::string& id : *existing) {
      if (wanted.contains(id)) {
        continue;
      }
      if (auto r = c.exec("sync api keys", "DELETE FROM api_keys WHERE id = ?1", id); !r) {
        return r.error();
      }
    }
    // The foreign key cascades already; this also catches rows orphaned by outside edits.
    auto r = c.exec("sync api keys",
                    "DELETE FROM api_key_usage WHERE key_id NOT IN (SELECT id FROM api_keys)");
    if (!r) {
      return r.error();
    }
    return {};
  });
}

Result<std::vector<StoredApiKey>> Store::listApiKeys() const {
  const Conn c(db_.get(), path_, &statements_);
  // One row per (key, gateway); json_each decodes the array, in order.
  struct Row {
    StoredApiKey key;
    std::optional<std::string> gateway;
  };
  auto rows =
      c.query<Row>("list api keys",
                   "SELECT k.id, k.name, k.sha256, k.role, k.enabled, k.updated_at, g.value "
                   "FROM api_keys AS k LEFT JOIN json_each(k.gateways) AS g ORDER BY k.id, g.key",
                   [](const Stmt& s) {
                     Row row;
                     row.key.id = s.text(0);
                     row.key.name = s.text(1);
                     row.key.sha256 = s.text(2);
                     row.key.role = s.text(3);
                     row.key.enabled = s.int64(4) != 0;
                     row.key.updatedAt = s.int64(5);
                     row.gateway = s.optText(6);
                     return std::optional(std::move(row));
                   });
  if (!rows) {
    return rows.error();
  }
  std::vector<StoredApiKey> keys;
  for (Row& row : *rows) {
    if (keys.empty() || keys.back().id != row.key.id) {
      keys.push_back(std::move(row.key));
    }
    if (row.gateway) {
      keys.back().gateways.push_back(std::move(*row.gateway));
    }
  }
  return keys;
}

Result<bool> Store::addUsage(std::string_view keyId, int64_t requests, int64_t lastUsedAt) {
  if (requests < 0) {
    return terminal("state store " + path_.string() + ": add usage: negative request count");
  }
  const Conn c(db_.get(), path_, &statements_);
  // INSERT ... SELECT records nothing for an unknown key. The WHERE clause also keeps the
  // upsert's ON CONFLICT from being parsed as a join constraint.
  auto r = c.exec("add api key usage",
                  "INSERT INTO api_key_usage (key_id, request_count, last_used_at) "
                  "SELECT id, ?2, ?3 FROM api_keys WHERE id = ?1 "
                  "ON CONFLICT (key_id) DO UPDATE SET "
                  "request_count = request_count + excluded.request_count, "
                  "last_used_at = max(coalesce(last_used_at, excluded.last_used_at), "
                  "excluded.last_used_at)",
                  keyId, requests, lastUsedAt);
  if (!r) {
    return r.error();
  }
  return *r > 0;
}

Result<std::optional<ApiKeyUsage>> Store::usage(std::string_view keyId) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<ApiKeyUsage>(
      "read api key usage",
      "SELECT key_id, request_count, last_used_at FROM api_key_usage WHERE key_id = ?1",
      [](const Stmt& s) {
        return std::optional(ApiKeyUsage{s.text(0), s.int64(1), s.optInt64(2)});
      },
      keyId);
}

// ---- traffic ----

Result<void> Store::addTraffic(const TrafficSample& sample) {
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
  const Conn c(db_.get(), path_, &statements_);
  return c.exec("prune traffic", "DELETE FROM traffic_samples WHERE at < ?1", at);
}

}  // namespace edgeplane
