// See api_key.h.
#include "schema/api_key.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "schema/encoding.h"
#include "schema/model.h"

namespace edgeplane {

namespace {

constexpr std::string_view kIdAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

bool lowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

}  // namespace

std::optional<GeneratedApiKey> generateApiKey() {
  GeneratedApiKey out;
  // Rejection sampling keeps the id uniform over the 62 characters.
  while (out.id.size() < kApiKeyIdLength) {
    uint8_t b[16];
    if (RAND_bytes(b, sizeof b) != 1) {
      return std::nullopt;
    }
    for (uint8_t v : b) {
      if (v < 248 && out.id.size() < kApiKeyIdLength) {
        out.id.push_back(kIdAlphabet[v % kIdAlphabet.size()]);
      }
    }
  }
  uint8_t secret[kApiKeySecretBytes];
  if (RAND_bytes(secret, sizeof secret) != 1) {
    return std::nullopt;
  }
  out.key.reserve(kMaxApiKeyLength);
  out.key.append(kApiKeyPrefix).append(out.id).append(".").append(toHex(secret, sizeof secret));
  OPENSSL_cleanse(secret, sizeof secret);
  out.sha256 = apiKeyDigest(out.key);
  return out;
}

std::optional<std::string_view> apiKeyId(std::string_view key) {
  if (key.size() > kMaxApiKeyLength || !key.starts_with(kApiKeyPrefix)) {
    return std::nullopt;
  }
  key.remove_prefix(kApiKeyPrefix.size());
  size_t dot = key.find('.');
  if (dot == std::string_view::npos || dot < 4 || dot > 64) {
    return std::nullopt;
  }
  std::string_view id = key.substr(0, dot);
  std::string_view secret = key.substr(dot + 1);
  if (!isValidApiKeyId(id)) {
    return std::nullopt;
  }
  if (secret.size() != 2 * kApiKeySecretBytes) {
    return std::nullopt;
  }
  for (char c : secret) {
    if (!lowerHex(c)) {
      return std::nullopt;
    }
  }
  return id;
}

ApiKeyDigest apiKeyDigest(std::string_view key) {
  ApiKeyDigest d{};
  SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), d.data());
  return d;
}

bool digestsEqual(const ApiKeyDigest& a, const ApiKeyDigest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace edgeplane
