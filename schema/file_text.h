// Reading a whole file (a config, an agent file, a saved observation, /proc): the one reader of
// such files. Secrets have theirs (secret_file.h), the state directory's own files theirs
// (sys::readOwnFile).
#pragma once

#include <filesystem>
#include <string>

#include "schema/result.h"

namespace edgeplane {

// The file's bytes, read into a buffer sized by its length (and grown for files whose length
// says nothing, as /proc's). Terminal "cannot read FILE: REASON" when it cannot be opened or
// read (a directory: "Is a directory").
Result<std::string> readFileText(const std::filesystem::path& file);

}  // namespace edgeplane
