// The JSON documents of validate, plan and apply, read by a JSON parser with every field's
// type checked (issue 14), and config text that cannot drive the terminal in human output.
#include <gtest/gtest.h>

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "reconciler/system/lock.h"
#include "tests/support/command.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

using Output = testing::SplitResult;

// Runs edgeplane with `args` (under `wrapper`, a command that runs its arguments).
Output edgeplane(const std::string& args, const fs::path& scratch,
                 const std::string& wrapper = "") {
  return testing::runCommandSplit(
      "timeout 30 " + wrapper + std::string(EDGEPLANE_BINARY) + " " + args, scratch);
}

Poco::JSON::Object::Ptr parseObject(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

// The JSON type of a value as a script sees it.
std::string typeOf(const Poco::Dynamic::Var& v) {
  if (v.isEmpty()) {
    return "null";
  }
  if (v.type() == typeid(Poco::JSON::Array::Ptr)) {
    return "array";
  }
  if (v.type() == typeid(Poco::JSON::Object::Ptr)) {
    return "object";
  }
  if (v.isBoolean()) {
    return "boolean";
  }
  if (v.isInteger()) {
    return "integer";
  }
  return v.isString() ? "string" : "other";
}

// Every field of `o` is one of `schema`'s, of one of its types ("string|null"), and every field
// of `schema` is there: the document has no missing, extra or mistyped field.
void expectSchema(const Poco::JSON::Object::Ptr& o,
                  const std::map<std::string, std::string>& schema, const std::string& where) {
  ASSERT_FALSE(o.isNull()) << where;
  for (const std::string& name : o->getNames()) {
    EXPECT_EQ(schema.count(name), 1u) << where << ": unexpected field " << name;
  }
  for (const auto& [name, types] : schema) {
    ASSERT_TRUE(o->has(name)) << where << ": no field " << name;
    const std::string type = typeOf(o->get(name));
    EXPECT_NE(("|" + types + "|").find("|" + type + "|"), std::string::npos)
        << where << ": " << name << " is " << type << ", expected " << types;
  }
}

const std::map<std::string, std::string> kDiagnosticsDocument = {
    {"format_version", "integer"}, {"ok", "boolean"}, {"diagnostics", "array"}};
const std::map<std::string, std::string> kDiagnostic = {{"severity", "string"},
                                                        {"file", "string|null"},
                                                        {"line", "integer|null"},
                                                        {"column", "integer|null"},
                                                        {"message", "string"}};

void expectDiagnosticsDocument(const Poco::JSON::Object::Ptr& doc, bool ok, size_t count,
                               const std::string& where) {
  expectSchema(doc, kDiagnosticsDocument, where);
  EXPECT_EQ(doc->getValue<int>("format_version"), 1) << where;
  EXPECT_EQ(doc->getValue<bool>("ok"), ok) << where;
  auto list = doc->getArray("diagnostics");
  ASSERT_EQ(list->size(), count) << where;
  for (unsigned i = 0; i < list->size(); ++i) {
    expectSchema(list->getObject(i), kDiagnostic, where + " diagnostic " + std::to_string(i));
    EXPECT_EQ(list->getObject(i)->getValue<std::string>("severity"), "error");
  }
}

const std::map<std::string, std::string> kPlanErrorDocument = {{"format_version", "integer"},
                                                               {"ok", "boolean"},
                                                               {"error", "object"},
                                                               {"diagnostics", "array"}};
const std::map<std::string, std::string> kPlanError = {{"kind", "string"}, {"message", "string"}};

// plan --json without a plan: the diagnostics document (`count` of them) with ok false and the
// error of `kind`, its message not empty.
void expectPlanErrorDocument(const Poco::JSON::Object::Ptr& doc, const std::string& kind,
                             size_t count, const std::string& where) {
  expectSchema(doc, kPlanErrorDocument, where);
  EXPECT_EQ(doc->getValue<int>("format_version"), 1) << where;
  EXPECT_FALSE(doc->getValue<bool>("ok")) << where;
  auto error = doc->getObject("error");
  expectSchema(error, kPlanError, where + " error");
  EXPECT_EQ(error->getValue<std::string>("kind"), kind) << where;
  EXPECT_FALSE(error->getValue<std::string>("message").empty()) << where;
  auto list = doc->getArray("diagnostics");
  ASSERT_EQ(list->size(), count) << where;
  for (unsigned i = 0; i < list->size(); ++i) {
    expectSchema(list->getObject(i), kDiagnostic, where + " diagnostic " + std::to_string(i));
  }
}

// Two errors with a location each, in a config whose text carries terminal escapes.
void writeBadConfig(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "site.toml") << "[[namespace]]\n"
                                      "name = \"bad\\u001b[31mname\\r\"\n"
                                      "[namespace.wireguard]\n"
                                      "address = [\"10.50.0.1/24\"]\n"
                                      "listen_port = \"51820\"\n";
}

