// Worker-gateway API keys: the key's text form, its public id and its verifier (SHA-256).
//
// A key is "ep_" + id + "." + 64 lower-case hex digits (256 random bits), e.g.
// "ep_k7Hq2xPz.9f2c…". The id is its public part (8 letters and digits when generated here;
// a config may name any id of 4-64 of [A-Za-z0-9_-]); Git and the store hold only the id and
// the SHA-256 of the whole key text. The proxy finds a key by id, then compares digests in
// constant time. Shared by `edgeplane apikey new` and the proxy's gateway filter.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace edgeplane {

inline constexpr std::string_view kApiKeyPrefix = "ep_";
inline constexpr size_t kApiKeyIdLength = 8;      // generated ids
inline constexpr size_t kApiKeySecretBytes = 32;  // 256 bits
inline constexpr size_t kMaxApiKeyLength = 3 + 64 + 1 + 64;

using ApiKeyDigest = std::array<uint8_t, 32>;

struct GeneratedApiKey {
  std::string key;  // shown once, stored nowhere
  std::string id;
  ApiKeyDigest sha256{};
};

// A fresh key from the OS CSPRNG (OpenSSL RAND_bytes); nullopt when it fails.
std::optional<GeneratedApiKey> generateApiKey();

// The id of a well-formed key text; nullopt for anything else (no "ep_" prefix, no '.',
// an id outside [A-Za-z0-9_-]{4,64}, a secret that is not 64 lower-case hex digits).
std::optional<std::string_view> apiKeyId(std::string_view key);

ApiKeyDigest apiKeyDigest(std::string_view key);

// Constant-time equality of two digests (CRYPTO_memcmp).
bool digestsEqual(const ApiKeyDigest& a, const ApiKeyDigest& b);

}  // namespace edgeplane
