// The pending ACME challenge answers (see acme_challenges.h).
#include "proxy/acme_challenges.h"

#include <algorithm>

namespace edgeplane::proxy {

bool AcmeChallengeBoard::replace(Map http01, Map tlsAlpn01, TxtMap dns01) {
  std::lock_guard lock(mu_);
  if (http01 == http01_ && tlsAlpn01 == tlsAlpn01_ && dns01 == dns01_) {
    return false;
  }
  http01_ = std::move(http01);
  tlsAlpn01_ = std::move(tlsAlpn01);
  dns01_ = std::move(dns01);
  return true;
}

namespace {

std::optional<std::string> find(const AcmeChallengeBoard::Map& m, std::string_view key) {
  auto it = m.find(key);
  if (it == m.end()) {
    return std::nullopt;
  }
  return it->second;
}

}  // namespace

std::optional<std::string> AcmeChallengeBoard::lookup(std::string_view token) const {
  std::lock_guard lock(mu_);
  return find(http01_, token);
}

std::optional<std::string> AcmeChallengeBoard::lookupTlsAlpn(std::string_view domain) const {
  std::lock_guard lock(mu_);
  return find(tlsAlpn01_, domain);
}

bool AcmeChallengeBoard::hasTlsAlpn(std::string_view domain) const {
  std::lock_guard lock(mu_);
  return !tlsAlpn01_.empty() && tlsAlpn01_.find(domain) != tlsAlpn01_.end();
}

bool AcmeChallengeBoard::answersTlsAlpn(const ClientHello& hello) const {
  return hello.sni && hello.alpn.size() == 1 && hello.alpn.contains(kAlpnAcmeTls) &&
         hasTlsAlpn(*hello.sni);
}

std::optional<std::vector<std::string>> AcmeChallengeBoard::lookupDns01(
    std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = dns01_.find(name);
  if (it == dns01_.end()) {
    return std::nullopt;
  }
  return it->second;
}

size_t AcmeChallengeBoard::size() const {
  std::lock_guard lock(mu_);
  size_t n = http01_.size() + tlsAlpn01_.size();
  for (const auto& [name, values] : dns01_) {
    n += values.size();
  }
  return n;
}

std::string dns01RecordName(std::string_view domain) {
  if (domain.starts_with("*.")) {
    domain.remove_prefix(2);
  }
  std::string name = "_acme-challenge.";
  for (char c : domain) {
    name.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c);
  }
  if (name.ends_with('.')) {
    name.pop_back();
  }
  return name;
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