TEST(JsonOutput, ValidateJsonListsTypedDiagnosticsWithTheSameExitStatus) {
  TempDir dir;
  const fs::path bad = dir.path() / "bad";
  writeBadConfig(bad);
  const Output invalid = edgeplane("validate --json --config " + bad.string(), dir.path());
  EXPECT_EQ(invalid.status, 1) << invalid.out << invalid.err;
  auto doc = parseObject(invalid.out);
  ASSERT_GE(doc->getArray("diagnostics")->size(), 1u) << invalid.out;
  expectDiagnosticsDocument(doc, false, doc->getArray("diagnostics")->size(), "invalid");
  auto first = doc->getArray("diagnostics")->getObject(0);
  EXPECT_EQ(first->getValue<std::string>("file"), (bad / "site.toml").string());
  EXPECT_GT(first->getValue<int>("line"), 0);
  EXPECT_GT(first->getValue<int>("column"), 0);
  // The human form of the same run says the same, line by line (the lines without a control
  // character, which the human form escapes: see HumanOutput below).
  const Output human = edgeplane("validate --config " + bad.string(), dir.path());
  EXPECT_EQ(human.status, 1);
  size_t compared = 0;
  auto list = doc->getArray("diagnostics");
  for (unsigned i = 0; i < list->size(); ++i) {
    auto d = list->getObject(i);
    const std::string message = d->getValue<std::string>("message");
    if (std::any_of(message.begin(), message.end(), [](char c) { return c >= 0 && c < 0x20; })) {
      continue;
    }
    const std::string line = d->getValue<std::string>("file") + ":" +
                             std::to_string(d->getValue<int>("line")) + ":" +
                             std::to_string(d->getValue<int>("column")) + ": error: " + message;
    EXPECT_NE(human.err.find(line + "\n"), std::string::npos) << line << "\n" << human.err;
    ++compared;
  }
  EXPECT_GE(compared, 1u);

  const fs::path empty = dir.path() / "empty";
  fs::create_directories(empty);
  std::ofstream(empty / "empty.toml") << "";
  const Output valid = edgeplane("validate --json --config " + empty.string(), dir.path());
  EXPECT_EQ(valid.status, 0) << valid.out << valid.err;
  expectDiagnosticsDocument(parseObject(valid.out), true, 0, "valid");

  // A --host the config does not declare: a diagnostic about no file at all.
  const Output host =
      edgeplane("validate --json --host nowhere --config " + empty.string(), dir.path());
  EXPECT_EQ(host.status, 1) << host.out << host.err;
  auto hostDoc = parseObject(host.out);
  expectDiagnosticsDocument(hostDoc, false, 1, "host");
  auto hostDiag = hostDoc->getArray("diagnostics")->getObject(0);
  EXPECT_TRUE(hostDiag->isNull("file"));
  EXPECT_TRUE(hostDiag->isNull("line"));
  EXPECT_NE(hostDiag->getValue<std::string>("message").find("nowhere"), std::string::npos);
}

