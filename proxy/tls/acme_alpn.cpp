// The RFC 8737 validation certificate and its context (see acme_alpn.h).
#include "proxy/tls/acme_alpn.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "proxy/clienthello.h"
#include "proxy/tls/context.h"
#include "schema/encoding.h"

namespace edgeplane::proxy::tls {

namespace {

using X509Ptr = CPtr<X509, X509_free>;
using PkeyPtr = CPtr<EVP_PKEY, EVP_PKEY_free>;
using ObjectPtr = CPtr<ASN1_OBJECT, ASN1_OBJECT_free>;
using OctetsPtr = CPtr<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>;
using ExtensionPtr = CPtr<X509_EXTENSION, X509_EXTENSION_free>;
using NamesPtr = CPtr<GENERAL_NAMES, GENERAL_NAMES_free>;

// The validation certificate lives for the handshakes of one challenge; a week covers any
// clock skew between the CA and this host (the CA checks the extension, not the dates).
constexpr long kValiditySeconds = 7L * 24 * 3600;

// "acme-tls/1" if the client offers it; else the handshake fails with no_application_protocol.
int selectAcmeTls(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen,
                  const unsigned char* in, unsigned int inlen, void* /*arg*/) {
  if (const unsigned char* p = findAlpnProtocol(in, inlen, kAlpnAcmeTls); p != nullptr) {
    *out = p;
    *outlen = static_cast<unsigned char>(kAlpnAcmeTls.size());
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// A hello without ALPN never gets the validation certificate either (the ALPN callback only
// runs when the extension is there).
int requireAlpn(SSL* ssl, int* alert, void* /*arg*/) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) == 1) {
    return SSL_CLIENT_HELLO_SUCCESS;
  }
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

bool addSubjectAltName(X509* cert, std::string_view domain) {
  NamesPtr names(GENERAL_NAMES_new());
  GENERAL_NAME* name = GENERAL_NAME_new();
  ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
  if (!names || name == nullptr || dns == nullptr ||
      ASN1_STRING_set(dns, domain.data(), static_cast<int>(domain.size())) != 1) {
    GENERAL_NAME_free(name);
    ASN1_IA5STRING_free(dns);
    return false;
  }
  GENERAL_NAME_set0_value(name, GEN_DNS, dns);
  if (sk_GENERAL_NAME_push(names.get(), name) == 0) {
    GENERAL_NAME_free(name);
    return false;
  }
  return X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) == 1;
}

bool addAcmeIdentifier(X509* cert, std::string_view keyAuthorization) {
  const std::string der = acmeIdentifierDer(keyAuthorization);
  ObjectPtr oid(OBJ_txt2obj(kAcmeIdentifierOid, 1));
  OctetsPtr value(ASN1_OCTET_STRING_new());
  if (!oid || !value ||
      ASN1_OCTET_STRING_set(value.get(), reinterpret_cast<const unsigned char*>(der.data()),
                            static_cast<int>(der.size())) != 1) {
    return false;
  }
  ExtensionPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool setSerial(X509* cert) {
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) {
    return false;
  }
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x01);  // positive, no leading 0
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  const bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

Result<std::pair<X509Ptr, PkeyPtr>> validationCertificate(std::string_view domain,
                                                          std::string_view keyAuthorization) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  X509Ptr cert(X509_new());
  if (!key || !cert) {
    return terminal("TLS-ALPN-01 for " + std::string(domain) + ": OpenSSL could not make a key");
  }
  time_t now = std::time(nullptr);
  X509_NAME* subject = X509_get_subject_name(cert.get());
  const std::string cn(domain);
  const bool ok =
      setSerial(cert.get()) && X509_set_version(cert.get(), 2) == 1 &&
      X509_time_adj_ex(X509_getm_notBefore(cert.get()), -1, 0, &now) != nullptr &&
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, kValiditySeconds, &now) != nullptr &&
      X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) == 1 &&
      X509_set_issuer_name(cert.get(), subject) == 1 &&
      X509_set_pubkey(cert.get(), key.get()) == 1 && addSubjectAltName(cert.get(), domain) &&
      addAcmeIdentifier(cert.get(), keyAuthorization) &&
      X509_sign(cert.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) {
    return terminal("TLS-ALPN-01 for " + cn + ": OpenSSL could not build the certificate");
  }
  return std::make_pair(std::move(cert), std::move(key));
}

}  // namespace

std::string acmeIdentifierDer(std::string_view keyAuthorization) {
  std::string der(2 + SHA256_DIGEST_LENGTH, '\0');
  der[0] = 0x04;  // OCTET STRING
  der[1] = SHA256_DIGEST_LENGTH;
  SHA256(reinterpret_cast<const unsigned char*>(keyAuthorization.data()), keyAuthorization.size(),
         reinterpret_cast<unsigned char*>(der.data() + 2));
  return der;
}

std::string dns01TxtValue(std::string_view keyAuthorization) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(keyAuthorization.data()), keyAuthorization.size(),
         md);
  return encodeBase64Url(std::string_view(reinterpret_cast<const char*>(md), sizeof md));
}

Result<SslCtxPtr> acmeTlsAlpnContext(std::string_view domain, std::string_view keyAuthorization) {
  auto made = validationCertificate(domain, keyAuthorization);
  if (!made) {
    return made.error();
  }
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    return terminal("TLS-ALPN-01: OpenSSL could not make a context");
  }
  SSL_CTX* c = ctx.get();
  const bool ok = SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) == 1 &&
                  SSL_CTX_use_certificate(c, made->first.get()) == 1 &&
                  SSL_CTX_use_PrivateKey(c, made->second.get()) == 1 &&
                  SSL_CTX_check_private_key(c) == 1;
  if (!ok) {
    return terminal("TLS-ALPN-01: OpenSSL refused the validation certificate");
  }
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_ENABLE_PARTIAL_WRITE);
  SSL_CTX_set_client_hello_cb(c, requireAlpn, nullptr);
  SSL_CTX_set_alpn_select_cb(c, selectAcmeTls, nullptr);
  return ctx;
}

}  // namespace edgeplane::proxy::tls
