// The JSON document of validate, and of plan on a config it cannot plan (issue 14): what a
// script reads instead of the `file:line:col: error:` lines.
#pragma once

#include <string>
#include <vector>

#include "schema/diagnostic.h"

namespace edgeplane::cli {

// {"format_version":1,"ok":bool,"diagnostics":[{"severity":"error","file":…,"line":…,
// "column":…,"message":…}]}; ok is true when there are no diagnostics. A diagnostic about the
// whole directory or a whole file (line 0) has line and column null; one about no file at all
// (a --host the config does not declare) has file null too.
std::string renderDiagnosticsJson(const std::vector<Diagnostic>& diagnostics);

// Why `plan` made no plan. `kind` is one of: "source" (no source given), "lock" (the state
// lock), "fetch" (the Git cache, the fetch, the ref, the export), "refused" (apply would
// refuse the commit and has no last good one to fall back to), "store" (the state store),
// "config" (the config does not validate, or names no host this one is), "observed" (the
// --observed file), "observe" (the host or its certificates), "target" (e.g. a peer's
// preshared key file).
struct PlanError {
  std::string kind;
  std::string message;
  std::vector<Diagnostic> diagnostics;  // a "config" error's, as validate --json lists them
};

// plan --json when there is no plan: the diagnostics document with an "error" member,
// {"format_version":1,"ok":false,"error":{"kind":…,"message":…},"diagnostics":[…]}.
std::string renderPlanErrorJson(const PlanError& error);

}  // namespace edgeplane::cli
