// The agent's Prometheus series: what its reconcile runs did, for GET /metrics of `metrics`.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "schema/store.h"

namespace edgeplane::cli {

// One finished run, as the agent saw it.
struct RunObservation {
  RunResult result = RunResult::Failed;
  int64_t finishedAtMs = 0;  // unix ms
  std::chrono::milliseconds duration{0};
  std::optional<std::string> commit;  // the commit the run worked on, if it got that far
  std::vector<OpOutcome> ops;         // the run's operations and how each ended
  // The run had to change the host although the commit it applied was the one applied before
  // it: the host had drifted (a table flushed, a peer removed by hand, a renewal due).
  bool drift = false;
};

// The last good state recorded before the agent started, so a restart does not reset
// last_successful_apply or config_info.
struct RecordedState {
  std::optional<int64_t> lastSuccessMs;      // the newest run that ended ok
  std::optional<std::string> appliedCommit;  // the newest commit applied (ok or partial)
};

// Series (all but process_* are edgeplane_*):
//   build_info{version} 1; config_info{commit} 1 (the commit last applied, ok or partial)
//   last_run_timestamp_seconds, last_run_success (1 ok, 0 otherwise),
//   last_successful_apply_timestamp_seconds (0: none since the store began)
//   runs_total{result}, run_duration_seconds (histogram)
//   operations_total{kind,result="ok|failed"}, drift_detected (1: the last run found drift)
// Thread-safe: runs are recorded by the loop, render() is called by the metrics server.
class AgentMetrics {
 public:
  static constexpr std::array<double, 12> kDurationBounds{0.1, 0.25, 0.5, 1,   2.5, 5,
                                                          10,  30,   60,  120, 300, 600};

  // Takes what the store recorded before the agent started (once, before any run).
  void restore(RecordedState recorded);
  void recordRun(const RunObservation& run);
  // The Prometheus text of all series, then process_* from /proc/self.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::optional<RunObservation> last_;  // without its ops
  std::optional<int64_t> lastSuccessMs_;
  std::optional<std::string> appliedCommit_;
  std::map<RunResult, uint64_t> runs_;
  std::array<uint64_t, kDurationBounds.size() + 1> durationBuckets_{};
  double durationSum_ = 0;
  std::map<std::pair<std::string, bool>, uint64_t> operations_;  // (kind, ok) -> count
};

// What the store says about runs before now (an unreadable store: nothing).
RecordedState recordedState(const Store& store);

}  // namespace edgeplane::cli
