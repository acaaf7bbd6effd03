// apply's ACME step with a fake CA: the placeholder is replaced by the issued certificate,
// HTTP-01 answers pass through the store and are withdrawn, an order that is not due is not
// placed, a failed order keeps the certificate in place and backs off (recorded in the
// store) without holding back the other certificates.
#include "reconciler/cli/acme_orders.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <iterator>
#include <optional>
#include <set>

#include "reconciler/acme/cert_id.h"
#include "reconciler/acme/jws.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_cert.h"

namespace edgeplane {
namespace {

// A leaf for `domains` "issued" by "CN=Fake CA" (not self-issued), valid for `days`, with an
// Authority Key Identifier (so it has an RFC 9773 CertID) and a serial of its own. Its validity
// starts an hour back, as real CAs backdate: a forced renewal (renew_before past the lifetime) is
// due from notBefore, and the tests' clock is read before the issuance, sometimes in the second
// before it.
acme::Issued fakeLeaf(const std::vector<std::string>& domains, int days) {
  static long serial = 7;
  auto key = acme::generateP256();
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  testing::addAuthorityKeyId(cert, "fake-ca-key-id");
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), int64_t{days} * 86400 - 3600);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(domains[0].c_str()), -1, -1, 0);
  X509_NAME* issuer = X509_NAME_new();
  X509_NAME_add_entry_by_txt(issuer, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Fake CA"), -1, -1, 0);
  X509_set_issuer_name(cert, issuer);
  X509_NAME_free(issuer);
  X509_set_pubkey(cert, key->get());
  std::string san;
  for (const auto& d : domains) {
    san += (san.empty() ? "DNS:" : ",DNS:") + d;
  }
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert, key->get(), EVP_sha256());
  std::string pem = testing::certificatePem(cert);
  X509_free(cert);
  return {pem, acme::privateKeyPem(key->get()).value()};
}

class FakeCa final : public acme::CertificateIssuer {
 public:
  explicit FakeCa(Store& store) : store_(store) {}
  Result<acme::Issued> obtain(const std::vector<std::string>& domains, AcmeChallengeType challenge,
                              acme::ChallengeSink& sink, std::chrono::steady_clock::time_point,
                              const std::string& replacing) override {
    ++orders;
    replaces.push_back(replacing);
    if (auto p = sink.publish(challenge, domains[0], "tok-" + std::to_string(orders), "ka"); !p) {
      return p.error();
    }
    auto pending = store_.listAcmeChallenges();
    seenPending = pending && pending->size() == 1;
    if (seenPending) {
      pendingType = pending->front().type;
    }
    sink.withdraw({"tok-" + std::to_string(orders)});
    if (!problem.empty() && (failing.empty() || failing.count(domains[0]) != 0)) {
      return terminal(problem);
    }
    return fakeLeaf(leafDomains.empty() ? domains : leafDomains, 30);
  }
  Result<std::optional<acme::RenewalWindow>> renewalInfo(
      const std::string& certId, std::chrono::steady_clock::time_point) override {
    ariAsked.push_back(certId);
    if (!ariError.empty()) {
      return retryable(ariError);
    }
    return ari;
  }
  int orders = 0;
  std::vector<std::string> replaces;       // each order's `replaces`
  std::optional<acme::RenewalWindow> ari;  // nullopt: the CA offers no ARI
  std::string ariError;                    // set: renewalInfo fails with it
  std::vector<std::string> ariAsked;       // the CertIDs asked for
  bool seenPending = false;
  std::optional<AcmeChallengeType> pendingType;
  std::string problem;
  std::set<std::string> failing;         // first domains the problem is for; empty: all
  std::vector<std::string> leafDomains;  // set: the leaf names these, not the order's

 private:
  Store& store_;
};

