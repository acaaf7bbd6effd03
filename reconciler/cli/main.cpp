// The `edgeplane` command line: parses arguments, runs one command, logs once at the top.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "edgeplane_version.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/json_report.h"
#include "reconciler/cli/peer_config.h"
#include "reconciler/cli/terminal_out.h"
#include "schema/agent_config.h"
#include "schema/loader.h"
#include "schema/net.h"
#include "schema/validate.h"

namespace edgeplane {
namespace {

// Exit status of a command line that does not make sense (a missing, unknown or misplaced
// option); 1 is a command that failed.
constexpr int kUsageError = 2;

constexpr const char* kUsage = R"(Usage: edgeplane COMMAND [OPTIONS]

Human output is coloured on a terminal; NO_COLOR set to anything, or TERM=dumb, turns that off.

commands:
  validate --config DIR [--host NAME] [--json]
                                       check a desired-state directory; print every error
  plan     SOURCE [--host NAME] [--state-dir DIR] [--json] [--detailed-exitcode]
           [--offline [--observed FILE]] [--lock-timeout DURATION] [--allow-rollback]
           [--wireguard-backend auto|kernel|userspace]
                                       show what apply would change, change nothing
  apply    SOURCE [--host NAME] [--state-dir DIR] [--json] [--lock-timeout DURATION]
           [--verbose] [--wireguard-backend auto|kernel|userspace] [--rotate-key NS]
           [--proxy-admin ADDR] [--allow-rollback]
                                       converge this host to the config and record the run
  destroy  [--state-dir DIR] [--agent FILE] [--yes] [--lock-timeout DURATION]
           [--wireguard-backend auto|kernel|userspace] [--proxy-admin ADDR]
                                       remove everything edgeplane made on this host (what
                                       apply of an empty config would); foreign objects stay
  agent    [--agent FILE] [--proxy-admin ADDR] [SOURCE overrides] [--host NAME]
           [--state-dir DIR] [--lock-timeout DURATION]
           [--wireguard-backend auto|kernel|userspace]
                                       reconcile at start, every interval ± jitter, and at once
                                       when triggered (unix socket, optional webhook)
  trigger  [--state-dir DIR] [--agent FILE] [--wait] [--timeout DURATION]
                                       ask the running agent to reconcile now; --wait: until
                                       that run ends (exit 0 when it ended ok)
  history  [--state-dir DIR] [--agent FILE] [--json] [--limit N]
                                       recorded runs, newest first
  status   [--state-dir DIR] [--agent FILE] [--config DIR] [--host NAME] [--json] [--check]
           [--wireguard-backend auto|kernel|userspace]
                                       last run (and why it was refused), last good commit,
                                       owned resources, blocked API keys, pending changes or drift
  apikey   new --name NAME [--gateway G]... [--role worker|admin] [--endpoint PATH]... [--json]
           list [--state-dir DIR] [--agent FILE] [--json]
           block ID | unblock ID [--state-dir DIR] [--agent FILE] [--proxy-admin ADDR]
                                       worker-gateway API keys: a new key (shown once) and its
                                       [[api_key]] stanza; the applied keys and their usage; a
                                       block on this host (`edgeplane apikey --help`)
  peer-config NAMESPACE PEER [SOURCE] [--endpoint HOST[:PORT]] [--qr] [--host NAME]
           [--state-dir DIR]
                                       print a wg-quick .conf for a peer of a namespace (its
                                       private and preshared keys left to fill in; the config:
                                       --config or --source, else the one the last Git run
                                       applied)
  version                              print the version

SOURCE is one of:
  --config DIR        a plain directory
  [--agent FILE] [--source URL] [--ref REF] [--path P] [--allowed-signers FILE]
                      a Git repository: the agent file's [source] (the default agent file,
                      /etc/edgeplane/agent.toml, when neither --config nor --source is given;
                      peer-config fetches only with --source), each flag overriding it

Options:
  --config DIR        a plain directory of *.toml files (read and merged): validate checks
                      it; plan, apply and agent use it as SOURCE; status compares the host
                      with it, and peer-config reads it, instead of the last applied config
  --agent FILE        the agent file (every field in examples/agent.toml): its [source] for
                      plan, apply and agent; its state_dir, host and settings for every command
                      (status, history, trigger, destroy, apikey and peer-config read
                      /etc/edgeplane/agent.toml by default, when it exists)
  --source URL        a Git repository (local path, file://, https://, ssh://), fetched into a
                      cache under the state directory (peer-config: a temporary one)
  --ref REF           with a Git source: a branch, tag or full commit id (default main)
  --path P            with a Git source: the config root in the repository (default: the top)
  --allowed-signers FILE
                      with a Git source: refuse every commit not signed by a key of FILE
                      (ssh-keygen's allowed signers format)
  --host NAME         the [[host]] to converge (default: the agent file's host, else this
                      machine's hostname, or "default" when the config declares no hosts)
  --state-dir DIR     state directory: this flag, else the agent file's state_dir, else
                      $EDGEPLANE_STATE_DIR, else /var/lib/edgeplane
  --json              machine-readable output on stdout (human text goes to stderr): validate
                      and plan on an invalid config: {"format_version":1,"ok":false,
                      "diagnostics":[{"severity","file","line","column","message"}]}; plan:
                      the plan with its "format_version"; apply: the run record, one object
                      with "format_version" and the fields of `history --json`
  --detailed-exitcode plan exits 0 with no changes, 2 with changes, 1 on error
  --offline           plan without looking at this host: against an empty host, or the
                      state saved by --observed FILE (a Git source is fetched into a
                      temporary cache)
  --observed FILE     plan --offline: plan against the host as `edgeplane status --json`
                      saved it on that host, not against an empty one
  --lock-timeout D    plan, apply, agent, destroy: give up after D (0s: at once) if another
                      run holds the lock
  --verbose           apply: print every message of every nftables batch
  --allow-rollback    plan, apply: take a commit that does not descend from the last applied
                      one (or is dated before it); the run is recorded as a rollback
  --wireguard-backend auto | kernel | userspace (wireguard-go); auto: kernel when the kernel
                      can create WireGuard links
  --rotate-key NS     apply: replace namespace NS's WireGuard private key (peers must be
                      given the new public key); without it a lost key file is refused
  --proxy-admin ADDR  where the proxy is told about a new snapshot ("unix:/path" or
                      "127.0.0.1:PORT"; default: the agent file's [proxy] admin, else
                      unix:<state-dir>/proxy-admin.sock)
  --limit N           history: at most N runs (default 20)
  --check             status, for monitoring: exit 0 when the last run ended ok and the host
                      matches the config it applied; 3 when nothing was applied yet or the
                      last run failed, was partial or was refused; 4 when the host drifted
                      (or could not be compared); 1 when the state cannot be read
  --yes               destroy: do not ask (needed when not on a terminal)
  --wait              trigger: wait for the triggered run and exit with its outcome
  --timeout D         trigger: give up after D (default 10s, with --wait 10m)
  --endpoint HOST[:PORT]
                      peer-config: where the peer reaches this host (the port defaults to
                      the namespace's listen_port)
  --qr                peer-config: print the .conf as a QR code (for the WireGuard app)

A duration D is a number and its unit (ms, s, m, h), or several from the largest unit down:
5s, 1.5s, 500ms, 2m, 1h30m. A bare number is refused, as in every duration of the config and
the agent file.
)";

// ---- which options each command takes ----
//
// Every option belongs to the commands listed for it, and a command refuses every other one
// (issue 13, finding 5: `agent --rotate-key NS` once rotated the key on every run). A new
// option is a row in kOptions and its name in the rows of the commands that take it; its help
// is its entry under "Options:" in kUsage, which `edgeplane CMD --help` shows for CMD.

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

struct CommandSpec {
  std::string_view name;  // apikey's actions are commands of their own here: "apikey new"
  std::vector<std::string_view> options;
};

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

// `edgeplane CMD --help`: CMD's entries of kUsage (its synopsis, SOURCE when it takes one, and
// its options), cut from the one usage text so that the two never disagree. An entry is a line
// indented by two spaces and the lines indented deeper that follow it.
std::string commandUsage(const CommandSpec& command) {
  if (command.name.starts_with("apikey")) {
    return std::string(cli::apiKeyUsage());
  }
  enum class Section { kNone, kCommands, kSource, kOptionList, kDuration } section = Section::kNone;
  std::string synopsis;
  std::string source;
  std::string options;
  std::string durations;
  bool keep = false;
  std::istringstream text(kUsage);
  for (std::string line; std::getline(text, line);) {
    if (line == "commands:") {
      section = Section::kCommands;
    } else if (line.starts_with("SOURCE is")) {
      section = Section::kSource;
    } else if (line == "Options:") {
      section = Section::kOptionList;
    } else if (line.starts_with("A duration D")) {
      section = Section::kDuration;
    }
    if (section == Section::kDuration) {
      const bool timed = takes(command, "lock-timeout") || takes(command, "timeout");
      durations += timed && !line.empty() ? line + "\n" : "";
      continue;
    }
    if (section == Section::kSource) {
      source += takes(command, "source") && !line.empty() ? line + "\n" : "";
      continue;
    }
    if (!line.starts_with("  ")) {
      continue;
    }
    if (line[2] != ' ') {  // an entry begins
      const std::string word = line.substr(2, line.find(' ', 2) - 2);
      keep = section == Section::kCommands
                 ? word == command.name
                 : word.starts_with("--") && takes(command, word.substr(2));
    }
    if (keep) {
      (section == Section::kCommands ? synopsis : options) += line + "\n";
    }
  }
  return "Usage:\n" + synopsis + (source.empty() ? "" : "\n" + source) +
         (options.empty() ? "" : "\nOptions:\n" + options) +
         (durations.empty() ? "" : "\n" + durations);
}

// --flag VALUE options and positional words, nothing cleverer.
struct Args {
  std::string command;
  std::vector<std::string> words;  // after the command: apikey's action and ID
  std::map<std::string, std::string, std::less<>> options;                // the last value of each
  std::map<std::string, std::vector<std::string>, std::less<>> repeated;  // every value
  std::vector<std::string> errors;
  bool help = false;     // --help, -h, `help` (as the command, or as apikey's action)
  bool version = false;  // --version

  std::optional<std::string> get(std::string_view name) const {
    auto it = options.find(name);
    return it != options.end() ? std::optional<std::string>(it->second) : std::nullopt;
  }
  // The row of commandTable() that applies: "apikey new" for apikey's actions.
  std::string spec() const {
    return command == "apikey" && !words.empty() ? "apikey " + words.front() : command;
  }
};

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

using cli::plural;

std::string summary(const Desired& d) {
  size_t peers = 0;
  size_t routes = 0;
  size_t suspended = 0;
  for (const auto& ns : d.namespaces) {
    peers += ns.peers.size();
    routes += ns.routes.size();
    suspended += ns.suspended ? 1 : 0;
  }
  size_t endpoints = 0;
  for (const auto& g : d.gateways) {
    endpoints += g.endpoints.size();
  }
  std::string s = plural(d.hosts.size(), "host", "hosts") + ", " +
                  plural(d.namespaces.size(), "namespace", "namespaces");
  if (suspended != 0) {
    s += " (" + std::to_string(suspended) + " suspended)";
  }
  s += ", " + plural(peers, "peer", "peers") + ", " + plural(routes, "route", "routes") + ", " +
       plural(d.forwards.size(), "forward", "forwards") + ", " +
       plural(d.certificates.size(), "certificate", "certificates") + ", " +
       plural(d.sites.size(), "site", "sites") + ", " +
       plural(d.passthroughs.size(), "passthrough", "passthroughs") + ", " +
       plural(d.gateways.size(), "gateway", "gateways") + " (" +
       plural(endpoints, "endpoint", "endpoints") + "), " +
       plural(d.api_keys.size(), "api_key", "api_keys");
  return s;
}

int cmdValidate(const Args& args) {
  auto config = args.get("config");
  if (!config || config->empty()) {
    std::cerr << "edgeplane validate: --config DIR is required\n";
    return kUsageError;
  }
  Diagnostics diags;
  Desired d = loadAndValidate(*config, diags);
  std::optional<std::string> hostProblem;  // a --host the config does not declare
  auto host = args.get("host");
  if (diags.empty() && host) {
    auto hosts = targetHosts(d);
    if (std::find(hosts.begin(), hosts.end(), *host) == hosts.end()) {
      hostProblem = "host \"" + *host + "\" is not defined in " + *config;
    }
  }
  if (args.options.count("json") != 0) {
    std::vector<Diagnostic> found = diags.sorted();
    if (hostProblem) {
      found.push_back({{}, *hostProblem});
    }
    std::cout << cli::renderDiagnosticsJson(found);
    return found.empty() ? 0 : 1;
  }
  if (!diags.empty()) {
    std::cerr << diags.format();
    std::cerr << "edgeplane validate: " << plural(diags.sorted().size(), "error", "errors")
              << " in " << *config << "; nothing would be applied\n";
    return 1;
  }
  if (hostProblem) {
    std::cerr << "edgeplane validate: " << *hostProblem << "\n";
    return 1;
  }
  std::cout << "valid: "
            << (host ? "host " + *host + ": " + summary(resolveFor(d, *host)) : summary(d)) << "\n";
  return 0;
}

// A duration flag in the one syntax of schema/net.h; -1 when it is not given, nullopt (after
// saying why, with the expected form) when it is not a duration. `zero`: "0s" means something.
std::optional<std::chrono::milliseconds> duration(const Args& args, const std::string& name,
                                                  bool zero) {
  auto t = args.get(name);
  if (!t) {
    return std::chrono::milliseconds(-1);
  }
  auto d = zero ? parseDurationOrZero(*t) : parseDuration(*t);
  if (!d) {
    std::cerr << "edgeplane " << args.command << ": --" << name << ": "
              << durationProblem(*t, kMaxDuration) << "\n";
  }
  return d;
}

// Fills in the source, the state dir, the host and the agent's settings from the flags and
// the agent file. Returns false (after printing why) when they do not make sense.
bool resolveSource(const Args& args, cli::Options& o) {
  const std::string& cmd = args.command;
  const bool sourceCommand = cmd == "plan" || cmd == "apply" || cmd == "agent";
  const bool overrides = args.get("ref") || args.get("path") || args.get("allowed-signers");
  // peer-config reads the config the last Git run kept unless it is given a Git source.
  const bool fetches = sourceCommand || (cmd == "peer-config" && (args.get("source") || overrides));
  if (o.config && (args.get("agent") || args.get("source") || overrides)) {
    std::cerr << "edgeplane " << cmd
              << ": --config DIR is a plain directory; it does not go with --agent, --source, "
                 "--ref, --path or --allowed-signers\n";
    return false;
  }
  // The agent file: given, or the default one for a Git command without another source. For
  // status, history and trigger the default file only tells the state dir and host, if present.
  std::optional<std::string> agentPath = args.get("agent");
  bool explicitAgent = agentPath.has_value();
  if (!agentPath && !o.config) {
    if (sourceCommand && !args.get("source")) {
      agentPath = std::string(kDefaultAgentFile);
      explicitAgent = true;
    } else if (!sourceCommand && std::filesystem::exists(kDefaultAgentFile)) {
      agentPath = std::string(kDefaultAgentFile);
    }
  }
  std::optional<AgentConfig> agent;
  if (agentPath) {
    Diagnostics diags;
    std::error_code ec;
    if (!std::filesystem::exists(*agentPath, ec)) {
      std::cerr << "edgeplane " << cmd << ": agent file " << *agentPath << " does not exist"
                << (args.get("agent") ? "" : " (pass --config DIR, --source URL or --agent FILE)")
                << "\n";
      return false;
    }
    AgentConfig loaded = loadAgentConfig(*agentPath, diags);
    if (!diags.empty()) {
      std::cerr << diags.format();
      if (explicitAgent) {
        std::cerr << "edgeplane " << cmd << ": " << diags.sorted().size()
                  << " error(s) in the agent file " << *agentPath << "\n";
        return false;
      }
      std::cerr << "edgeplane " << cmd << ": ignoring the agent file " << *agentPath << "\n";
    } else {
      agent = std::move(loaded);
      o.agentFile = *agentPath;
    }
  }

  // State dir: --state-dir > the agent file's state_dir > $EDGEPLANE_STATE_DIR > default.
  const char* envState = std::getenv("EDGEPLANE_STATE_DIR");
  if (auto flag = args.get("state-dir")) {
    o.stateDir = *flag;
  } else if (agent && agent->origin.isLoaded("state_dir")) {
    o.stateDir = agent->state_dir;
  } else if (envState != nullptr && *envState != '\0') {
    o.stateDir = envState;
  } else {
    o.stateDir = std::string(kDefaultStateDir);
  }

  if (agent) {
    o.agentHost = agent->host;
    if (!args.get("wireguard-backend")) {
      o.wireguardBackend = agent->wireguard_backend;
    }
    o.interval = agent->interval;
    o.jitter = agent->jitter;
    if (agent->webhook) {
      o.webhookListen = agent->webhook->listen.str();
      o.webhookSecretFile = agent->webhook->secret_file;
    }
    o.metricsListen = agent->metrics;
  }
  if (agent && agent->proxy_admin_token_file) {
    o.proxyAdminTokenFile = *agent->proxy_admin_token_file;
  }
  if (auto flag = args.get("proxy-admin")) {
    o.proxyAdmin = *flag;
  } else if (agent && agent->origin.isLoaded("proxy.admin") && agent->proxy_admin) {
    o.proxyAdmin = *agent->proxy_admin;
  } else {
    o.proxyAdmin = "unix:" + (std::filesystem::path(o.stateDir) / "proxy-admin.sock").string();
  }

  if (!fetches || o.config) {
    return true;
  }
  cli::GitSettings g;
  if (agent && !args.get("source")) {
    g.url = agent->source.url;
    g.ref = agent->source.ref;
    g.path = agent->source.path;
    g.sshKey = agent->source.ssh_key;
    g.allowedSigners = agent->source.allowed_signers;
    g.fetchTimeout = agent->source.fetch_timeout;
    g.fetchMaxSize = agent->source.fetch_max_size;
  } else if (auto url = args.get("source")) {
    g.url = *url;
    if (agent) {  // another repository: only the host-level settings carry over
      g.fetchTimeout = agent->source.fetch_timeout;
      g.fetchMaxSize = agent->source.fetch_max_size;
      g.sshKey = agent->source.ssh_key;
    }
  }
  if (g.url.empty()) {
    std::cerr << "edgeplane " << cmd << ": --config DIR, --source URL or --agent FILE is needed\n";
    return false;
  }
  if (auto ref = args.get("ref")) {
    g.ref = *ref;
  }
  if (auto path = args.get("path")) {
    std::string p = std::filesystem::path(*path).lexically_normal().generic_string();
    while (!p.empty() && p.back() == '/') {
      p.pop_back();
    }
    g.path = p == "." ? "" : p;
  }
  if (auto signers = args.get("allowed-signers")) {
    g.allowedSigners = std::filesystem::absolute(*signers).string();
  }
  g.allowRollback = (agent && !args.get("source") && agent->source.allow_rollback) ||
                    args.options.count("allow-rollback") != 0;
  o.git = std::move(g);
  return true;
}

// The options of a command other than validate, from the flags and the agent file; nullopt
// (after saying why) when they do not make sense. The agent calls it again on SIGHUP.
std::optional<cli::Options> resolveOptions(const Args& args, int usageError, int* status) {
  cli::Options o;
  o.config = args.get("config");
  o.host = args.get("host");
  o.observed = args.get("observed");
  o.json = args.options.count("json") != 0;
  o.detailedExitcode = args.options.count("detailed-exitcode") != 0;
  o.offline = args.options.count("offline") != 0;
  o.verbose = args.options.count("verbose") != 0;
  o.wait = args.options.count("wait") != 0;
  o.check = args.options.count("check") != 0;
  o.yes = args.options.count("yes") != 0;
  // "0s" lock timeout: take the lock if it is free, else give up at once.
  auto lockTimeout = duration(args, "lock-timeout", true);
  auto timeout = duration(args, "timeout", false);
  if (!lockTimeout || !timeout) {
    *status = usageError;
    return std::nullopt;
  }
  o.lockTimeout = *lockTimeout;
  o.timeout = *timeout;
  if (auto limit = args.get("limit")) {
    char* end = nullptr;
    long n = std::strtol(limit->c_str(), &end, 10);
    if (limit->empty() || *end != '\0' || n < 1 || n > 1000000) {
      std::cerr << "edgeplane " << args.command << ": --limit takes a positive number\n";
      *status = usageError;
      return std::nullopt;
    }
    o.limit = static_cast<int>(n);
  }
  if (auto w = args.get("wireguard-backend")) {
    o.wireguardBackend = *w;
  }
  if (auto r = args.get("rotate-key")) {
    std::stringstream list(*r);
    for (std::string ns; std::getline(list, ns, ',');) {
      o.rotateKeys.insert(ns);
    }
  }
  if (o.observed && !o.offline) {
    std::cerr << "edgeplane plan: --observed goes with --offline\n";
    *status = usageError;
    return std::nullopt;
  }
  if (!resolveSource(args, o)) {
    *status = 1;
    return std::nullopt;
  }
  if (o.wireguardBackend != "auto" && o.wireguardBackend != "kernel" &&
      o.wireguardBackend != "userspace") {
    std::cerr << "edgeplane " << args.command
              << ": --wireguard-backend is auto, kernel or userspace\n";
    *status = usageError;
    return std::nullopt;
  }
  *status = 0;
  o.fetchHelper = cli::defaultFetchHelper();
  return o;
}

int run(int argc, char** argv) {
  // The bounded fetch's child (see fetch_child.h): not a user command.
  if (argc >= 2 && std::string_view(argv[1]) == "__fetch") {
    return cli::fetchChildMain(std::vector<std::string>(argv + 2, argv + argc));
  }
  Args args = parseArgs(argc, argv);
  // Human output, on stdout and stderr alike, goes through one escaping filter: no commit
  // author or subject, refusal detail, key name or peer's message can drive the terminal
  // (issue 13, finding 8). JSON on stdout is escaped by its encoder instead. Colour only on a
  // terminal, never with --json (issue 14).
  const bool json = args.options.count("json") != 0;
  cli::TerminalSafeStream safeErr(std::cerr, !json && cli::colourWanted(STDERR_FILENO));
  std::optional<cli::TerminalSafeStream> safeOut;
  if (!json) {
    safeOut.emplace(std::cout, cli::colourWanted(STDOUT_FILENO));
  }
  if (args.version || args.command == "version") {
    std::cout << "edgeplane " << EDGEPLANE_VERSION << "\n";
    return 0;
  }
  if (args.help && args.command.empty()) {
    std::cout << kUsage;
    return 0;
  }
  if (args.command.empty()) {
    std::cerr << kUsage;
    return kUsageError;
  }
  const CommandSpec* command = findCommand(args.command);
  if (command == nullptr) {
    std::cerr << "edgeplane: unknown command '" << args.command << "' (see edgeplane --help)\n";
    return kUsageError;
  }
  if (args.help) {
    std::cout << commandUsage(*command);
    return 0;
  }
  // A plan with --detailed-exitcode says "changes" with 2: a usage error is an error there.
  const int usageError =
      args.command == "plan" && args.options.count("detailed-exitcode") != 0 ? 1 : kUsageError;
  if (!args.errors.empty()) {
    for (const auto& e : args.errors) {
      std::cerr << "edgeplane " << args.command << ": " << e << "\n";
    }
    return usageError;
  }
  if (args.command == "apikey" && args.words.empty()) {
    return cli::cmdApiKey(cli::Options{});  // "which action?" and the usage
  }
  if (args.command == "validate") {
    return cmdValidate(args);
  }
  int status = 0;
  std::optional<cli::Options> resolved = resolveOptions(args, usageError, &status);
  if (!resolved) {
    return status;
  }
  cli::Options& o = *resolved;
  if (args.command == "apikey") {
    o.apikey.action = args.words.empty() ? "" : args.words[0];
    if (args.words.size() > 1) {
      o.apikey.id = args.words[1];
    }
    o.apikey.name = args.get("name");
    o.apikey.role = args.get("role");
    for (const char* name : {"gateway", "endpoint"}) {
      if (auto it = args.repeated.find(name); it != args.repeated.end()) {
        (std::string_view(name) == "gateway" ? o.apikey.gateways : o.apikey.endpoints) = it->second;
      }
    }
    return cli::cmdApiKey(o);
  }
  if (args.command == "peer-config") {
    if (args.words.size() != 2) {
      std::cerr << "edgeplane peer-config: NAMESPACE and PEER are required\n"
                << commandUsage(*command);
      return kUsageError;
    }
    o.peerConfig = {args.words[0], args.words[1], args.get("endpoint"),
                    args.options.count("qr") != 0};
    return cli::cmdPeerConfig(o);
  }
  if (args.command == "plan") {
    return cli::cmdPlan(o);
  }
  if (args.command == "apply") {
    return cli::cmdApply(o);
  }
  if (args.command == "destroy") {
    return cli::cmdDestroy(o);
  }
  if (args.command == "agent") {
    return cli::cmdAgent(o, [&args, usageError] {
      int ignored = 0;
      return resolveOptions(args, usageError, &ignored);
    });
  }
  if (args.command == "trigger") {
    return cli::cmdTrigger(o);
  }
  if (args.command == "history") {
    return cli::cmdHistory(o);
  }
  return cli::cmdStatus(o);
}

}  // namespace
}  // namespace edgeplane

int main(int argc, char** argv) {
  return edgeplane::run(argc, argv);
}
