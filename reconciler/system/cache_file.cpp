// Cache files in the state directory (see cache_file.h).
#include "reconciler/system/cache_file.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>

#include <sys/stat.h>

#include <algorithm>
#include <iostream>
#include <mutex>
#include <set>

#include "reconciler/system/file_write.h"
#include "reconciler/system/wg_keys.h"
#include "schema/store.h"

namespace edgeplane::sys {
namespace {

constexpr const char* kKeyFile = "cache.mac";

// HMAC-SHA-256 of `bytes` under `key`; empty when OpenSSL fails (nothing is then read or written).
std::string seal(std::string_view bytes, const CacheKey& key) {
  std::string out(kSealBytes, '\0');
  unsigned int n = 0;
  if (HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()),
           reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
           reinterpret_cast<unsigned char*>(out.data()), &n) == nullptr ||
      n != kSealBytes) {
    return {};
  }
  return out;
}

// The caches being off makes every run load, validate and observe in full: said on stderr once
// per process and reason (the agent's journal, a command's terminal), never silently.
void warnCachesOff(const std::string& reason) {
  static std::mutex mu;
  static std::set<std::string, std::less<>> said;
  const std::lock_guard<std::mutex> lock(mu);
  if (said.insert(reason).second) {
    std::cerr << "edgeplane: warning: the caches are off (every run works without them): " << reason
              << "\n";
  }
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

Result<CacheKey> cacheKeyIn(const std::filesystem::path& stateDir) {
  struct stat st {};
  if (::stat(stateDir.c_str(), &st) != 0) {
    return terminal("no state directory " + stateDir.string());  // never made here
  }
  if (auto trusted = ensureStateDir(stateDir); !trusted) {
    warnCachesOff(trusted.error().message);
    return trusted.error();
  }
  auto secret = loadOrCreateSecret((stateDir / kKeysDir / kKeyFile).string());
  if (!secret) {
    warnCachesOff(secret.error().message);
    return secret.error();
  }
  CacheKey key;
  std::copy(secret->bytes.begin(), secret->bytes.end(), key.bytes.begin());
  OPENSSL_cleanse(secret->bytes.data(), secret->bytes.size());
  return key;
}

std::optional<std::string> readChecked(const std::filesystem::path& file, const std::string& header,
                                       const CacheKey& key) {
  auto read = readOwnFile(file.string(), header);
  if (!read || !read->has_value()) {
    return std::nullopt;
  }
  std::string bytes = std::move(**read);
  if (bytes.size() < header.size() + kSealBytes || !bytes.starts_with(header)) {
    return std::nullopt;
  }
  const size_t body = bytes.size() - kSealBytes;
  const std::string want = seal(std::string_view(bytes).substr(0, body), key);
  if (want.empty() || CRYPTO_memcmp(want.data(), bytes.data() + body, kSealBytes) != 0) {
    return std::nullopt;
  }
  bytes.resize(body);
  return bytes;
}

void writeChecked(const std::filesystem::path& file, std::string bytes, const CacheKey& key) {
  const std::string sealed = seal(bytes, key);
  if (sealed.empty()) {
    return;
  }
  bytes += sealed;
  (void)replaceFileAsThisProcess(file.string(), bytes, 0600);
}

}  // namespace edgeplane::sys
