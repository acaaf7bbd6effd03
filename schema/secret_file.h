// Reading a secret (a shared key, a token) from a file only its owner may read.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane {

// The file's text without its trailing newline. Refused (terminal) unless it is a regular file
// that only its owner may read or write (0600 or stricter), and not empty. `what` names the
// file in messages ("webhook secret file"); the secret never appears in one.
Result<std::string> readSecretFile(const std::filesystem::path& file, std::string_view what);

}  // namespace edgeplane
