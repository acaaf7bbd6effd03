// `edgeplane agent` (the long-running reconcile loop and its triggers) and `edgeplane trigger`.
#include <signal.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "reconciler/cli/agent_metrics.h"
#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/scheduler.h"
#include "reconciler/cli/trigger_socket.h"
#include "reconciler/cli/webhook.h"
#include "reconciler/net/module.h"
#include "reconciler/system/metrics_server.h"
#include "reconciler/system/service_manager.h"
#include "schema/git_url.h"
#include "schema/net.h"
#include "schema/secret_file.h"

namespace edgeplane::cli {

namespace fs = std::filesystem;

namespace {

// An agent run waits this long for a manual `apply` holding the lock, then fails (and is
// retried with back-off) instead of queueing behind it forever.
constexpr std::chrono::milliseconds kAgentLockTimeout{10 * 60 * 1000};

Options withAgentDefaults(Options o) {
  if (o.lockTimeout.count() < 0) {
    o.lockTimeout = kAgentLockTimeout;
  }
  return o;
}

// The agent's one log line writer: stderr, with the syslog priority journald reads when
// stderr is the journal (`journalctl -u edgeplane-agent -p err` shows failed runs).
void log(LogPriority priority, const std::string& line) {
  std::cerr << logPrefix(priority) << line << std::endl;
}

LogPriority priorityOf(RunResult result) {
  switch (result) {
    case RunResult::Ok:
      return LogPriority::kInfo;
    case RunResult::Partial:
    case RunResult::Refused:
      return LogPriority::kWarning;
    default:
      return LogPriority::kErr;
  }
}

}  // namespace

std::string runFailures(const Store& store, int64_t runId) {
  constexpr size_t kMaxShown = 20;
  std::string out;
  size_t failed = 0;
  if (auto ops = store.runOps(runId)) {
    for (const OpOutcome& op : *ops) {
      if (op.ok) {
        continue;
      }
      if (++failed <= kMaxShown) {
        out += (out.empty() ? "" : "; ") + std::string(toString(op.action)) + " " + op.kind + " " +
               op.name + ": " + op.error.value_or("failed");
      }
    }
  }
  if (failed > kMaxShown) {
    out += "; and " + std::to_string(failed - kMaxShown) + " more (edgeplane status)";
  }
  if (auto runs = store.recentRuns(1); runs && !runs->empty() && runs->front().id == runId) {
    std::istringstream detail(runs->front().detail);
    for (std::string line; std::getline(detail, line);) {
      if (!line.empty()) {
        out += (out.empty() ? "" : "; ") + line;
      }
    }
  }
  constexpr size_t kMaxLine = 4000;  // journald splits longer lines; the rest is in `status`
  if (out.size() > kMaxLine) {
    out = out.substr(0, kMaxLine) + " ... (edgeplane status)";
  }
  return out;
}

namespace {

// runFailures from the state dir's store; "" when it cannot be opened or nothing was recorded.
std::string failures(const std::string& stateDir, int64_t runId) {
  auto store = Store::open(stateDir);
  return store && runId != 0 ? runFailures(**store, runId) : "";
}

// The settings an operator reads back in the "started" and "reloaded" lines.
std::string describe(const Options& o) {
  return (o.git ? redactUrl(o.git->url) + " " + o.git->ref : o.config.value_or("?")) + ", every " +
         formatDuration(o.interval) + " ± " + formatDuration(o.jitter) + ", trigger " +
         (fs::path(o.stateDir) / kAgentSocketName).string() +
         (o.webhookListen ? ", webhook " + *o.webhookListen : std::string()) +
         (o.metricsListen ? ", metrics " + *o.metricsListen : std::string());
}

// The commit last applied (ok or partial) according to the store; nullopt when none is or the
// store cannot be read.
std::optional<std::string> appliedCommit(const std::string& stateDir) {
  auto store = Store::open(stateDir);
  if (!store) {
    return std::nullopt;
  }
  auto good = (*store)->lastGoodCommitRun();
  return good && *good ? (**good).commitId : std::nullopt;
}

// What run `r` did, for the metrics: its operations from the store, and whether it found drift
// (it changed the host although its commit is the one applied before it, `before`).
RunObservation observeRun(const std::string& stateDir, const RunReport& r,
                          std::chrono::milliseconds duration,
                          const std::optional<std::string>& before) {
  RunObservation run;
  run.result = r.result;
  run.finishedAtMs = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  run.duration = duration;
  run.commit = r.commit;
  if (auto store = Store::open(stateDir); store && r.runId != 0) {
    if (auto ops = (*store)->runOps(r.runId)) {
      run.ops = std::move(*ops);
    }
  }
  const bool applied = r.result == RunResult::Ok || r.result == RunResult::Partial;
  run.drift = applied && r.commit && before == r.commit && !run.ops.empty();
  return run;
}

// The metrics endpoint `o` asks for (nullptr when none), serving `metrics`, from the net module.
Result<std::unique_ptr<MetricsServer>> startMetrics(const net::Module& net, const Options& o,
                                                    AgentMetrics& metrics) {
  if (!o.metricsListen) {
    return std::unique_ptr<MetricsServer>();
  }
  auto address = LocalAddress::parse(*o.metricsListen, "metrics");
  if (!address) {
    return address.error();
  }
  return net.startMetrics(*address, {[&metrics] { return metrics.render(); },
                                     [] { return std::string("{\"status\":\"ok\"}\n"); }});
}

// The webhook's listen address, secret (the file read now) and the ref pushes must concern.
struct WebhookSettings {
  Endpoint listen;
  WebhookConfig config;
};
Result<std::optional<WebhookSettings>> webhookSettings(const Options& o) {
  if (!o.webhookListen) {
    return std::optional<WebhookSettings>();
  }
  auto listen = Endpoint::parse(*o.webhookListen);
  if (!listen || !o.webhookSecretFile) {
    return terminal("webhook: bad listen address " + *o.webhookListen);
  }
  auto secret = readSecretFile(*o.webhookSecretFile, "webhook secret file");
  if (!secret) {
    return secret.error();
  }
  WebhookConfig config{std::move(*secret), std::nullopt};
  if (o.git) {
    config.trackedRef = o.git->ref;
  }
  return std::optional<WebhookSettings>(WebhookSettings{*listen, std::move(config)});
}

// The loop of `edgeplane agent`: runs when the scheduler says so, serves triggers from the
// socket and the webhook, re-reads the agent file on SIGHUP and stops on SIGTERM/SIGINT.
class Agent {
 public:
  explicit Agent(Options o)
      : o_(withAgentDefaults(std::move(o))),
        scheduler_({o_.interval, o_.jitter}, Clock::now()),
        rng_(std::random_device{}()) {}

