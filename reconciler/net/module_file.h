// Whether a file may be loaded as code into edgeplane, which runs as root: opened once, and
// judged on what was opened, so that what is loaded is what was judged.
#pragma once

#include <string>

#include "schema/result.h"

namespace edgeplane::net {

// `path` opened read-only (close-on-exec) when it is a regular file owned by root or by this
// process's effective user, and writable by neither its group nor others; else a terminal
// error that names the file and the reason.
Result<int> openTrustedFile(const std::string& path);

}  // namespace edgeplane::net