TEST(AcmeOrders, PlaceholderReplacedOnceThenFailuresKeepTheCertificate) {
  testing::TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  sys::CertStore certs(dir.path().string());
  core::Target target;
  core::CertTarget c;
  c.name = "shop";
  c.source = core::CertSource::Acme;
  c.domains = {"shop.example.net"};
  target.certificates = {c};
  auto placeholder = certs.issue(c);
  ASSERT_TRUE(placeholder.ok()) << placeholder.error().message;
  ASSERT_TRUE(placeholder->selfIssued);

  FakeCa ca(**store);
  int notices = 0;
  StoreChallengeSink sink(**store, [&]() -> Result<void> {
    ++notices;
    return {};
  });
  std::vector<std::string> log;
  auto logTo = [&](const std::string& line) { log.push_back(line); };
  AcmeRunClock clock;
  clock.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  clock.now = std::time(nullptr);
  core::ApplyResult result;
  AcmeOrders orders = runAcmeOrders(target, certs, ca, sink, **store, clock, result, logTo);
  EXPECT_EQ(orders.issued, std::vector<std::string>{"shop"});
  EXPECT_TRUE(orders.failed.empty());
  EXPECT_EQ(ca.orders, 1);
  EXPECT_TRUE(ca.seenPending);
  EXPECT_EQ(ca.pendingType, AcmeChallengeType::Http01);
  EXPECT_EQ(notices, 2);
  EXPECT_TRUE((*store)->listAcmeChallenges()->empty());
  ASSERT_EQ(result.certificates.count("shop"), 1U);
  const core::CertView issued = result.certificates["shop"];
  EXPECT_FALSE(issued.selfIssued);
  EXPECT_TRUE(issued.error.empty()) << issued.error;
  EXPECT_NE(issued.fingerprint, placeholder->fingerprint);
  EXPECT_EQ(issued.domains, c.domains);

  // Issued and not due: no order.
  core::ApplyResult again;
  orders = runAcmeOrders(target, certs, ca, sink, **store, clock, again, logTo);
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(ca.orders, 1);

  // Forced renewal (renew_before longer than the lifetime) that fails: the issued
  // certificate stays in place, the failure carries the CA's problem.
  // The certificate's challenge type reaches the CA and the store.
  target.certificates[0].renewBefore = int64_t{31} * 86400;
  target.certificates[0].challenge = AcmeChallengeType::TlsAlpn01;
  ca.problem = "urn:ietf:params:acme:error:rejectedIdentifier: no";
  core::ApplyResult failed;
  orders = runAcmeOrders(target, certs, ca, sink, **store, clock, failed, logTo);
  EXPECT_EQ(ca.orders, 2);
  EXPECT_EQ(ca.pendingType, AcmeChallengeType::TlsAlpn01);
  ASSERT_EQ(orders.failed.size(), 1U);
  EXPECT_EQ(orders.failed[0],
            "certificate shop: urn:ietf:params:acme:error:rejectedIdentifier: no");
  EXPECT_TRUE(failed.certificates.empty());
  core::HostState seen;
  ASSERT_TRUE(certs.observe(target.certificates, seen));
  EXPECT_EQ(seen.generatedCerts["shop"].fingerprint, issued.fingerprint);

  // The failure is recorded with the CA's problem and a minute's backoff (no jitter drawn).
  auto states = (*store)->listAcmeStates();
  ASSERT_TRUE(states.ok()) << states.error().message;
  ASSERT_EQ(states->size(), 1U);
  EXPECT_EQ(states->front().spec, "tls-alpn-01 shop.example.net");
  EXPECT_EQ(states->front().failures, 1);
  EXPECT_EQ(states->front().lastError, "urn:ietf:params:acme:error:rejectedIdentifier: no");
  EXPECT_EQ(states->front().lastAttempt, clock.now * 1000);
  EXPECT_EQ(states->front().nextAttempt, (clock.now + 60) * 1000);

  // Within the backoff the CA would succeed, but no order is placed; the log says until when.
  ca.problem.clear();
  log.clear();
  clock.now += 59;
  orders = runAcmeOrders(target, certs, ca, sink, **store, clock, failed, logTo);
  EXPECT_EQ(ca.orders, 2);
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_TRUE(orders.failed.empty());
  ASSERT_EQ(log.size(), 1U);
  EXPECT_NE(log[0].find("held back after 1 failed order(s) until "), std::string::npos) << log[0];

  // After it, it succeeds: a new certificate, and the failures are cleared.
  clock.now += 1;
  orders = runAcmeOrders(target, certs, ca, sink, **store, clock, failed, logTo);
  ASSERT_EQ(orders.issued.size(), 1U);
  EXPECT_NE(failed.certificates["shop"].fingerprint, issued.fingerprint);
  states = (*store)->listAcmeStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1U);
  EXPECT_EQ(states->front().failures, 0);
  EXPECT_EQ(states->front().lastError, "");
  EXPECT_EQ(states->front().nextAttempt, std::nullopt);
  // renew_before is longer than the lifetime: due at once (a forced renewal every run).
  EXPECT_EQ(states->front().renewAt, failed.certificates["shop"].notBefore * 1000);
}

struct TwoCertificates {
  testing::TempDir dir;
  std::unique_ptr<Store> store = Store::open(dir.path()).value();
  sys::CertStore certs{dir.path().string()};
  core::Target target;
  FakeCa ca{*store};
  StoreChallengeSink sink{*store, {}};
  std::vector<std::string> log;
  AcmeRunClock clock;

