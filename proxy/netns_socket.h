// Upstream sockets created inside a named network namespace, for one worker thread.
//
// A socket belongs for its whole life to the network namespace its creating thread was in, so
// the worker enters the route's namespace (setns, per thread), calls socket(), and returns at
// once: connect(), I/O and close happen from the worker's own namespace. Namespace fds are
// opened lazily (O_RDONLY|O_CLOEXEC) and cached per path; every use re-checks the path's
// (device, inode) with one stat(), so a namespace deleted and recreated under the same name by
// the reconciler is picked up instead of silently connecting into the dead one (which our
// cached fd would keep alive). A missing namespace fails that socket only.
//
// Cost: the two setns calls are the expensive part (tens of microseconds on a small VM, more
// than socket() itself), so each trip into a namespace creates a small batch of sockets per
// address family and keeps the spares for the next connections: the pair is paid once per
// kSpareBatch upstream connections.
//
// Holding a namespace fd (or a spare socket) keeps a deleted namespace, and the interfaces in
// it, alive; sweep() (called by the worker about once a second) drops everything cached for a
// name whose path is gone or now names another namespace.
//
// The empty name means "no namespace": the socket is created in the worker's own namespace
// (unit tests, and routes of a host-namespace setup). A namespace that is the worker's own
// is recognized by its inode and costs no setns.
//
// Not thread-safe: one instance per worker thread, constructed and used on that thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeplane::proxy {

class NetnsSocketFactory {
 public:
  explicit NetnsSocketFactory(std::string dir) : dir_(std::move(dir)) {}
  ~NetnsSocketFactory();
  NetnsSocketFactory(const NetnsSocketFactory&) = delete;
  NetnsSocketFactory& operator=(const NetnsSocketFactory&) = delete;

  // Remembers the calling thread's namespace to return to; 0 or -errno.
  int init();

  // A non-blocking, close-on-exec TCP socket of `family` (AF_INET/AF_INET6) created in
  // namespace `name` (a file under the directory; "" = the thread's own). fd, or -errno:
  // -EINVAL for a name that is not a plain file name, -ENOENT for a missing namespace.
  int tcpSocket(std::string_view name, int family);

  // Closes the cached fds and spare sockets of namespaces deleted or replaced since.
  void sweep();
  bool empty() const { return cache_.empty(); }

  static constexpr size_t kSpareBatch = 8;

  // setns calls made so far (two per socket in a foreign namespace), for tests and metrics.
  uint64_t setnsCalls() const { return setnsCalls_; }

 private:
  struct Entry {
    int fd = -1;
    dev_t dev = 0;
    ino_t ino = 0;
    std::vector<int> spare[2];  // unconnected sockets made in the namespace: [0] v4, [1] v6
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  static void drop(Entry& entry);
  void makePath(std::string_view name);

  std::string dir_;
  int home_ = -1;
  dev_t homeDev_ = 0;
  ino_t homeIno_ = 0;
  uint64_t setnsCalls_ = 0;
  std::string path_;  // scratch, reused to avoid an allocation per socket
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> cache_;
};

}  // namespace edgeplane::proxy
