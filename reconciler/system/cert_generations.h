// A certificate directory's generations (certs/<name>/<16 hex digits>/): each written whole
// and synced, made current by one rename of the `current` symlink, the older ones pruned. All
// through the certificate directory open as a descriptor (dir_at.h).
#pragma once

#include <string>

#include "schema/result.h"

namespace edgeplane::sys {

// The symlink naming the generation served, and the file of a copied "files" pair that names
// its source files.
inline constexpr const char* kCurrent = "current";
inline constexpr const char* kSource = "source";

// A new generation `gen` (0700) in the certificate directory open as `dirFd` (`dir` in
// messages): key.pem (0600), cert.pem and, when `source` is not empty, the source file, written
// whole and synced.
Result<void> writeGeneration(int dirFd, const std::string& dir, const std::string& gen,
                             const std::string& certPem, const std::string& keyPem,
                             const std::string& source);

// Points `current` in the directory open as `dirFd` (`dir` in messages) at `gen`, by one
// rename of a symlink; the generation it named before ("" when none).
Result<std::string> switchCurrent(int dirFd, const std::string& dir, const std::string& gen);

// Removes the generations in the directory open as `dirFd` but `gen` and `previous`: older
// ones no snapshot names any more. Directories only: a link planted here is not followed. Best
// effort: the next install tries again.
void pruneGenerations(int dirFd, const std::string& dir, const std::string& gen,
                      const std::string& previous);

}  // namespace edgeplane::sys
