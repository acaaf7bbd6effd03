// Per-thread setns around socket() for upstream connections (see netns_socket.h).
#include "proxy/netns_socket.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace edgeplane::proxy {
namespace {

bool isPlainName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") {
    return false;
  }
  for (char c : name) {
    if (c == '/' || c == '\0') {
      return false;
    }
  }
  return true;
}

int newTcpSocket(int family) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd >= 0 ? fd : -errno;
}

}  // namespace

void NetnsSocketFactory::drop(Entry& entry) {
  if (entry.fd >= 0) {
    ::close(entry.fd);
    entry.fd = -1;
  }
  for (std::vector<int>& spare : entry.spare) {
    for (int fd : spare) {
      ::close(fd);
    }
    spare.clear();
  }
}

void NetnsSocketFactory::makePath(std::string_view name) {
  path_.assign(dir_);
  path_.push_back('/');
  path_.append(name);
}

NetnsSocketFactory::~NetnsSocketFactory() {
  for (auto& [name, entry] : cache_) {
    drop(entry);
  }
  if (home_ >= 0) {
    ::close(home_);
  }
}

int NetnsSocketFactory::init() {
  home_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home_ < 0) {
    return -errno;
  }
  struct stat st {};
  if (::fstat(home_, &st) != 0) {
    return -errno;
  }
  homeDev_ = st.st_dev;
  homeIno_ = st.st_ino;
  return 0;
}

int NetnsSocketFactory::tcpSocket(std::string_view name, int family) {
  if (name.empty()) {
    return newTcpSocket(family);
  }
  if (!isPlainName(name)) {
    return -EINVAL;
  }
  makePath(name);
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    int err = errno;
    if (auto it = cache_.find(name); it != cache_.end()) {
      drop(it->second);
      cache_.erase(it);
    }
    return -err;
  }
  if (st.st_dev == homeDev_ && st.st_ino == homeIno_) {
    return newTcpSocket(family);
  }
  auto it = cache_.find(name);
  if (it == cache_.end() || it->second.dev != st.st_dev || it->second.ino != st.st_ino) {
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return -errno;
    }
    struct stat fst {};
    if (::fstat(fd, &fst) != 0) {
      int err = errno;
      ::close(fd);
      return -err;
    }
    if (it == cache_.end()) {
      it = cache_.emplace(std::string(name), Entry{}).first;
    } else {
      drop(it->second);
    }
    it->second.fd = fd;
    it->second.dev = fst.st_dev;
    it->second.ino = fst.st_ino;
  }
  std::vector<int>& spare = it->second.spare[family == AF_INET6 ? 1 : 0];
  if (!spare.empty()) {
    int fd = spare.back();
    spare.pop_back();
    return fd;
  }
  ++setnsCalls_;
  if (::setns(it->second.fd, CLONE_NEWNET) != 0) {
    // Not a network namespace (a stray file), or no privilege: this socket fails, nothing else.
    int err = errno;
    drop(it->second);
    cache_.erase(it);
    return -err;
  }
  int fd = newTcpSocket(family);
  if (fd >= 0) {
    for (size_t i = 1; i < kSpareBatch; ++i) {
      int extra = newTcpSocket(family);
      if (extra < 0) {
        break;
      }
      spare.push_back(extra);
    }
  }
  ++setnsCalls_;
  if (::setns(home_, CLONE_NEWNET) != 0) {
    // Cannot fail while we hold the home fd; if it ever did, every later socket of this
    // thread would land in a tenant's namespace, which is worse than stopping.
    std::abort();
  }
  return fd;
}

void NetnsSocketFactory::sweep() {
  for (auto it = cache_.begin(); it != cache_.end();) {
    makePath(it->first);
    struct stat st {};
    bool same = ::stat(path_.c_str(), &st) == 0 && st.st_dev == it->second.dev &&
                st.st_ino == it->second.ino;
    if (same) {
      ++it;
      continue;
    }
    drop(it->second);
    it = cache_.erase(it);
  }
}

}  // namespace edgeplane::proxy
