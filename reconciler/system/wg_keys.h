// WireGuard keys: X25519 generation and derivation (OpenSSL) and 0600 key files.
#pragma once

#include <optional>
#include <string>

#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::sys {

// The directory of the state directory that holds its secrets: the WireGuard private keys
// (<namespace>.key) and the cache key (cache_file.h). The proxy's unit hides it.
inline constexpr const char* kKeysDir = "keys";

// All 32 bytes zero: what both wire protocols say for "no key".
bool isZeroKey(const WgKey& key);
// RFC 7748 clamping: clear the 3 low bits, clear the top bit, set bit 254.
void clampPrivateKey(WgKey& key);
// 32 bytes from the OpenSSL private DRBG, clamped.
Result<WgKey> generatePrivateKey();
// X25519(key, 9). The scalar is clamped on the way in, as X25519 requires.
Result<WgKey> publicKeyFor(const WgKey& privateKey);

struct LoadedKey {
  WgKey privateKey;
  WgKey publicKey;
  bool created = false;  // the file did not exist and was written now
};

// Reads a private key file (as loadOrCreateKey does); a missing one is nullopt, not an error.
Result<std::optional<LoadedKey>> loadKey(const std::string& path);
// Reads a private key file: base64 and a newline, a regular file owned by the effective user,
// not group- or world-accessible. A missing file is generated (mode 0600, parent directory
// created 0700; written to a temporary file, synced, then linked into place) when allowCreate,
// else it is an error that says the key is missing. A file that exists but cannot be used is
// an error and is never replaced. Errors name the path and what is wrong, never the key.
Result<LoadedKey> loadOrCreateKey(const std::string& path, bool allowCreate);
// A 32-byte secret of this host (not a WireGuard key) kept as a key file is (base64 and a
// newline, owned by the effective user, 0600, its directory 0700), drawn from the private random
// generator the first time. Runs that make it at once agree on one: the first file linked wins.
Result<WgKey> loadOrCreateSecret(const std::string& path);
// Replaces the key file with a new key atomically (temporary file, fsync, rename).
Result<LoadedKey> rotateKey(const std::string& path);

// Reads a peer's preshared key file (`preshared_key_file`): what `wg genpsk` writes, under the
// same rules as a private key file (owned by the effective user, 0600 or 0400, no symlink).
// Errors name the path and what is wrong, never the key.
Result<WgKey> readPresharedKeyFile(const std::string& path);

}  // namespace edgeplane::sys
