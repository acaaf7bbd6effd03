// The timer wheel's list operations (see timer_wheel.h).
#include "proxy/engine/timer_wheel.h"

#include <algorithm>

namespace edgeplane::proxy::engine_detail {

void TimerWheel::schedule(EventTarget* t, int64_t deadlineMs) {
  unschedule(t);
  int64_t tick = (deadlineMs + kTickMs - 1) / kTickMs;
  if (tick <= lastTick_) {
    tick = lastTick_ + 1;
  }
  t->tTick_ = tick;
  EventTarget*& head = wheel_[static_cast<size_t>(tick) % kSlots];
  t->tPrev_ = nullptr;
  t->tNext_ = head;
  if (head != nullptr) {
    head->tPrev_ = t;
  }
  head = t;
  ++count_;
}

void TimerWheel::unschedule(EventTarget* t) {
  if (t->tTick_ < 0) {
    return;
  }
  if (t->tPrev_ != nullptr) {
    t->tPrev_->tNext_ = t->tNext_;
  } else {
    wheel_[static_cast<size_t>(t->tTick_) % kSlots] = t->tNext_;
  }
  if (t->tNext_ != nullptr) {
    t->tNext_->tPrev_ = t->tPrev_;
  }
  t->tPrev_ = nullptr;
  t->tNext_ = nullptr;
  t->tTick_ = -1;
  --count_;
}

void TimerWheel::advance(int64_t nowMs, std::vector<EventTarget*>& expired) {
  int64_t nowTick = nowMs / kTickMs;
  if (nowTick <= lastTick_) {
    return;
  }
  size_t first = expired.size();
  int64_t steps = std::min<int64_t>(nowTick - lastTick_, static_cast<int64_t>(kSlots));
  for (int64_t s = 1; s <= steps; ++s) {
    EventTarget* t = wheel_[static_cast<size_t>(lastTick_ + s) % kSlots];
    while (t != nullptr) {
      EventTarget* next = t->tNext_;
      if (t->tTick_ <= nowTick) {
        expired.push_back(t);  // entries of later revolutions stay
      }
      t = next;
    }
  }
  lastTick_ = nowTick;
  for (size_t i = first; i < expired.size(); ++i) {
    unschedule(expired[i]);
  }
}

}  // namespace edgeplane::proxy::engine_detail
