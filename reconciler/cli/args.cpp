// The command line parsed against the table of options per command (see args.h).
#include "reconciler/cli/args.h"

#include <algorithm>
#include <iterator>
#include <set>

namespace edgeplane::cli {
namespace {

struct OptionSpec {
  std::string_view name;
  bool takesValue;
};

constexpr OptionSpec kOptions[] = {
    {"config", true},
    {"agent", true},
    {"source", true},
    {"ref", true},
    {"path", true},
    {"allowed-signers", true},
    {"host", true},
    {"state-dir", true},
    {"json", false},
    {"detailed-exitcode", false},
    {"offline", false},
    {"observed", true},
    {"lock-timeout", true},
    {"verbose", false},
    {"wireguard-backend", true},
    {"rotate-key", true},
    {"allow-rollback", false},
    {"proxy-admin", true},
    {"limit", true},
    {"check", false},
    {"yes", false},
    {"wait", false},
    {"timeout", true},
    {"name", true},
    {"gateway", true},
    {"role", true},
    {"endpoint", true},
    {"qr", false},
};

}  // namespace

// SOURCE: a plain directory or the Git source (see kUsage).
#define EDGEPLANE_SOURCE_OPTIONS "config", "agent", "source", "ref", "path", "allowed-signers"

const std::vector<CommandSpec>& commandTable() {
  static const std::vector<CommandSpec> table = {
      {"validate", {"config", "host", "json"}},
      {"plan",
       {EDGEPLANE_SOURCE_OPTIONS, "host", "state-dir", "json", "detailed-exitcode", "offline",
        "observed", "lock-timeout", "wireguard-backend", "allow-rollback"}},
      {"apply",
       {EDGEPLANE_SOURCE_OPTIONS, "host", "state-dir", "json", "lock-timeout", "verbose",
        "wireguard-backend", "rotate-key", "proxy-admin", "allow-rollback"}},
      {"agent",
       {EDGEPLANE_SOURCE_OPTIONS, "host", "state-dir", "lock-timeout", "wireguard-backend",
        "proxy-admin"}},
      {"destroy",
       {"agent", "state-dir", "lock-timeout", "wireguard-backend", "proxy-admin", "yes"}},
      // status, history, trigger and apikey take --agent for the state dir (and status for the
      // host) it names.
      {"trigger", {"agent", "state-dir", "wait", "timeout"}},
      {"history", {"agent", "state-dir", "json", "limit"}},
      {"status", {"agent", "config", "host", "state-dir", "json", "wireguard-backend", "check"}},
      {"apikey", {}},
      {"apikey new", {"name", "gateway", "role", "endpoint", "json"}},
      {"apikey list", {"agent", "state-dir", "json"}},
      {"apikey block", {"agent", "state-dir", "proxy-admin"}},
      {"apikey unblock", {"agent", "state-dir", "proxy-admin"}},
      {"peer-config", {EDGEPLANE_SOURCE_OPTIONS, "host", "state-dir", "endpoint", "qr"}},
      {"version", {}},
  };
  return table;
}

#undef EDGEPLANE_SOURCE_OPTIONS

const CommandSpec* findCommand(std::string_view name) {
  for (const CommandSpec& c : commandTable()) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

bool takes(const CommandSpec& command, std::string_view option) {
  return std::find(command.options.begin(), command.options.end(), option) != command.options.end();
}

Args parseArgs(int argc, char** argv) {
  Args a;
  std::vector<std::string> given;  // the options given, in order
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      a.help = true;
    } else if (arg == "--version") {
      a.version = true;
    } else if (arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2);
      std::optional<std::string> value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      }
      const auto* spec = std::find_if(std::begin(kOptions), std::end(kOptions),
                                      [&](const OptionSpec& o) { return o.name == name; });
      if (spec == std::end(kOptions)) {
        a.errors.push_back("unknown option --" + name);
        continue;
      }
      if (!spec->takesValue && value) {
        a.errors.push_back("option --" + name + " takes no value");
        continue;
      }
      if (spec->takesValue && !value) {
        if (i + 1 >= argc) {
          a.errors.push_back("option --" + name + " needs a value");
          continue;
        }
        value = argv[++i];
      }
      a.options[name] = value.value_or("");
      a.repeated[name].push_back(value.value_or(""));
      given.push_back(name);
    } else if (a.command.empty()) {
      a.command = arg;
    } else if ((a.command == "apikey" || a.command == "peer-config") && a.words.size() < 2) {
      a.words.push_back(arg);
    } else {
      a.errors.push_back("unexpected argument '" + arg + "'");
    }
  }
  if (a.command == "help" || (a.command == "apikey" && !a.words.empty() && a.words[0] == "help")) {
    a.help = true;
    a.command = a.command == "help" ? "" : a.command;
    a.words.clear();
  }
  const CommandSpec* command = findCommand(a.spec());
  if (command == nullptr) {
    return a;  // an unknown command (or apikey action) is reported as such
  }
  std::set<std::string, std::less<>> reported;
  for (const std::string& name : given) {
    if (takes(*command, name) || !reported.insert(name).second) {
      continue;
    }
    std::string owners;
    for (const CommandSpec& c : commandTable()) {
      if (takes(c, name)) {
        owners += (owners.empty() ? "" : ", ") + std::string(c.name);
      }
    }
    a.errors.push_back("--" + name + " is not an option of " + a.spec() +
                       " (it belongs to: " + owners + ")");
  }
  return a;
}

}  // namespace edgeplane::cli
