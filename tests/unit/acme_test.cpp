// The ACME client's pure cryptography against fixed vectors: base64url, the JWK and its
// RFC 7638 thumbprint (the RFC 7515 appendix A.3 P-256 key), a JWS verified back with
// OpenSSL, the CSR, the account key's path.
#include "reconciler/acme/jws.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "reconciler/acme/client.h"
#include "schema/encoding.h"
#include "schema/json_reader.h"

namespace edgeplane::acme {
namespace {

std::string unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(hexValue(hex[i]) * 16 + hexValue(hex[i + 1])));
  }
  return out;
}

std::string unb64url(std::string_view s) {
  return decodeBase64Url(s).value_or("<invalid>");
}

// The public P-256 key of RFC 7515 appendix A.3 (x, y).
Pkey rfc7515Key() {
  const std::string pub =
      "\x04" + unhex("7fcdce2770f6c45d4183cbee6fdb4b7b580733357be9ef13bacf6e3c7bd15445") +
      unhex("c7f144cd1bbd9b7e872cdfedb9eeb9f4b3695d6ea90b24ad8a4623288588e5ad");
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(ctx);
  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return Pkey(key);
}

TEST(AcmeJws, Base64url) {
  EXPECT_EQ(base64url(""), "");
  EXPECT_EQ(base64url("f"), "Zg");
  EXPECT_EQ(base64url("\xfb\xff\xfe"), "-__-");
  EXPECT_EQ(base64url("\xfb\xff"), "-_8");
}

