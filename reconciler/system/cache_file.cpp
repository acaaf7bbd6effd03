// Cache files in the state directory (see cache_file.h).
#include "reconciler/system/cache_file.h"

#include <cstring>

#include "reconciler/system/file_write.h"

namespace edgeplane::sys {
namespace {

// The file's checksum: against a damaged file (a torn disk block, a bit flip), not an
// attacker: whoever can write the state directory can replace the store and the keys too, and
// ensureStateDir refuses a directory others can write. A word at a time (murmur-style mixing),
// so a hit does not cost a SHA-256 over the whole entry.
uint64_t checksum(std::string_view bytes) {
  constexpr uint64_t kMul1 = 0x87c37b91114253d5ULL;
  constexpr uint64_t kMul2 = 0x4cf5ad432745937fULL;
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ bytes.size();
  auto mix = [&](uint64_t w) {
    w *= kMul1;
    w = (w << 31) | (w >> 33);
    w *= kMul2;
    h ^= w;
    h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
  };
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, 8);
    mix(w);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, bytes.data() + i, bytes.size() - i);
  mix(tail);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

std::string checksumText(std::string_view bytes) {
  const uint64_t sum = checksum(bytes);
  std::array<uint8_t, kChecksumBytes> raw{};
  for (size_t i = 0; i < raw.size(); ++i) {
    raw[i] = static_cast<uint8_t>(sum >> (8 * i));
  }
  return {reinterpret_cast<const char*>(raw.data()), raw.size()};
}

}  // namespace

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
}

void Sha256::add(std::string_view bytes) {
  ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) == 1;
}

void Sha256::addSized(std::string_view bytes) {
  add(std::to_string(bytes.size()) + ":");
  add(bytes);
}

std::optional<Digest> Sha256::finish() {
  Digest d{};
  unsigned int n = 0;
  ok_ = ok_ && EVP_DigestFinal_ex(ctx_.get(), d.data(), &n) == 1 && n == d.size();
  return ok_ ? std::optional(d) : std::nullopt;
}

std::optional<std::string> readChecked(const std::filesystem::path& file,
                                       const std::string& header) {
  auto read = readOwnFile(file.string(), header);
  if (!read || !read->has_value()) {
    return std::nullopt;
  }
  std::string bytes = std::move(**read);
  if (bytes.size() < header.size() + kChecksumBytes || !bytes.starts_with(header)) {
    return std::nullopt;
  }
  const size_t body = bytes.size() - kChecksumBytes;
  if (checksumText(std::string_view(bytes).substr(0, body)) != bytes.substr(body)) {
    return std::nullopt;
  }
  bytes.resize(body);
  return bytes;
}

void writeChecked(const std::filesystem::path& file, std::string bytes) {
  bytes += checksumText(bytes);
  (void)replaceFileAsThisProcess(file.string(), bytes, 0600);
}

}  // namespace edgeplane::sys
