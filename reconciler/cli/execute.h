// A planned run carried out on this host (apply and destroy): the intent, the ops, the record of
// what they left, then the proxy's snapshot and API keys. Not a public interface.
#pragma once
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/cli/apply_record.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/publish.h"
#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"
#include "reconciler/system/certs.h"
#include "reconciler/system/host_driver.h"
#include "schema/result.h"
#include "schema/snapshot.h"
#include "schema/store.h"

namespace edgeplane::cli {

struct Executed {
  core::ApplyResult result;
  RunCounts counts;
  bool saved = false;       // the ops' outcomes and the ownership they leave are recorded
  bool published = false;   // the proxy snapshot is in the store
  bool keysSynced = false;  // the api_keys table follows it
  std::optional<Published> snapshot;
  ProxySnapshot proxy;               // what was published (commit set)
  std::vector<std::string> leftOut;  // routes left out of it, and why
};

// Runs plan `p` of run `runId` on `host`: writes the namespaces about to be made into the store
// first (an error here means nothing was applied), then the ops (EDGEPLANE_FAIL_OPS fails the
// named driver calls on purpose, for the lab), records them, publishes the snapshot the ops
// leave (telling the proxy) and its API keys. `who` names the command in messages ("apply").
Result<Executed> executePlan(const Options& o, Store& store, int64_t runId, const core::Plan& p,
                             const core::StoreView& view, const core::HostState& observed,
                             sys::KernelHost& host, sys::CertStore& certStore,
                             const std::optional<std::string>& commit, std::string_view who,
                             CrashPoint& crash, std::ostream& out, std::ostream& err);

// Publishes `snapshot` as run `runId`'s and tells the proxy when it changed; prints what it did.
Result<Published> publishAndNotify(const Options& o, Store& store, const ProxySnapshot& snapshot,
                                   int64_t runId, std::string_view who, std::string_view why,
                                   std::ostream& out, std::ostream& err);

// "2 added, 0 changed, 1 destroyed, 0 failed".
std::string countsText(const RunCounts& c);

}  // namespace edgeplane::cli