  // Opens the trigger socket and the webhook; false (after logging why) when one cannot be.
  bool start();
  // Until SIGTERM/SIGINT; `signals` holds the blocked set sigwait takes them from.
  void run(const sigset_t& signals, const OptionsReader& reread);

 private:
  uint64_t trigger() {
    std::lock_guard lock(mu_);
    const uint64_t ticket = scheduler_.trigger();
    cv_.notify_all();
    return ticket;
  }
  Result<std::unique_ptr<WebhookServer>> startWebhook(const WebhookSettings& w) {
    return net_->startWebhook(w.listen, w.config, [this] { (void)trigger(); });
  }
  void waitForSignals(const sigset_t& signals);
  void reload(const OptionsReader& reread);
  void reloadSettings(const std::string& file, const OptionsReader& reread);
  Result<void> swapWebhook(const Options& fresh);
  void runOnce(uint64_t number);

  Options o_;  // changed only by reload(), on the loop's thread, between runs
  std::mutex mu_;
  std::condition_variable cv_;
  Scheduler scheduler_;
  bool stop_ = false;
  bool reload_ = false;  // a SIGHUP not yet handled
  bool ready_ = false;   // READY=1 sent (after the first run)
  std::string lastRun_;  // the last run's outcome, the STATUS= line
  std::unique_ptr<TriggerSocket> socket_;
  const net::Module* net_ = nullptr;  // loaded by start(), before any server
  std::unique_ptr<WebhookServer> webhook_;
  AgentMetrics metrics_;
  std::unique_ptr<MetricsServer> metricsServer_;  // destroyed before metrics_
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> uniform_{0.0, 1.0};
};

bool Agent::start() {
  // The net module is loaded now, whether or not the webhook or the metrics need it: a module
  // that cannot be loaded is an installation fault to report at start, not at the first ACME
  // order, and a package upgrade that replaces it later cannot mix two builds in this process.
  auto loaded = net::module();
  if (!loaded) {
    log(LogPriority::kErr, "edgeplane agent: " + loaded.error().message);
    return false;
  }
  net_ = *loaded;
  // The state dir exists (0700) before the socket goes into it.
  auto store = Store::open(o_.stateDir);
  if (!store) {
    log(LogPriority::kErr, "edgeplane agent: " + store.error().message);
    return false;
  }
  metrics_.restore(recordedState(**store));
  auto metricsServer = startMetrics(*net_, o_, metrics_);
  if (!metricsServer) {
    log(LogPriority::kErr, "edgeplane agent: " + metricsServer.error().message);
    return false;
  }
  metricsServer_ = std::move(*metricsServer);
  auto socket =
      TriggerSocket::listen(fs::path(o_.stateDir) / kAgentSocketName, [this] { return trigger(); });
  if (!socket) {
    log(LogPriority::kErr, "edgeplane agent: " + socket.error().message);
    return false;
  }
  socket_ = std::move(*socket);
  auto settings = webhookSettings(o_);
  if (!settings) {
    log(LogPriority::kErr, "edgeplane agent: " + settings.error().message);
    return false;
  }
  if (*settings) {
    auto started = startWebhook(**settings);
    if (!started) {
      log(LogPriority::kErr, "edgeplane agent: " + started.error().message);
      return false;
    }
    webhook_ = std::move(*started);
  }
  log(LogPriority::kInfo, "edgeplane agent: started: " + describe(o_));
  return true;
}

void Agent::waitForSignals(const sigset_t& signals) {
  for (;;) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) {
      continue;
    }
    std::lock_guard lock(mu_);
    if (sig == SIGHUP) {
      reload_ = true;
      cv_.notify_all();
      continue;
    }
    stop_ = true;
    cv_.notify_all();
    return;
  }
}

