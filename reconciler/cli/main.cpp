// The `edgeplane` command line: parses arguments, runs one command, logs once at the top.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "edgeplane_version.h"
#include "reconciler/cli/commands.h"
#include "schema/loader.h"
#include "schema/validate.h"

namespace edgeplane {
namespace {

constexpr const char* kUsage = R"(usage: edgeplane COMMAND [OPTIONS]

commands:
  validate --config DIR [--host NAME]   check a desired-state directory; print every error
  plan     --config DIR [--host NAME] [--state-dir DIR] [--json] [--detailed-exitcode]
           [--offline [--observed FILE]]
                                       show what apply would change, change nothing
  apply    --config DIR [--host NAME] [--state-dir DIR] [--lock-timeout SECONDS] [--verbose]
           [--wireguard-backend auto|kernel|userspace] [--rotate-key NS]
                                       converge this host to the config
  status   [--state-dir DIR] [--json]  last run, owned resources, pending changes or drift
  version                              print the version

options:
  --config DIR        the config root: every *.toml below it is read and merged
  --host NAME         the [[host]] to converge (default: this machine's hostname, or
                      "default" when the config declares no hosts)
  --state-dir DIR     state directory (default: $EDGEPLANE_STATE_DIR or /var/lib/edgeplane)
  --json              machine-readable output
  --detailed-exitcode plan exits 0 with no changes, 2 with changes, 1 on error
  --offline           plan without looking at this host: against an empty host, or the
                      state saved by --observed FILE
  --lock-timeout S    apply: give up after S seconds if another run holds the lock
  --verbose           apply: print every message of every nftables batch
  --wireguard-backend auto | kernel | userspace (wireguard-go); auto: kernel when the kernel
                      can create WireGuard links
  --rotate-key NS     apply: replace namespace NS's WireGuard private key (peers must be
                      given the new public key); without it a lost key file is refused
)";

// --flag VALUE options and positional words, nothing cleverer.
struct Args {
  std::string command;
  std::map<std::string, std::string, std::less<>> options;
  std::vector<std::string> errors;

  std::optional<std::string> get(std::string_view name) const {
    auto it = options.find(name);
    return it != options.end() ? std::optional<std::string>(it->second) : std::nullopt;
  }
};

Args parseArgs(int argc, char** argv, const std::vector<std::string>& valueOptions,
               const std::vector<std::string>& flags) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) {
      std::string name = arg.substr(2);
      std::string value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (std::find(valueOptions.begin(), valueOptions.end(), name) != valueOptions.end()) {
        if (i + 1 >= argc) {
          a.errors.push_back("option --" + name + " needs a value");
          continue;
        }
        value = argv[++i];
      }
      if (std::find(valueOptions.begin(), valueOptions.end(), name) == valueOptions.end() &&
          std::find(flags.begin(), flags.end(), name) == flags.end() && name != "help" &&
          name != "version") {
        a.errors.push_back("unknown option --" + name);
        continue;
      }
      a.options[name] = value;
    } else if (a.command.empty()) {
      a.command = arg;
    } else {
      a.errors.push_back("unexpected argument '" + arg + "'");
    }
  }
  return a;
}

std::string plural(size_t n, std::string_view one, std::string_view many) {
  return std::to_string(n) + " " + std::string(n == 1 ? one : many);
}

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
    return 1;
  }
  Diagnostics diags;
  Desired d = loadAndValidate(*config, diags);
  if (!diags.empty()) {
    std::cerr << diags.format();
    std::cerr << "edgeplane validate: " << plural(diags.sorted().size(), "error", "errors")
              << " in " << *config << "; nothing would be applied\n";
    return 1;
  }
  if (auto host = args.get("host")) {
    auto hosts = targetHosts(d);
    if (std::find(hosts.begin(), hosts.end(), *host) == hosts.end()) {
      std::cerr << "edgeplane validate: host \"" << *host << "\" is not defined in " << *config
                << "\n";
      return 1;
    }
    std::cout << "valid: host " << *host << ": " << summary(resolveFor(d, *host)) << "\n";
    return 0;
  }
  std::cout << "valid: " << summary(d) << "\n";
  return 0;
}

int run(int argc, char** argv) {
  Args args = parseArgs(argc, argv,
                        {"config", "host", "state-dir", "observed", "lock-timeout",
                         "wireguard-backend", "rotate-key"},
                        {"json", "detailed-exitcode", "offline", "verbose"});
  if (args.options.count("version") != 0 || args.command == "version") {
    std::cout << "edgeplane " << EDGEPLANE_VERSION << "\n";
    return 0;
  }
  if (args.options.count("help") != 0 || args.command.empty() || args.command == "help") {
    std::cout << kUsage;
    return args.command.empty() && args.options.count("help") == 0 ? 1 : 0;
  }
  if (!args.errors.empty()) {
    for (const auto& e : args.errors) {
      std::cerr << "edgeplane " << args.command << ": " << e << "\n";
    }
    return 1;
  }
  if (args.command == "validate") {
    return cmdValidate(args);
  }
  if (args.command == "plan" || args.command == "apply" || args.command == "status") {
    cli::Options o;
    o.config = args.get("config");
    o.host = args.get("host");
    o.observed = args.get("observed");
    o.json = args.options.count("json") != 0;
    o.detailedExitcode = args.options.count("detailed-exitcode") != 0;
    o.offline = args.options.count("offline") != 0;
    o.verbose = args.options.count("verbose") != 0;
    const char* envState = std::getenv("EDGEPLANE_STATE_DIR");
    o.stateDir =
        args.get("state-dir")
            .value_or(envState != nullptr && *envState != '\0' ? envState : "/var/lib/edgeplane");
    if (auto t = args.get("lock-timeout")) {
      char* end = nullptr;
      long seconds = std::strtol(t->c_str(), &end, 10);
      if (t->empty() || *end != '\0' || seconds < 0) {
        std::cerr << "edgeplane " << args.command << ": --lock-timeout takes whole seconds\n";
        return 1;
      }
      o.lockTimeout = std::chrono::seconds(seconds);
    }
    o.wireguardBackend = args.get("wireguard-backend").value_or("auto");
    if (o.wireguardBackend != "auto" && o.wireguardBackend != "kernel" &&
        o.wireguardBackend != "userspace") {
      std::cerr << "edgeplane " << args.command
                << ": --wireguard-backend is auto, kernel or userspace\n";
      return 1;
    }
    if (auto r = args.get("rotate-key")) {
      std::stringstream list(*r);
      for (std::string ns; std::getline(list, ns, ',');) {
        o.rotateKeys.insert(ns);
      }
    }
    if (o.observed && !o.offline) {
      std::cerr << "edgeplane plan: --observed goes with --offline\n";
      return 1;
    }
    if (args.command == "plan") {
      return cli::cmdPlan(o);
    }
    return args.command == "apply" ? cli::cmdApply(o) : cli::cmdStatus(o);
  }
  std::cerr << "edgeplane: unknown command '" << args.command << "'\n" << kUsage;
  return 1;
}

}  // namespace
}  // namespace edgeplane

int main(int argc, char** argv) {
  return edgeplane::run(argc, argv);
}
