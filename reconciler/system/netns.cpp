// Named network namespaces, managed the way iproute2 does: a bind mount of a netns file.
#include "reconciler/system/netns.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace edgeplane::sys {
namespace {

// A namespace being created is bound here first (createNamedNetns); never listed.
constexpr std::string_view kNetnsTempPrefix = ".edgeplane-new-";

bool validName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && name != "." && name != ".." &&
         name.find('/') == std::string_view::npos;
}

Result<void> setLoopbackUp() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("socket: " + errnoText(err));
  }
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  int rc = ::ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    rc = ::ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return terminal("bring up loopback: " + errnoText(err));
  }
  return {};
}

// /run/netns must be a mount point with shared propagation so that namespace bind mounts
// made here are seen by every mount namespace that shares it (iproute2 does the same).
Result<void> prepareNetnsDir() {
  const std::string dir = netnsDir();
  if (::mkdir(dir.c_str(), 0755) != 0) {
    const int err = errno;
    if (err != EEXIST) {
      return terminal("create " + dir + ": " + errnoText(err));
    }
  }
  if (::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) == 0) {
    return {};
  }
  if (const int err = errno; err != EINVAL) {
    return terminal("make " + dir + " shared: " + errnoText(err));
  }
  // Not a mount point yet: bind it onto itself, then make it shared.
  if (::mount(dir.c_str(), dir.c_str(), "none", MS_BIND | MS_REC, nullptr) != 0 ||
      ::mount("", dir.c_str(), "none", MS_SHARED | MS_REC, nullptr) != 0) {
    const int err = errno;
    return terminal("mount " + dir + ": " + errnoText(err));
  }
  return {};
}

std::string tempPath(std::string_view name) {
  return netnsDir() + "/" + std::string(kNetnsTempPrefix) + std::string(name);
}

// A create that died after making NAME's file and before binding the namespace on it leaves
// an empty file (not an nsfs mount) beside its temporary entry: NAME is no namespace yet, and
// the next create takes the file over.
bool interruptedCreate(std::string_view name) {
  struct stat st {};
  struct statfs fs {};
  return ::lstat(tempPath(name).c_str(), &st) == 0 && ::statfs(netnsPath(name).c_str(), &fs) == 0 &&
         fs.f_type != NSFS_MAGIC;
}

}  // namespace

std::string netnsDir() {
  const char* dir = std::getenv("EDGEPLANE_NETNS_DIR");
  return dir != nullptr && *dir != '\0' ? std::string(dir) : std::string("/run/netns");
}

std::string netnsPath(std::string_view name) {
  return netnsDir() + "/" + std::string(name);
}

bool namedNetnsExists(std::string_view name) {
  struct stat st {};
  return validName(name) && ::stat(netnsPath(name).c_str(), &st) == 0 && !interruptedCreate(name);
}

Result<void> createNamedNetns(std::string_view name) {
  if (!validName(name)) {
    return terminal("invalid namespace name '" + std::string(name) + "'");
  }
  if (auto r = prepareNetnsDir(); !r) {
    return r;
  }
  const std::string path = netnsPath(name);
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!interruptedCreate(name)) {
      return terminal("create namespace " + std::string(name) + ": " + path + ": " +
                      errnoText(EEXIST));
    }
    ::unlink(path.c_str());  // the empty file of a create that died (see interruptedCreate)
  }
  // The namespace is made on a placeholder under a temporary name, and only a working one is
  // bound under its real name: a run that dies half-way leaves no empty file there, which
  // would be a namespace nobody can enter. (A mount point cannot be renamed, nor moved out of
  // the shared /run/netns, so it is bound a second time and the temporary one is dropped.)
  const std::string tmp = tempPath(name);
  ::umount2(tmp.c_str(), MNT_DETACH);  // a leftover of a run that died here
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("create namespace " + std::string(name) + ": " + tmp + ": " + errnoText(err));
  }
  ::close(fd);
  auto dropTemp = [&] {
    ::umount2(tmp.c_str(), MNT_DETACH);
    ::unlink(tmp.c_str());
  };

  // unshare() moves the calling thread, so do it on a short-lived thread of our own: the
  // caller's namespace is never disturbed, and the new netns lives on in the bind mount.
  Result<void> result;
  std::thread worker([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      const int err = errno;
      result = terminal("unshare(CLONE_NEWNET): " + errnoText(err));
      return;
    }
    const std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
    if (::mount(self.c_str(), tmp.c_str(), "none", MS_BIND, nullptr) != 0) {
      const int err = errno;
      result = terminal("bind namespace " + std::string(name) + ": " + errnoText(err));
      return;
    }
    result = setLoopbackUp();
  });
  worker.join();
  if (!result) {
    dropTemp();
    return result;
  }
  fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    dropTemp();
    return terminal("create namespace " + std::string(name) + ": " + path + ": " + errnoText(err));
  }
  ::close(fd);
  if (::mount(tmp.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
    const int err = errno;
    ::unlink(path.c_str());
    dropTemp();
    return terminal("bind namespace " + std::string(name) + ": " + errnoText(err));
  }
  dropTemp();
  return {};
}

