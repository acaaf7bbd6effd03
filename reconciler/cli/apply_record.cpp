// The run's record in the state store (see apply_record.h).
#include "reconciler/cli/apply_record.h"

#include <signal.h>

#include <cstdlib>

#include "reconciler/cli/command_support.h"
#include "reconciler/core/owned_rows.h"

namespace edgeplane::cli {

CrashPoint::CrashPoint(std::ostream& err) : err_(err) {
  // EDGEPLANE_TEST_CRASH_BEFORE_OP=N: die right before step N; unset, empty or 0: never.
  if (const char* env = std::getenv("EDGEPLANE_TEST_CRASH_BEFORE_OP"); env != nullptr) {
    at_ = std::strtol(env, nullptr, 10);
  }
}

void CrashPoint::before(const std::string& what) {
  if (at_ <= 0 || ++count_ != at_) {
    return;
  }
  err_ << "edgeplane apply: EDGEPLANE_TEST_CRASH_BEFORE_OP=" << at_ << ": killed before " << what
       << "\n"
       << std::flush;
  ::raise(SIGKILL);
}

namespace {

OpAction storeAction(core::Action a) {
  switch (a) {
    case core::Action::Create:
      return OpAction::Create;
    case core::Action::Update:
      return OpAction::Update;
    case core::Action::Delete:
      return OpAction::Delete;
  }
  return OpAction::Update;
}

}  // namespace

Result<size_t> writeOwnership(Store& store, const core::StoreView& before,
                              const core::StoreView& next, int64_t at) {
  const core::OwnedChanges changes = core::ownedChanges(before, next, at);
  return store.transaction([&]() -> Result<size_t> {
    for (const auto& [kind, name] : changes.removed) {
      if (auto r = store.removeOwned(kind, name); !r) {
        return r.error();
      }
    }
    if (auto r = store.putOwnedRows(changes.put); !r) {
      return r.error();
    }
    return changes.removed.size() + changes.put.size();
  });
}

Result<void> recordApply(Store& store, int64_t runId, const core::Plan& p,
                         const core::ApplyResult& result, const core::StoreView& view,
                         const core::StoreView& written, std::ostream& err, CrashPoint& crash) {
  crash.before("recording the operations");
  std::vector<OpOutcome> outcomes;
  outcomes.reserve(p.ops.size());
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const core::Op& op = p.ops[i];
    const core::OpResult& r = result.ops[i];
    outcomes.push_back(OpOutcome{static_cast<int64_t>(i), storeAction(op.action),
                                 std::string(core::toString(op.kind)), op.name, r.ok,
                                 r.ok ? std::nullopt : std::optional(r.error)});
  }
  auto recorded =
      store.transaction([&]() -> Result<void> { return store.recordOps(runId, outcomes); });
  if (!recorded) {
    err << "edgeplane apply: recording the run's operations failed: " << recorded.error().message
        << "\n";
  }
  core::StoreView next = core::recordApplied(p, result, view);
  // Ownership changes only when the owned rows do: a no-op run writes nothing here (the view's
  // snapshot, blocked keys and ARI times are not recordApplied's, and not rows of this table).
  if (next.sameOwnership(written)) {
    return {};
  }
  crash.before("recording ownership");
  auto rows = writeOwnership(store, written, next, nowMs());
  if (!rows) {
    return rows.error();
  }
  return {};
}

}  // namespace edgeplane::cli
