// The observed host state and the store's ownership view as JSON (golden tests, status, plan).
#pragma once

#include <string>

#include "reconciler/core/host_state.h"
#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::core {

struct ObservedJson {
  core::HostState host;
  core::StoreView store;
};

std::string toJson(const core::HostState& host, const core::StoreView& store);
Result<ObservedJson> observedFromJson(const std::string& text);

// The ownership view kept in the store's owned_resources: one row per applied resource,
// data = {"spec": …} plus "index" (uplinks) or "key" (forwards).
Result<core::StoreView> storeViewFromOwned(const std::vector<OwnedResource>& rows);
std::vector<OwnedResource> ownedFromStoreView(const core::StoreView& view, int64_t at);

}  // namespace edgeplane::core
