// Loads a config root: every *.toml below it (sorted, recursive), merged into one Desired.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/diagnostic.h"
#include "schema/model.h"

namespace edgeplane {

// Reads one TOML document (already in memory) into `out`, appending to what is there.
// `displayName` is the file name diagnostics carry. Syntax and type errors, unknown keys and
// malformed values are reported to `diags`; well-formed parts are still loaded so that
// validation can report everything at once.
void loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                  Diagnostics& diags);

// One *.toml file of a config root as loadDirectory reads it: the name diagnostics give it
// ("root/relative", lexically normalised) and its text, unset when it could not be read.
struct ConfigFile {
  std::string name;
  std::optional<std::string> text;
};

// The *.toml files below `root` (sorted, recursive, hidden entries left out), read into memory.
// nullopt, with the problem in `diags`, when the root cannot be listed or holds none.
std::optional<std::vector<ConfigFile>> readConfigRoot(const std::filesystem::path& root,
                                                      Diagnostics& diags);

// Loads `files` in order (an unreadable one is an error) and merged: loadDirectory's second
// half, for a caller that read the root itself.
Desired loadFiles(const std::vector<ConfigFile>& files, Diagnostics& diags);

// Every *.toml file below `root`, in sorted order, merged. Diagnostics name files as
// `root/relative` (lexically normalised). A missing or empty root is itself an error.
Desired loadDirectory(const std::filesystem::path& root, Diagnostics& diags);

// Loads, then validates: the whole check `edgeplane validate` performs.
Desired loadAndValidate(const std::filesystem::path& root, Diagnostics& diags);

}  // namespace edgeplane
