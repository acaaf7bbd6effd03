// RFC 9773 certificate identifiers (see cert_id.h).
#include "reconciler/acme/cert_id.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "reconciler/acme/jws.h"

namespace edgeplane::acme {

Result<std::string> ariCertId(std::string_view chainPem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(chainPem.data(), static_cast<int>(chainPem.size())), BIO_free);
  if (!bio) {
    return terminal("ARI CertID: out of memory");
  }
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) {
    return terminal("ARI CertID: no certificate in the PEM");
  }
  const ASN1_OCTET_STRING* keyId = X509_get0_authority_key_id(cert.get());
  if (keyId == nullptr || ASN1_STRING_length(keyId) <= 0) {
    return terminal("ARI CertID: the certificate has no Authority Key Identifier keyIdentifier");
  }
  // The serial's DER (tag 0x02, length, content), its content kept: two's complement, minimal,
  // the sign byte included.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(cert.get());
  unsigned char* der = nullptr;
  const int len = i2d_ASN1_INTEGER(serial, &der);
  std::string serialBytes;
  if (len > 2) {
    const std::string_view all(reinterpret_cast<const char*>(der), static_cast<size_t>(len));
    const auto first = static_cast<unsigned char>(all[1]);
    // Short form: the length is the octet; long form: 0x80 | how many length octets follow.
    const size_t header = first < 0x80 ? 2 : 2 + (first & 0x7f);
    if (header < all.size()) {
      serialBytes = all.substr(header);
    }
  }
  OPENSSL_free(der);
  if (serialBytes.empty()) {
    return terminal("ARI CertID: the certificate's serial number cannot be encoded");
  }
  const std::string_view keyIdBytes(reinterpret_cast<const char*>(ASN1_STRING_get0_data(keyId)),
                                    static_cast<size_t>(ASN1_STRING_length(keyId)));
  return base64url(keyIdBytes) + "." + base64url(serialBytes);
}

}  // namespace edgeplane::acme
