// Waiting in tests for what another thread or process does next, with a bounded deadline.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace edgeplane::testing {

// Polls `cond` every 5 ms for up to `timeout`; true as soon as it holds. Wait for the last
// effect a test checks, not for an earlier one the other side makes before it.
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return cond();
}

}  // namespace edgeplane::testing
