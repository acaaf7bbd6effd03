// The validated-config cache (see config_cache.h).
#include "reconciler/cli/config_cache.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <future>
#include <memory>
#include <system_error>
#include <vector>

#include "reconciler/system/cache_file.h"
#include "reconciler/system/file_write.h"
#include "reconciler/system/program_identity.h"
#include "schema/chunk_memo.h"
#include "schema/desired_codec.h"
#include "schema/encoding.h"
#include "schema/loader.h"
#include "schema/store.h"
#include "schema/validate.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;

using sys::Digest;
using sys::readChecked;
using sys::writeChecked;

// The files' names (relative to the root, so another export directory of the same tree has
// the same key) and contents, each length-prefixed so no two file sets hash alike.
std::optional<Digest> filesKey(const std::vector<ConfigFile>& files, const std::string& root) {
  sys::Sha256 h;
  h.addSized(std::to_string(files.size()));
  for (const ConfigFile& f : files) {
    h.addSized(relativeToRoot(f.name, root));
    h.addSized(*f.text);
  }
  return h.finish();
}

// What an entry for these files, written by this program, starts with.
std::string entryHeader(const ConfigCache& cache, const Digest& key) {
  return "edgeplane validated config\nprogram " + cache.program + "\nstore-schema " +
         std::to_string(Store::knownSchemaVersion()) + "\ncodec " +
         std::to_string(kDesiredCodecVersion) + "\nfiles " + toHex(key.data(), key.size()) + "\n\n";
}

// The entry's Desired when it is one this program wrote for exactly these files, intact.
std::optional<Desired> lookUp(const ConfigCache& cache, const std::string& header,
                              const std::string& root) {
  const std::optional<std::string> bytes = readChecked(cache.file, header, cache.key);
  if (!bytes) {
    return std::nullopt;
  }
  return decodeDesired(std::string_view(*bytes).substr(header.size()), root);
}

// The validated-config entry for `header`'s files.
void store(const ConfigCache& cache, const std::string& header, std::string_view encoded) {
  std::string bytes;
  bytes.reserve(header.size() + encoded.size() + sys::kSealBytes);
  bytes += header;
  bytes += encoded;
  writeChecked(cache.file, std::move(bytes), cache.key);
}

std::string chunksHeader(const ConfigCache& cache) {
  return "edgeplane loaded chunks\nprogram " + cache.program + "\ncodec " +
         std::to_string(kDesiredCodecVersion) + "\n\n";
}

// The chunks an earlier miss kept (chunk_memo.h), when the file is this program's and intact: its
// bytes, and where the chunks start in them; nothing otherwise.
std::pair<std::string, size_t> readChunks(const ConfigCache& cache) {
  const std::string header = chunksHeader(cache);
  std::optional<std::string> bytes = readChecked(cache.chunks, header, cache.key);
  if (!bytes) {
    return {};
  }
  return {std::move(*bytes), header.size()};
}

void storeChunks(const ConfigCache& cache, ChunkMemo& memo) {
  if (!memo.worthStoring()) {
    return;  // no file large enough to be cut, now or before; or the file kept still serves
  }
  writeChecked(cache.chunks, memo.encodeKept(chunksHeader(cache), sys::kSealBytes), cache.key);
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

}  // namespace

CacheWrites& CacheWrites::operator=(CacheWrites&& other) noexcept {
  wait();
  pending_ = std::move(other.pending_);
  return *this;
}

void CacheWrites::wait() noexcept {
  for (std::future<void>& write : pending_) {
    try {
      if (write.valid()) {
        write.get();  // a deferred write (no thread was to be had) runs here
      }
    } catch (...) {  // std::bad_alloc while encoding: no entry, the next run misses
    }
  }
  pending_.clear();
}

std::optional<ConfigCache> configCacheIn(const fs::path& stateDir) {
  struct stat st {};
  if (stateDir.empty() || ::stat(stateDir.c_str(), &st) != 0 || !ensureStateDir(stateDir)) {
    return std::nullopt;
  }
  auto key = sys::cacheKeyIn(stateDir);
  if (!key) {
    return std::nullopt;
  }
  return ConfigCache{stateDir / "validated-config", sys::programIdentity(),
                     stateDir / "loaded-chunks", *key};
}

namespace {

// The files to load: `given`, or those on disk below `root`; nullopt (with the diagnostic) when
// there are none.
std::optional<std::vector<ConfigFile>> filesToLoad(const fs::path& root,
                                                   const std::vector<ConfigFile>* given,
                                                   Diagnostics& diags) {
  if (given == nullptr) {
    return readConfigRoot(root, diags);
  }
  if (given->empty()) {
    diags.error(SourceLoc{root.lexically_normal().string(), 0, 0}, kNoConfigFiles);
    return std::nullopt;
  }
  return *given;
}

}  // namespace

CachedLoad loadAndValidateCached(const fs::path& root, const std::optional<ConfigCache>& cache,
                                 Diagnostics& diags, CacheUse* use, size_t* chunksRecalled,
                                 const std::vector<ConfigFile>* given) {
  if (use != nullptr) {
    *use = CacheUse::None;
  }
  if (chunksRecalled != nullptr) {
    *chunksRecalled = 0;
  }
  CachedLoad out;
  auto files = filesToLoad(root, given, diags);
  if (!files) {
    auto none = std::make_shared<Desired>();
    validate(*none, diags);
    out.desired = std::move(none);
    return out;
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
      out.desired = std::make_shared<const Desired>(std::move(*hit));
      return out;
    }
    if (use != nullptr) {
      *use = CacheUse::Miss;
    }
  }
  std::shared_ptr<ChunkMemo> memo;
  if (cache && !cache->chunks.empty()) {
    auto [earlier, offset] = readChunks(*cache);
    memo = std::make_shared<ChunkMemo>(rootName, std::move(earlier), offset);
  }
  auto d = std::make_shared<Desired>(loadFiles(*files, diags, memo.get()));
  // The chunks are stored while the config is validated and after (also after diagnostics: a
  // chunk is kept only when it loaded without any, and the next run, with the mistake mended,
  // finds it).
  if (memo && chunksRecalled != nullptr) {
    *chunksRecalled = memo->recalledCount();
  }
  if (memo) {
    out.writes.add(meanwhile([c = *cache, memo] { storeChunks(c, *memo); }));
  }
  validate(*d, diags);
  std::shared_ptr<const Desired> desired = std::move(d);
  if (key && diags.empty()) {  // none from loading or validating (diagnostics only accumulate)
    // Encoded and written while the caller observes, plans and applies: the entry is for the
    // next run. The Desired is shared, and nobody changes it any more.
    out.writes.add(meanwhile([c = *cache, header = std::move(header), desired, rootName] {
      store(c, header, encodeDesired(*desired, rootName));
    }));
  }
  out.desired = std::move(desired);
  return out;
}

}  // namespace edgeplane::cli
