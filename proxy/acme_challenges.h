// The pending ACME HTTP-01 answers the :80 listener serves (token -> key authorization). The
// controller refreshes them from the store on every poll and reload notice; workers look a
// token up per challenge request. Shared by both through EngineOptions.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace edgeplane::proxy {

// The path prefix of an HTTP-01 challenge (RFC 8555 section 8.3).
inline constexpr std::string_view kAcmeChallengePath = "/.well-known/acme-challenge/";

class AcmeChallengeBoard {
 public:
  using Map = std::map<std::string, std::string, std::less<>>;
  // Replaces every answer; false when nothing changed.
  bool replace(Map answers);
  // The key authorization for `token`, if pending.
  std::optional<std::string> lookup(std::string_view token) const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  Map answers_;
};

// The token of a challenge request's origin-form target ("/.well-known/acme-challenge/T"),
// or empty when it is no such request: no query, a token of base64url characters.
std::string_view acmeChallengeToken(std::string_view target);

}  // namespace edgeplane::proxy
