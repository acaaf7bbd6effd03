// The options of a command from its arguments and the agent file (see options.h).
#include "reconciler/cli/options.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include "reconciler/cli/fetch_child.h"
#include "schema/agent_config.h"
#include "schema/encoding.h"
#include "schema/net.h"
#include "schema/proxy_feed.h"

namespace edgeplane::cli {
namespace {

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

// The agent file: given, or the default one for a Git command without another source. For
// status, history and trigger the default file only tells the state dir and host, if present.
// False (after saying why) when a file that must be read cannot be.
bool loadAgentFile(const Args& args, Options& o, bool sourceCommand,
                   std::optional<AgentConfig>& agent) {
  const std::string& cmd = args.command;
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
  if (!agentPath) {
    return true;
  }
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
    return true;
  }
  agent = std::move(loaded);
  o.agentFile = *agentPath;
  return true;
}

// The state dir, the agent's settings and the proxy's admin address: flag > agent file >
// environment (state dir only) > default.
void applyHostSettings(const Args& args, const std::optional<AgentConfig>& agent, Options& o) {
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
    o.proxyAdmin = defaultProxyAdmin(o.stateDir);
  }
}

// The Git source: the agent file's [source], or --source, with the flags' overrides.
std::optional<GitSettings> gitSettings(const Args& args, const std::optional<AgentConfig>& agent) {
  GitSettings g;
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
    std::cerr << "edgeplane " << args.command
              << ": --config DIR, --source URL or --agent FILE is needed\n";
    return std::nullopt;
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
  return g;
}

// Fills in the source, the state dir, the host and the agent's settings from the flags and
// the agent file. Returns false (after printing why) when they do not make sense.
bool resolveSource(const Args& args, Options& o) {
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
  std::optional<AgentConfig> agent;
  if (!loadAgentFile(args, o, sourceCommand, agent)) {
    return false;
  }
  applyHostSettings(args, agent, o);
  if (!fetches || o.config) {
    return true;
  }
  o.git = gitSettings(args, agent);
  return o.git.has_value();
}

}  // namespace

std::optional<Options> resolveOptions(const Args& args, int usageError, int* status) {
  Options o;
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
    auto n = parseDecimal(*limit, 1000000, LeadingZeros::Allowed);
    if (!n || *n < 1) {
      std::cerr << "edgeplane " << args.command << ": --limit takes a positive number\n";
      *status = usageError;
      return std::nullopt;
    }
    o.limit = static_cast<int>(*n);
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
  o.fetchHelper = defaultFetchHelper();
  return o;
}

}  // namespace edgeplane::cli