Result<void> deleteNamedNetns(std::string_view name) {
  if (!validName(name)) {
    return terminal("invalid namespace name '" + std::string(name) + "'");
  }
  const std::string path = netnsPath(name);
  if (::umount2(path.c_str(), MNT_DETACH) != 0) {
    const int err = errno;
    if (err != EINVAL) {
      if (err == ENOENT) {
        return terminal("delete namespace " + std::string(name) + ": not found");
      }
      return terminal("unmount " + path + ": " + errnoText(err));
    }
  }
  if (::unlink(path.c_str()) != 0) {
    const int err = errno;
    return terminal("remove " + path + ": " + errnoText(err));
  }
  // A temporary entry a create that died after binding left: it would keep the namespace.
  const std::string tmp = tempPath(name);
  ::umount2(tmp.c_str(), MNT_DETACH);
  ::unlink(tmp.c_str());
  return {};
}

namespace {

// The entries of the netns directory: names, and the NAMEs of temporary ".edgeplane-new-NAME"
// ones.
struct NetnsEntries {
  std::vector<std::string> names;
  std::vector<std::string> temps;
};

NetnsEntries readNetnsDir() {
  NetnsEntries out;
  DIR* dir = ::opendir(netnsDir().c_str());
  if (dir == nullptr) {
    return out;
  }
  while (const dirent* e = ::readdir(dir)) {
    std::string_view n = e->d_name;
    if (n.starts_with(kNetnsTempPrefix)) {
      out.temps.emplace_back(n.substr(kNetnsTempPrefix.size()));
    } else if (n != "." && n != "..") {
      out.names.emplace_back(n);
    }
  }
  ::closedir(dir);
  return out;
}

}  // namespace

std::vector<std::string> listNamedNetns() {
  auto [names, temps] = readNetnsDir();
  std::sort(names.begin(), names.end());
  for (const std::string& t : temps) {
    auto it = std::lower_bound(names.begin(), names.end(), t);
    if (it != names.end() && *it == t && interruptedCreate(t)) {
      names.erase(it);
    }
  }
  return names;
}

void sweepInterruptedCreates() {
  for (const std::string& name : readNetnsDir().temps) {
    struct statfs fs {};
    if (validName(name) && ::statfs(netnsPath(name).c_str(), &fs) == 0 && fs.f_type == NSFS_MAGIC) {
      const std::string tmp = tempPath(name);
      ::umount2(tmp.c_str(), MNT_DETACH);
      ::unlink(tmp.c_str());
    }
  }
}

int openNetnsFd(std::string_view name) {
  if (!validName(name)) {
    errno = EINVAL;
    return -1;
  }
  const std::string path = netnsPath(name);  // freed after the open would follow its errno
  return ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
}

Result<NetnsScope> NetnsScope::enter(std::string_view name) {
  if (name.empty()) {
    return NetnsScope(-1, -1);
  }
  int target = openNetnsFd(name);
  if (target < 0) {
    const int err = errno;
    return terminal("open namespace " + std::string(name) + ": " + errnoText(err));
  }
  int original = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (original < 0) {
    int err = errno;
    ::close(target);
    return terminal("open current namespace: " + errnoText(err));
  }
  if (::setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    ::close(target);
    ::close(original);
    return terminal("enter namespace " + std::string(name) + ": " + errnoText(err));
  }
  return NetnsScope(original, target);
}

NetnsScope::NetnsScope(NetnsScope&& other) noexcept
    : original_(other.original_), target_(other.target_) {
  other.original_ = -1;
  other.target_ = -1;
}

NetnsScope::~NetnsScope() {
  if (original_ >= 0) {
    // Returning can only fail if the original namespace vanished, which it cannot while we
    // hold its fd; abort rather than keep running in the wrong namespace.
    if (::setns(original_, CLONE_NEWNET) != 0) {
      std::abort();
    }
    ::close(original_);
  }
  if (target_ >= 0) {
    ::close(target_);
  }
}

}  // namespace edgeplane::sys
