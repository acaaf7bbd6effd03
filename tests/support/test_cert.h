// Self-signed ECDSA P-256 certificates made with OpenSSL in memory, for tests and fuzzers of
// the proxy's TLS code (no files committed, nothing to expire).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "schema/encoding.h"

namespace edgeplane::testing {

struct TestCertificate {
  std::string certPem;
  std::string keyPem;
  std::string fingerprint;  // lower-case hex SHA-256 of the certificate's DER
};

inline std::string memBioText(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

// `cert` as PEM.
inline std::string certificatePem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  std::string out = memBioText(bio);
  BIO_free(bio);
  return out;
}

// An Authority Key Identifier extension holding `keyId` (what an RFC 9773 CertID is made of).
inline void addAuthorityKeyId(X509* cert, const std::string& keyId) {
  AUTHORITY_KEYID* aki = AUTHORITY_KEYID_new();
  aki->keyid = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(aki->keyid, reinterpret_cast<const unsigned char*>(keyId.data()),
                        static_cast<int>(keyId.size()));
  X509_add1_ext_i2d(cert, NID_authority_key_identifier, aki, 0, X509V3_ADD_DEFAULT);
  AUTHORITY_KEYID_free(aki);
}

// A certificate for `domains` (the first one is also the CN) with a SAN extension, valid from
// an hour ago for a day, signed by its own fresh key.
inline TestCertificate makeTestCertificate(const std::vector<std::string>& domains) {
  TestCertificate out;
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), static_cast<long>(::random() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(domains[0].c_str()), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  std::string san;
  for (const std::string& d : domains) {
    san += (san.empty() ? "DNS:" : ",DNS:") + d;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str());
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(cert, key, EVP_sha256());

  out.certPem = certificatePem(cert);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  out.keyPem = memBioText(bio);
  BIO_free(bio);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  out.fingerprint = toHex(md, len);
  X509_free(cert);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace edgeplane::testing
