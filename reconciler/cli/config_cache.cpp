// The validated-config cache (see config_cache.h).
#include "reconciler/cli/config_cache.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <future>
#include <memory>
#include <system_error>
#include <vector>

#include "reconciler/system/file_write.h"
#include "reconciler/system/program_identity.h"
#include "schema/chunk_memo.h"
#include "schema/desired_codec.h"
#include "schema/loader.h"
#include "schema/net.h"
#include "schema/store.h"
#include "schema/validate.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

constexpr size_t kDigestBytes = 32;
constexpr size_t kChecksumBytes = 8;

using Digest = std::array<uint8_t, kDigestBytes>;

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) {
    ok_ = ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) == 1;
  }
  void add(std::string_view bytes) {
    ok_ = ok_ && EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()) == 1;
  }
  // nullopt when OpenSSL failed somewhere: then nothing is cached.
  std::optional<Digest> finish() {
    Digest d{};
    unsigned int n = 0;
    ok_ = ok_ && EVP_DigestFinal_ex(ctx_.get(), d.data(), &n) == 1 && n == d.size();
    return ok_ ? std::optional(d) : std::nullopt;
  }

 private:
  struct Free {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
  bool ok_ = false;
};

// The files' names (relative to the root, so another export directory of the same tree has
// the same key) and contents, each length-prefixed so no two file sets hash alike.
std::optional<Digest> filesKey(const std::vector<ConfigFile>& files, const std::string& root) {
  Sha256 h;
  auto addSized = [&h](std::string_view s) {
    const std::string size = std::to_string(s.size()) + ":";
    h.add(size);
    h.add(s);
  };
  addSized(std::to_string(files.size()));
  for (const ConfigFile& f : files) {
    addSized(relativeToRoot(f.name, root));
    addSized(*f.text);
  }
  return h.finish();
}

// What an entry for these files, written by this program, starts with.
std::string entryHeader(const ConfigCache& cache, const Digest& key) {
  return "edgeplane validated config\nprogram " + cache.program + "\nstore-schema " +
         std::to_string(Store::knownSchemaVersion()) + "\ncodec " +
         std::to_string(kDesiredCodecVersion) + "\nfiles " + toHex(key.data(), key.size()) + "\n\n";
}

// The entry's checksum: against a damaged file (a torn disk block, a bit flip), not an
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

// The entry's Desired when it is one this program wrote for exactly these files, intact.
// A cache file as writeChecked wrote it: its bytes without the checksum, when it starts with
// `header` and the checksum holds; nullopt otherwise (absent, damaged, another program's).
std::optional<std::string> readChecked(const fs::path& file, const std::string& header) {
  auto read = sys::readOwnFile(file.string());
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

// `bytes` (starting with their header) and their checksum, replacing `file` whole (a temporary
// file of this process, renamed): a reader sees the old file or the new one. A failure is not
// an error: the next run parses again.
void writeChecked(const fs::path& file, std::string bytes) {
  bytes += checksumText(bytes);
  (void)sys::replaceFileAsThisProcess(file.string(), bytes, 0600);
}

std::optional<Desired> lookUp(const ConfigCache& cache, const std::string& header,
                              const std::string& root) {
  const std::optional<std::string> bytes = readChecked(cache.file, header);
  if (!bytes) {
    return std::nullopt;
  }
  return decodeDesired(std::string_view(*bytes).substr(header.size()), root);
}

// The validated-config entry for `header`'s files.
void store(const ConfigCache& cache, const std::string& header, std::string_view encoded) {
  std::string bytes;
  bytes.reserve(header.size() + encoded.size() + kChecksumBytes);
  bytes += header;
  bytes += encoded;
  writeChecked(cache.file, std::move(bytes));
}

std::string chunksHeader(const ConfigCache& cache) {
  return "edgeplane loaded chunks\nprogram " + cache.program + "\ncodec " +
         std::to_string(kDesiredCodecVersion) + "\n\n";
}

// The chunks the last miss kept (chunk_memo.h), when the file is this program's and intact: its
// bytes, and where the chunks start in them; nothing otherwise.
std::pair<std::string, size_t> readChunks(const ConfigCache& cache) {
  const std::string header = chunksHeader(cache);
  std::optional<std::string> bytes = readChecked(cache.chunks, header);
  if (!bytes) {
    return {};
  }
  return {std::move(*bytes), header.size()};
}

void storeChunks(const ConfigCache& cache, ChunkMemo& memo) {
  if (memo.keptCount() == 0 && memo.earlierCount() == 0) {
    return;  // no file large enough to be cut, now or before
  }
  writeChecked(cache.chunks, chunksHeader(cache) + memo.encodeKept());
}

// `f` run on another thread, or (no thread to be had) when its result is asked for.
template <typename F>
auto meanwhile(F f) -> std::future<decltype(f())> {
  try {
    return std::async(std::launch::async, std::move(f));
  } catch (const std::system_error&) {
    return std::async(std::launch::deferred, std::move(f));
  }
}

// validate(d), while `d` is encoded for the cache on another thread (both only read it): the
// encoding, or nullopt when the config has diagnostics and is not to be cached.
std::optional<std::string> validateAndEncode(const Desired& d, const std::string& root,
                                             Diagnostics& diags) {
  std::future<std::string> encoded = meanwhile([&d, &root] { return encodeDesired(d, root); });
  validate(d, diags);
  std::string bytes = encoded.get();
  if (!diags.empty()) {
    return std::nullopt;
  }
  return bytes;
}

}  // namespace

