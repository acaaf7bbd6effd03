// The reconciler's commands (plan, apply, status, history, agent, trigger) behind the
// `edgeplane` command line.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "schema/store.h"

namespace edgeplane::cli {

// Where the desired state comes from when it is not a plain --config directory: a Git
// repository (from the agent file, or --source/--ref/--path/--allowed-signers).
struct GitSettings {
  std::string url;
  std::string ref = "main";
  std::string path;  // the config root inside the repository
  std::optional<std::string> sshKey;
  std::optional<std::string> allowedSigners;
  std::chrono::milliseconds fetchTimeout{60000};
};

struct Options {
  std::optional<std::string> config;  // --config DIR: a plain directory
  std::optional<GitSettings> git;     // otherwise: the Git source
  std::optional<std::string> agentFile;
  std::optional<std::string> host;       // --host: must be a declared [[host]]
  std::optional<std::string> agentHost;  // the agent file's host (see chooseHost)
  // --state-dir, else the agent file's state_dir, else $EDGEPLANE_STATE_DIR, else
  // /var/lib/edgeplane.
  std::string stateDir;
  std::optional<std::string> observed;  // plan --offline --observed FILE
  bool json = false;
  bool detailedExitcode = false;
  bool offline = false;
  bool verbose = false;                       // apply: print every nftables batch message
  std::chrono::milliseconds lockTimeout{-1};  // negative: wait as long as it takes
  std::string wireguardBackend = "auto";      // auto | kernel | userspace
  std::set<std::string> rotateKeys;           // apply --rotate-key NS[,NS…]
  // Where the proxy is told about a new snapshot: --proxy-admin, else the agent file's
  // [proxy] admin, else unix:<state-dir>/proxy-admin.sock.
  std::string proxyAdmin;
  // history
  int limit = 20;
  // agent: reconcile interval and jitter; the webhook (from the agent file).
  std::chrono::milliseconds interval{300000};
  std::chrono::milliseconds jitter{30000};
  std::optional<std::string> webhookListen;  // "127.0.0.1:9180"
  std::optional<std::string> webhookSecretFile;
  // trigger
  bool wait = false;
  std::chrono::milliseconds timeout{-1};  // negative: the command's default
  // The bounded fetch's child command (tests replace it).
  std::vector<std::string> fetchHelper;
};

// What one reconcile run did, for `apply`'s exit code and the agent's log line.
struct RunReport {
  int64_t runId = 0;  // 0: nothing was recorded (the store or the lock could not be had)
  RunResult result = RunResult::Failed;
  std::optional<std::string> commit;
  std::string summary;  // one line
  bool retryable = false;
};

// One apply: lock, fetch (bounded), verify, export, validate, plan, apply, publish, record.
// Everything a human reads goes to `out`/`err`.
RunReport reconcileOnce(const Options& o, std::ostream& out, std::ostream& err);

int cmdPlan(const Options& o);
int cmdApply(const Options& o);
int cmdStatus(const Options& o);
int cmdHistory(const Options& o);
int cmdAgent(const Options& o);
int cmdTrigger(const Options& o);

}  // namespace edgeplane::cli
