// The state-directory lock: flock, so it dies with the process that held it.
#include "reconciler/system/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "schema/net.h"
#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::sys {

Result<bool> flockExclusiveWithin(int fd, std::chrono::milliseconds timeout,
                                  const std::function<void()>& onWait) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool told = false;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      return terminal(errnoText(errno));
    }
    if (!told && onWait) {
      onWait();
    }
    told = true;
    if (timeout.count() >= 0 && std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

Result<StateLock> StateLock::acquire(const std::filesystem::path& stateDir,
                                     std::chrono::milliseconds timeout,
                                     const std::function<void(long holderPid)>& onWait) {
  if (auto dir = ensureStateDir(stateDir); !dir) {
    return dir.error();
  }
  const std::string path = (stateDir / "lock").string();
  // Never through a symbolic link, never truncated: the file is only ever ours.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int err = errno;
    if (err == ELOOP) {
      return terminal("lock file " + path + " is a symbolic link; refusing it (remove it)");
    }
    return terminal("open lock file " + path + ": " + errnoText(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    const std::string why = !S_ISREG(st.st_mode)
                                ? "is not a regular file"
                                : "is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                                      std::to_string(::geteuid());
    ::close(fd);
    return terminal("lock file " + path + " " + why + "; refusing it (remove it)");
  }
  auto locked = flockExclusiveWithin(fd, timeout, [&] {
    char buf[32] = {};
    const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
    onWait(n > 0 ? std::strtol(buf, nullptr, 10) : 0);
  });
  if (!locked || !*locked) {
    ::close(fd);
    if (!locked) {
      return terminal("lock " + path + ": " + locked.error().message);
    }
    return retryable("another edgeplane run holds " + path + "; gave up after " +
                     formatDuration(timeout));
  }
  // Fixed width, so the previous holder's longer pid is overwritten without a truncate, and a
  // waiter never reads an empty file. The pid is only a hint for whoever waits.
  char pid[24];
  const int n = std::snprintf(pid, sizeof(pid), "%-20ld\n", static_cast<long>(::getpid()));
  // A failed write only loses the hint. ([[maybe_unused]], not (void): glibc marks pwrite
  // warn_unused_result under _FORTIFY_SOURCE, which a (void) cast does not silence in GCC.)
  [[maybe_unused]] const ssize_t written = ::pwrite(fd, pid, static_cast<size_t>(n), 0);
  return StateLock(fd);
}

StateLock::~StateLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

}  // namespace edgeplane::sys
