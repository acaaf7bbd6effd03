// RFC 8555's cryptography, pure: ES256 keys, JWK (RFC 7517) and its thumbprint (RFC 7638), the
// flattened JWS of every ACME request (RFC 7515, raw r||s signature), the CSR of a finalize.
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "schema/pem_key.h"
#include "schema/result.h"

namespace edgeplane::acme {

using Pkey = PrivateKey;

// base64url without padding (RFC 7515 section 2).
std::string base64url(std::string_view bytes);

// A fresh P-256 key.
Result<Pkey> generateP256();
// PKCS#8 PEM of a private key, and back (a P-256 key only; an encrypted one is refused).
Result<std::string> privateKeyPem(EVP_PKEY* key);
Result<Pkey> readP256Pem(std::string_view pem);

// The public JWK of a P-256 key with its members in lexicographic order and no whitespace:
// {"crv":"P-256","kty":"EC","x":"…","y":"…"} - the form RFC 7638 hashes.
Result<std::string> jwkOf(EVP_PKEY* key);
// base64url(SHA-256(jwkOf(key))).
Result<std::string> jwkThumbprint(EVP_PKEY* key);
// RFC 8555 section 8.1: token "." thumbprint.
Result<std::string> keyAuthorization(std::string_view token, EVP_PKEY* key);

// A flattened JWS JSON object {"protected","payload","signature"} signed with ES256.
// `protectedJson` is the protected header as JSON text; `payload` the payload bytes (empty:
// a POST-as-GET).
Result<std::string> signJws(EVP_PKEY* key, std::string_view protectedJson,
                            std::string_view payload);

// RFC 8555 section 7.3.4: the `externalAccountBinding` of a newAccount, a flattened JWS signed
// HS256 with the CA's MAC key (raw bytes): protected {"alg":"HS256","kid":<kid>,"url":<url>},
// payload the account key's JWK (jwkOf, the same as the outer JWS's).
Result<std::string> externalAccountBinding(EVP_PKEY* account, std::string_view kid,
                                           std::string_view macKey, std::string_view url);

// The protected header of an ACME request: with `kid` empty, the account key's "jwk"
// (newAccount), else "kid".
Result<std::string> protectedHeader(EVP_PKEY* key, std::string_view kid, std::string_view nonce,
                                    std::string_view url);

// A DER PKCS#10 request signed by `key` for `domains` (subjectAltName DNS names; CN = the first).
Result<std::string> buildCsr(EVP_PKEY* key, const std::vector<std::string>& domains);

}  // namespace edgeplane::acme
