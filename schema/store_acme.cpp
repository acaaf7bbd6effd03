// The state store's pending ACME HTTP-01 answers: the reconciler puts them while an order
// runs, the proxy's :80 listener serves them, the reconciler removes them after.
#include "schema/store.h"
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

}  // namespace edgeplane
