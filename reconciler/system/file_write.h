// Files that must be whole or absent after a crash (private keys, certificates): created
// exclusively with an exact mode, synced, and put in place by rename.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::sys {

// A new file `path` (O_EXCL, O_NOFOLLOW; mode `mode` whatever the umask) holding `data`,
// synced. On failure the file is removed and `err` (when given) holds the errno.
Result<void> writeNewFile(const std::string& path, std::string_view data, mode_t mode,
                          int* err = nullptr);

// `data` written to `tmp` (a leftover removed first), then renamed over `path`: readers see
// the old contents or the new, never a part.
Result<void> replaceFile(const std::string& path, const std::string& tmp, std::string_view data,
                         mode_t mode);

// fsync of a directory, after creating or renaming in it.
Result<void> fsyncDir(const std::string& dir);

}  // namespace edgeplane::sys
