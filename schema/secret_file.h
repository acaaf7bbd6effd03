// Reading a secret (a shared key, a token) from a file only its owner may read.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane {

// A secret file larger than this is refused unread: no key, token or binding file comes near it.
inline constexpr size_t kMaxSecretFileBytes = 64 * 1024;

// The file's text without its trailing newline. Refused (terminal) unless it is a regular file
// (a symbolic link to one is followed) that only its owner may read or write (0600 or stricter),
// not empty and not larger than kMaxSecretFileBytes. Checked before it is opened (nothing but a
// regular file is ever opened: not a FIFO, not a device) and again on the file opened, which
// must be the one checked. `what` names the file in messages ("webhook secret file"); the secret
// never appears in one, and no copy of it is left in freed memory.
Result<std::string> readSecretFile(const std::filesystem::path& file, std::string_view what);

}  // namespace edgeplane
