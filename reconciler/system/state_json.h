// The observed host state and the store's ownership view as JSON (golden tests, status, plan).
#pragma once

#include <string>

#include "reconciler/core/host_state.h"
#include "schema/result.h"

namespace edgeplane::sys {

struct ObservedJson {
  core::HostState host;
  core::StoreView store;
};

std::string toJson(const core::HostState& host, const core::StoreView& store);
Result<ObservedJson> observedFromJson(const std::string& text);

}  // namespace edgeplane::sys
