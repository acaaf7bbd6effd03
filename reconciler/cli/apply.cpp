// `edgeplane apply`: one reconcile run (reconcile.cpp); with --json the run record on stdout,
// as `history --json` shows it, and every human line on stderr.
#include <iostream>
#include <optional>

#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/git_run.h"
#include "reconciler/cli/history.h"

namespace edgeplane::cli {

int cmdApply(const Options& o) {
  const int64_t startedAt = nowMs();
  // --json: stdout holds the run record and nothing else; every human line goes to stderr.
  RunReport r = reconcileOnce(o, o.json ? std::cerr : std::cout, std::cerr);
  const int status = r.runId != 0 && r.result == RunResult::Ok && r.unsynced.empty() ? 0 : 1;
  if (!o.json) {
    return status;
  }
  std::optional<ApplyRun> run;
  if (r.runId != 0) {
    auto store = Store::open(o.stateDir);
    auto recorded = store ? (*store)->run(r.runId) : Result<std::optional<ApplyRun>>(store.error());
    if (!recorded) {
      std::cerr << "edgeplane apply: reading the run record back failed: "
                << recorded.error().message << "\n";
    } else {
      run = std::move(*recorded);
    }
  }
  if (!run) {
    // Nothing recorded (the lock or the store could not be had): the same shape, id null.
    run = ApplyRun{0,
                   r.commit,
                   o.git ? gitSourceText(*o.git) : o.config.value_or(""),
                   startedAt,
                   nowMs(),
                   r.result,
                   r.summary,
                   {},
                   std::nullopt,
                   std::nullopt,
                   ""};
  }
  std::cout << renderRunJson(
      *run, r.unsynced.empty() ? std::nullopt : std::optional<std::string>(r.unsynced));
  return status;
}

}  // namespace edgeplane::cli
