// Listening sockets (see listeners.h).
#include "proxy/engine/listeners.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace edgeplane::proxy {

namespace {

Result<int> openListener(const Endpoint& address, uint16_t port) {
  Endpoint at = address;
  at.port = port;
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(at, ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("socket for " + at.str() + ": " + errnoText(err));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("SO_REUSEPORT on " + at.str() + ": " + errnoText(err));
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("bind " + at.str() + ": " + errnoText(err));
  }
  if (::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("listen on " + at.str() + ": " + errnoText(err));
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return 0;
  }
  return fromSockaddr(ss).port;
}

}  // namespace

Result<std::vector<int>> openListeners(const Endpoint& address, int count, uint16_t& port) {
  std::vector<int> fds;
  port = address.port;
  for (int i = 0; i < count; ++i) {
    Result<int> fd = openListener(address, port);
    if (!fd) {
      for (int f : fds) {
        ::close(f);
      }
      return fd.error();
    }
    fds.push_back(*fd);
    if (i == 0) {
      port = boundPort(*fd);
    }
  }
  return fds;
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void setLingerZero(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace edgeplane::proxy
