// The last observed `ip edgeplane` table of each scope, kept in the state directory under the
// namespace's ruleset generation: while the kernel's generation id is the same, nothing in that
// namespace's nftables has changed, and the table need not be dumped again.
//
// Every committed nftables transaction in a namespace (by anyone: edgeplane, `nft`, another
// daemon) increments its generation; packets do not (counters, which the view leaves out). An
// entry is used only for the same boot, the same namespace (its cookie, unique in a boot), the
// same generation and the same build of edgeplane (which decides what "intact" means).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "reconciler/core/host_state.h"
#include "reconciler/system/cache_file.h"

namespace edgeplane::sys {

// What an entry is valid for.
struct NftObservationKey {
  std::string program;  // programIdentity()
  std::string bootId;   // /proc/sys/kernel/random/boot_id
  uint64_t netnsCookie = 0;
  uint32_t generation = 0;
  bool operator==(const NftObservationKey&) const = default;
};

// An observation: the table, or nullopt when the namespace has none.
using NftObservation = std::optional<core::NftTableView>;

// The entry's text: a header naming `key`, the table's state and one line per mapping. Pure.
std::string encodeNftObservation(const NftObservationKey& key, const NftObservation& seen);
// The observation `text` holds when it was written for exactly `key`; nullopt for another key
// and for anything malformed (truncated, a bad line, a count that does not match). Pure.
std::optional<NftObservation> decodeNftObservation(std::string_view text,
                                                   const NftObservationKey& key);

// This boot's id; empty when it cannot be read (then nothing is cached).
const std::string& bootId();

// The entries of one host, one file per scope in `dir` (<state-dir>/nft-observed, 0700), each
// sealed under the state directory's cache key (cache_file.h): a run skips the dump on an entry,
// so one planted by whoever cannot read keys/ must not be taken. A dir that is empty, or whose
// state directory does not exist or has no usable cache key, caches nothing. Failures to write are
// not errors: the next run dumps the table again. What this object read or wrote it also keeps
// in memory, under the same key, so a run's sync does not read back what its observe just did.
// One thread at a time.
class NftObservationCache {
 public:
  explicit NftObservationCache(std::string dir) : dir_(std::move(dir)) {}
  // The entry of `scope` when it was written for `key`. The first call of a run also removes
  // what runs killed while writing an entry left.
  std::optional<NftObservation> find(const std::string& scope, const NftObservationKey& key);
  void store(const std::string& scope, const NftObservationKey& key, const NftObservation& seen);
  void forget(const std::string& scope);

 private:
  std::string file(const std::string& scope) const;
  std::map<std::string, std::pair<NftObservationKey, NftObservation>, std::less<>> kept_;
  std::string dir_;
  bool swept_ = false;
  std::optional<bool> dirReady_;  // whether store may write, once asked
  // The key that seals the entries (nullptr: none to be had, nothing is cached); read once.
  const CacheKey* sealKey();
  std::optional<std::optional<CacheKey>> sealKey_;
};

}  // namespace edgeplane::sys
