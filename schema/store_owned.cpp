// The state store's record of what is applied: the resources this host owns (what a later run
// may change or remove) and the proxy snapshots, newest kept (see store.h).
#include <sqlite3.h>

#include <optional>
#include <span>

#include "schema/store.h"
#include "schema/store_sql.h"

namespace edgeplane {

using store_sql::Conn;
using store_sql::Stmt;

namespace {
std::optional<OwnedResource> readOwned(const Stmt& s) {
  return OwnedResource{s.text(0), s.text(1), s.text(2), s.int64(3)};
}
}  // namespace

Result<void> Store::putOwned(std::string_view kind, std::string_view name,
                             std::string_view dataJson, int64_t at) {
  const OwnedResource row{std::string(kind), std::string(name), std::string(dataJson), at};
  return putOwnedRows(std::span(&row, 1));
}

Result<void> Store::putOwnedRows(std::span<const OwnedResource> rows) {
  const Conn c(db_.get(), path_, &statements_);
  // As putOwned: updated_at records the last change, so an unchanged row writes nothing.
  return store_sql::insertRows(c, "record owned resources",
                               "INSERT INTO owned_resources (kind, name, data, updated_at)",
                               " ON CONFLICT (kind, name) DO UPDATE SET data = excluded.data, "
                               "updated_at = excluded.updated_at WHERE data IS NOT excluded.data",
                               4, rows, [](Stmt& s, int first, const OwnedResource& r) {
                                 s.bindFrom(first, r.kind, r.name, r.data, r.updatedAt);
                               });
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

}  // namespace edgeplane
