// The state-directory lock: flock, so it dies with the process that held it.
#include "reconciler/system/lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

namespace edgeplane::sys {

Result<StateLock> StateLock::acquire(const std::filesystem::path& stateDir,
                                     std::chrono::milliseconds timeout,
                                     const std::function<void(long holderPid)>& onWait) {
  std::error_code ec;
  std::filesystem::create_directories(stateDir, ec);
  ::chmod(stateDir.c_str(), 0700);
  const std::string path = (stateDir / "lock").string();
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return terminal("open " + path + ": " + std::strerror(errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool told = false;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) {
      int err = errno;
      ::close(fd);
      return terminal("lock " + path + ": " + std::strerror(err));
    }
    if (!told) {
      char buf[32] = {};
      ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
      onWait(n > 0 ? std::strtol(buf, nullptr, 10) : 0);
      told = true;
    }
    if (timeout.count() >= 0 && std::chrono::steady_clock::now() >= deadline) {
      ::close(fd);
      return retryable("another edgeplane run holds " + path + "; gave up after " +
                       std::to_string(timeout.count() / 1000) + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
    // The pid is only a hint for whoever waits; the lock itself is held.
  }
  return StateLock(fd);
}

StateLock::~StateLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the flock
  }
}

}  // namespace edgeplane::sys