  TwoCertificates() {
    for (const char* name : {"blog", "shop"}) {
      core::CertTarget c;
      c.name = name;
      c.source = core::CertSource::Acme;
      c.domains = {std::string(name) + ".example.net"};
      target.certificates.push_back(c);
    }
    clock.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    clock.now = std::time(nullptr);  // the fake leaves are valid from an hour back
  }
  AcmeOrders run() {
    core::ApplyResult result;
    return runAcmeOrders(target, certs, ca, sink, *store, clock, result,
                         [this](const std::string& line) { log.push_back(line); });
  }
  AcmeState state(const std::string& name) {
    auto states = store->listAcmeStates();
    EXPECT_TRUE(states.ok());
    for (const AcmeState& s : states.ok() ? *states : std::vector<AcmeState>{}) {
      if (s.name == name) {
        return s;
      }
    }
    return {};
  }
};

// A CA that answers with a leaf for other names: the order fails, nothing of it is installed,
// and the certificate in place (here the placeholder) stays current.
TEST(AcmeOrders, ALeafForOtherNamesIsRefusedAndTheCertificateInPlaceStays) {
  TwoCertificates t;
  t.target.certificates.resize(1);  // blog only
  auto placeholder = t.certs.issue(t.target.certificates[0]);
  ASSERT_TRUE(placeholder.ok()) << placeholder.error().message;
  t.ca.leafDomains = {"other.example.net"};
  AcmeOrders orders = t.run();
  EXPECT_EQ(t.ca.orders, 1);
  EXPECT_TRUE(orders.issued.empty());
  ASSERT_EQ(orders.failed.size(), 1u);
  EXPECT_NE(orders.failed[0].find("does not name blog.example.net"), std::string::npos)
      << orders.failed[0];
  core::HostState seen;
  ASSERT_TRUE(t.certs.observeGenerated(seen).ok());
  EXPECT_EQ(seen.generatedCerts["blog"].fingerprint, placeholder->fingerprint);
}

// One certificate the CA keeps refusing backs off, doubling with jitter on top, while the
// other is issued in the same runs; the failing one is ordered last.
TEST(AcmeOrders, FailuresBackOffPerCertificateAndNeverBlockTheOthers) {
  TwoCertificates t;
  t.ca.problem = "urn:ietf:params:acme:error:connection: refused";
  t.ca.failing = {"blog.example.net"};
  t.clock.random = [] { return 0.5; };
  AcmeOrders orders = t.run();
  EXPECT_EQ(orders.issued, std::vector<std::string>{"shop"});
  ASSERT_EQ(orders.failed.size(), 1U);
  EXPECT_EQ(t.state("blog").failures, 1);
  EXPECT_EQ(t.state("blog").nextAttempt, (t.clock.now + 67) * 1000);  // 60 s + 7 of jitter
  EXPECT_EQ(t.state("shop").failures, 0);
  EXPECT_TRUE(t.state("shop").renewAt.has_value());

  // Later, after its backoff, with shop due again (placeholder gone: remove its certificate so
  // it is due): blog, which failed, goes after shop.
  ASSERT_TRUE(t.certs.remove("shop"));
  t.clock.now += 68;
  t.ca.orders = 0;
  t.log.clear();
  orders = t.run();
  ASSERT_EQ(t.log.size(), 4U);
  EXPECT_NE(t.log[0].find("certificate shop: ordering"), std::string::npos) << t.log[0];
  EXPECT_NE(t.log[2].find("certificate blog: ordering"), std::string::npos) << t.log[2];
  EXPECT_EQ(t.state("blog").failures, 2);
  EXPECT_EQ(t.state("blog").nextAttempt, (t.clock.now + 135) * 1000);  // 120 s + 15
  EXPECT_EQ(t.state("blog").lastError, "urn:ietf:params:acme:error:connection: refused");
}