// The webhook as `fresh` says: the same address keeps its server and takes the new secret and
// ref; a new address gets a new server before the old one goes. Any failure leaves it as it
// was.
Result<void> Agent::swapWebhook(const Options& fresh) {
  auto settings = webhookSettings(fresh);
  if (!settings) {
    return settings.error();
  }
  if (!*settings) {
    webhook_.reset();
    return {};
  }
  if (webhook_ && o_.webhookListen == fresh.webhookListen) {
    webhook_->setConfig(std::move((*settings)->config));
    return {};
  }
  auto started = startWebhook(**settings);
  if (!started) {
    return started.error();
  }
  webhook_ = std::move(*started);
  return {};
}

// Runs without mu_ held: the webhook's connections take it to trigger, and the old server's
// destructor waits for them.
void Agent::reload(const OptionsReader& reread) {
  const std::string file = o_.agentFile.value_or("the command line");
  if (ready_) {
    ServiceManager::reloading();
  }
  reloadSettings(file, reread);
  if (ready_) {
    ServiceManager::ready(lastRun_);
  }
}

void Agent::reloadSettings(const std::string& file, const OptionsReader& reread) {
  std::optional<Options> fresh = reread();
  if (!fresh) {
    log(LogPriority::kErr, "edgeplane agent: SIGHUP: " + file +
                               " has errors (above); the previous settings stay in force");
    return;
  }
  *fresh = withAgentDefaults(std::move(*fresh));
  if (fresh->stateDir != o_.stateDir) {
    log(LogPriority::kErr, "edgeplane agent: SIGHUP: state_dir changed from " + o_.stateDir +
                               " to " + fresh->stateDir +
                               ", which takes a restart; the previous settings stay in force");
    return;
  }
  // A new metrics address gets its server before anything else changes, so that a failure
  // (the port is taken) leaves every setting as it was; the same address keeps its server.
  std::unique_ptr<MetricsServer> movedMetrics;
  if (fresh->metricsListen && fresh->metricsListen != o_.metricsListen) {
    auto started = startMetrics(*net_, *fresh, metrics_);
    if (!started) {
      log(LogPriority::kErr, "edgeplane agent: SIGHUP: " + started.error().message +
                                 "; the previous settings stay in force");
      return;
    }
    movedMetrics = std::move(*started);
  }
  if (auto swapped = swapWebhook(*fresh); !swapped) {
    log(LogPriority::kErr, "edgeplane agent: SIGHUP: " + swapped.error().message +
                               "; the previous settings stay in force");
    return;
  }
  if (fresh->metricsListen != o_.metricsListen) {
    metricsServer_ = std::move(movedMetrics);  // the old one (if any) stops here
  }
  o_ = std::move(*fresh);
  {
    std::lock_guard lock(mu_);
    scheduler_.reconfigure({o_.interval, o_.jitter}, uniform_(rng_));
  }
  log(LogPriority::kInfo, "edgeplane agent: SIGHUP: reloaded " + file + ": " + describe(o_));
}

