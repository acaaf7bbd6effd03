// GitSource::open: the repository is opened by the net module, which carries libgit2. Built
// with the loader and with the linked table (where module() comes from), so that source/ needs
// nothing of net/.
#include "reconciler/source/git_source.h"

#include "reconciler/net/module.h"

namespace edgeplane::source {

Result<GitSource> GitSource::open(const std::filesystem::path& cacheDir, SourceSpec spec) {
  auto module = net::module();
  if (!module) {
    return terminal("opening the source cache " + cacheDir.string() + ": " +
                    module.error().message);
  }
  auto repo = (*module)->openGit(cacheDir, std::move(spec));
  if (!repo) {
    return repo.error();
  }
  return GitSource(std::move(*repo));
}

}  // namespace edgeplane::source
