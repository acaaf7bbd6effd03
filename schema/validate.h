// Semantic validation of a loaded Desired: references, uniqueness, clashes, reachability.
#pragma once

#include "schema/diagnostic.h"
#include "schema/model.h"

namespace edgeplane {

// Appends every semantic error to `diags` (all of them, not just the first).
void validate(const Desired& d, Diagnostics& diags);

// The host names a config targets: the [[host]] names, or {"default"} when none is declared.
std::vector<std::string> targetHosts(const Desired& d);

}  // namespace edgeplane
