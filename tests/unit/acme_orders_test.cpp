// apply's ACME step with a fake CA: the placeholder is replaced by the issued certificate,
// HTTP-01 answers pass through the store and are withdrawn, an order that is not due is not
// placed, and a failed order keeps the certificate in place.
#include "reconciler/cli/acme_orders.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <optional>

#include "reconciler/acme/jws.h"
#include "tests/support/temp_dir.h"

namespace edgeplane {
namespace {

// A leaf for `domains` "issued" by "CN=Fake CA" (not self-issued), valid for `days`.
acme::Issued fakeLeaf(const std::vector<std::string>& domains, int days) {
  auto key = acme::generateP256();
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 7);
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), int64_t{days} * 86400);
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
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(cert);
  return {pem, acme::privateKeyPem(key->get()).value()};
}

class FakeCa final : public acme::CertificateIssuer {
 public:
  explicit FakeCa(Store& store) : store_(store) {}
  Result<acme::Issued> obtain(const std::vector<std::string>& domains, AcmeChallengeType challenge,
                              acme::ChallengeSink& sink,
                              std::chrono::steady_clock::time_point) override {
    ++orders;
    if (auto p = sink.publish(challenge, domains[0], "tok-" + std::to_string(orders), "ka"); !p) {
      return p.error();
    }
    auto pending = store_.listAcmeChallenges();
    seenPending = pending && pending->size() == 1;
    if (seenPending) {
      pendingType = pending->front().type;
    }
    sink.withdraw({"tok-" + std::to_string(orders)});
    if (!problem.empty()) {
      return terminal(problem);
    }
    return fakeLeaf(domains, 30);
  }
  int orders = 0;
  bool seenPending = false;
  std::optional<AcmeChallengeType> pendingType;
  std::string problem;

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
  StoreChallengeSink sink(**store, [&] { ++notices; });
  std::vector<std::string> log;
  auto logTo = [&](const std::string& line) { log.push_back(line); };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  const int64_t now = std::time(nullptr);
  core::ApplyResult result;
  AcmeOrders orders = runAcmeOrders(target, certs, ca, sink, deadline, now, result, logTo);
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
  orders = runAcmeOrders(target, certs, ca, sink, deadline, now, again, logTo);
  EXPECT_TRUE(orders.issued.empty());
  EXPECT_EQ(ca.orders, 1);

  // Forced renewal (renew_before longer than the lifetime) that fails: the issued
  // certificate stays in place, the failure carries the CA's problem.
  // The certificate's challenge type reaches the CA and the store.
  target.certificates[0].renewBefore = int64_t{31} * 86400;
  target.certificates[0].challenge = AcmeChallengeType::TlsAlpn01;
  ca.problem = "urn:ietf:params:acme:error:rejectedIdentifier: no";
  core::ApplyResult failed;
  orders = runAcmeOrders(target, certs, ca, sink, deadline, now, failed, logTo);
  EXPECT_EQ(ca.orders, 2);
  EXPECT_EQ(ca.pendingType, AcmeChallengeType::TlsAlpn01);
  ASSERT_EQ(orders.failed.size(), 1U);
  EXPECT_EQ(orders.failed[0],
            "certificate shop: urn:ietf:params:acme:error:rejectedIdentifier: no");
  EXPECT_TRUE(failed.certificates.empty());
  core::HostState seen;
  ASSERT_TRUE(certs.observe(target.certificates, seen));
  EXPECT_EQ(seen.generatedCerts["shop"].fingerprint, issued.fingerprint);

  // It succeeds: a new certificate.
  ca.problem.clear();
  orders = runAcmeOrders(target, certs, ca, sink, deadline, now, failed, logTo);
  ASSERT_EQ(orders.issued.size(), 1U);
  EXPECT_NE(failed.certificates["shop"].fingerprint, issued.fingerprint);
}

}  // namespace
}  // namespace edgeplane
