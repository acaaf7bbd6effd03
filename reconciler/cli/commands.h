// The reconciler's commands (plan, apply, status, history, agent, trigger, apikey) behind the
// `edgeplane` command line.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "schema/agent_config.h"
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
  std::uint64_t fetchMaxSize = kDefaultFetchMaxSize;  // [source] fetch_max_size
  // The anti-rollback override (`apply --allow-rollback`, the agent file's [source]
  // allow_rollback): a commit that does not descend from the last applied one, or is dated
  // before it, is applied anyway, and the run says it was a rollback.
  bool allowRollback = false;
};

// `edgeplane apikey ACTION [ID]` and its flags.
struct ApiKeyArgs {
  std::string action;             // new | list | block | unblock
  std::optional<std::string> id;  // block, unblock
  std::optional<std::string> name;
  std::vector<std::string> gateways;   // --gateway, repeatable
  std::vector<std::string> endpoints;  // --endpoint, repeatable
  std::optional<std::string> role;     // worker (default) | admin
};

// `edgeplane peer-config NAMESPACE PEER` and its flags.
struct PeerConfigArgs {
  std::string ns;
  std::string peer;
  std::optional<std::string> endpoint;  // HOST or HOST:PORT
  bool qr = false;
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
  bool verbose = false;   // apply: print every nftables batch message
  bool progress = false;  // a progress line on a terminal (plan, apply, destroy; not the agent)
  std::chrono::milliseconds lockTimeout{-1};  // negative: wait as long as it takes
  std::string wireguardBackend = "auto";      // auto | kernel | userspace
  std::set<std::string> rotateKeys;           // apply --rotate-key NS[,NS…]
  // Where the proxy is told about a new snapshot: --proxy-admin, else the agent file's
  // [proxy] admin, else unix:<state-dir>/proxy/admin.sock.
  std::string proxyAdmin;
  // The agent file's [proxy] admin_token_file: sent as a bearer token to a TCP proxyAdmin.
  std::optional<std::filesystem::path> proxyAdminTokenFile;
  // history
  int limit = 20;
  // status --check: the exit status says whether the host is as it should be.
  bool check = false;
  bool yes = false;  // destroy: no question asked
  // agent: reconcile interval and jitter; the webhook (from the agent file).
  std::chrono::milliseconds interval{300000};
  std::chrono::milliseconds jitter{30000};
  std::optional<std::string> webhookListen;  // "127.0.0.1:9180"
  std::optional<std::string> webhookSecretFile;
  std::optional<std::string> metricsListen;  // the agent file's `metrics` (agent_config.h)
  // trigger
  bool wait = false;
  std::chrono::milliseconds timeout{-1};  // negative: the command's default
  // The bounded fetch's child command (tests replace it).
  std::vector<std::string> fetchHelper;
  ApiKeyArgs apikey;
  PeerConfigArgs peerConfig;
};

// What one reconcile run did, for `apply`'s exit code and the agent's log line.
struct RunReport {
  int64_t runId = 0;  // 0: nothing was recorded (the store or the lock could not be had)
  RunResult result = RunResult::Failed;
  std::optional<std::string> commit;
  std::string summary;  // one line
  bool retryable = false;
  // Set when the store could not make the run's record durable at its end (the disk refused to
  // sync: see Store::syncChanges): the run's result stands, but its record may be lost in a crash.
  std::string unsynced;
};

// One apply: lock, fetch (bounded), verify, export, validate, plan, apply, publish, record.
// Everything a human reads goes to `out`/`err`.
RunReport reconcileOnce(const Options& o, std::ostream& out, std::ostream& err);

// For the agent's log line of a run that did not end ok: each failed operation of run `runId`
// ("create wireguard tenant-a: <why>", at most 20, then how many more) and the lines of the
// run record's detail (ACME orders, routes left out, a refusal), "; "-separated, cut at 4000
// bytes. "" when the run recorded none.
std::string runFailures(const Store& store, int64_t runId);

int cmdPlan(const Options& o);
int cmdApply(const Options& o);
// Converges this host to an empty desired state (destroy.cpp): asks on a terminal, else needs
// --yes; refused while an agent is running. Exit 0 when everything edgeplane owned is gone.
int cmdDestroy(const Options& o);
// `status --check` exit statuses beyond 0 (ok), 1 (status could not be read) and 2 (usage).
inline constexpr int kCheckRun = 3;    // nothing applied yet, or the last run did not end ok
inline constexpr int kCheckDrift = 4;  // the host differs from the last applied config, or
                                       // could not be compared with it
int cmdStatus(const Options& o);
int cmdHistory(const Options& o);
// `reread` resolves the options again from the same command line and the agent file as it is
// now (SIGHUP); nullopt when the file has errors (already printed).
using OptionsReader = std::function<std::optional<Options>()>;
int cmdAgent(const Options& o, const OptionsReader& reread);
int cmdTrigger(const Options& o);
// apikey new | list | block | unblock (apikey.cpp). Exit 2 for usage errors.
int cmdApiKey(const Options& o);
// What `edgeplane apikey --help` prints.
std::string_view apiKeyUsage();

// The [[api_key]] stanza `apikey new` prints for the config repository: name (TOML-escaped),
// id, sha256, gateways, endpoints (when scoped), role, enabled = true.
std::string apiKeyStanza(const std::string& name, const std::string& id, const std::string& sha256,
                         const std::vector<std::string>& gateways,
                         const std::vector<std::string>& endpoints, const std::string& role);

}  // namespace edgeplane::cli