// A certificate in backoff whose domains (or challenge) changed is ordered at once: the
// failures were about another order. A certificate no longer configured loses its state.
TEST(AcmeOrders, ChangedSpecLiftsTheBackoffAndRemovedCertificatesLoseTheirState) {
  TwoCertificates t;
  t.ca.problem = "urn:ietf:params:acme:error:rejectedIdentifier: no";
  t.ca.failing = {"blog.example.net"};
  EXPECT_TRUE(t.run().stateChanged);
  ASSERT_EQ(t.state("blog").failures, 1);
  const int before = t.ca.orders;
  (void)t.run();  // blog held back; shop's renewal information asked of the CA (ARI)
  EXPECT_EQ(t.ca.orders, before);
  EXPECT_FALSE(t.run().stateChanged);  // nothing due at all: nothing written, nothing to publish
  t.target.certificates[0].domains = {"blog.example.net", "www.example.net"};
  t.ca.problem.clear();
  AcmeOrders orders = t.run();
  EXPECT_EQ(orders.issued, std::vector<std::string>{"blog"});
  EXPECT_EQ(t.state("blog").failures, 0);
  EXPECT_EQ(t.state("blog").spec, "http-01 blog.example.net,www.example.net");

  t.target.certificates.erase(t.target.certificates.begin());
  EXPECT_TRUE(t.run().stateChanged);  // blog's state dropped
  auto states = t.store->listAcmeStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1U);
  EXPECT_EQ(states->front().name, "shop");
  EXPECT_FALSE(t.run().stateChanged);
  t.target.certificates.clear();  // no ACME certificate left: shop's state goes too
  EXPECT_TRUE(t.run().stateChanged);
  EXPECT_TRUE(t.store->listAcmeStates()->empty());
  EXPECT_FALSE(t.run().stateChanged);
}

// A failing forced renewal that is no longer due (renew_before dropped) sheds its failures:
// nothing is owed, so nothing is failing, and status and /metrics say so.
TEST(AcmeOrders, ACertificateNoLongerDueShedsItsFailures) {
  TwoCertificates t;
  ASSERT_EQ(t.run().issued.size(), 2U);
  t.target.certificates[0].renewBefore = int64_t{31} * 86400;
  t.ca.problem = "urn:ietf:params:acme:error:serverInternal: down";
  AcmeOrders orders = t.run();
  ASSERT_EQ(orders.failed.size(), 1U);
  ASSERT_EQ(t.state("blog").failures, 1);
  const int before = t.ca.orders;
  t.target.certificates[0].renewBefore.reset();
  orders = t.run();
  EXPECT_TRUE(orders.failed.empty());
  EXPECT_EQ(t.ca.orders, before);
  const AcmeState blog = t.state("blog");
  EXPECT_EQ(blog.failures, 0);
  EXPECT_EQ(blog.lastError, "");
  EXPECT_EQ(blog.nextAttempt, std::nullopt);
  EXPECT_TRUE(blog.renewAt.has_value());
}

}  // namespace
}  // namespace edgeplane

