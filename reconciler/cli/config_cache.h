// The validated desired state of a config root, cached in the state directory by the content of
// its files: an unchanged commit or directory is not parsed and validated again.
#pragma once

#include <cstdint>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/system/cache_file.h"
#include "schema/diagnostic.h"
#include "schema/loader.h"
#include "schema/model.h"

namespace edgeplane::cli {

// Where the entry lives, and whose entries count as ours.
struct ConfigCache {
  std::filesystem::path file;  // <state-dir>/validated-config
  std::string program;         // sys::programIdentity(), unless a test says otherwise
  // <state-dir>/loaded-chunks: the chunks of large files an earlier miss loaded (chunk_memo.h);
  // empty: none are kept.
  std::filesystem::path chunks;
  // Seals both files (sys::cacheKeyIn): an entry made without it is a miss.
  sys::CacheKey key;
};

// The cache in `stateDir` when that directory exists and passes ensureStateDir's checks (owned
// by us, not writable by others) and its cache key can be read or made; nullopt otherwise: a plan
// on a laptop creates nothing.
std::optional<ConfigCache> configCacheIn(const std::filesystem::path& stateDir);

enum class CacheUse : uint8_t { None, Hit, Miss };

// The cache's writes that a load left running on another thread (the new entry, the chunks):
// they are complete on disk once wait() returns, which destroying this also does. A write that
// fails leaves no entry (the next run misses), never a partial one.
class CacheWrites {
 public:
  CacheWrites() = default;
  CacheWrites(CacheWrites&&) noexcept = default;
  CacheWrites& operator=(CacheWrites&& other) noexcept;
  CacheWrites(const CacheWrites&) = delete;
  CacheWrites& operator=(const CacheWrites&) = delete;
  ~CacheWrites() { wait(); }

  void add(std::future<void> write) { pending_.push_back(std::move(write)); }
  void wait() noexcept;

 private:
  std::vector<std::future<void>> pending_;
};

// What loadAndValidateCached gives: the desired state (never null), and the cache's writes,
// which go on while the caller uses it.
struct CachedLoad {
  std::shared_ptr<const Desired> desired;
  CacheWrites writes;
};

// loadAndValidate(root), through `cache`. The entry is used only when it was written for the
// same files (names and contents, by SHA-256), by the same program, store schema and codec
// version, and its seal (under the cache key) and encoding are intact; anything else (absent,
// corrupt, foreign) is a miss: the files are parsed and validated, and a result without diagnostics
// replaces the entry (0600, written to a temporary file and renamed; the temporary files of runs
// killed while writing are removed by the next run). That entry is encoded and written on another
// thread after validation, while the caller goes on with the run (CachedLoad::writes). On a miss, a
// chunk of a large file that an earlier miss loaded from the same text is decoded instead of parsed
// (ConfigCache::chunks; the chunks of this load replace them unless the kept ones still serve,
// ChunkMemo::worthStoring; `chunksRecalled`: how many). Only what the files alone decide is
// cached: the host's own checks (key files, certificates, this host's name) come later, on every
// run. The model holds key file paths and API-key digests, never key material.
// With `given` (the files of a Git commit's tree, configFilesOf `root`), those are loaded instead
// of what `root` holds on disk.
CachedLoad loadAndValidateCached(const std::filesystem::path& root,
                                 const std::optional<ConfigCache>& cache, Diagnostics& diags,
                                 CacheUse* use = nullptr, size_t* chunksRecalled = nullptr,
                                 const std::vector<ConfigFile>* given = nullptr);

}  // namespace edgeplane::cli
