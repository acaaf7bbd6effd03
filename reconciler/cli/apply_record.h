// apply's record in the state store: the ownership a run leaves behind, its operations'
// outcomes, and the opt-in crash hook lab.crash_e2e kills apply with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>

#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "schema/store.h"

namespace edgeplane::cli {

// A test hook for lab.crash_e2e: the run's steps that change the host or the store, counted
// from 1 (the executor's driver calls, then the store writes after them); at the chosen one the
// process SIGKILLs itself, as a crash or `kill -9` there would.
class CrashPoint {
 public:
  explicit CrashPoint(std::ostream& err);
  void before(const std::string& what);

 private:
  std::ostream& err_;
  long at_ = 0;
  long count_ = 0;
};

// Makes the store's owned resources exactly `next`, in one transaction, given that they are
// `before` now (the view the run read, or last wrote): only the rows that differ are written
// (serialised, put or removed), stamped `at`. Returns how many rows were written.
Result<size_t> writeOwnership(Store& store, const core::StoreView& before,
                              const core::StoreView& next, int64_t at);

// Records the ops' outcomes and the ownership the apply leaves behind: recordApplied on `view`
// (as the run found the store), written over `written` (what the store holds now, with the
// intent recorded before the ops).
Result<void> recordApply(Store& store, int64_t runId, const core::Plan& p,
                         const core::ApplyResult& result, const core::StoreView& view,
                         const core::StoreView& written, std::ostream& err, CrashPoint& crash);

}  // namespace edgeplane::cli
