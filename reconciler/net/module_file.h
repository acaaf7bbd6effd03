// Whether a file may be loaded as code into edgeplane, which runs as root: the file and every
// directory on its path judged on what was opened, and the build it comes from (its ELF build
// ID), read before anything of it runs.
#pragma once

#include <string>

#include "schema/result.h"

namespace edgeplane::net {

// `path` (absolute) opened read-only (close-on-exec), walking it component by component
// without following symbolic links, when every directory on the way and the file itself are
// owned by root or this process's effective user and writable by no one else (a directory
// with the sticky bit, such as /tmp, may be writable by all: no one else can replace what we
// own in it), and the file is a regular file. Else a terminal error naming the path and why.
Result<int> openTrustedFile(const std::string& path);

// The GNU build ID (the NT_GNU_BUILD_ID note, lowercase hex) of the ELF file open on `fd`;
// an error when it is not an ELF file or has no build ID.
Result<std::string> gnuBuildId(int fd);

}  // namespace edgeplane::net
