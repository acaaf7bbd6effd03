// Which build of edgeplane this is, for caches that a rebuild must invalidate (the validated
// config, the nftables observation).
#pragma once

#include <string>

namespace edgeplane::sys {

// This build: its version and the executable's GNU build id (or, without one, the executable's
// size and modification time), so that any rebuild gives another identity. Computed once.
std::string programIdentity();

}  // namespace edgeplane::sys
