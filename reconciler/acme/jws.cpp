// ES256 JWS, JWK thumbprints and CSRs with OpenSSL 3 (see jws.h).
#include "reconciler/acme/jws.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "schema/c_ptr.h"
#include "schema/encoding.h"
#include "schema/json_text.h"

namespace edgeplane::acme {
namespace {

using BioPtr = CPtr<BIO, BIO_free_all>;
using BnPtr = CPtr<BIGNUM, BN_free>;
using MdCtxPtr = CPtr<EVP_MD_CTX, EVP_MD_CTX_free>;
using SigPtr = CPtr<ECDSA_SIG, ECDSA_SIG_free>;
using ReqPtr = CPtr<X509_REQ, X509_REQ_free>;
using ExtsPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), void (*)(STACK_OF(X509_EXTENSION)*)>;

bool isP256(EVP_PKEY* key) {
  char group[32] = {};
  size_t len = 0;
  return key != nullptr && EVP_PKEY_is_a(key, "EC") == 1 &&
         EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                        &len) == 1 &&
         std::string_view(group, len) == "prime256v1";
}

Result<std::string> coordinate(EVP_PKEY* key, const char* param) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, param, &raw) != 1) {
    return terminal("cannot read the account key's public point");
  }
  BnPtr bn(raw);
  std::string out(32, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), 32) != 32) {
    return terminal("the account key's public point does not fit P-256");
  }
  return out;
}

// The flattened JWS JSON of base64url'd parts.
std::string flattenedJws(const std::string& prot, const std::string& body, std::string_view sig) {
  return R"({"protected":")" + prot + R"(","payload":")" + body + R"(","signature":")" +
         base64url(sig) + R"("})";
}

void freeExts(STACK_OF(X509_EXTENSION) * s) {
  sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
}

}  // namespace

std::string base64url(std::string_view bytes) {
  return encodeBase64Url(bytes);
}

Result<Pkey> generateP256() {
  Pkey key(EVP_EC_gen("P-256"));
  if (!key) {
    return terminal("OpenSSL could not generate a P-256 key");
  }
  return key;
}

Result<std::string> privateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return terminal("OpenSSL could not encode a private key");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

Result<Pkey> readP256Pem(std::string_view pem) {
  Pkey key = readPrivateKeyPem(pem);
  if (!key || !isP256(key.get())) {
    return terminal("not an unencrypted PEM P-256 private key");
  }
  return key;
}

Result<std::string> jwkOf(EVP_PKEY* key) {
  if (!isP256(key)) {
    return terminal("the account key is not a P-256 key");
  }
  auto x = coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X);
  auto y = coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!x || !y) {
    return !x ? x.error() : y.error();
  }
  return R"({"crv":"P-256","kty":"EC","x":")" + base64url(*x) + R"(","y":")" + base64url(*y) +
         R"("})";
}

Result<std::string> jwkThumbprint(EVP_PKEY* key) {
  auto jwk = jwkOf(key);
  if (!jwk) {
    return jwk.error();
  }
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(jwk->data()), jwk->size(), md);
  return base64url(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

Result<std::string> keyAuthorization(std::string_view token, EVP_PKEY* key) {
  auto tp = jwkThumbprint(key);
  if (!tp) {
    return tp.error();
  }
  return std::string(token) + "." + *tp;
}

Result<std::string> signJws(EVP_PKEY* key, std::string_view protectedJson,
                            std::string_view payload) {
  const std::string prot = base64url(protectedJson);
  const std::string body = base64url(payload);
  const std::string input = prot + "." + body;
  // One call with a buffer of the key's maximum signature size: a first call asking for the
  // size would already digest the input, and a second one would sign it twice over.
  MdCtxPtr md(EVP_MD_CTX_new());
  std::string der(static_cast<size_t>(std::max(EVP_PKEY_get_size(key), 0)), '\0');
  size_t derLen = der.size();
  if (!md || der.empty() ||
      EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &derLen,
                     reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1) {
    return terminal("OpenSSL could not sign the ACME request");
  }
  // JWS wants the raw 64-byte r||s, not the DER ECDSA-Sig-Value OpenSSL returns.
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  SigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(derLen)));
  if (!sig) {
    return terminal("OpenSSL returned a malformed ECDSA signature");
  }
  std::string raw(64, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out + 32, 32) != 32) {
    return terminal("OpenSSL returned an ECDSA signature too long for P-256");
  }
  return flattenedJws(prot, body, raw);
}

Result<std::string> externalAccountBinding(EVP_PKEY* account, std::string_view kid,
                                           std::string_view macKey, std::string_view url) {
  auto jwk = jwkOf(account);
  if (!jwk) {
    return jwk.error();
  }
  std::string header = R"({"alg":"HS256","kid":)";
  appendJsonString(header, kid);
  header += R"(,"url":)";
  appendJsonString(header, url);
  header += "}";
  const std::string prot = base64url(header);
  const std::string body = base64url(*jwk);
  const std::string input = prot + "." + body;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int macLen = 0;
  if (macKey.empty() || HMAC(EVP_sha256(), macKey.data(), static_cast<int>(macKey.size()),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size(),
                             mac, &macLen) == nullptr) {
    return terminal("OpenSSL could not sign the external account binding");
  }
  return flattenedJws(prot, body, std::string_view(reinterpret_cast<const char*>(mac), macLen));
}

Result<std::string> protectedHeader(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                    std::string_view url) {
  std::string out = R"({"alg":"ES256",)";
  if (kid.empty()) {
    auto jwk = jwkOf(key);
    if (!jwk) {
      return jwk.error();
    }
    out += R"("jwk":)" + *jwk;
  } else {
    out += R"("kid":)";
    appendJsonString(out, kid);
  }
  out += R"(,"nonce":)";
  appendJsonString(out, nonce);
  out += R"(,"url":)";
  appendJsonString(out, url);
  out += "}";
  return out;
}

Result<std::string> buildCsr(EVP_PKEY* key, const std::vector<std::string>& domains) {
  if (domains.empty()) {
    return terminal("a certificate request needs at least one domain");
  }
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1) {
    return terminal("OpenSSL could not start a certificate request");
  }
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  const auto* cn = reinterpret_cast<const unsigned char*>(domains.front().c_str());
  std::string san;
  for (const auto& d : domains) {
    san += (san.empty() ? "DNS:" : ",DNS:") + d;
  }
  ExtsPtr exts(sk_X509_EXTENSION_new_null(), freeExts);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, san.c_str());
  if (ext == nullptr || !exts || sk_X509_EXTENSION_push(exts.get(), ext) == 0) {
    X509_EXTENSION_free(ext);
    return terminal("OpenSSL could not encode the subjectAltName of " + domains.front());
  }
  if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, cn, -1, -1, 0) != 1 ||
      X509_REQ_add_extensions(req.get(), exts.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key) != 1 ||
      X509_REQ_sign(req.get(), key, EVP_sha256()) <= 0) {
    return terminal("OpenSSL could not build the certificate request for " + domains.front());
  }
  const int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) {
    return terminal("OpenSSL could not encode the certificate request");
  }
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &p);
  return der;
}

}  // namespace edgeplane::acme
