// Rendering of the run history (see history.h).
#include "reconciler/cli/history.h"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>

#include <cstdio>
#include <ctime>
#include <sstream>

namespace edgeplane::cli {

std::string shortCommit(const std::optional<std::string>& commit) {
  return commit && !commit->empty() ? commit->substr(0, 7) : "-";
}

std::string isoTime(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string firstLine(std::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

std::string renderHistoryText(const std::vector<ApplyRun>& runs) {
  if (runs.empty()) {
    return "No runs recorded.\n";
  }
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-6s %-7s  %-20s  %-8s %5s %5s %5s %5s  %s\n", "RUN", "COMMIT",
                "STARTED", "RESULT", "ADD", "CHG", "DEL", "FAIL", "AUTHOR: SUBJECT");
  out << line;
  for (const ApplyRun& r : runs) {
    std::snprintf(line, sizeof(line), "%-6lld %-7s  %-20s  %-8s %5lld %5lld %5lld %5lld  ",
                  static_cast<long long>(r.id), shortCommit(r.commitId).c_str(),
                  isoTime(r.startedAt).c_str(), std::string(toString(r.result)).c_str(),
                  static_cast<long long>(r.counts.added), static_cast<long long>(r.counts.changed),
                  static_cast<long long>(r.counts.destroyed),
                  static_cast<long long>(r.counts.failed));
    out << line;
    if (r.author || r.subject) {
      out << r.author.value_or("?") << ": " << r.subject.value_or("");
    } else {
      out << r.configSource;  // a plain --config directory
    }
    out << "\n";
    if (!r.detail.empty()) {
      out << "       " << firstLine(r.detail) << "\n";
    }
  }
  return out.str();
}

namespace {

void setRunFields(Poco::JSON::Object& o, const ApplyRun& r) {
  auto orNull = [](const std::optional<std::string>& s) {
    return s ? Poco::Dynamic::Var(*s) : Poco::Dynamic::Var();
  };
  o.set("id", r.id != 0 ? Poco::Dynamic::Var(r.id) : Poco::Dynamic::Var());  // 0: not recorded
  o.set("commit", orNull(r.commitId));
  o.set("commit_short",
        r.commitId ? Poco::Dynamic::Var(shortCommit(r.commitId)) : Poco::Dynamic::Var());
  o.set("started_at", isoTime(r.startedAt));
  o.set("finished_at",
        r.finishedAt ? Poco::Dynamic::Var(isoTime(*r.finishedAt)) : Poco::Dynamic::Var());
  o.set("duration_ms",
        r.finishedAt ? Poco::Dynamic::Var(*r.finishedAt - r.startedAt) : Poco::Dynamic::Var());
  o.set("result", std::string(toString(r.result)));
  o.set("author", orNull(r.author));
  o.set("subject", orNull(r.subject));
  o.set("config", r.configSource);
  o.set("summary", r.summary);
  o.set("added", r.counts.added);
  o.set("changed", r.counts.changed);
  o.set("destroyed", r.counts.destroyed);
  o.set("failed", r.counts.failed);
  o.set("detail", r.detail);
  o.set("detail_first_line", firstLine(r.detail));
}

}  // namespace

std::string renderHistoryJson(const std::vector<ApplyRun>& runs) {
  using Poco::JSON::Array;
  using Poco::JSON::Object;
  if (runs.empty()) {
    return "[]\n";  // POCO would print an empty array over three lines
  }
  Array::Ptr list = new Array;
  for (const ApplyRun& r : runs) {
    Object::Ptr o = new Object(Poco::JSON_PRESERVE_KEY_ORDER);
    setRunFields(*o, r);
    list->add(o);
  }
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(list, out, 2);
  out << "\n";
  return out.str();
}

std::string renderRunJson(const ApplyRun& run, const std::optional<std::string>& storeError) {
  Poco::JSON::Object::Ptr o = new Poco::JSON::Object(Poco::JSON_PRESERVE_KEY_ORDER);
  o->set("format_version", 1);
  setRunFields(*o, run);
  o->set("state_store_error", storeError ? Poco::Dynamic::Var(*storeError) : Poco::Dynamic::Var());
  std::ostringstream out;
  Poco::JSON::Stringifier::stringify(o, out, 2);
  out << "\n";
  return out.str();
}

}  // namespace edgeplane::cli
