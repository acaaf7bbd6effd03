// Cache files in the state directory: an entry's key is a SHA-256 of what it was computed from,
// its file starts with a header naming that and ends with a checksum, and it is replaced whole.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <openssl/evp.h>

namespace edgeplane::sys {

using Digest = std::array<uint8_t, 32>;
// The size of the checksum at the end of a cache file.
inline constexpr size_t kChecksumBytes = 8;

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

// A cache file as writeChecked wrote it: its bytes without the checksum, when it starts with
// `header` and the checksum holds; nullopt otherwise (absent, damaged, another program's).
std::optional<std::string> readChecked(const std::filesystem::path& file,
                                       const std::string& header);
// `bytes` (starting with their header) and their checksum, replacing `file` whole (0600, a
// temporary file of this process, renamed): a reader sees the old file or the new one. A failure
// is not an error: the next run computes again.
void writeChecked(const std::filesystem::path& file, std::string bytes);

}  // namespace edgeplane::sys
