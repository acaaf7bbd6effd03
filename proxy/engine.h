// Kept so existing includes of the engine's public API keep working; see proxy/engine/engine.h.
#pragma once

#include "proxy/engine/engine.h"  // IWYU pragma: export
