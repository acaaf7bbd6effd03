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
// for the same files exported to another directory. Lines are stored counted from the line
// after `linesBefore` (the part of a file a chunk's locations lie in, see toml_chunks.h), so an
// entry decodes for the same text at another place in its file.
std::string encodeDesired(const Desired& d, std::string_view root, uint32_t linesBefore = 0);

// The Desired encodeDesired wrote, its locations put under `root` and after `linesBefore`;
// nullopt when `bytes` are not exactly one well-formed encoding (truncated, trailing bytes, a
// count larger than what is left, an enum value out of range).
std::optional<Desired> decodeDesired(std::string_view bytes, std::string_view root,
                                     uint32_t linesBefore = 0);

}  // namespace edgeplane
