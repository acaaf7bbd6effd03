// The store's owned_resources rows as a StoreView and back, and the rows that turn one view into
// another.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "reconciler/core/host_state.h"
#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::core {

// The ownership view kept in the store's owned_resources: one row per applied resource,
// data = {"spec": …} plus "index" (uplinks) or "key" (forwards).
Result<core::StoreView> storeViewFromOwned(const std::vector<OwnedResource>& rows);
std::vector<OwnedResource> ownedFromStoreView(const core::StoreView& view, int64_t at);

// What turns the owned rows of `before` into those of `after`: the rows that are new or whose
// data differs (with updatedAt = at), and the (kind, name) of the rows `after` no longer has.
// Only those rows are serialised; the rest are left as they are.
struct OwnedChanges {
  std::vector<OwnedResource> put;
  std::vector<std::pair<std::string, std::string>> removed;
};
OwnedChanges ownedChanges(const core::StoreView& before, const core::StoreView& after, int64_t at);

}  // namespace edgeplane::core
