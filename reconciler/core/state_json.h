// The observed host state and the store's ownership view as JSON (golden tests, status, plan).
#pragma once

#include <string>
#include <vector>

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
// One certificate's view, in the form toJson gives it, on one line; and back.
std::string certViewToJson(const core::CertView& c);
Result<core::CertView> certViewFromJson(const std::string& text);

}  // namespace edgeplane::core