const std::map<std::string, std::string> kPlanDocument = {
    {"format_version", "integer"}, {"host", "string"}, {"resource_changes", "array"},
    {"foreign", "array"},          {"notes", "array"}, {"summary", "object"}};
const std::map<std::string, std::string> kResourceChange = {
    {"action", "string"},     {"kind", "string"},         {"name", "string"},
    {"scope", "string"},      {"summary", "string|null"}, {"changes", "array"},
    {"drift", "string|null"}, {"error", "string|null"},   {"depends_on", "array"}};
const std::map<std::string, std::string> kFieldChange = {
    {"field", "string"}, {"before", "string|integer|null"}, {"after", "string|integer|null"}};

TEST(JsonOutput, PlanJsonIsVersionedAndTypedAndAnInvalidConfigStillGivesJson) {
  TempDir dir;
  const std::string demo =
      std::string(EDGEPLANE_SOURCE_DIR) + "/tests/golden/demo-from-empty/desired";
  const Output plan =
      edgeplane("plan --offline --json --detailed-exitcode --config " + demo, dir.path());
  EXPECT_EQ(plan.status, 2) << plan.out << plan.err;  // changes
  auto doc = parseObject(plan.out);
  expectSchema(doc, kPlanDocument, "plan");
  EXPECT_EQ(doc->getValue<int>("format_version"), 1);
  expectSchema(doc->getObject("summary"),
               {{"add", "integer"}, {"change", "integer"}, {"destroy", "integer"}}, "summary");
  auto ops = doc->getArray("resource_changes");
  ASSERT_GT(ops->size(), 0u);
  std::map<std::string, std::string> seen;  // field -> the type of its "after"
  for (unsigned i = 0; i < ops->size(); ++i) {
    auto op = ops->getObject(i);
    expectSchema(op, kResourceChange, "op " + std::to_string(i));
    auto changes = op->getArray("changes");
    for (unsigned j = 0; j < changes->size(); ++j) {
      auto change = changes->getObject(j);
      expectSchema(change, kFieldChange, "change");
      seen[change->getValue<std::string>("field")] = typeOf(change->get("after"));
    }
    auto deps = op->getArray("depends_on");
    for (unsigned j = 0; j < deps->size(); ++j) {
      EXPECT_EQ(typeOf(deps->get(j)), "integer");
    }
  }
  // Numbers are numbers; names, keys and a port range are text.
  EXPECT_EQ(seen["listen_port"], "integer");
  EXPECT_EQ(seen["persistent_keepalive"], "integer");
  EXPECT_EQ(seen["value"], "integer");
  EXPECT_EQ(seen["mappings"], "integer");
  EXPECT_EQ(seen["public_key"], "string");
  EXPECT_EQ(seen["public_port"], "string");
  EXPECT_EQ(plan.out.find("\"51820\""), std::string::npos) << plan.out;

  // An invalid config: the diagnostics document with the error, and exit 1 as without --json.
  const fs::path bad = dir.path() / "bad";
  writeBadConfig(bad);
  for (const std::string extra : {"", " --detailed-exitcode"}) {
    const Output invalid =
        edgeplane("plan --offline --json" + extra + " --config " + bad.string(), dir.path());
    EXPECT_EQ(invalid.status, 1) << invalid.out << invalid.err;
    auto diag = parseObject(invalid.out);
    ASSERT_GE(diag->getArray("diagnostics")->size(), 1u) << invalid.out;
    expectPlanErrorDocument(diag, "config", diag->getArray("diagnostics")->size(), "plan invalid");
    EXPECT_NE(diag->getObject("error")->getValue<std::string>("message").find("does not validate"),
              std::string::npos)
        << invalid.out;
    EXPECT_NE(invalid.err.find("error(s) in"), std::string::npos) << invalid.err;
  }
}