namespace edgeplane {
namespace {

// The CertID of the certificate `name` in place.
std::string certIdInPlace(TwoCertificates& t, const std::string& name) {
  core::HostState seen;
  EXPECT_TRUE(t.certs.observe(t.target.certificates, seen));
  std::ifstream in(seen.generatedCerts[name].certFile);
  const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto id = acme::ariCertId(pem);
  EXPECT_TRUE(id.ok()) << id.error().message;
  return id.ok() ? *id : "";
}

// RFC 9773: a CA window already past renews the certificate now (though a third of its
// lifetime is far off), and the order names the certificate it replaces; a future window
// does not, and the time drawn in it is the renewal time status shows.
TEST(AcmeOrdersAri, PastWindowRenewsWithReplacesFutureWindowWaits) {
  TwoCertificates t;
  t.target.certificates.pop_back();  // blog only
  ASSERT_EQ(t.run().issued.size(), 1U);
  EXPECT_TRUE(t.ca.ariAsked.empty());  // nothing issued to ask about before the run
  const std::string id = certIdInPlace(t, "blog");
  ASSERT_FALSE(id.empty());

  // A future window: asked once, not due; the time drawn (0.25 of it) is the renewal time.
  t.ca.ari = acme::RenewalWindow{{t.clock.now + 86400, t.clock.now + 5 * 86400, "https://x/why"},
                                 std::nullopt};
  t.clock.random = [] { return 0.25; };
  AcmeOrders orders = t.run();
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(t.ca.orders, 1);
  EXPECT_EQ(t.ca.ariAsked, std::vector<std::string>{id});
  AcmeState st = t.state("blog");
  EXPECT_EQ(st.ariStart, (t.clock.now + 86400) * 1000);
  EXPECT_EQ(st.ariEnd, (t.clock.now + 5 * 86400) * 1000);
  EXPECT_EQ(st.ariRenewAt, (t.clock.now + 2 * 86400) * 1000);
  EXPECT_EQ(st.renewAt, st.ariRenewAt);
  EXPECT_EQ(st.ariExplanation, "https://x/why");
  EXPECT_EQ(st.ariNextCheck, (t.clock.now + 6 * 3600) * 1000);  // no Retry-After: 6 h

  // Within the 6 h the CA is not asked again, even though its window moved into the past.
  t.ca.ari = acme::RenewalWindow{{t.clock.now - 2 * 86400, t.clock.now - 86400, ""}, 3600};
  t.clock.now += 6 * 3600 - 1;
  orders = t.run();
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(t.ca.ariAsked.size(), 1U);

  // Then it is, the window is past: renewed now, the order replaces the certificate.
  t.clock.now += 1;
  orders = t.run();
  EXPECT_EQ(orders.issued, std::vector<std::string>{"blog"});
  EXPECT_EQ(t.ca.ariAsked.size(), 2U);
  ASSERT_EQ(t.ca.replaces.size(), 2U);
  EXPECT_EQ(t.ca.replaces[0], "");  // the first order replaced nothing
  EXPECT_EQ(t.ca.replaces[1], id);
  bool logged = false;
  for (const std::string& line : t.log) {
    logged = logged || line.find("the CA's renewal window, RFC 9773") != std::string::npos;
  }
  EXPECT_TRUE(logged);
  // The new certificate's window is asked for afresh on the next run.
  st = t.state("blog");
  EXPECT_EQ(st.ariCert, "");
  EXPECT_EQ(st.ariStart, std::nullopt);
}

// A failing renewalInfo (a 5xx, a malformed answer) is logged and the lifetime rule holds: no
// renewal before a third of the lifetime, no error for the certificate; asked again an hour
// later. renew_before set: the CA is not asked at all, the operator's time wins.
TEST(AcmeOrdersAri, CaErrorFallsBackToTheLifetimeAndRenewBeforeWins) {
  TwoCertificates t;
  t.target.certificates.pop_back();
  ASSERT_EQ(t.run().issued.size(), 1U);
  const int64_t lifetimeRenewAt = *t.state("blog").renewAt;
  t.ca.ariError = "renewalInfo: HTTP 500";
  t.log.clear();
  AcmeOrders orders = t.run();
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_TRUE(orders.failed.empty());
  EXPECT_EQ(t.ca.ariAsked.size(), 1U);
  AcmeState st = t.state("blog");
  EXPECT_EQ(st.renewAt, lifetimeRenewAt);
  EXPECT_EQ(st.failures, 0);
  EXPECT_EQ(st.ariStart, std::nullopt);
  EXPECT_EQ(st.ariNextCheck, (t.clock.now + 3600) * 1000);
  ASSERT_EQ(t.log.size(), 1U);
  EXPECT_NE(t.log[0].find("renewal information failed (renewalInfo: HTTP 500)"), std::string::npos)
      << t.log[0];
  (void)t.run();
  EXPECT_EQ(t.ca.ariAsked.size(), 1U);  // not again within the hour

  // A past window, but renew_before (shorter than what is left) is set: not asked, not due.
  t.ca.ariError.clear();
  t.ca.ari = acme::RenewalWindow{{t.clock.now - 2 * 86400, t.clock.now - 86400, ""}, 60};
  t.clock.now += 3600;
  t.target.certificates[0].renewBefore = int64_t{86400};
  orders = t.run();
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(t.ca.ariAsked.size(), 1U);
  EXPECT_EQ(t.state("blog").ariStart, std::nullopt);

  // A CA without ARI: asked, no window kept, the lifetime rule; asked again in 6 h.
  t.target.certificates[0].renewBefore.reset();
  t.ca.ari.reset();
  orders = t.run();
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(t.ca.ariAsked.size(), 2U);
  EXPECT_EQ(t.state("blog").renewAt, lifetimeRenewAt);
  EXPECT_EQ(t.state("blog").ariNextCheck, (t.clock.now + 6 * 3600) * 1000);
  (void)t.run();
  EXPECT_EQ(t.ca.ariAsked.size(), 2U);  // not at every run
}

// An answer the proxy cannot be handed (its files not written) is an error for the order,
// which then fails rather than wait for a validation that cannot succeed; the answer stays in
// the store for the withdrawal.
TEST(StoreChallengeSink, AnAnswerTheProxyCannotBeHandedIsAnError) {
  testing::TempDir dir;
  auto store = Store::open(dir.path());
  ASSERT_TRUE(store.ok()) << store.error().message;
  StoreChallengeSink sink(**store, []() -> Result<void> { return terminal("disk full"); });
  auto r = sink.publish(AcmeChallengeType::Http01, "a.example.com", "tok-1", "tok-1.thumb");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "disk full");
  auto rows = (*store)->listAcmeChallenges();
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 1U);
  sink.withdraw({"tok-1"});
  EXPECT_TRUE((*store)->listAcmeChallenges()->empty());
}

}  // namespace
}  // namespace edgeplane
