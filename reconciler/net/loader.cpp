// module() for the edgeplane executable: the net module loaded, at its first use, from the
// file installed beside the executable (EDGEPLANE_NET_MODULE, relative to its directory), once
// the file and its path are trusted and its build ID is the one this executable was linked
// beside (net_module_id.h), both judged before any of its code runs.
#include <dlfcn.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "net_module_id.h"
#include "reconciler/net/module.h"
#include "reconciler/net/module_file.h"

namespace edgeplane::net {
namespace {

constexpr const char* kWhat = "the net module (ACME, Git, the agent's webhook and metrics) ";

Result<std::string> modulePath() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    return terminal(std::string(kWhat) + "/proc/self/exe: " + errnoText(errno));
  }
  const std::filesystem::path exe(std::string(buf, static_cast<size_t>(n)));
  return (exe.parent_path() / EDGEPLANE_NET_MODULE).lexically_normal().string();
}

// The trusted file's build ID against the expected one; the descriptor is closed.
Result<struct stat> judge(const std::string& path) {
  auto fd = openTrustedFile(path);
  if (!fd) {
    return terminal(kWhat + fd.error().message);
  }
  auto id = gnuBuildId(*fd);
  struct stat st {};
  const int statErr = ::fstat(*fd, &st) == 0 ? 0 : errno;
  ::close(*fd);
  if (!id) {
    return terminal(kWhat + path + ": " + id.error().message);
  }
  if (*id != EDGEPLANE_NET_MODULE_BUILD_ID) {
    return terminal(kWhat + path + " is from another build (build ID " + *id +
                    "; this program was built with " + EDGEPLANE_NET_MODULE_BUILD_ID +
                    "): install the two from one build");
  }
  if (statErr != 0) {
    return terminal(kWhat + path + ": " + errnoText(statErr));
  }
  return st;
}

Result<const Module*> load() {
  auto path = modulePath();
  if (!path) {
    return path.error();
  }
  auto judged = judge(*path);
  if (!judged) {
    return judged.error();
  }
  // By its name (so that backtraces name it): the file there can only have changed since it
  // was judged by root or this user, who own every directory on the way; checked again.
  void* handle = ::dlopen(path->c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return terminal(kWhat + *path + ": " + ::dlerror());
  }
  struct stat now {};
  if (::stat(path->c_str(), &now) != 0 || now.st_dev != judged->st_dev ||
      now.st_ino != judged->st_ino) {
    return terminal(kWhat + *path + " was replaced while it was loaded");
  }
  using Entry = const Module* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, "edgeplane_net_module"));
  const Module* table = entry ? entry() : nullptr;
  if (table == nullptr) {
    return terminal(kWhat + *path + ": not an edgeplane net module");
  }
  return table;  // kept loaded for the life of the process
}

}  // namespace

Result<const Module*> module() {
  static const Result<const Module*> loaded = load();
  return loaded;
}

}  // namespace edgeplane::net
