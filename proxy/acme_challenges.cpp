// The pending ACME HTTP-01 answers (see acme_challenges.h).
#include "proxy/acme_challenges.h"

#include <algorithm>

namespace edgeplane::proxy {

bool AcmeChallengeBoard::replace(Map answers) {
  std::lock_guard lock(mu_);
  if (answers == answers_) {
    return false;
  }
  answers_ = std::move(answers);
  return true;
}

std::optional<std::string> AcmeChallengeBoard::lookup(std::string_view token) const {
  std::lock_guard lock(mu_);
  auto it = answers_.find(token);
  if (it == answers_.end()) {
    return std::nullopt;
  }
  return it->second;
}

size_t AcmeChallengeBoard::size() const {
  std::lock_guard lock(mu_);
  return answers_.size();
}

std::string_view acmeChallengeToken(std::string_view target) {
  if (!target.starts_with(kAcmeChallengePath)) {
    return {};
  }
  std::string_view token = target.substr(kAcmeChallengePath.size());
  const bool ok =
      !token.empty() && token.size() <= 256 && std::all_of(token.begin(), token.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
      });
  return ok ? token : std::string_view();
}

}  // namespace edgeplane::proxy
