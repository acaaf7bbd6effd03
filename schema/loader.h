// Loads a config root: every *.toml below it (sorted, recursive), merged into one Desired.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/diagnostic.h"
#include "schema/model.h"

namespace edgeplane {

class ChunkMemo;  // schema/chunk_memo.h

// Reads one TOML document (already in memory) into `out`, appending to what is there.
// `displayName` is the file name diagnostics carry. Syntax and type errors, unknown keys and
// malformed values are reported to `diags`; well-formed parts are still loaded so that
// validation can report everything at once.
// A document of 128 KiB or more is parsed in chunks of at least 64 KiB, on as many threads as
// there are cores, and means the same (schema/toml_chunks.h). With a `memo`, a chunk an earlier
// run loaded from the same text of the same file is decoded instead of parsed, and the chunks
// of this load are kept in it (chunk_memo.h).
void loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                  Diagnostics& diags, ChunkMemo* memo = nullptr);

namespace detail {
// loadDocument with another chunk size: a document of 2 * chunkBytes or more is parsed in chunks
// of at least chunkBytes. For tests and the fuzzer, which check that every size means the same.
void loadDocument(std::string_view text, const std::string& displayName, Desired& out,
                  Diagnostics& diags, size_t chunkBytes, ChunkMemo* memo = nullptr);
}  // namespace detail

// One *.toml file of a config root as loadDirectory reads it: the name diagnostics give it
// ("root/relative", lexically normalised) and its text, unset when it could not be read.
struct ConfigFile {
  std::string name;
  std::optional<std::string> text;
};

// `file` ("root/relative", as ConfigFile names it) relative to `root`; `file` itself when it is
// not below `root`.
std::string_view relativeToRoot(std::string_view file, std::string_view root);

// The diagnostic of a config root without config files.
inline constexpr const char* kNoConfigFiles = "config root has no *.toml files";

// The *.toml files below `root` (sorted, recursive, hidden entries left out), read into memory.
// nullopt, with the problem in `diags`, when the root cannot be listed or holds none.
std::optional<std::vector<ConfigFile>> readConfigRoot(const std::filesystem::path& root,
                                                      Diagnostics& diags);

// The config files of a tree read into memory (relative '/'-separated path -> contents), as
// readConfigRoot would list them had the tree been written under `root`: *.toml files, hidden
// entries left out, in the same order, named `root/relative`.
std::vector<ConfigFile> configFilesOf(const std::map<std::string, std::string>& tree,
                                      const std::filesystem::path& root);

// Loads `files` in order (an unreadable one is an error) and merged: loadDirectory's second
// half, for a caller that read the root itself.
Desired loadFiles(const std::vector<ConfigFile>& files, Diagnostics& diags,
                  ChunkMemo* memo = nullptr);

// Every *.toml file below `root`, in sorted order, merged. Diagnostics name files as
// `root/relative` (lexically normalised). A missing or empty root is itself an error.
Desired loadDirectory(const std::filesystem::path& root, Diagnostics& diags);

// Loads, then validates: the whole check `edgeplane validate` performs.
Desired loadAndValidate(const std::filesystem::path& root, Diagnostics& diags);

}  // namespace edgeplane
