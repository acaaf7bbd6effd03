// Directories opened without following links (see dir_at.h).
#include "reconciler/system/dir_at.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "schema/unique_fd.h"

namespace edgeplane::sys {

std::string symlinkRefused(const std::string& path) {
  return path + " is a symbolic link; refusing to follow it";
}

Result<int> openDirAt(int parentFd, const std::string& name, const std::string& path, bool create) {
  if (create && ::mkdirat(parentFd, name.c_str(), 0755) != 0 && errno != EEXIST) {
    const int err = errno;
    return terminal("create " + path + ": " + errnoText(err));
  }
  const int fd = ::openat(parentFd, name.c_str(), kDirFlags);
  if (fd >= 0) {
    return fd;
  }
  const int err = errno;
  if (err == ENOENT && !create) {
    return -1;
  }
  struct stat st {};
  if (::fstatat(parentFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    return terminal(symlinkRefused(path));
  }
  return terminal("open directory " + path + ": " + errnoText(err));
}

Result<std::vector<std::string>> namesIn(int fd, const std::string& path) {
  const int copy = ::openat(fd, ".", kDirFlags);  // its own offset; closedir closes it
  DIR* d = copy < 0 ? nullptr : ::fdopendir(copy);
  if (d == nullptr) {
    const int err = errno;
    if (copy >= 0) {
      ::close(copy);
    }
    return terminal("read " + path + ": " + errnoText(err));
  }
  std::vector<std::string> names;
  int err = 0;
  for (;;) {
    errno = 0;
    const dirent* e = ::readdir(d);
    if (e == nullptr) {
      err = errno;
      break;
    }
    const std::string name = e->d_name;
    if (name != "." && name != "..") {
      names.push_back(name);
    }
  }
  ::closedir(d);
  if (err != 0) {
    return terminal("read " + path + ": " + errnoText(err));
  }
  return names;
}

mode_t typeAt(int dirFd, const std::string& name) {
  struct stat st {};
  return ::fstatat(dirFd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ? st.st_mode & S_IFMT : 0;
}

Result<void> removeAt(int dirFd, const std::string& name, const std::string& path) {
  const mode_t type = typeAt(dirFd, name);
  if (type == S_IFDIR) {
    auto opened = openDirAt(dirFd, name, path, false);
    if (!opened) {
      return opened.error();  // swapped for a link meanwhile: refused
    }
    if (*opened < 0) {
      return {};  // gone meanwhile
    }
    const UniqueFd dir(*opened);
    auto names = namesIn(dir.get(), path);
    if (!names) {
      return names.error();
    }
    for (const std::string& n : *names) {
      if (auto r = removeAt(dir.get(), n, path + "/" + n); !r) {
        return r;
      }
    }
  }
  if (type != 0 && ::unlinkat(dirFd, name.c_str(), type == S_IFDIR ? AT_REMOVEDIR : 0) != 0 &&
      errno != ENOENT) {
    const int err = errno;
    return terminal("remove " + path + ": " + errnoText(err));
  }
  return {};
}

}  // namespace edgeplane::sys
