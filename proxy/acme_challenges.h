// The pending ACME challenge answers: HTTP-01 ones the :80 listener serves (token -> key
// authorization) and TLS-ALPN-01 ones :443 answers with an RFC 8737 certificate (domain -> key
// authorization). The controller refreshes them from the store on every poll and reload
// notice; workers look them up per challenge connection. Shared by both through EngineOptions.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "proxy/clienthello.h"

namespace edgeplane::proxy {

// The path prefix of an HTTP-01 challenge (RFC 8555 section 8.3).
inline constexpr std::string_view kAcmeChallengePath = "/.well-known/acme-challenge/";

class AcmeChallengeBoard {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  // Replaces every answer (HTTP-01 by token, TLS-ALPN-01 by lower-case domain); false when
  // nothing changed.
  bool replace(Map http01, Map tlsAlpn01);
  // The HTTP-01 key authorization for `token`, if pending.
  std::optional<std::string> lookup(std::string_view token) const;
  // The TLS-ALPN-01 key authorization for `domain` (lower-case, as the SNI), if pending.
  std::optional<std::string> lookupTlsAlpn(std::string_view domain) const;
  bool hasTlsAlpn(std::string_view domain) const;
  // A hello the TLS-ALPN-01 responder takes: ALPN exactly ["acme-tls/1"] (RFC 8737 section
  // 3: the CA offers nothing else) and an SNI with a pending answer.
  bool answersTlsAlpn(const ClientHello& hello) const;
  size_t size() const;  // both kinds

 private:
  mutable std::mutex mu_;
  Map http01_;
  Map tlsAlpn01_;
};

// The token of a challenge request's origin-form target ("/.well-known/acme-challenge/T"),
// or empty when it is no such request: no query, a token of base64url characters.
std::string_view acmeChallengeToken(std::string_view target);

}  // namespace edgeplane::proxy
