// A hashed timer wheel (10 ms ticks, 1024 slots) over intrusive nodes in EventTarget.
//
// One timer per target: a connection waits for one thing at a time (hello, connect, idle,
// a response). Handlers that track activity lazily re-arm when an early expiry finds the
// deadline moved. Knows no protocol: an expiry is just a call to EventTarget::onTimer.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "proxy/engine/handler.h"

namespace edgeplane::proxy::engine_detail {

class TimerWheel {
 public:
  static constexpr int64_t kTickMs = 10;
  static constexpr size_t kSlots = 1024;

  void start(int64_t nowMs) { lastTick_ = nowMs / kTickMs; }
  void schedule(EventTarget* t, int64_t deadlineMs);
  void unschedule(EventTarget* t);
  // Moves every target due by `nowMs` into `expired` (unscheduled, in no particular order).
  void advance(int64_t nowMs, std::vector<EventTarget*>& expired);
  size_t size() const { return count_; }

 private:
  std::array<EventTarget*, kSlots> wheel_{};
  int64_t lastTick_ = 0;
  size_t count_ = 0;
};

}  // namespace edgeplane::proxy::engine_detail
