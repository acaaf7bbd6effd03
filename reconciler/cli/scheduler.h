// When the agent reconciles: at start, every interval ± jitter, at once on a trigger, with
// exponential back-off after failures. Pure: the caller passes the time and the randomness.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace edgeplane::cli {

using Clock = std::chrono::steady_clock;

// interval + (2u - 1) * jitter for u in [0, 1]: uniform in [interval - jitter, interval +
// jitter], never below one second (the agent file keeps jitter < interval).
std::chrono::milliseconds jittered(std::chrono::milliseconds interval,
                                   std::chrono::milliseconds jitter, double u);

// The delay after the n-th failure in a row (n >= 1): 5 s, 10 s, 20 s, … capped at `interval`.
std::chrono::milliseconds backoff(int consecutiveFailures, std::chrono::milliseconds interval);

// One run at a time. Triggers that arrive while a run is under way coalesce into one follow-up
// run; a trigger's ticket names the run that will serve it (runs are numbered 1, 2, … in the
// order they start), so a waiting client is answered by a run that started after it asked.
class Scheduler {
 public:
  struct Config {
    std::chrono::milliseconds interval{300000};
    std::chrono::milliseconds jitter{30000};
  };

  // The first run is due at `now`.
  Scheduler(Config config, Clock::time_point now);

  // A trigger: due at once when idle, else right after the current run. Returns its ticket.
  uint64_t trigger();
  // Whether a run should start at `now`.
  bool due(Clock::time_point now) const;
  // When the next run is due (now or in the past when one is due). Used to bound the wait.
  Clock::time_point nextDue() const;
  // The run that begins now; returns its number (the ticket it serves).
  uint64_t start();
  // The current run ended. `u` in [0, 1] draws the jitter of the next periodic run.
  void finish(Clock::time_point now, bool ok, double u);
  // New settings (the agent file re-read on SIGHUP). The next periodic run (or retry after a
  // failure) is recomputed from when the last run ended, as if the new settings had been in
  // force then; `u` draws its jitter. A trigger waiting, the run under way and the first run
  // (due at start) are left as they are.
  void reconfigure(Config config, double u);
  const Config& config() const { return config_; }

  bool running() const { return running_; }
  int consecutiveFailures() const { return failures_; }
  uint64_t runsStarted() const { return started_; }

 private:
  void schedule(double u);  // next_ from lastFinish_, failures_ and config_

  Config config_;
  Clock::time_point next_;
  Clock::time_point lastFinish_;  // when the last run ended (meaningful once one has)
  bool running_ = false;
  bool triggered_ = false;  // a trigger is waiting for the next run
  int failures_ = 0;
  uint64_t started_ = 0;
};

}  // namespace edgeplane::cli
