// The run's record in the state store (see apply_record.h).
#include "reconciler/cli/apply_record.h"

#include <signal.h>

#include <cstdlib>
#include <set>

#include "reconciler/cli/command_support.h"
#include "reconciler/core/state_json.h"

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

Result<void> writeOwnership(Store& store, const core::StoreView& next) {
  return store.transaction([&]() -> Result<void> {
    auto old = store.listOwned(std::nullopt);
    if (!old) {
      return old.error();
    }
    auto rows = core::ownedFromStoreView(next, nowMs());
    std::set<std::pair<std::string, std::string>> kept;
    for (const auto& r : rows) {
      kept.emplace(r.kind, r.name);
    }
    for (const auto& row : *old) {
      if (kept.count({row.kind, row.name}) == 0) {
        if (auto r = store.removeOwned(row.kind, row.name); !r) {
          return r;
        }
      }
    }
    for (const auto& row : rows) {
      if (auto r = store.putOwned(row.kind, row.name, row.data, row.updatedAt); !r) {
        return r;
      }
    }
    return {};
  });
}

Result<void> recordApply(Store& store, int64_t runId, const core::Plan& p,
                         const core::ApplyResult& result, const core::StoreView& view,
                         const core::StoreView& written, std::ostream& err, CrashPoint& crash) {
  crash.before("recording the operations");
  auto recorded = store.transaction([&]() -> Result<void> {
    for (size_t i = 0; i < p.ops.size(); ++i) {
      const core::Op& op = p.ops[i];
      const core::OpResult& r = result.ops[i];
      auto rec =
          store.recordOp(runId, OpOutcome{static_cast<int64_t>(i), storeAction(op.action),
                                          std::string(core::toString(op.kind)), op.name, r.ok,
                                          r.ok ? std::nullopt : std::optional(r.error)});
      if (!rec) {
        return rec;
      }
    }
    return {};
  });
  if (!recorded) {
    err << "edgeplane apply: recording the run's operations failed: " << recorded.error().message
        << "\n";
  }
  core::StoreView next = core::recordApplied(p, result, view);
  // Ownership changes only when the view does: a no-op run writes nothing here.
  if (next == written) {
    return {};
  }
  crash.before("recording ownership");
  return writeOwnership(store, next);
}

}  // namespace edgeplane::cli
