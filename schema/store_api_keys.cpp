// The state store's API-key tables: verifiers synced from the config, usage counted by the
// proxy, and the host's own blocks.
#include <set>

#include "schema/model.h"
#include "schema/store.h"
#include "schema/store_sql.h"

namespace edgeplane {

namespace {

using store_sql::Conn;
using store_sql::Stmt;

// One row per (key, list item) of a JSON array column, in order; folded back per key.
constexpr std::string_view kListKeysSql =
    "SELECT k.id, k.name, k.sha256, k.role, k.enabled, k.updated_at, k.first_seen_commit, "
    "k.first_seen_at, 'g', g.key, g.value FROM api_keys AS k "
    "LEFT JOIN json_each(k.gateways) AS g "
    "UNION ALL "
    "SELECT k.id, k.name, k.sha256, k.role, k.enabled, k.updated_at, k.first_seen_commit, "
    "k.first_seen_at, 'e', e.key, e.value FROM api_keys AS k JOIN json_each(k.endpoints) AS e "
    "ORDER BY 1, 9 DESC, 10";

constexpr std::string_view kUsageColumns =
    "SELECT key_id, request_count, last_used_at, last_ip, responses_1xx, responses_2xx, "
    "responses_3xx, responses_4xx, responses_5xx FROM api_key_usage ";

std::optional<ApiKeyUsage> readUsage(const Stmt& s) {
  ApiKeyUsage u{s.text(0), s.int64(1), s.optInt64(2), s.optText(3)};
  for (int i = 0; i < 5; ++i) {
    u.responses[static_cast<size_t>(i)] = s.int64(4 + i);
  }
  return u;
}

}  // namespace

Result<void> Store::syncApiKeys(const std::vector<ApiKeyRecord>& keys, int64_t at,
                                std::optional<std::string> commit) {
  std::set<std::string, std::less<>> wanted;
  const std::string what = "state store " + path_.string() + ": sync api keys: ";
  for (const ApiKeyRecord& key : keys) {
    if (key.id.empty()) {
      return terminal(what + "empty key id");
    }
    if (!wanted.insert(key.id).second) {
      return terminal(what + "duplicate key id " + key.id);
    }
    if (!store_sql::isHex64(key.sha256)) {
      return terminal(what + "key " + key.id + ": sha256 must be 64 hex digits");
    }
  }
  const Conn c(db_.get(), path_, &statements_);
  return transaction([&]() -> Result<void> {
    for (const ApiKeyRecord& key : keys) {
      // An upsert, never REPLACE: first seen stays as the first insert wrote it.
      auto r = c.exec("sync api keys",
                      "INSERT INTO api_keys (id, name, sha256, gateways, role, enabled, "
                      "updated_at, endpoints, first_seen_commit, first_seen_at) "
                      "VALUES (?1, ?2, lower(?3), ?4, ?5, ?6, ?7, ?8, ?9, ?7) "
                      "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                      "sha256 = excluded.sha256, gateways = excluded.gateways, "
                      "role = excluded.role, enabled = excluded.enabled, "
                      "endpoints = excluded.endpoints, updated_at = excluded.updated_at "
                      "WHERE name IS NOT excluded.name OR sha256 IS NOT excluded.sha256 "
                      "OR gateways IS NOT excluded.gateways OR role IS NOT excluded.role "
                      "OR enabled IS NOT excluded.enabled OR endpoints IS NOT excluded.endpoints",
                      key.id, key.name, key.sha256, store_sql::jsonStringArray(key.gateways),
                      key.role, key.enabled, at, store_sql::jsonStringArray(key.endpoints), commit);
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
    // Counters of ids no longer configured go with them (also those counted before any sync).
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
  struct Row {
    StoredApiKey key;
    bool gateway = true;
    std::optional<std::string> item;
  };
  auto rows = c.query<Row>("list api keys", kListKeysSql, [](const Stmt& s) {
    Row row;
    row.key.id = s.text(0);
    row.key.name = s.text(1);
    row.key.sha256 = s.text(2);
    row.key.role = s.text(3);
    row.key.enabled = s.int64(4) != 0;
    row.key.updatedAt = s.int64(5);
    row.key.firstSeenCommit = s.optText(6);
    row.key.firstSeenAt = s.int64(7);
    row.gateway = s.text(8) == "g";
    row.item = s.optText(10);
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
    if (row.item) {
      (row.gateway ? keys.back().gateways : keys.back().endpoints).push_back(std::move(*row.item));
    }
  }
  return keys;
}

Result<int64_t> Store::addUsageBatch(const std::vector<UsageDelta>& deltas) {
  const LightWrites light(*this);
  const std::string what = "state store " + path_.string() + ": add api key usage: ";
  for (const UsageDelta& d : deltas) {
    if (d.keyId.empty()) {
      return terminal(what + "empty key id");
    }
    bool negative = d.requests < 0 || d.lastUsedAt < 0;
    for (const int64_t n : d.responses) {
      negative = negative || n < 0;
    }
    if (negative) {
      return terminal(what + "key " + d.keyId + ": negative count or time");
    }
  }
  const Conn c(db_.get(), path_, &statements_);
  return transaction([&]() -> Result<int64_t> {
    for (const UsageDelta& d : deltas) {
      // SET expressions all read the row as it was, so last_ip compares the old time.
      auto r =
          c.exec("add api key usage",
                 "INSERT INTO api_key_usage (key_id, request_count, last_used_at, last_ip, "
                 "responses_1xx, responses_2xx, responses_3xx, responses_4xx, responses_5xx) "
                 "VALUES (?1, ?2, nullif(?3, 0), nullif(?4, ''), ?5, ?6, ?7, ?8, ?9) "
                 "ON CONFLICT (key_id) DO UPDATE SET "
                 "request_count = request_count + excluded.request_count, "
                 "last_ip = CASE WHEN excluded.last_ip IS NOT NULL AND (last_used_at IS NULL OR "
                 "coalesce(excluded.last_used_at, 0) >= last_used_at) THEN excluded.last_ip "
                 "ELSE last_ip END, "
                 "last_used_at = CASE WHEN last_used_at IS NULL THEN excluded.last_used_at "
                 "WHEN excluded.last_used_at IS NULL THEN last_used_at "
                 "ELSE max(last_used_at, excluded.last_used_at) END, "
                 "responses_1xx = responses_1xx + excluded.responses_1xx, "
                 "responses_2xx = responses_2xx + excluded.responses_2xx, "
                 "responses_3xx = responses_3xx + excluded.responses_3xx, "
                 "responses_4xx = responses_4xx + excluded.responses_4xx, "
                 "responses_5xx = responses_5xx + excluded.responses_5xx",
                 d.keyId, d.requests, d.lastUsedAt, d.lastIp, d.responses[0], d.responses[1],
                 d.responses[2], d.responses[3], d.responses[4]);
      if (!r) {
        return r.error();
      }
    }
    return static_cast<int64_t>(deltas.size());
  });
}

Result<std::optional<ApiKeyUsage>> Store::usage(std::string_view keyId) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<ApiKeyUsage>(
      "read api key usage", std::string(kUsageColumns) + "WHERE key_id = ?1", readUsage, keyId);
}

Result<std::vector<ApiKeyUsage>> Store::listUsage() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<ApiKeyUsage>("list api key usage", std::string(kUsageColumns) + "ORDER BY key_id",
                              readUsage);
}

// ---- blocks ----

Result<bool> Store::blockApiKey(std::string_view keyId, int64_t at) {
  if (!isValidApiKeyId(keyId)) {
    return terminal("block api key: \"" + std::string(keyId) +
                    "\" is not an API key id (4 to 64 letters, digits, '_' or '-')");
  }
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("block api key",
                  "INSERT INTO api_key_blocks (key_id, blocked_at) VALUES (?1, ?2) "
                  "ON CONFLICT (key_id) DO NOTHING",
                  keyId, at);
  if (!r) {
    return r.error();
  }
  return *r > 0;
}

Result<bool> Store::unblockApiKey(std::string_view keyId) {
  if (!isValidApiKeyId(keyId)) {
    return terminal("unblock api key: \"" + std::string(keyId) +
                    "\" is not an API key id (4 to 64 letters, digits, '_' or '-')");
  }
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("unblock api key", "DELETE FROM api_key_blocks WHERE key_id = ?1", keyId);
  if (!r) {
    return r.error();
  }
  return *r > 0;
}

Result<std::vector<ApiKeyBlock>> Store::listApiKeyBlocks() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<ApiKeyBlock>("list api key blocks",
                              "SELECT key_id, blocked_at FROM api_key_blocks ORDER BY key_id",
                              [](const Stmt& s) {
                                return std::optional(ApiKeyBlock{s.text(0), s.int64(1)});
                              });
}

}  // namespace edgeplane
