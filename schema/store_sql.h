// The state store's SQLite helpers shared by its translation units (store*.cpp): prepared
// statements, typed queries, multi-row inserts. Internal: not for other modules.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "schema/encoding.h"
#include "schema/json_text.h"
#include "schema/result.h"

namespace edgeplane::store_sql {

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

  // Binds the arguments to ?first, ?first+1, ... in order (a row of a multi-row statement).
  template <typename... Args>
  void bindFrom(int first, const Args&... args) {
    int index = first - 1;
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
  Conn(sqlite3* db, const std::filesystem::path& path,
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
  const std::filesystem::path& path_;
  std::unordered_map<std::string, sqlite3_stmt*>* cache_;
};

// JSON array of strings, as stored in the api_keys columns.
inline std::string jsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) {
    if (out.size() > 1) {
      out += ',';
    }
    appendJsonString(out, item);
  }
  out += ']';
  return out;
}

inline bool isHex64(std::string_view s) {
  return s.size() == 64 && allHex(s);
}

// `items` inserted `kRows` to a statement: `head` VALUES (?,…),(?,…)… `tail`, each row's
// `columns` parameters bound by bindRow(stmt, firstParameter, item).
template <typename T, typename BindRow>
Result<void> insertRows(const Conn& c, std::string_view what, std::string_view head,
                        std::string_view tail, int columns, std::span<const T> items,
                        BindRow bindRow) {
  constexpr size_t kRows = 64;
  std::string row = "(?";
  for (int i = 1; i < columns; ++i) {
    row += ",?";
  }
  row += ')';
  for (size_t at = 0; at < items.size(); at += kRows) {
    const size_t rows = std::min(kRows, items.size() - at);
    std::string sql(head);
    sql += " VALUES ";
    for (size_t i = 0; i < rows; ++i) {
      if (i > 0) {
        sql += ',';
      }
      sql += row;
    }
    sql += tail;
    auto stmt = c.prepare(what, sql);
    if (!stmt) {
      return stmt.error();
    }
    for (size_t i = 0; i < rows; ++i) {
      bindRow(*stmt, static_cast<int>(1 + columns * i), items[at + i]);
    }
    if (const int rc = stmt->step(); rc != SQLITE_DONE) {
      return c.error(what, rc);
    }
  }
  return {};
}

}  // namespace edgeplane::store_sql
