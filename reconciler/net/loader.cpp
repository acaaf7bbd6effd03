// module() for the edgeplane executable: the net module loaded, at its first use, from the
// file installed beside the executable (EDGEPLANE_NET_MODULE, relative to its directory), once
// the file and its path are trusted and its build ID is the one this executable was linked
// beside (net_module_id.h), both judged before any of its code runs; in a fetch child, from the
// parent's file (inheritModuleFile).
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "net_module_id.h"
#include "reconciler/net/module.h"
#include "reconciler/net/module_file.h"
#include "schema/unique_fd.h"

namespace edgeplane::net {
namespace {

constexpr const char* kWhat = "the net module (ACME, Git, the agent's webhook and metrics) ";

Result<std::string> modulePath() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    const int err = errno;
    return terminal(std::string(kWhat) + "/proc/self/exe: " + errnoText(err));
  }
  const std::filesystem::path exe(std::string(buf, static_cast<size_t>(n)));
  return (exe.parent_path() / EDGEPLANE_NET_MODULE).lexically_normal().string();
}

// The build ID of the module open on `fd` against the one this program was built with.
Result<void> sameBuild(int fd, const std::string& path) {
  auto id = gnuBuildId(fd);
  if (!id) {
    return terminal(kWhat + path + ": " + id.error().message);
  }
  if (*id != EDGEPLANE_NET_MODULE_BUILD_ID) {
    return terminal(kWhat + path + " is from another build (build ID " + *id +
                    "; this program was built with " + EDGEPLANE_NET_MODULE_BUILD_ID +
                    "): install the two from one build, and restart what runs the old one");
  }
  return {};
}

// The module's file, kept open once loaded: what a child (the fetch process) is given.
int g_file = -1;
// Set in such a child: the parent's file, loaded instead of the one on disk.
int g_inherited = -1;

const Module* entryOf(void* handle) {
  using Entry = const Module* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, "edgeplane_net_module"));
  return entry ? entry() : nullptr;
}

// The parent's module, on the descriptor it passed: trusted as the parent judged it, checked
// for this build (the parent may be an edgeplane that an upgrade has since replaced, and this
// child its old executable), loaded through /proc/self/fd.
Result<const Module*> loadInherited() {
  const std::string path = "/proc/self/fd/" + std::to_string(g_inherited);
  if (auto same = sameBuild(g_inherited, path); !same) {
    return same.error();
  }
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return terminal(kWhat + path + ": " + ::dlerror());
  }
  const Module* table = entryOf(handle);
  if (table == nullptr) {
    return terminal(kWhat + path + ": not an edgeplane net module");
  }
  ::fcntl(g_inherited, F_SETFD, FD_CLOEXEC);
  g_file = g_inherited;
  return table;
}

Result<const Module*> load() {
  if (g_inherited >= 0) {
    return loadInherited();
  }
  auto path = modulePath();
  if (!path) {
    return path.error();
  }
  auto opened = openTrustedFile(*path);
  if (!opened) {
    return terminal(kWhat + opened.error().message);
  }
  UniqueFd fd(*opened);
  struct stat judged {};
  const int statErr = ::fstat(fd.get(), &judged) == 0 ? 0 : errno;
  if (auto same = sameBuild(fd.get(), *path); !same || statErr != 0) {
    return same ? terminal(kWhat + *path + ": " + errnoText(statErr)) : same.error();
  }
  // By its name (so that backtraces name it): the file there can only have changed since it
  // was judged by root or this user, who own every directory on the way; checked again.
  void* handle = ::dlopen(path->c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return terminal(kWhat + *path + ": " + ::dlerror());
  }
  struct stat now {};
  if (::stat(path->c_str(), &now) != 0 || now.st_dev != judged.st_dev ||
      now.st_ino != judged.st_ino) {
    return terminal(kWhat + *path + " was replaced while it was loaded");
  }
  const Module* table = entryOf(handle);
  if (table == nullptr) {
    return terminal(kWhat + *path + ": not an edgeplane net module");
  }
  g_file = fd.release();
  return table;  // kept loaded (and its file open) for the life of the process
}

}  // namespace

Result<const Module*> module() {
  static const Result<const Module*> loaded = load();
  return loaded;
}

int moduleFile() {
  return module() ? g_file : -1;
}

void inheritModuleFile(int fd) {
  g_inherited = fd;
}

}  // namespace edgeplane::net
