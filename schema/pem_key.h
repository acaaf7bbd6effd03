// Private keys from PEM text, read once for every program: the certificate store, the ACME
// account key and the proxy's TLS contexts.
#pragma once

#include <openssl/evp.h>

#include <string_view>

#include "schema/c_ptr.h"

namespace edgeplane {

using PrivateKey = CPtr<EVP_PKEY, EVP_PKEY_free>;

// An unencrypted PEM private key ("PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", …), or
// nullptr: an encrypted key is refused, never prompted for. EC keys (what edgeplane writes) are
// tried first with OpenSSL's decoder for EC alone: the generic one tries every key type and
// costs about five times as much (0.43 against 0.09 ms for a P-256 key), and a run reads the
// key of every certificate on the host.
PrivateKey readPrivateKeyPem(std::string_view pem);

}  // namespace edgeplane