std::optional<ConfigCache> configCacheIn(const fs::path& stateDir) {
  struct stat st {};
  if (stateDir.empty() || ::stat(stateDir.c_str(), &st) != 0 || !ensureStateDir(stateDir)) {
    return std::nullopt;
  }
  return ConfigCache{stateDir / "validated-config", sys::programIdentity(),
                     stateDir / "loaded-chunks"};
}

Desired loadAndValidateCached(const fs::path& root, const std::optional<ConfigCache>& cache,
                              Diagnostics& diags, CacheUse* use, size_t* chunksRecalled) {
  if (use != nullptr) {
    *use = CacheUse::None;
  }
  if (chunksRecalled != nullptr) {
    *chunksRecalled = 0;
  }
  auto files = readConfigRoot(root, diags);
  if (!files) {
    Desired none;
    validate(none, diags);
    return none;
  }
  std::optional<Digest> key;
  const std::string rootName = root.lexically_normal().string();
  const bool readable = std::all_of(files->begin(), files->end(),
                                    [](const ConfigFile& f) { return f.text.has_value(); });
  if (cache && readable) {
    key = filesKey(*files, rootName);
  }
  std::string header;
  if (cache) {
    sys::removeTemporaryFilesOfDeadProcesses(cache->file.parent_path(),
                                             cache->file.filename().string());
    if (!cache->chunks.empty()) {
      sys::removeTemporaryFilesOfDeadProcesses(cache->chunks.parent_path(),
                                               cache->chunks.filename().string());
    }
  }
  if (key) {
    header = entryHeader(*cache, *key);
    if (auto hit = lookUp(*cache, header, rootName)) {
      if (use != nullptr) {
        *use = CacheUse::Hit;
      }
      return std::move(*hit);
    }
    if (use != nullptr) {
      *use = CacheUse::Miss;
    }
  }
  std::optional<ChunkMemo> memo;
  if (cache && !cache->chunks.empty()) {
    auto [earlier, offset] = readChunks(*cache);
    memo.emplace(rootName, std::move(earlier), offset);
  }
  Desired d = loadFiles(*files, diags, memo ? &*memo : nullptr);
  // The chunks are stored while the config is validated (also after diagnostics: a chunk is
  // kept only when it loaded without any, and the next run, with the mistake mended, finds it).
  std::future<void> chunksStored;
  if (memo && chunksRecalled != nullptr) {
    *chunksRecalled = memo->recalledCount();
  }
  if (memo) {
    chunksStored = meanwhile([&cache, &memo] { storeChunks(*cache, *memo); });
  }
  if (!key || !diags.empty()) {
    validate(d, diags);
  } else if (auto encoded = validateAndEncode(d, rootName, diags)) {
    store(*cache, header, *encoded);
  }
  if (chunksStored.valid()) {
    chunksStored.get();
  }
  return d;
}

}  // namespace edgeplane::cli
