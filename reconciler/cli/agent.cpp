// `edgeplane agent` (the long-running reconcile loop and its triggers) and `edgeplane trigger`.
#include <pthread.h>
#include <signal.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "reconciler/cli/commands.h"
#include "reconciler/cli/fetch_child.h"
#include "reconciler/cli/history.h"
#include "reconciler/cli/scheduler.h"
#include "reconciler/cli/trigger_socket.h"
#include "reconciler/cli/webhook.h"
#include "schema/secret_file.h"

namespace edgeplane::cli {

namespace fs = std::filesystem;

namespace {

// An agent run waits this long for a manual `apply` holding the lock, then fails (and is
// retried with back-off) instead of queueing behind it forever.
constexpr std::chrono::milliseconds kAgentLockTimeout{10 * 60 * 1000};

}  // namespace

int cmdAgent(const Options& given) {
  Options o = given;
  if (o.lockTimeout.count() < 0) {
    o.lockTimeout = kAgentLockTimeout;
  }
  // SIGTERM/SIGINT are taken by one thread with sigwait: blocked before any thread starts,
  // so every thread inherits the mask and none is interrupted mid-run.
  sigset_t stopSignals;
  sigemptyset(&stopSignals);
  sigaddset(&stopSignals, SIGTERM);
  sigaddset(&stopSignals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stopSignals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  // The state dir exists (0700) before the socket goes into it.
  if (auto store = Store::open(o.stateDir); !store) {
    std::cerr << "edgeplane agent: " << store.error().message << "\n";
    return 1;
  }

  std::mutex mu;
  std::condition_variable cv;
  Scheduler scheduler({o.interval, o.jitter}, Clock::now());
  bool stop = false;
  auto onTrigger = [&]() -> uint64_t {
    std::lock_guard lock(mu);
    const uint64_t ticket = scheduler.trigger();
    cv.notify_all();
    return ticket;
  };

  auto socket = TriggerSocket::listen(fs::path(o.stateDir) / kAgentSocketName, onTrigger);
  if (!socket) {
    std::cerr << "edgeplane agent: " << socket.error().message << "\n";
    return 1;
  }
  std::unique_ptr<WebhookServer> webhook;
  if (o.webhookListen) {
    auto listen = Endpoint::parse(*o.webhookListen);
    if (!listen || !o.webhookSecretFile) {
      std::cerr << "edgeplane agent: webhook: bad listen address " << *o.webhookListen << "\n";
      return 1;
    }
    auto secret = readSecretFile(*o.webhookSecretFile, "webhook secret file");
    if (!secret) {
      std::cerr << "edgeplane agent: " << secret.error().message << "\n";
      return 1;
    }
    auto started = WebhookServer::start(*listen, std::move(*secret), [&] { (void)onTrigger(); });
    if (!started) {
      std::cerr << "edgeplane agent: " << started.error().message << "\n";
      return 1;
    }
    webhook = std::move(*started);
  }

  std::thread signals([&] {
    int sig = 0;
    sigwait(&stopSignals, &sig);
    std::lock_guard lock(mu);
    stop = true;
    cv.notify_all();
  });

  std::cerr << "edgeplane agent: started: "
            << (o.git ? redactUrl(o.git->url) + " " + o.git->ref : o.config.value_or("?"))
            << ", every " << o.interval.count() / 1000 << " s ± " << o.jitter.count() / 1000
            << " s, trigger " << (fs::path(o.stateDir) / kAgentSocketName).string()
            << (webhook ? ", webhook " + *o.webhookListen : std::string()) << "\n";

  std::mt19937_64 rng(std::random_device{}());
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::unique_lock lock(mu);
  for (;;) {
    while (!stop && !scheduler.due(Clock::now())) {
      cv.wait_until(lock, scheduler.nextDue());
    }
    if (stop) {
      break;
    }
    const uint64_t number = scheduler.start();
    lock.unlock();

    const auto t0 = Clock::now();
    std::ostringstream sink;  // the run's human output; the agent logs one line instead
    RunReport r = reconcileOnce(o, sink, sink);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    std::cerr << "run " << (r.runId != 0 ? std::to_string(r.runId) : "-") << " commit "
              << shortCommit(r.commit) << " " << toString(r.result) << ": " << r.summary << " ("
              << ms.count() << " ms)" << std::endl;
    (*socket)->complete(number, r.runId, r.result);

    lock.lock();
    scheduler.finish(Clock::now(), r.result == RunResult::Ok, uniform(rng));
  }
  lock.unlock();
  signals.join();
  webhook.reset();
  socket->reset();
  std::cerr << "edgeplane agent: stopped\n";
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
