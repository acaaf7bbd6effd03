// The digests of a key authorization the proxy serves: RFC 8737 TLS-ALPN-01's validation
// certificate (in a server SSL_CTX that negotiates "acme-tls/1" and nothing else) and RFC 8555
// DNS-01's TXT value.
#pragma once

#include <openssl/ssl.h>

#include <string>
#include <string_view>

#include "schema/c_ptr.h"
#include "schema/result.h"

namespace edgeplane::proxy::tls {

// id-pe-acmeIdentifier (RFC 8737 section 6.1).
inline constexpr char kAcmeIdentifierOid[] = "1.3.6.1.5.5.7.1.31";

using SslCtxPtr = CPtr<SSL_CTX, SSL_CTX_free>;

// The extension's value (extnValue's content): the DER of Authorization ::= OCTET STRING
// (SIZE (32)) holding SHA-256 of the key authorization, 0x04 0x20 || digest.
std::string acmeIdentifierDer(std::string_view keyAuthorization);

// DNS-01's TXT record value: base64url(SHA-256(key authorization)) (RFC 8555 section 8.4).
std::string dns01TxtValue(std::string_view keyAuthorization);

// A fresh P-256 key and a self-signed certificate whose only subjectAltName is `domain` (a
// dNSName) and that carries the critical acmeIdentifier extension, in a context for TLS 1.2
// and 1.3 that selects "acme-tls/1" and fails a handshake that does not offer it (RFC 8737
// section 3). No session tickets or cache: each validation is one fresh handshake.
Result<SslCtxPtr> acmeTlsAlpnContext(std::string_view domain, std::string_view keyAuthorization);

}  // namespace edgeplane::proxy::tls
