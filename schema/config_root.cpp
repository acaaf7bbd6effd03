// Reading a config root from disk: its *.toml files listed and read, then loaded (loader.cpp).
#include "schema/loader.h"

#include <algorithm>
#include <filesystem>

#include "schema/file_text.h"
#include "schema/validate.h"

namespace edgeplane {

std::string_view relativeToRoot(std::string_view file, std::string_view root) {
  if (file.size() > root.size() && file.starts_with(root) && file[root.size()] == '/') {
    file.remove_prefix(root.size() + 1);
  }
  return file;
}

std::optional<std::vector<ConfigFile>> readConfigRoot(const std::filesystem::path& root,
                                                      Diagnostics& diags) {
  namespace fs = std::filesystem;
  const std::string rootName = root.lexically_normal().string();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    diags.error(SourceLoc{rootName, 0, 0}, "config root is not a directory");
    return std::nullopt;
  }
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path& p = it->path();
    // Hidden entries (.git, editor lock files and the like) are not config.
    std::error_code entryEc;
    if (p.filename().string().front() == '.') {
      if (it->is_directory(entryEc)) {
        it.disable_recursion_pending();
      }
      continue;
    }
    if (p.extension() != ".toml") {
      continue;
    }
    // A *.toml that is a dangling symlink (or cannot be examined) is kept, to be reported as
    // unreadable below: silently leaving a file out would withdraw what it declares.
    const fs::file_status status = it->status(entryEc);
    if (fs::is_regular_file(status) || status.type() == fs::file_type::not_found || entryEc) {
      files.push_back(p);
    }
  }
  if (ec) {
    diags.error(SourceLoc{rootName, 0, 0}, "cannot read config root: " + ec.message());
    return std::nullopt;
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    diags.error(SourceLoc{rootName, 0, 0}, kNoConfigFiles);
    return std::nullopt;
  }
  std::vector<ConfigFile> out;
  out.reserve(files.size());
  for (const fs::path& file : files) {
    Result<std::string> text = readFileText(file);
    out.push_back(ConfigFile{file.lexically_normal().string(),
                             text ? std::optional(std::move(*text)) : std::nullopt});
  }
  return out;
}

std::vector<ConfigFile> configFilesOf(const std::map<std::string, std::string>& tree,
                                      const std::filesystem::path& root) {
  namespace fs = std::filesystem;
  std::vector<std::pair<fs::path, const std::string*>> files;
  for (const auto& [name, text] : tree) {
    const fs::path rel(name);
    if (rel.extension() != ".toml") {
      continue;
    }
    const bool hidden = std::any_of(rel.begin(), rel.end(), [](const fs::path& part) {
      return !part.empty() && part.native().front() == '.';
    });
    if (!hidden) {
      files.emplace_back(root / rel, &text);
    }
  }
  std::sort(files.begin(), files.end());  // as fs::path orders them, like readConfigRoot
  std::vector<ConfigFile> out;
  out.reserve(files.size());
  for (const auto& [path, text] : files) {
    out.push_back(ConfigFile{path.lexically_normal().string(), *text});
  }
  return out;
}

Desired loadDirectory(const std::filesystem::path& root, Diagnostics& diags) {
  auto files = readConfigRoot(root, diags);
  if (!files) {
    return Desired{};
  }
  return loadFiles(*files, diags);
}

Desired loadAndValidate(const std::filesystem::path& root, Diagnostics& diags) {
  Desired d = loadDirectory(root, diags);
  validate(d, diags);
  return d;
}

}  // namespace edgeplane