// plan --json that makes no plan (no lock, no fetch, a config that names no host of this
// one): a JSON document on stdout all the same, with the kind of failure and its message;
// the exit status and the human lines on stderr as without --json.
TEST(JsonOutput, PlanJsonFailuresAreJsonDocuments) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directories(state);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::replace);
  const std::string missingRepo = (dir.path() / "no-such-repository").string();

  // The lock: another run holds it, and --lock-timeout 0s gives up at once.
  {
    auto held = sys::StateLock::acquire(state, std::chrono::milliseconds(0), [](long) {});
    ASSERT_TRUE(held.ok()) << held.error().message;
    for (const bool json : {true, false}) {
      const Output locked =
          edgeplane(std::string("plan") + (json ? " --json" : "") + " --lock-timeout 0s --source " +
                        missingRepo + " --state-dir " + state.string(),
                    dir.path());
      EXPECT_EQ(locked.status, 1) << locked.out << locked.err;
      EXPECT_NE(locked.err.find("edgeplane plan:"), std::string::npos) << locked.err;
      if (!json) {
        EXPECT_EQ(locked.out, "");
        continue;
      }
      auto doc = parseObject(locked.out);
      expectPlanErrorDocument(doc, "lock", 0, "lock");
    }
  }

  // The fetch: a repository that is not there (offline: a throw-away cache).
  const Output fetch =
      edgeplane("plan --offline --json --detailed-exitcode --source " + missingRepo, dir.path());
  EXPECT_EQ(fetch.status, 1) << fetch.out << fetch.err;
  auto fetchDoc = parseObject(fetch.out);
  expectPlanErrorDocument(fetchDoc, "fetch", 0, "fetch");
  EXPECT_NE(fetch.err.find("edgeplane plan: " +
                           fetchDoc->getObject("error")->getValue<std::string>("message")),
            std::string::npos)
      << fetch.err;

  // The config names no host this one is: a config error with a diagnostic about no file.
  const fs::path empty = dir.path() / "empty";
  fs::create_directories(empty);
  std::ofstream(empty / "empty.toml") << "[[host]]\nname = \"edge-1\"\n";
  const Output host =
      edgeplane("plan --offline --json --host nowhere --config " + empty.string(), dir.path());
  EXPECT_EQ(host.status, 1) << host.out << host.err;
  auto hostDoc = parseObject(host.out);
  expectPlanErrorDocument(hostDoc, "config", 1, "host");
  EXPECT_NE(hostDoc->getObject("error")->getValue<std::string>("message").find("nowhere"),
            std::string::npos)
      << host.out;
  EXPECT_TRUE(hostDoc->getArray("diagnostics")->getObject(0)->isNull("file"));
}

const std::map<std::string, std::string> kRunRecord = {{"format_version", "integer"},
                                                       {"id", "integer|null"},
                                                       {"commit", "string|null"},
                                                       {"commit_short", "string|null"},
                                                       {"started_at", "string"},
                                                       {"finished_at", "string|null"},
                                                       {"duration_ms", "integer|null"},
                                                       {"result", "string"},
                                                       {"author", "string|null"},
                                                       {"subject", "string|null"},
                                                       {"config", "string"},
                                                       {"summary", "string"},
                                                       {"added", "integer"},
                                                       {"changed", "integer"},
                                                       {"destroyed", "integer"},
                                                       {"failed", "integer"},
                                                       {"detail", "string"},
                                                       {"detail_first_line", "string"},
                                                       {"state_store_error", "null"}};

