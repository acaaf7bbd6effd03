// Reading a whole file (a config, an agent file, a saved observation, /proc): the one reader of
// such files. Secrets have theirs (secret_file.h), the state directory's own files theirs
// (sys::readOwnFile); they and the WireGuard key files' reader read with readFull and readToEnd
// below.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

#include "schema/result.h"

namespace edgeplane {

// The file's bytes, read into a buffer sized by its length (and grown for files whose length
// says nothing, as /proc's). Terminal "cannot read FILE: REASON" when it cannot be opened or
// read (a directory: "Is a directory").
Result<std::string> readFileText(const std::filesystem::path& file);

// Reads from `fd` into `buf` until `want` bytes are in or the file ends (fewer came: the end),
// retrying a read that a signal interrupted. Returns 0, or the errno of a failed read; `got` is
// what was read either way.
int readFull(int fd, char* buf, size_t want, size_t& got);

// Reads `fd` to its end into `text`, after the `got` bytes already there (got <= text.size()),
// growing it (doubling) as needed; `text` is then cut to what was read. Returns 0, or the errno
// of a failed read.
int readToEnd(int fd, std::string& text, size_t got);

}  // namespace edgeplane
