// One reconcile at a time per host: an exclusive flock on <state-dir>/lock; and the bounded
// flock wait that it and the other locks of the state directory use.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>

#include "schema/result.h"

namespace edgeplane::sys {

// An exclusive flock on `fd`, waiting at most `timeout` (for ever if negative) in steps of
// 100 ms; `onWait` is called once, when it must wait. false: the time ran out. An error (its
// message the errno's text): flock itself failed.
Result<bool> flockExclusiveWithin(int fd, std::chrono::milliseconds timeout,
                                  const std::function<void()>& onWait = {});

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