TEST(AcmeJws, JwkAndThumbprintOfAKnownKey) {
  Pkey key = rfc7515Key();
  ASSERT_TRUE(key);
  auto jwk = jwkOf(key.get());
  ASSERT_TRUE(jwk.ok()) << jwk.error().message;
  EXPECT_EQ(*jwk, R"({"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
                  R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})");
  auto tp = jwkThumbprint(key.get());
  ASSERT_TRUE(tp.ok());
  // base64url(SHA-256) of the JWK above, computed independently.
  EXPECT_EQ(*tp, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
  auto ka = keyAuthorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", key.get());
  // (the account key's public half is all a key authorization needs)
  ASSERT_TRUE(ka.ok());
  EXPECT_EQ(
      *ka,
      "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
}

// RFC 8555 section 7.3.4 with a fixed MAC key, kid, URL and JWK. The expected parts were
// computed independently with Python:
//   key = base64.urlsafe_b64decode("zWNDZM6e…DkMTQ12W")   (the hmac_key below)
//   b64 = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=")
//   b64(hmac.new(key, b64(protected) + b"." + b64(jwk), hashlib.sha256).digest())
TEST(AcmeJws, ExternalAccountBindingKnownVector) {
  Pkey key = rfc7515Key();
  ASSERT_TRUE(key);
  auto macKey = decodeBase64Url("zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W");
  ASSERT_TRUE(macKey.has_value());
  auto eab =
      externalAccountBinding(key.get(), "kid-1", *macKey, "https://ca.test/acme/new-account");
  ASSERT_TRUE(eab.ok()) << eab.error().message;
  strict_json::Json j;
  std::string error;
  ASSERT_TRUE(strict_json::parse(*eab, j, error)) << error;
  ASSERT_EQ(j.keys, (std::vector<std::string>{"protected", "payload", "signature"}));
  EXPECT_EQ(unb64url(j.values[0].string),
            R"({"alg":"HS256","kid":"kid-1","url":"https://ca.test/acme/new-account"})");
  EXPECT_EQ(j.values[0].string,
            "eyJhbGciOiJIUzI1NiIsImtpZCI6ImtpZC0xIiwidXJsIjoiaHR0cHM6Ly9jYS50ZXN0L2FjbWUvbmV3LWFj"
            "Y291bnQifQ");
  EXPECT_EQ(unb64url(j.values[1].string), jwkOf(key.get()).value());
  EXPECT_EQ(j.values[2].string, "CNN70fgZuXUGy_8f1ejvSRGE9x8-gxLeEhOqhOVcBl4");
  // The key's bytes are what is signed with: another key, another MAC.
  auto other =
      externalAccountBinding(key.get(), "kid-1", "other key", "https://ca.test/acme/new-account");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->find("CNN70fgZuXUGy_8f1ejvSRGE9x8-gxLeEhOqhOVcBl4"), std::string::npos);
  EXPECT_FALSE(externalAccountBinding(key.get(), "kid-1", "", "https://ca.test/x").ok());
}

TEST(AcmeJws, PemRoundTripAndRefusals) {
  auto key = generateP256();
  ASSERT_TRUE(key.ok());
  auto pem = privateKeyPem(key->get());
  ASSERT_TRUE(pem.ok());
  auto back = readP256Pem(*pem);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(jwkThumbprint(back->get()).value(), jwkThumbprint(key->get()).value());
  EXPECT_FALSE(readP256Pem("not a key").ok());
  Pkey rsa(EVP_RSA_gen(2048));
  EXPECT_FALSE(jwkOf(rsa.get()).ok());
}

// The JWS verifies with OpenSSL once its raw r||s is turned back into DER (a fresh key: ECDSA
// signatures are randomised, so a fixed signature cannot be compared).
TEST(AcmeJws, SignatureVerifiesBack) {
  Pkey key = generateP256().value();
  auto header = protectedHeader(key.get(), "https://ca/acct/1", "nonce-1", "https://ca/order");
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(
      *header,
      R"({"alg":"ES256","kid":"https://ca/acct/1","nonce":"nonce-1","url":"https://ca/order"})");
  auto jws = signJws(key.get(), *header, R"({"a":1})");
  ASSERT_TRUE(jws.ok()) << jws.error().message;
  strict_json::Json j;
  std::string error;
  ASSERT_TRUE(strict_json::parse(*jws, j, error)) << error;
  ASSERT_EQ(j.keys, (std::vector<std::string>{"protected", "payload", "signature"}));
  EXPECT_EQ(unb64url(j.values[0].string), *header);
  EXPECT_EQ(unb64url(j.values[1].string), R"({"a":1})");
  const std::string raw = unb64url(j.values[2].string);
  ASSERT_EQ(raw.size(), 64U);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  const int derLen = i2d_ECDSA_SIG(sig, &der);
  const std::string input = j.values[0].string + "." + j.values[1].string;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key.get()), 1);
  EXPECT_EQ(EVP_DigestVerify(md, der, static_cast<size_t>(derLen),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  // A different payload does not verify.
  const std::string other = j.values[0].string + "." + base64url("{}");
  EXPECT_NE(EVP_DigestVerify(md, der, static_cast<size_t>(derLen),
                             reinterpret_cast<const unsigned char*>(other.data()), other.size()),
            1);
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ECDSA_SIG_free(sig);

  auto withJwk = protectedHeader(key.get(), "", "n", "u");
  ASSERT_TRUE(withJwk.ok());
  EXPECT_EQ(*withJwk,
            R"({"alg":"ES256","jwk":)" + jwkOf(key.get()).value() + R"(,"nonce":"n","url":"u"})");
  auto getJws = signJws(key.get(), *withJwk, "");
  ASSERT_TRUE(getJws.ok());
  EXPECT_NE(getJws->find(R"("payload":"")"), std::string::npos) << *getJws;  // POST-as-GET
}

TEST(AcmeJws, CsrNamesEveryDomainAndIsSigned) {
  auto key = generateP256();
  ASSERT_TRUE(key.ok());
  auto csr = buildCsr(key->get(), {"a.example.com", "b.example.com"});
  ASSERT_TRUE(csr.ok()) << csr.error().message;
  const auto* p = reinterpret_cast<const unsigned char*>(csr->data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(csr->size()));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req, key->get()), 1);
  char cn[64] = {};
  X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "a.example.com");
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  ASSERT_NE(exts, nullptr);
  auto* names =
      static_cast<GENERAL_NAMES*>(X509V3_get_d2i(exts, NID_subject_alt_name, nullptr, nullptr));
  ASSERT_NE(names, nullptr);
  std::vector<std::string> dns;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    ASSERT_EQ(n->type, GEN_DNS);
    dns.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)),
                     static_cast<size_t>(ASN1_STRING_length(n->d.dNSName)));
  }
  EXPECT_EQ(dns, (std::vector<std::string>{"a.example.com", "b.example.com"}));
  GENERAL_NAMES_free(names);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
  EXPECT_FALSE(buildCsr(key->get(), {}).ok());
}

TEST(AcmeClient, AccountKeyPathPerDirectoryAndEmail) {
  ClientSettings a{"https://ca/dir", std::nullopt, "", "/var/lib/edgeplane", ""};
  ClientSettings b{"https://ca/dir", std::string("ops@example.com"), "", "/var/lib/edgeplane", ""};
  const std::string pa = accountKeyPath(a);
  EXPECT_TRUE(pa.starts_with("/var/lib/edgeplane/acme/accounts/")) << pa;
  EXPECT_TRUE(pa.ends_with("/key.pem")) << pa;
  EXPECT_EQ(pa.size(), std::string("/var/lib/edgeplane/acme/accounts/").size() + 16 + 8);
  EXPECT_NE(pa, accountKeyPath(b));
  EXPECT_EQ(pa, accountKeyPath(a));
}

}  // namespace
}  // namespace edgeplane::acme
