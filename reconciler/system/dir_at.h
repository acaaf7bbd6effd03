// Directories opened one level at a time without following symbolic links, and their entries
// listed, made and removed relative to the open directory rather than by a path that could be
// swapped meanwhile (for directories others may write: a taken-over proxy writes the state
// directory and could point a subdirectory at /etc).
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <string>
#include <vector>

#include "schema/result.h"

namespace edgeplane::sys {

// How a directory is opened here: for reading, a directory, never through a link.
inline constexpr int kDirFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;

// The message for a symbolic link found where a directory of ours should be.
std::string symlinkRefused(const std::string& path);

// `name` in the directory open as `parentFd` (`path` in messages), opened as a directory (the
// caller closes it); with `create`, made 0755 first when missing. -1: it does not exist (without
// `create`). A link in its place is an error (symlinkRefused).
Result<int> openDirAt(int parentFd, const std::string& name, const std::string& path, bool create);

// The names in the directory open as `fd` (`path` in messages), but . and ..
Result<std::vector<std::string>> namesIn(int fd, const std::string& path);

// The type (S_IFMT bits) of `name` in the directory open as `dirFd`, not following a link; 0:
// none.
mode_t typeAt(int dirFd, const std::string& name);

// Removes `name` in the directory open as `dirFd` (`path` in messages), with all it holds when
// it is a directory. A symbolic link is removed itself, never followed; absent is done.
Result<void> removeAt(int dirFd, const std::string& name, const std::string& path);

}  // namespace edgeplane::sys
