// The pending ACME challenge answers: HTTP-01 ones the :80 listener serves (token -> key
// authorization), TLS-ALPN-01 ones :443 answers with an RFC 8737 certificate (domain -> key
// authorization) and DNS-01 ones the --dns responder serves (TXT name -> values). The
// controller refreshes them from the published files on every poll and reload notice; workers and
// the responder look them up per challenge. Shared by all through EngineOptions.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/clienthello.h"

namespace edgeplane::proxy {

// The path prefix of an HTTP-01 challenge (RFC 8555 section 8.3).
inline constexpr std::string_view kAcmeChallengePath = "/.well-known/acme-challenge/";

class AcmeChallengeBoard {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  // DNS-01: the lower-case TXT name ("_acme-challenge.example.com", no trailing dot) -> its
  // values, base64url(SHA-256(key authorization)); a wildcard and its base name share a name.
  using TxtMap = std::map<std::string, std::vector<std::string>, std::less<>>;
  // Replaces every answer (HTTP-01 by token, TLS-ALPN-01 by lower-case domain, DNS-01 by
  // TXT name); false when nothing changed.
  bool replace(Map http01, Map tlsAlpn01, TxtMap dns01 = {});
  // The HTTP-01 key authorization for `token`, if pending.
  std::optional<std::string> lookup(std::string_view token) const;
  // The TLS-ALPN-01 key authorization for `domain` (lower-case, as the SNI), if pending.
  std::optional<std::string> lookupTlsAlpn(std::string_view domain) const;
  bool hasTlsAlpn(std::string_view domain) const;
  // A hello the TLS-ALPN-01 responder takes: ALPN exactly ["acme-tls/1"] (RFC 8737 section
  // 3: the CA offers nothing else) and an SNI with a pending answer.
  bool answersTlsAlpn(const ClientHello& hello) const;
  // The DNS-01 TXT values of a lower-case name, nullopt when none is pending.
  std::optional<std::vector<std::string>> lookupDns01(std::string_view name) const;
  size_t size() const;  // all kinds, DNS-01 counted per value

 private:
  mutable std::mutex mu_;
  Map http01_;
  Map tlsAlpn01_;
  TxtMap dns01_;
};

// The TXT record name of a DNS-01 challenge for `domain` (RFC 8555 section 8.4), lower case:
// "_acme-challenge.<domain>", with a wildcard's "*." dropped (its authorization names the
// base domain).
std::string dns01RecordName(std::string_view domain);

// The token of a challenge request's origin-form target ("/.well-known/acme-challenge/T"),
// or empty when it is no such request: no query, a token of base64url characters.
std::string_view acmeChallengeToken(std::string_view target);

}  // namespace edgeplane::proxy
