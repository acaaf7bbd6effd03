// The ACME lifecycle's pure rules: the failure backoff (1 min doubling to a day, jitter on
// top, never below the floor) and the renewal time (stable jitter per certificate).
#include "reconciler/core/acme_lifecycle.h"

#include <gtest/gtest.h>

#include <set>

namespace edgeplane {
namespace {

constexpr int64_t kDay = 86400;
constexpr int64_t kNow = 1800000000;

TEST(AcmeLifecycle, BackoffDoublesFromAMinuteToADayWithJitterOnTop) {
  EXPECT_EQ(core::acmeBackoffSeconds(1, 0.0), 60);
  EXPECT_EQ(core::acmeBackoffSeconds(2, 0.0), 120);
  EXPECT_EQ(core::acmeBackoffSeconds(3, 0.0), 240);
  EXPECT_EQ(core::acmeBackoffSeconds(11, 0.0), 61440);
  EXPECT_EQ(core::acmeBackoffSeconds(12, 0.0), kDay);  // 122880 capped
  EXPECT_EQ(core::acmeBackoffSeconds(1000, 0.0), kDay);
  // Jitter adds up to a quarter, never takes away.
  EXPECT_EQ(core::acmeBackoffSeconds(1, 0.5), 67);
  EXPECT_EQ(core::acmeBackoffSeconds(1, 0.999), 74);
  EXPECT_EQ(core::acmeBackoffSeconds(1000, 0.999), kDay + kDay / 4 - 22);
  // Out-of-range randomness is clamped rather than trusted.
  EXPECT_EQ(core::acmeBackoffSeconds(1, -3.0), 60);
  EXPECT_EQ(core::acmeBackoffSeconds(1, 7.0), 75);
  // A 0 failure count (a caller's slip) still waits the floor.
  EXPECT_EQ(core::acmeBackoffSeconds(0, 0.0), 60);
  // A scaled floor (the lab's test knob) doubles the same way.
  EXPECT_EQ(core::acmeBackoffSeconds(1, 0.0, 2), 2);
  EXPECT_EQ(core::acmeBackoffSeconds(3, 0.0, 2), 8);
  EXPECT_EQ(core::acmeBackoffSeconds(1, 0.0, 0), 1);
}

core::CertTarget acmeTarget(std::string name) {
  core::CertTarget c;
  c.name = std::move(name);
  c.source = core::CertSource::Acme;
  c.domains = {"shop.example.net"};
  return c;
}

core::CertView issuedView(std::string fingerprint, int64_t lifetime) {
  core::CertView v;
  v.fingerprint = std::move(fingerprint);
  v.domains = {"shop.example.net"};
  v.notBefore = kNow;
  v.notAfter = kNow + lifetime;
  return v;
}

TEST(AcmeLifecycle, RenewalIsAThirdOfTheLifetimeLeftMinusAStableJitter) {
  const int64_t lifetime = 90 * kDay;
  const core::CertTarget c = acmeTarget("shop");
  const core::CertView v = issuedView("aa11", lifetime);
  const int64_t at = core::acmeRenewAt(c, v);
  // Within [notAfter - 30d - 3d, notAfter - 30d]: a tenth of the threshold at most.
  EXPECT_LE(at, v.notAfter - 30 * kDay);
  EXPECT_GT(at, v.notAfter - 33 * kDay);
  // Stable: the same inputs give the same time (plan does not flap).
  EXPECT_EQ(core::acmeRenewAt(c, v), at);
  // Spread: other certificates and successors land elsewhere in the window.
  std::set<int64_t> seen;
  for (int i = 0; i < 16; ++i) {
    seen.insert(core::acmeRenewAt(acmeTarget("c" + std::to_string(i)), v));
    seen.insert(core::acmeRenewAt(c, issuedView("fp" + std::to_string(i), lifetime)));
  }
  EXPECT_GT(seen.size(), 24U);
  for (int64_t t : seen) {
    EXPECT_LE(t, v.notAfter - 30 * kDay);
    EXPECT_GT(t, v.notAfter - 33 * kDay);
  }
}

TEST(AcmeLifecycle, RenewBeforeSetsTheThresholdAndAtLeastTheLifetimeForcesIt) {
  const int64_t lifetime = 90 * kDay;
  core::CertTarget c = acmeTarget("shop");
  const core::CertView v = issuedView("aa11", lifetime);
  c.renewBefore = 30 * kDay;
  const int64_t thirty = core::acmeRenewAt(c, v);
  EXPECT_LE(thirty, v.notAfter - 30 * kDay);
  EXPECT_GT(thirty, v.notAfter - 33 * kDay);
  // Close to the lifetime: the jitter is bounded by what is left, so a certificate is never due
  // the moment it is issued.
  c.renewBefore = lifetime - kDay;
  const int64_t late = core::acmeRenewAt(c, v);
  EXPECT_GT(late, v.notBefore + kDay - kDay / 10);
  EXPECT_LE(late, v.notBefore + kDay);
  // As long as the lifetime or longer: a forced renewal, due at once.
  c.renewBefore = lifetime;
  EXPECT_EQ(core::acmeRenewAt(c, v), v.notBefore);
  c.renewBefore = lifetime + kDay;
  EXPECT_EQ(core::acmeRenewAt(c, v), v.notBefore);
}

TEST(AcmeLifecycle, SpecNamesTheChallengeAndTheDomains) {
  core::CertTarget c = acmeTarget("shop");
  c.domains = {"a.example.net", "b.example.net"};
  EXPECT_EQ(core::acmeSpec(c), "http-01 a.example.net,b.example.net");
  c.challenge = AcmeChallengeType::TlsAlpn01;
  EXPECT_EQ(core::acmeSpec(c), "tls-alpn-01 a.example.net,b.example.net");
}

// RFC 9773 section 4.2: a time drawn uniformly in [start, end); never at or past its end.
TEST(AcmeLifecycle, AriRenewalTimeIsDrawnInTheWindow) {
  const int64_t start = kNow + kDay;
  const int64_t end = kNow + 3 * kDay;
  EXPECT_EQ(core::ariRenewAt(start, end, 0.0), start);
  EXPECT_EQ(core::ariRenewAt(start, end, 0.5), start + kDay);
  EXPECT_EQ(core::ariRenewAt(start, end, 0.999999999), end - 1);
  // Out-of-range randomness is clamped rather than trusted.
  EXPECT_EQ(core::ariRenewAt(start, end, -1.0), start);
  EXPECT_EQ(core::ariRenewAt(start, end, 2.0), end - 1);
  // A degenerate window (the decoder refuses one; still nothing out of it): its start.
  EXPECT_EQ(core::ariRenewAt(end, start, 0.5), end);
}

// Retry-After held to [1 min, 1 day]; absent: 6 h.
TEST(AcmeLifecycle, AriRecheckFollowsRetryAfterWithinBounds) {
  EXPECT_EQ(core::ariRecheckSeconds(std::nullopt), 6 * 3600);
  EXPECT_EQ(core::ariRecheckSeconds(3600), 3600);
  EXPECT_EQ(core::ariRecheckSeconds(0), 60);
  EXPECT_EQ(core::ariRecheckSeconds(-5), 60);
  EXPECT_EQ(core::ariRecheckSeconds(int64_t{1} << 40), kDay);
}

// A time from the CA's window replaces the lifetime rule (either way: earlier or later), but
// not renew_before.
TEST(AcmeLifecycle, OrderDueByTheAriTimeUnlessRenewBeforeIsSet) {
  core::CertTarget c = acmeTarget("shop");
  const core::CertView v = issuedView("aa11", 90 * kDay);
  const int64_t byLifetime = core::acmeRenewAt(c, v);
  // The window says now, long before a third of the lifetime is left.
  auto due = core::acmeOrderDue(c, &v, v.notBefore + kDay, v.notBefore + kDay);
  ASSERT_TRUE(due.has_value());
  EXPECT_NE(due->find("RFC 9773"), std::string::npos) << *due;
  EXPECT_FALSE(core::acmeOrderDue(c, &v, v.notBefore + kDay).has_value());
  // The window says later than the lifetime rule would: not yet.
  EXPECT_FALSE(core::acmeOrderDue(c, &v, byLifetime + 1, byLifetime + 2).has_value());
  EXPECT_TRUE(core::acmeOrderDue(c, &v, byLifetime + 2, byLifetime + 2).has_value());
  // renew_before is the operator's: the ARI time is ignored.
  c.renewBefore = 10 * kDay;
  EXPECT_FALSE(core::acmeOrderDue(c, &v, v.notBefore + kDay, v.notBefore + kDay).has_value());
}

// A time from the CA's window within a day (a tenth of the lifetime, if shorter) of the expiry,
// or after it, is not used: waiting for it would let the certificate expire and its routes drop.
// The lifetime rule decides instead (found by an attacker's read; the margin by a review).
TEST(AcmeLifecycle, AnAriTimePastTheExpiryFallsBackToTheLifetime) {
  core::CertTarget c = acmeTarget("shop");
  const core::CertView v = issuedView("aa11", 90 * kDay);
  const int64_t byLifetime = core::acmeRenewAt(c, v);
  for (int64_t ari : {v.notAfter - 1, v.notAfter - kDay, v.notAfter, v.notAfter + 365 * kDay}) {
    EXPECT_FALSE(core::acmeOrderDue(c, &v, byLifetime - 1, ari).has_value()) << ari;
    auto due = core::acmeOrderDue(c, &v, byLifetime, ari);
    ASSERT_TRUE(due.has_value()) << ari;
    EXPECT_NE(due->find("a third of its lifetime"), std::string::npos) << *due;
    EXPECT_EQ(core::acmeOrderDue(c, &v, v.notAfter + 1, ari), "renew: expired");
  }
}

}  // namespace
}  // namespace edgeplane
