#include "reconciler/net/module_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace edgeplane::net {

Result<int> openTrustedFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return terminal(path + ": " + errnoText(errno));
  }
  struct stat st {};
  std::string refused;
  if (::fstat(fd, &st) != 0) {
    refused = errnoText(errno);
  } else if (!S_ISREG(st.st_mode)) {
    refused = "not a regular file";
  } else if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    refused = "owned by uid " + std::to_string(st.st_uid) + ", neither root nor this user";
  } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    refused = "writable by its group or others";
  }
  if (!refused.empty()) {
    ::close(fd);
    return terminal(path + ": " + refused + "; refused as code to load");
  }
  return fd;
}

}  // namespace edgeplane::net
