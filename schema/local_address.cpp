// Host-only listening addresses: parsing and the loopback rule (see local_address.h).
#include "schema/local_address.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

#include "schema/mode_text.h"

namespace edgeplane {

bool isLoopback(const IpAddress& a) {
  if (a.family == IpAddress::Family::V4) {
    return a.bytes[0] == 127;
  }
  for (size_t i = 0; i < 15; ++i) {
    if (a.bytes[i] != 0) {
      return false;
    }
  }
  return a.bytes[15] == 1;
}

std::optional<Endpoint> parseListenAddress(std::string_view text) {
  if (text.ends_with(":0")) {
    auto endpoint = Endpoint::parse(std::string(text.substr(0, text.size() - 1)) + "1");
    if (endpoint) {
      endpoint->port = 0;
    }
    return endpoint;
  }
  return Endpoint::parse(text);
}

Result<LocalAddress> LocalAddress::parse(std::string_view text, std::string_view what) {
  const std::string name(what);
  LocalAddress a;
  if (text.starts_with("unix:")) {
    std::string_view path = text.substr(5);
    if (path.empty()) {
      return terminal(name + " \"unix:\" needs a socket path");
    }
    if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
      return terminal(name + ": socket path is too long (at most " +
                      std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                      " bytes): " + std::string(path));
    }
    a.unixPath = std::filesystem::path(path);
    return a;
  }
  auto endpoint = parseListenAddress(text);
  if (!endpoint) {
    return terminal(name + " must be unix:PATH or a loopback IP:PORT, got \"" + std::string(text) +
                    "\"");
  }
  if (!isLoopback(endpoint->address)) {
    return terminal(name + " " + std::string(text) +
                    " is not loopback: it may listen only on 127.0.0.0/8, ::1 or a unix socket");
  }
  a.tcp = *endpoint;
  return a;
}

std::string LocalAddress::str() const {
  return unixPath ? "unix:" + unixPath->string() : tcp.str();
}

Result<void> restrictSocketFile(const std::filesystem::path& path, mode_t mode,
                                std::optional<gid_t> group) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    const int err = errno;
    return terminal("cannot examine " + path.string() + ": " + errnoText(err));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return terminal(path.string() + " is no longer the socket just bound (" +
                    (S_ISLNK(st.st_mode) ? "a symbolic link" : "another file") + ")");
  }
  if (group && ::fchownat(AT_FDCWD, path.c_str(), static_cast<uid_t>(-1), *group,
                          AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    return terminal("cannot give " + path.string() + " group " + std::to_string(*group) + ": " +
                    errnoText(err));
  }
  // glibc refuses AT_SYMLINK_NOFOLLOW on a link (EOPNOTSUPP) and applies it to anything else.
  if (::fchmodat(AT_FDCWD, path.c_str(), mode, AT_SYMLINK_NOFOLLOW) != 0) {
    const int err = errno;
    return terminal("cannot make " + path.string() + " " + modeText(mode) + ": " + errnoText(err));
  }
  return {};
}

}  // namespace edgeplane
