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
#include "reconciler/cli/args.h"
#include "reconciler/cli/command_support.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/heap_tuning.h"
#include "reconciler/cli/json_report.h"
#include "reconciler/cli/options.h"
#include "reconciler/cli/peer_config.h"
#include "reconciler/cli/terminal_out.h"
#include "schema/agent_config.h"
#include "schema/loader.h"
#include "schema/net.h"
#include "schema/validate.h"

namespace edgeplane {
namespace {

using cli::Args;
using cli::CommandSpec;
using cli::takes;

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
                      with "format_version", the fields of `history --json` and
                      "state_store_error" (null unless the run could not be made durable)
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
                      unix:<state-dir>/proxy/admin.sock)
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

// The command a resolved command line names, run.
int dispatch(const Args& args, const CommandSpec& command, int usageError, cli::Options& o) {
  o.progress = args.command == "plan" || args.command == "apply" || args.command == "destroy";
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
                << commandUsage(command);
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
      return cli::resolveOptions(args, usageError, &ignored);
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

// What the command line asks before any command runs: the version, the usage, a command's
// help, or a usage error. nullopt: go on and run the command.
std::optional<int> answerWithoutRunning(const Args& args, const CommandSpec* command,
                                        int usageError) {
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
  if (command == nullptr) {
    std::cerr << "edgeplane: unknown command '" << args.command << "' (see edgeplane --help)\n";
    return kUsageError;
  }
  if (args.help) {
    std::cout << commandUsage(*command);
    return 0;
  }
  if (!args.errors.empty()) {
    for (const auto& e : args.errors) {
      std::cerr << "edgeplane " << args.command << ": " << e << "\n";
    }
    return usageError;
  }
  return std::nullopt;
}

int run(int argc, char** argv) {
  // The bounded fetch's child (see fetch_child.h): not a user command.
  if (argc >= 2 && std::string_view(argv[1]) == "__fetch") {
    return cli::fetchChildMain(std::vector<std::string>(argv + 2, argv + argc));
  }
  Args args = cli::parseArgs(argc, argv);
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
  const CommandSpec* command = args.command.empty() ? nullptr : cli::findCommand(args.command);
  // A plan with --detailed-exitcode says "changes" with 2: a usage error is an error there.
  const int usageError =
      args.command == "plan" && args.options.count("detailed-exitcode") != 0 ? 1 : kUsageError;
  if (auto answered = answerWithoutRunning(args, command, usageError)) {
    return *answered;
  }
  if (args.command != "agent") {
    cli::tuneHeapForOneShotRun();  // the agent lives on: it keeps glibc's defaults
  }
  if (args.command == "apikey" && args.words.empty()) {
    return cli::cmdApiKey(cli::Options{});  // "which action?" and the usage
  }
  if (args.command == "validate") {
    return cmdValidate(args);
  }
  int status = 0;
  std::optional<cli::Options> resolved = cli::resolveOptions(args, usageError, &status);
  if (!resolved) {
    return status;
  }
  return dispatch(args, *command, usageError, *resolved);
}

}  // namespace
}  // namespace edgeplane

int main(int argc, char** argv) {
  return edgeplane::run(argc, argv);
}
