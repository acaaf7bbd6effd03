// The state store's ACME tables: pending challenge answers (the reconciler puts them while an
// order runs, the proxy serves them, the reconciler removes them after) and each certificate's
// lifecycle state (failures, backoff, renewal time).
#include "schema/store.h"

#include <algorithm>

#include "schema/store_sql.h"

namespace edgeplane {

using store_sql::Conn;
using store_sql::Stmt;

Result<void> Store::putAcmeChallenge(const AcmeChallenge& ch) {
  const Conn c(db_.get(), path_, &statements_);
  auto r =
      c.exec("put acme challenge",
             "INSERT INTO acme_challenges (token, domain, key_authorization, created_at, type) "
             "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (token) DO UPDATE SET "
             "domain = excluded.domain, key_authorization = excluded.key_authorization, "
             "created_at = excluded.created_at, type = excluded.type",
             std::string_view(ch.token), std::string_view(ch.domain),
             std::string_view(ch.keyAuthorization), ch.createdAt, toString(ch.type));
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> Store::removeAcmeChallenges(const std::vector<std::string>& tokens) {
  return transaction([&]() -> Result<void> {
    const Conn c(db_.get(), path_, &statements_);
    for (const std::string& t : tokens) {
      auto r = c.exec("remove acme challenge", "DELETE FROM acme_challenges WHERE token = ?1",
                      std::string_view(t));
      if (!r) {
        return r.error();
      }
    }
    return {};
  });
}

Result<std::vector<AcmeChallenge>> Store::listAcmeChallenges() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<AcmeChallenge>(
      "list acme challenges",
      "SELECT token, domain, key_authorization, created_at, type FROM acme_challenges "
      "ORDER BY token",
      [](const Stmt& s) -> std::optional<AcmeChallenge> {
        auto type = acmeChallengeTypeFrom(s.text(4));
        if (!type) {
          return std::nullopt;  // the CHECK constraint admits no other
        }
        return AcmeChallenge{s.text(0), s.text(1), s.text(2), s.int64(3), *type};
      });
}

Result<void> Store::putAcmeState(const AcmeState& st) {
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec(
      "put acme state",
      "INSERT INTO acme_state (name, spec, failures, last_error, last_attempt, next_attempt, "
      "renew_at, ari_cert, ari_start, ari_end, ari_renew_at, ari_next_check, ari_explanation) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (name) DO "
      "UPDATE SET spec = excluded.spec, failures = excluded.failures, "
      "last_error = excluded.last_error, last_attempt = excluded.last_attempt, "
      "next_attempt = excluded.next_attempt, renew_at = excluded.renew_at, "
      "ari_cert = excluded.ari_cert, ari_start = excluded.ari_start, ari_end = excluded.ari_end, "
      "ari_renew_at = excluded.ari_renew_at, ari_next_check = excluded.ari_next_check, "
      "ari_explanation = excluded.ari_explanation",
      std::string_view(st.name), std::string_view(st.spec), st.failures,
      std::string_view(st.lastError), st.lastAttempt, st.nextAttempt, st.renewAt,
      std::string_view(st.ariCert), st.ariStart, st.ariEnd, st.ariRenewAt, st.ariNextCheck,
      std::string_view(st.ariExplanation));
  if (!r) {
    return r.error();
  }
  return {};
}

Result<void> Store::retainAcmeStates(const std::vector<std::string>& names) {
  auto rows = listAcmeStates();
  if (!rows) {
    return rows.error();
  }
  std::vector<std::string> gone;
  for (const AcmeState& row : *rows) {
    if (std::find(names.begin(), names.end(), row.name) == names.end()) {
      gone.push_back(row.name);
    }
  }
  if (gone.empty()) {
    return {};  // the common case takes no write lock
  }
  return transaction([&]() -> Result<void> {
    const Conn c(db_.get(), path_, &statements_);
    for (const std::string& name : gone) {
      auto r = c.exec("remove acme state", "DELETE FROM acme_state WHERE name = ?1",
                      std::string_view(name));
      if (!r) {
        return r.error();
      }
    }
    return {};
  });
}

Result<std::vector<AcmeState>> Store::listAcmeStates() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<AcmeState>(
      "list acme state",
      "SELECT name, spec, failures, last_error, last_attempt, next_attempt, renew_at, ari_cert, "
      "ari_start, ari_end, ari_renew_at, ari_next_check, ari_explanation "
      "FROM acme_state ORDER BY name",
      [](const Stmt& s) -> std::optional<AcmeState> {
        return AcmeState{s.text(0),      s.text(1),      s.int64(2), s.text(3),     s.optInt64(4),
                         s.optInt64(5),  s.optInt64(6),  s.text(7),  s.optInt64(8), s.optInt64(9),
                         s.optInt64(10), s.optInt64(11), s.text(12)};
      });
}

}  // namespace edgeplane
