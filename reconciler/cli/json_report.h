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

}  // namespace edgeplane::cli
