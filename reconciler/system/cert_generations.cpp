// A certificate directory's generations (see cert_generations.h).
#include "reconciler/system/cert_generations.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "reconciler/system/dir_at.h"
#include "reconciler/system/file_write.h"
#include "schema/unique_fd.h"

namespace edgeplane::sys {

Result<void> writeGeneration(int dirFd, const std::string& dir, const std::string& gen,
                             const std::string& certPem, const std::string& keyPem,
                             const std::string& source) {
  const std::string genDir = dir + "/" + gen;
  if (::mkdirat(dirFd, gen.c_str(), 0700) != 0) {
    const int err = errno;
    return terminal("create " + genDir + ": " + errnoText(err));
  }
  auto opened = openDirAt(dirFd, gen, genDir, true);
  if (!opened) {
    return opened.error();
  }
  const UniqueFd g(*opened);
  if (::fchmod(g.get(), 0700) != 0) {
    const int err = errno;
    return terminal("chmod 700 " + genDir + ": " + errnoText(err));
  }
  if (auto r = writeNewFileAt(g.get(), genDir, "key.pem", keyPem, 0600); !r) {
    return r;
  }
  if (auto r = writeNewFileAt(g.get(), genDir, "cert.pem", certPem, 0644); !r) {
    return r;
  }
  if (!source.empty()) {
    if (auto r = writeNewFileAt(g.get(), genDir, kSource, source, 0644); !r) {
      return r;
    }
  }
  if (::fsync(g.get()) != 0) {
    const int err = errno;
    return terminal("sync directory " + genDir + ": " + errnoText(err));
  }
  return {};
}

Result<std::string> switchCurrent(int dirFd, const std::string& dir, const std::string& gen) {
  char buf[256];
  const ssize_t n = ::readlinkat(dirFd, kCurrent, buf, sizeof(buf));
  const std::string previous = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  const std::string tmp = std::string(kCurrent) + ".tmp";
  ::unlinkat(dirFd, tmp.c_str(), 0);
  if (::symlinkat(gen.c_str(), dirFd, tmp.c_str()) != 0 ||
      ::renameat(dirFd, tmp.c_str(), dirFd, kCurrent) != 0) {
    const int err = errno;
    return terminal("switch " + dir + "/" + kCurrent + ": " + errnoText(err));
  }
  if (::fsync(dirFd) != 0) {
    const int err = errno;
    return terminal("sync directory " + dir + ": " + errnoText(err));
  }
  return previous;
}

void pruneGenerations(int dirFd, const std::string& dir, const std::string& gen,
                      const std::string& previous) {
  auto names = namesIn(dirFd, dir);
  for (const std::string& name : names ? *names : std::vector<std::string>()) {
    if (name != gen && name != previous && typeAt(dirFd, name) == S_IFDIR) {
      (void)removeAt(dirFd, name, dir + "/" + name);  // best effort: the next install tries again
    }
  }
}

}  // namespace edgeplane::sys
