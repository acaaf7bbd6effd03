// `edgeplane history`: the recorded runs as text or JSON (pure rendering, tested).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/store.h"

namespace edgeplane::cli {

// The commit id as the tables show it: its first 7 hex digits, "-" when there is none.
std::string shortCommit(const std::optional<std::string>& commit);
// "2026-11-24T20:31:02Z" from unix milliseconds.
std::string isoTime(int64_t ms);
// The first line of a multi-line text.
std::string firstLine(std::string_view text);

// One line per run, newest first (as given), under a header; a run's detail (first line)
// follows it, indented. "No runs recorded." when empty.
std::string renderHistoryText(const std::vector<ApplyRun>& runs);
// A JSON array, one object per run: id, commit (full, or null), commit_short, started_at,
// finished_at, duration_ms, result, author, subject, config, summary, added, changed,
// destroyed, failed, detail (the whole text) and detail_first_line.
std::string renderHistoryJson(const std::vector<ApplyRun>& runs);
// apply --json: one object, "format_version": 1, the fields of renderHistoryJson, and
// "state_store_error": why what the run recorded may not be durable (a failed sync of the state
// store, which makes apply exit 1 whatever the result), or null.
std::string renderRunJson(const ApplyRun& run, const std::optional<std::string>& storeError);

}  // namespace edgeplane::cli
