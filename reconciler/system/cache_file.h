// Cache files in the state directory: an entry's key is a SHA-256 of what it was computed from,
// its file starts with a header naming that and ends with a seal (HMAC-SHA-256 under a key kept
// in keys/), and it is replaced whole.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "schema/result.h"

namespace edgeplane::sys {

using Digest = std::array<uint8_t, 32>;
// The size of the seal at the end of a cache file.
inline constexpr size_t kSealBytes = 32;

// The key that seals a state directory's cache files: 32 random bytes in
// <state-dir>/keys/cache.mac (0600), made on first use. A run applies what a cache gives
// without parsing or judging it again, and whoever can write the state directory but not read
// keys/ (the proxy, whose unit hides keys/, parses the Internet's TLS and HTTP) must not be
// able to write an entry a run takes.
struct CacheKey {
  Digest bytes{};
};
// An error when the state directory is missing (it is not made here) or fails ensureStateDir's
// checks, or the key file cannot be read or made (keys/ open to others, a key file that is not
// one): then nothing is cached, which is said on stderr once per process and reason.
Result<CacheKey> cacheKeyIn(const std::filesystem::path& stateDir);

// SHA-256 of what is added, for a cache key.
class Sha256 {
 public:
  Sha256();
  void add(std::string_view bytes);
  // `bytes` after its length ("<size>:"): a sequence of these hashes like no other sequence.
  void addSized(std::string_view bytes);
  // nullopt when OpenSSL failed somewhere: then nothing is cached.
  std::optional<Digest> finish();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
  bool ok_ = false;
};

// A cache file as writeChecked wrote it with `key`: its bytes without the seal, when it starts
// with `header` and the seal holds; nullopt otherwise (absent, damaged, another program's, made
// without the key).
std::optional<std::string> readChecked(const std::filesystem::path& file, const std::string& header,
                                       const CacheKey& key);
// `bytes` (starting with their header) and their seal under `key`, replacing `file` whole (0600,
// a temporary file of this process, renamed): a reader sees the old file or the new one. A
// failure is not an error: the next run computes again. The seal is appended to `bytes`: with
// kSealBytes of room left in them, a file of megabytes is not copied in memory first.
void writeChecked(const std::filesystem::path& file, std::string bytes, const CacheKey& key);

}  // namespace edgeplane::sys
