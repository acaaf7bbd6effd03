// readPrivateKeyPem: every unencrypted PEM form of the key types edgeplane meets comes back as
// the same key; an encrypted key, a certificate or garbage is nullptr (and nothing prompts).
#include <gtest/gtest.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <string>

#include "schema/pem_key.h"

namespace edgeplane {
namespace {

using Bio = CPtr<BIO, BIO_free_all>;

std::string text(BIO* bio) {
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string pkcs8(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  return text(bio.get());
}

std::string traditional(EVP_PKEY* key) {  // "EC PRIVATE KEY", "RSA PRIVATE KEY"
  Bio bio(BIO_new(BIO_s_mem()));
  EXPECT_EQ(
      PEM_write_bio_PrivateKey_traditional(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
      1);
  return text(bio.get());
}

std::string encrypted(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  char pass[] = "secret";
  EXPECT_EQ(
      PEM_write_bio_PKCS8PrivateKey(bio.get(), key, EVP_aes_256_cbc(), pass, 6, nullptr, nullptr),
      1);
  return text(bio.get());
}

void expectSameKey(const std::string& pem, EVP_PKEY* want) {
  PrivateKey got = readPrivateKeyPem(pem);
  ASSERT_NE(got, nullptr) << pem.substr(0, pem.find('\n'));
  EXPECT_EQ(EVP_PKEY_eq(got.get(), want), 1) << pem.substr(0, pem.find('\n'));
}

TEST(PemKey, EveryUnencryptedFormOfEveryKeyTypeReadsBack) {
  PrivateKey ec(EVP_EC_gen("P-256"));
  PrivateKey ec384(EVP_EC_gen("P-384"));
  PrivateKey rsa(EVP_RSA_gen(2048));
  PrivateKey ed(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  ASSERT_TRUE(ec && ec384 && rsa && ed);
  for (EVP_PKEY* key : {ec.get(), ec384.get(), rsa.get()}) {
    expectSameKey(pkcs8(key), key);
    expectSameKey(traditional(key), key);
  }
  expectSameKey(pkcs8(ed.get()), ed.get());
  // Whatever precedes the key in a combined file does not hide it.
  expectSameKey("some comment\n" + pkcs8(ec.get()), ec.get());
}

TEST(PemKey, EncryptedKeysCertificatesAndGarbageAreRefused) {
  PrivateKey ec(EVP_EC_gen("P-256"));
  PrivateKey rsa(EVP_RSA_gen(2048));
  ASSERT_TRUE(ec && rsa);
  EXPECT_EQ(readPrivateKeyPem(encrypted(ec.get())), nullptr);
  EXPECT_EQ(readPrivateKeyPem(encrypted(rsa.get())), nullptr);
  EXPECT_EQ(readPrivateKeyPem(""), nullptr);
  EXPECT_EQ(readPrivateKeyPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            nullptr);
  std::string cut = pkcs8(ec.get());
  EXPECT_EQ(readPrivateKeyPem(cut.substr(0, cut.size() / 2)), nullptr);
  // A public key is not a private one.
  Bio bio(BIO_new(BIO_s_mem()));
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), ec.get()), 1);
  EXPECT_EQ(readPrivateKeyPem(text(bio.get())), nullptr);
}

}  // namespace
}  // namespace edgeplane
