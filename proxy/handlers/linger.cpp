// Lingering before a close (see linger.h).
#include "proxy/handlers/linger.h"

#include <sys/socket.h>

#include <cerrno>

namespace edgeplane::proxy {

Drained drainReadable(int fd, std::span<uint8_t> scratch, size_t& total, size_t limit) {
  for (;;) {
    const ssize_t n = ::recv(fd, scratch.data(), scratch.size(), 0);
    if (n > 0) {
      total += static_cast<size_t>(n);
      if (total > limit) {
        return Drained::Limit;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return Drained::WouldBlock;
    }
    return Drained::Ended;
  }
}

}  // namespace edgeplane::proxy