// apply --json: the run record, one object, alone on stdout; the same exit status. An apply
// that can take no lock records no run: the same shape with id null.
TEST(JsonOutput, ApplyJsonIsTheRunRecord) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  fs::create_directories(state);
  fs::permissions(state, fs::perms::owner_all, fs::perm_options::replace);
  const fs::path bad = dir.path() / "bad";
  writeBadConfig(bad);
  {
    auto held = sys::StateLock::acquire(state, std::chrono::milliseconds(0), [](long) {});
    ASSERT_TRUE(held.ok()) << held.error().message;
    const Output locked = edgeplane("apply --json --lock-timeout 0s --config " + bad.string() +
                                        " --state-dir " + state.string(),
                                    dir.path());
    EXPECT_EQ(locked.status, 1) << locked.out << locked.err;
    auto record = parseObject(locked.out);
    expectSchema(record, kRunRecord, "unrecorded run");
    EXPECT_TRUE(record->isNull("id"));
    EXPECT_EQ(record->getValue<std::string>("result"), "failed");
    EXPECT_NE(locked.err.find("edgeplane apply:"), std::string::npos) << locked.err;
  }
  // A config with errors is a recorded run (refused): apply gets as far as loading it. It runs
  // in a mount namespace of its own with an empty /run, so that apply's sweep of interrupted
  // namespace creates sees nothing of this host.
  if (testing::runCommand("unshare --mount --propagation private true").status != 0) {
    GTEST_SKIP() << "no mount namespace for the recorded-run half";
  }
  const std::string privateRun =
      "unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /run && exec \"$0\" "
      "\"$@\"' ";
  const Output recorded =
      edgeplane("apply --json --config " + bad.string() + " --state-dir " + state.string(),
                dir.path(), privateRun);
  EXPECT_EQ(recorded.status, 1) << recorded.out << recorded.err;
  auto record = parseObject(recorded.out);
  expectSchema(record, kRunRecord, "recorded run");
  EXPECT_EQ(record->getValue<int>("format_version"), 1);
  EXPECT_GT(record->getValue<int64_t>("id"), 0);
  EXPECT_EQ(record->getValue<std::string>("result"), "refused");  // as history shows it
  EXPECT_EQ(record->getValue<std::string>("config"), fs::absolute(bad).lexically_normal().string());
  EXPECT_NE(record->getValue<std::string>("detail").find("site.toml"), std::string::npos)
      << recorded.out;
  // The same record `history --json` shows.
  const Output history = edgeplane("history --json --state-dir " + state.string(), dir.path());
  Poco::JSON::Parser parser;
  auto runs = parser.parse(history.out).extract<Poco::JSON::Array::Ptr>();
  ASSERT_EQ(runs->size(), 1u) << history.out;
  auto listed = runs->getObject(0);
  auto text = [](const Poco::Dynamic::Var& v) { return v.isEmpty() ? "null" : v.toString(); };
  for (const std::string& name : listed->getNames()) {
    EXPECT_EQ(text(listed->get(name)), text(record->get(name))) << name;
  }
  // + format_version and state_store_error
  EXPECT_EQ(listed->getNames().size() + 2, record->getNames().size());
}

// A config whose strings carry an escape sequence and a carriage return: validate and plan
// quote them in their diagnostics, escaped for the terminal in human output and by the JSON
// encoder in JSON; no raw control byte reaches either.
TEST(HumanOutput, ConfigTextCannotDriveTheTerminal) {
  TempDir dir;
  const fs::path bad = dir.path() / "bad";
  writeBadConfig(bad);
  auto rawControl = [](const std::string& text) {
    return text.find_first_of(std::string("\x1b\r\x07", 3)) != std::string::npos;
  };
  for (const std::string command : {"validate", "plan --offline"}) {
    const Output human = edgeplane(command + " --config " + bad.string(), dir.path());
    EXPECT_EQ(human.status, 1) << command;
    EXPECT_FALSE(rawControl(human.out + human.err)) << command << ":\n" << human.err;
    EXPECT_NE(human.err.find("bad\\x1b[31mname\\x0d"), std::string::npos) << command << ":\n"
                                                                          << human.err;
    const Output json = edgeplane(command + " --json --config " + bad.string(), dir.path());
    EXPECT_EQ(json.status, 1) << command;
    EXPECT_FALSE(rawControl(json.out)) << command << " --json:\n" << json.out;
    EXPECT_NE(json.out.find("bad\\u001b[31mname\\r"), std::string::npos) << command << " --json:\n"
                                                                         << json.out;
  }
}

}  // namespace
}  // namespace edgeplane::cli
