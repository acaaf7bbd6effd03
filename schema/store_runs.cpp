// The state store's apply history: one row per run (its commit, result and counts) and one per
// operation it carried out; the last good commit, which the anti-rollback check reads.
#include <sqlite3.h>

#include <array>
#include <optional>

#include "schema/store.h"
#include "schema/store_sql.h"

namespace edgeplane {

using store_sql::Conn;
using store_sql::insertRows;
using store_sql::Stmt;

namespace {

constexpr std::array<std::string_view, 5> kRunResultNames = {"running", "ok", "partial", "failed",
                                                             "refused"};
constexpr std::array<std::string_view, 3> kOpActionNames = {"create", "update", "delete"};

template <typename Enum, size_t N>
std::optional<Enum> parseEnum(const std::array<std::string_view, N>& names, std::string_view text) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == text) {
      return static_cast<Enum>(i);
    }
  }
  return std::nullopt;
}

}  // namespace

std::string_view toString(RunResult r) {
  return kRunResultNames.at(static_cast<size_t>(r));
}
std::string_view toString(OpAction a) {
  return kOpActionNames.at(static_cast<size_t>(a));
}

Result<int64_t> Store::beginRun(const RunStart& start) {
  const LightWrites light(*this);
  const Conn c(db_.get(), path_, &statements_);
  auto r = c.exec("begin run",
                  "INSERT INTO apply_runs (commit_id, config_source, started_at, author, subject) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  start.commitId, start.configSource, start.startedAt, start.author, start.subject);
  if (!r) {
    return r.error();
  }
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_.get()));
}

Result<void> Store::recordOp(int64_t runId, const OpOutcome& op) {
  return recordOps(runId, std::span(&op, 1));
}

Result<void> Store::recordOps(int64_t runId, std::span<const OpOutcome> ops) {
  const LightWrites light(*this);
  const Conn c(db_.get(), path_, &statements_);
  return insertRows(
      c, "record operations", "INSERT INTO apply_ops (run_id, seq, action, kind, name, ok, error)",
      "", 7, ops, [runId](Stmt& s, int first, const OpOutcome& op) {
        s.bindFrom(first, runId, op.seq, toString(op.action), op.kind, op.name, op.ok, op.error);
      });
}

namespace {

// Whether run `runId`, finishing well, would make its commit the last good one: it has one,
// and the last good run so far has another (or there is none). An error counts as yes.
bool movesLastGoodCommit(const Store& store, const Conn& c, int64_t runId) {
  auto commit = c.queryOne<std::string>(
      "read the run's commit",
      "SELECT commit_id FROM apply_runs WHERE id = ?1 AND commit_id IS NOT NULL",
      [](const Stmt& s) { return std::optional(s.text(0)); }, runId);
  if (!commit || !commit->has_value()) {
    return !commit.ok();
  }
  auto last = store.lastGoodCommitRun();
  return !last || !last->has_value() || (*last)->commitId != **commit;
}

}  // namespace

Result<void> Store::finishRun(int64_t runId, const RunFinish& finish) {
  if (finish.result == RunResult::Running) {
    return terminal("state store " + path_.string() + ": finish run " + std::to_string(runId) +
                    ": a finished run needs a final result, not 'running'");
  }
  const Conn c(db_.get(), path_, &statements_);
  // History, unless the run makes its commit the last good one: the anti-rollback marker
  // (lastGoodCommitRun) then moves, and is synced at close with what matters.
  std::optional<LightWrites> light;
  if (!(finish.result == RunResult::Ok || finish.result == RunResult::Partial) ||
      !movesLastGoodCommit(*this, c, runId)) {
    light.emplace(*this);
  }
  auto r =
      c.exec("finish run",
             "UPDATE apply_runs SET finished_at = ?2, result = ?3, summary = ?4, "
             "added = ?5, changed = ?6, destroyed = ?7, failed = ?8, detail = ?9 WHERE id = ?1",
             runId, finish.finishedAt, toString(finish.result), finish.summary, finish.counts.added,
             finish.counts.changed, finish.counts.destroyed, finish.counts.failed, finish.detail);
  if (!r) {
    return r.error();
  }
  if (*r == 0) {
    return terminal("state store " + path_.string() + ": finish run: no run " +
                    std::to_string(runId));
  }
  return {};
}

namespace {
constexpr std::string_view kRunColumns =
    "SELECT id, commit_id, config_source, started_at, finished_at, result, summary, added, "
    "changed, destroyed, failed, author, subject, detail FROM apply_runs ";

std::optional<ApplyRun> readRun(const Stmt& s) {
  auto result = parseEnum<RunResult>(kRunResultNames, s.text(5));
  if (!result) {
    return std::nullopt;
  }
  ApplyRun run{s.int64(0),    s.optText(1),
               s.text(2),     s.int64(3),
               s.optInt64(4), *result,
               s.text(6),     RunCounts{s.int64(7), s.int64(8), s.int64(9), s.int64(10)}};
  run.author = s.optText(11);
  run.subject = s.optText(12);
  run.detail = s.text(13);
  return run;
}
}  // namespace

Result<std::vector<ApplyRun>> Store::recentRuns(int limit) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<ApplyRun>("list runs", std::string(kRunColumns) + "ORDER BY id DESC LIMIT ?1",
                           readRun, limit < 0 ? 0 : limit);
}

Result<std::optional<ApplyRun>> Store::run(int64_t runId) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<ApplyRun>("read run", std::string(kRunColumns) + "WHERE id = ?1", readRun,
                              runId);
}

Result<std::optional<ApplyRun>> Store::lastGoodCommitRun() const {
  const Conn c(db_.get(), path_, &statements_);
  return c.queryOne<ApplyRun>("find the last good commit",
                              std::string(kRunColumns) +
                                  "WHERE commit_id IS NOT NULL AND result IN ('ok', 'partial') "
                                  "ORDER BY id DESC LIMIT 1",
                              readRun);
}

Result<std::vector<OpOutcome>> Store::runOps(int64_t runId) const {
  const Conn c(db_.get(), path_, &statements_);
  return c.query<OpOutcome>(
      "list run operations",
      "SELECT seq, action, kind, name, ok, error FROM apply_ops WHERE run_id = ?1 ORDER BY seq",
      [](const Stmt& s) -> std::optional<OpOutcome> {
        auto action = parseEnum<OpAction>(kOpActionNames, s.text(1));
        if (!action) {
          return std::nullopt;
        }
        return OpOutcome{s.int64(0), *action, s.text(2), s.text(3), s.int64(4) != 0, s.optText(5)};
      },
      runId);
}

}  // namespace edgeplane
