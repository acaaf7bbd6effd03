// module() for the edgeplane executable: the net module loaded, at its first use, from the
// file installed beside the executable (EDGEPLANE_NET_MODULE, relative to its directory).
#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "reconciler/net/module.h"
#include "reconciler/net/module_file.h"

namespace edgeplane::net {
namespace {

Result<std::string> executableDir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) {
    return terminal("net module: /proc/self/exe: " + errnoText(errno));
  }
  std::string exe(buf, static_cast<size_t>(n));
  return exe.substr(0, exe.rfind('/'));
}

Result<const Module*> load() {
  auto dir = executableDir();
  if (!dir) {
    return dir.error();
  }
  const std::string path = *dir + "/" + EDGEPLANE_NET_MODULE;
  const std::string what = "the net module (ACME, the agent's webhook and metrics) ";
  auto fd = openTrustedFile(path);
  if (!fd) {
    return terminal(what + fd.error().message);
  }
  // Loaded through the descriptor that was judged, not by its name again.
  const std::string opened = "/proc/self/fd/" + std::to_string(*fd);
  void* handle = ::dlopen(opened.c_str(), RTLD_NOW | RTLD_LOCAL);
  ::close(*fd);
  if (handle == nullptr) {
    return terminal(what + path + ": " + ::dlerror());
  }
  using Entry = const Module* (*)();
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, "edgeplane_net_module"));
  const Module* table = entry ? entry() : nullptr;
  if (table == nullptr) {
    return terminal(what + path + ": not an edgeplane net module");
  }
  if (std::strcmp(table->build, buildId()) != 0 || table->size != sizeof(Module)) {
    return terminal(what + path + " is from another build (" + table->build +
                    "; this program: " + buildId() + ")");
  }
  return table;  // kept loaded for the life of the process
}

}  // namespace

Result<const Module*> module() {
  static const Result<const Module*> loaded = load();
  return loaded;
}

}  // namespace edgeplane::net
