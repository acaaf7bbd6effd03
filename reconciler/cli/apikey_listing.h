// `edgeplane apikey list`'s rows: the applied snapshot's keys joined with what the store and the
// proxy know of them. Pure.
#pragma once

#include <optional>
#include <vector>

#include "schema/snapshot.h"
#include "schema/store.h"

namespace edgeplane::cli {

struct ListedKey {
  SnapshotApiKey key;
  std::optional<StoredApiKey> stored;
  std::optional<ApiKeyUsage> usage;
  bool blocked = false;
};

// `u` counted on top of `into` (usage the store kept from before the proxy counted in a store
// of its own): counts add up, the last use is the newer one's (the later one's on a tie).
void addUsage(std::optional<ApiKeyUsage>& into, const ApiKeyUsage& u);

// Each of `keys`, in order, with its stored record (the last of that id), its usage (`before`
// then `live`, added up with addUsage) and whether a block names it. Joined by id in one pass
// over each list: a host may have tens of thousands of keys.
std::vector<ListedKey> joinListedKeys(const std::vector<SnapshotApiKey>& keys,
                                      const std::vector<StoredApiKey>& stored,
                                      const std::vector<ApiKeyUsage>& before,
                                      const std::vector<ApiKeyUsage>& live,
                                      const std::vector<ApiKeyBlock>& blocks);

}  // namespace edgeplane::cli
