// ACME renewal time and failure backoff (see acme_lifecycle.h).
#include "reconciler/core/acme_lifecycle.h"

#include <algorithm>

namespace edgeplane::core {

int64_t acmeBackoffSeconds(int64_t failures, double unit, int64_t floor) {
  floor = std::max<int64_t>(floor, 1);
  int64_t wait = floor;
  for (int64_t i = 1; i < failures && wait < kAcmeBackoffCeiling; ++i) {
    wait *= 2;
  }
  wait = std::min(wait, std::max(kAcmeBackoffCeiling, floor));
  unit = std::clamp(unit, 0.0, 1.0);
  return wait + static_cast<int64_t>(unit * static_cast<double>(wait / 4));
}

namespace {

// FNV-1a, finalized: a stable spread of (name, fingerprint) over [0, 1); not a security property.
double stableUnit(const std::string& name, const std::string& fingerprint) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](const std::string& s) {
    for (unsigned char c : s) {
      h = (h ^ c) * 1099511628211ULL;
    }
  };
  mix(name);
  mix("\n");
  mix(fingerprint);
  // FNV leaves a difference in the last bytes in the low bits only: splitmix64's finalizer
  // spreads it over the high bits the fraction is taken from.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) / static_cast<double>(uint64_t{1} << 53);
}

}  // namespace

int64_t acmeRenewAt(const CertTarget& c, const CertView& v) {
  const int64_t lifetime = std::max<int64_t>(v.notAfter - v.notBefore, 0);
  const int64_t threshold = c.renewBefore ? *c.renewBefore : lifetime / 3;
  if (threshold >= lifetime) {
    return v.notBefore;  // forced: due as soon as it exists
  }
  const int64_t span = std::min(threshold, lifetime - threshold) / 10;
  const auto jitter =
      static_cast<int64_t>(stableUnit(c.name, v.fingerprint) * static_cast<double>(span));
  return v.notAfter - threshold - jitter;
}

int64_t ariRecheckSeconds(std::optional<int64_t> retryAfter) {
  if (!retryAfter) {
    return kAriDefaultRecheck;
  }
  return std::clamp(*retryAfter, kAriMinRecheck, kAriMaxRecheck);
}

int64_t ariRenewAt(int64_t start, int64_t end, double unit) {
  if (end <= start) {
    return start;
  }
  unit = std::clamp(unit, 0.0, 1.0);
  const auto offset = static_cast<int64_t>(unit * static_cast<double>(end - start));
  return start + std::min(offset, end - start - 1);
}

std::string acmeSpec(const CertTarget& c) {
  std::string out(toString(c.challenge.value_or(AcmeChallengeType::Http01)));
  out += " ";
  for (size_t i = 0; i < c.domains.size(); ++i) {
    out += (i == 0 ? "" : ",") + c.domains[i];
  }
  return out;
}

}  // namespace edgeplane::core
