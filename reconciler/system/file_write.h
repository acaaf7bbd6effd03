// Files that must be whole or absent after a crash (private keys, certificates): created
// exclusively with an exact mode, synced, and put in place by rename; read back without
// following a symbolic link.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

#include "schema/result.h"

namespace edgeplane::sys {

// A new file `path` (O_EXCL, O_NOFOLLOW; mode `mode` whatever the umask) holding `data`,
// synced. On failure the file is removed and `err` (when given) holds the errno.
Result<void> writeNewFile(const std::string& path, std::string_view data, mode_t mode,
                          int* err = nullptr);

// writeNewFile of `name` in the directory open as `dirFd`, whose path `dir` names it in errors:
// written there even when that path now leads elsewhere (a directory swapped for a link).
Result<void> writeNewFileAt(int dirFd, const std::string& dir, const std::string& name,
                            std::string_view data, mode_t mode);

// `data` written to `tmp` (a leftover removed first), then renamed over `path`: readers see
// the old contents or the new, never a part.
Result<void> replaceFile(const std::string& path, const std::string& tmp, std::string_view data,
                         mode_t mode);

// `data` put at `path` through a temporary file of this process (`path`.tmp.<pid>), for files
// that concurrent runs may each replace (caches): readers see the old contents or the new. Not
// synced: after a crash of the machine the file may be old, empty or torn, so every cache that
// uses this checks what it reads (a seal, or a key that a reboot changes) and takes what
// fails for a miss. Syncing cost more than the cache saves (5-10 ms for 1-2 MB).
Result<void> replaceFileAsThisProcess(const std::string& path, std::string_view data, mode_t mode);
// Removes the temporary files replaceFileAsThisProcess left in `dir`, for files whose names
// start with `prefix`, in runs killed while writing: those of processes that no longer exist. A
// live one's is its own; one whose pid was reused since is kept until that process ends too.
void removeTemporaryFilesOfDeadProcesses(const std::string& dir, std::string_view prefix);

// The contents of a file edgeplane keeps for itself (in the state directory), opened with
// O_NOFOLLOW; nullopt when it does not exist. A symbolic link or anything but a regular file
// is an error naming the path. With a `prefix`, a file that does not start with it is read no
// further than where it differs (at most prefix.size() bytes come back): a cache entry's header
// that names other inputs does not cost reading the whole entry.
Result<std::optional<std::string>> readOwnFile(const std::string& path,
                                               std::string_view prefix = {});

// fsync of a directory, after creating or renaming in it.
Result<void> fsyncDir(const std::string& dir);

}  // namespace edgeplane::sys