void Agent::runOnce(uint64_t number) {
  const std::optional<std::string> before = appliedCommit(o_.stateDir);
  const auto t0 = Clock::now();
  std::ostringstream sink;  // the run's human output; the agent logs one line instead
  RunReport r = reconcileOnce(o_, sink, sink);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  metrics_.recordRun(observeRun(o_.stateDir, r, ms, before));
  lastRun_ = "run " + (r.runId != 0 ? std::to_string(r.runId) : "-") + " commit " +
             shortCommit(r.commit) + " " + std::string(toString(r.result)) + ": " + r.summary;
  std::string line = lastRun_ + " (" + std::to_string(ms.count()) + " ms)";
  if (r.result != RunResult::Ok) {
    if (std::string why = failures(o_.stateDir, r.runId); !why.empty()) {
      line += ": " + why;
    }
  }
  if (!r.unsynced.empty()) {
    line += "; state store: " + r.unsynced;
  }
  log(r.unsynced.empty() ? priorityOf(r.result) : LogPriority::kErr, line);
  // The agent is up once its first run ended, whatever the outcome: a failed run is retried.
  if (!ready_) {
    ServiceManager::ready(lastRun_);
    ready_ = true;
  } else {
    ServiceManager::status(lastRun_);
  }
  socket_->complete(number, r.runId, r.result);
  std::lock_guard lock(mu_);
  scheduler_.finish(Clock::now(), r.result == RunResult::Ok, uniform_(rng_));
}

void Agent::run(const sigset_t& signals, const OptionsReader& reread) {
  std::thread signalThread([&] { waitForSignals(signals); });
  // WatchdogSec=: the keep-alive goes only while the loop's lock can be had, so a wedged loop
  // gets the agent restarted. A run holds no lock (its own steps have deadlines).
  Watchdog watchdog([this] {
    std::lock_guard lock(mu_);
    return true;
  });
  std::unique_lock lock(mu_);
  for (;;) {
    while (!stop_ && !reload_ && !scheduler_.due(Clock::now())) {
      cv_.wait_until(lock, scheduler_.nextDue());
    }
    if (stop_) {
      ServiceManager::stopping("stopping");
      break;
    }
    if (reload_) {
      reload_ = false;
      lock.unlock();
      reload(reread);
      lock.lock();
      continue;
    }
    const uint64_t number = scheduler_.start();
    lock.unlock();
    runOnce(number);
    lock.lock();
  }
  lock.unlock();
  signalThread.join();
  webhook_.reset();
  metricsServer_.reset();
  socket_.reset();
  log(LogPriority::kInfo, "edgeplane agent: stopped");
}

}  // namespace

int cmdAgent(const Options& o, const OptionsReader& reread) {
  // SIGTERM/SIGINT (stop) and SIGHUP (re-read the agent file) are taken by one thread with
  // sigwait, none interrupts a run.
  const sigset_t signals = blockDaemonSignals();

  Agent agent(o);
  if (!agent.start()) {
    return 1;
  }
  agent.run(signals, reread);
  return 0;
}

int cmdTrigger(const Options& o) {
  const fs::path path = fs::path(o.stateDir) / kAgentSocketName;
  const auto timeout = o.timeout.count() >= 0 ? o.timeout
                                              : (o.wait ? std::chrono::milliseconds(600000)
                                                        : std::chrono::milliseconds(10000));
  auto answer = requestTrigger(path, o.wait, timeout);
  if (!answer) {
    std::cerr << "edgeplane trigger: " << answer.error().message << "\n";
    return 1;
  }
  if (answer->starts_with("error ")) {
    std::cerr << "edgeplane trigger: the agent says: " << answer->substr(6) << "\n";
    return 1;
  }
  if (!o.wait) {
    if (*answer != "accepted") {
      std::cerr << "edgeplane trigger: unexpected answer: " << *answer << "\n";
      return 1;
    }
    std::cout << "reconcile requested (the agent accepted)\n";
    return 0;
  }
  // "done <run id> <result>"
  std::istringstream words(*answer);
  std::string done;
  std::string id;
  std::string result;
  words >> done >> id >> result;
  if (done != "done" || result.empty()) {
    std::cerr << "edgeplane trigger: unexpected answer: " << *answer << "\n";
    return 1;
  }
  std::cout << "run " << id << " " << result << "\n";
  return result == "ok" ? 0 : 1;
}

}  // namespace edgeplane::cli
