// The agent's run schedule (see scheduler.h).
#include "reconciler/cli/scheduler.h"

#include <algorithm>
#include <cmath>

namespace edgeplane::cli {

namespace {
constexpr std::chrono::milliseconds kMinDelay{1000};
constexpr std::chrono::milliseconds kFirstBackoff{5000};
}  // namespace

std::chrono::milliseconds jittered(std::chrono::milliseconds interval,
                                   std::chrono::milliseconds jitter, double u) {
  u = std::clamp(std::isfinite(u) ? u : 0.5, 0.0, 1.0);
  const double offset = (2.0 * u - 1.0) * static_cast<double>(jitter.count());
  const auto ms = std::chrono::milliseconds(
      static_cast<int64_t>(std::llround(static_cast<double>(interval.count()) + offset)));
  return std::max(ms, kMinDelay);
}

std::chrono::milliseconds backoff(int consecutiveFailures, std::chrono::milliseconds interval) {
  const auto cap = std::max(interval, kFirstBackoff);
  std::chrono::milliseconds delay = kFirstBackoff;
  for (int i = 1; i < consecutiveFailures && delay < cap; ++i) {
    delay *= 2;
  }
  return std::min(delay, cap);
}

Scheduler::Scheduler(Config config, Clock::time_point now) : config_(config), next_(now) {}

uint64_t Scheduler::trigger() {
  triggered_ = true;
  return started_ + 1;
}

bool Scheduler::due(Clock::time_point now) const {
  return !running_ && (triggered_ || now >= next_);
}

Clock::time_point Scheduler::nextDue() const {
  return triggered_ ? Clock::time_point::min() : next_;
}

uint64_t Scheduler::start() {
  running_ = true;
  triggered_ = false;
  return ++started_;
}

void Scheduler::finish(Clock::time_point now, bool ok, double u) {
  running_ = false;
  lastFinish_ = now;
  failures_ = ok ? 0 : failures_ + 1;
  schedule(u);
}

void Scheduler::reconfigure(Config config, double u) {
  config_ = config;
  if (!running_ && started_ > 0) {
    schedule(u);
  }
}

void Scheduler::schedule(double u) {
  next_ = lastFinish_ + (failures_ == 0 ? jittered(config_.interval, config_.jitter, u)
                                        : backoff(failures_, config_.interval));
}

}  // namespace edgeplane::cli
