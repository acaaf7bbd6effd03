// The agent's Prometheus series (see agent_metrics.h).
#include "reconciler/cli/agent_metrics.h"

#include "edgeplane_version.h"
#include "reconciler/system/process_metrics.h"
#include "schema/prometheus_text.h"

namespace edgeplane::cli {

namespace {

using prometheus::family;
using prometheus::sample;

double seconds(int64_t unixMs) {
  return static_cast<double>(unixMs) / 1000.0;
}

constexpr RunResult kResults[] = {RunResult::Ok, RunResult::Partial, RunResult::Failed,
                                  RunResult::Refused};

}  // namespace

void AgentMetrics::restore(RecordedState recorded) {
  std::lock_guard lock(mu_);
  lastSuccessMs_ = recorded.lastSuccessMs;
  appliedCommit_ = std::move(recorded.appliedCommit);
}

void AgentMetrics::recordRun(const RunObservation& run) {
  std::lock_guard lock(mu_);
  RunObservation kept = run;
  kept.ops.clear();
  last_ = std::move(kept);
  ++runs_[run.result];
  const double s = std::chrono::duration<double>(run.duration).count();
  size_t bucket = 0;
  while (bucket < kDurationBounds.size() && s > kDurationBounds[bucket]) {
    ++bucket;
  }
  ++durationBuckets_[bucket];
  durationSum_ += s;
  for (const OpOutcome& op : run.ops) {
    ++operations_[{op.kind, op.ok}];
  }
  if (run.result == RunResult::Ok) {
    lastSuccessMs_ = run.finishedAtMs;
  }
  if ((run.result == RunResult::Ok || run.result == RunResult::Partial) && run.commit) {
    appliedCommit_ = run.commit;
  }
}

std::string AgentMetrics::render() const {
  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mu_);
  family(out, "edgeplane_build_info", "gauge",
         "Always 1; the labels say which edgeplane build runs the agent.");
  sample(out, "edgeplane_build_info", {{"version", EDGEPLANE_VERSION}}, 1);
  family(out, "edgeplane_config_info", "gauge",
         "Always 1; the commit of the config last applied (a run that ended ok or partial).");
  if (appliedCommit_) {
    sample(out, "edgeplane_config_info", {{"commit", *appliedCommit_}}, 1);
  }
  family(out, "edgeplane_last_run_timestamp_seconds", "gauge",
         "When the agent's last run ended, unix seconds (0: no run since the agent started).");
  sample(out, "edgeplane_last_run_timestamp_seconds", {},
         last_ ? seconds(last_->finishedAtMs) : 0.0);
  family(out, "edgeplane_last_run_success", "gauge",
         "1 when the agent's last run ended ok, 0 when it failed, was partial or refused, or "
         "there was none yet.");
  sample(out, "edgeplane_last_run_success", {}, last_ && last_->result == RunResult::Ok ? 1 : 0);
  family(out, "edgeplane_last_successful_apply_timestamp_seconds", "gauge",
         "When the last run that ended ok ended, unix seconds (0: none recorded).");
  sample(out, "edgeplane_last_successful_apply_timestamp_seconds", {},
         lastSuccessMs_ ? seconds(*lastSuccessMs_) : 0.0);
  family(out, "edgeplane_runs_total", "counter",
         "Reconcile runs since the agent started, by result.");
  for (RunResult r : kResults) {
    auto it = runs_.find(r);
    sample(out, "edgeplane_runs_total", {{"result", toString(r)}},
           it == runs_.end() ? 0 : it->second);
  }
  family(out, "edgeplane_run_duration_seconds", "histogram",
         "How long each reconcile run took (fetch, plan, apply, publish), seconds.");
  prometheus::histogram(out, "edgeplane_run_duration_seconds", {}, kDurationBounds,
                        durationBuckets_, durationSum_);
  family(out, "edgeplane_operations_total", "counter",
         "Plan operations the agent's runs applied, by resource kind and result (ok|failed).");
  for (const auto& [key, count] : operations_) {
    sample(out, "edgeplane_operations_total",
           {{"kind", key.first}, {"result", key.second ? "ok" : "failed"}}, count);
  }
  family(out, "edgeplane_drift_detected", "gauge",
         "1 when the last run changed the host although its commit was already applied "
         "(the host had drifted from it), else 0.");
  sample(out, "edgeplane_drift_detected", {}, last_ && last_->drift ? 1 : 0);
  appendProcessMetrics(out);
  return out;
}

RecordedState recordedState(const Store& store) {
  RecordedState s;
  if (auto runs = store.recentRuns(200)) {
    for (const ApplyRun& run : *runs) {
      if (run.result == RunResult::Ok && run.finishedAt) {
        s.lastSuccessMs = *run.finishedAt;
        break;
      }
    }
  }
  if (auto good = store.lastGoodCommitRun(); good && *good) {
    s.appliedCommit = (*good)->commitId;
  }
  return s;
}

}  // namespace edgeplane::cli
