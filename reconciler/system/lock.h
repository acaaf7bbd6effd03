// One reconcile at a time per host: an exclusive flock on <state-dir>/lock.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>

#include "schema/result.h"

namespace edgeplane::sys {

class StateLock {
 public:
  // Waits up to `timeout` (forever if negative); `onWait` is called once if it must wait,
  // with the pid recorded by the current holder (0 if unknown).
  static Result<StateLock> acquire(const std::filesystem::path& stateDir,
                                   std::chrono::milliseconds timeout,
                                   const std::function<void(long holderPid)>& onWait);
  StateLock(StateLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateLock& operator=(StateLock&&) = delete;
  StateLock(const StateLock&) = delete;
  ~StateLock();

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace edgeplane::sys
