// A binary form of a validated Desired, for the reconciler's cache of validated configs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "schema/model.h"

namespace edgeplane {

// Bumped whenever the model or this encoding changes: an entry of another version is foreign.
inline constexpr uint32_t kDesiredCodecVersion = 2;

// Every field of `d`, source locations included. A location in a file under `root` (as
// loadDirectory names them, "root/relative") is stored relative to it, so an entry decodes
// for the same files exported to another directory.
std::string encodeDesired(const Desired& d, std::string_view root);

// The Desired encodeDesired wrote, its locations put under `root`; nullopt when `bytes` are not
// exactly one well-formed encoding (truncated, trailing bytes, a count larger than what is
// left, an enum value out of range).
std::optional<Desired> decodeDesired(std::string_view bytes, std::string_view root);

}  // namespace edgeplane
