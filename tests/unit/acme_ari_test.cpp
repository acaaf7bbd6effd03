// RFC 9773 CertIDs of real certificates: the section 4.1 example (Authority Key Identifier
// 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 0x87654321, whose DER
// content keeps its 0x00 sign byte) and the certificates that have none.
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>

#include "reconciler/acme/cert_id.h"
#include "reconciler/acme/jws.h"
#include "tests/support/test_cert.h"

namespace edgeplane {
namespace {

// A self-signed PEM certificate with serial `serialHex` and, when `keyId` is not empty, an
// Authority Key Identifier holding it.
std::string certPem(const std::string& serialHex, const std::string& keyId) {
  auto key = acme::generateP256();
  X509* cert = X509_new();
  BIGNUM* bn = nullptr;
  BN_hex2bn(&bn, serialHex.c_str());
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
  BN_free(bn);
  X509_set_version(cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(cert), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ari.example"), -1, -1, 0);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  X509_set_pubkey(cert, key->get());
  if (!keyId.empty()) {
    testing::addAuthorityKeyId(cert, keyId);
  }
  X509_sign(cert, key->get(), EVP_sha256());
  std::string pem = testing::certificatePem(cert);
  X509_free(cert);
  return pem;
}

const std::string kRfcKeyId =
    "\x69\x88\x5B\x6B\x87\x46\x40\x41\xE1\xB3\x7B\x84\x7B\xA0\xAE\x2C\xDE\x01\xC8\xD4";

TEST(AcmeAri, CertIdOfTheRfc9773Example) {
  auto id = acme::ariCertId(certPem("87654321", kRfcKeyId));
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
}

// The leaf of a chain is the one named; a serial without a high bit has no sign byte; a long
// serial (20 octets, as CAs issue them) is whole.
TEST(AcmeAri, CertIdOfTheLeafWithShortAndLongSerials) {
  const std::string chain = certPem("7f01", kRfcKeyId) + certPem("01", "other");
  auto id = acme::ariCertId(chain);
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(*id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.fwE");
  auto longSerial = acme::ariCertId(certPem("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "k"));
  ASSERT_TRUE(longSerial.ok()) << longSerial.error().message;
  EXPECT_EQ(*longSerial, "aw.ChssPU5fYHGCk6S1xtfo-QEjRWc");
}

TEST(AcmeAri, NoCertIdWithoutAnAuthorityKeyIdentifierOrACertificate) {
  auto none = acme::ariCertId(certPem("87654321", ""));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no Authority Key Identifier"), std::string::npos);
  EXPECT_FALSE(acme::ariCertId("").ok());
  EXPECT_FALSE(
      acme::ariCertId("-----BEGIN CERTIFICATE-----\nRkFLRQ==\n-----END CERTIFICATE-----\n").ok());
}

}  // namespace
}  // namespace edgeplane
