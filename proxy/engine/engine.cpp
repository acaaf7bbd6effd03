// The Engine's public side: option checks, listeners, worker threads, config swaps, drain.
#include "proxy/engine/engine.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "proxy/engine/listeners.h"
#include "proxy/engine/shared.h"
#include "proxy/engine/worker.h"

namespace edgeplane::proxy {

namespace {

constexpr size_t kMinBufferBytes = 16384;

// The options checked, and the number of workers they ask for (0: one per CPU).
Result<int> workerCount(const EngineOptions& options) {
  if (options.bufferBytes < kMinBufferBytes || options.bufferBytes > (1u << 20)) {
    return terminal("buffer size must be between 16 KiB and 1 MiB");
  }
  if (options.workers < 0 || options.workers > 1024) {
    return terminal("workers must be between 0 (one per CPU) and 1024");
  }
  if (options.maxConnections == 0) {
    return terminal("the connection limit must be at least 1");
  }
  if (options.helloTimeout.count() <= 0 || options.connectTimeout.count() <= 0 ||
      options.idleTimeout.count() <= 0) {
    return terminal("timeouts must be positive");
  }
  if (options.workers != 0) {
    return options.workers;
  }
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int>(std::min<long>(cpus, 1024)) : 1;
}

// One https listener per worker, and one :80 listener per worker when asked for (else -1s);
// the ports they were bound to go into `shared`.
Result<std::pair<std::vector<int>, std::vector<int>>> openAllListeners(Engine::Shared& shared,
                                                                       int workers) {
  const EngineOptions& options = shared.options;
  uint16_t boundHttps = 0;
  Result<std::vector<int>> https = openListeners(options.https, workers, boundHttps);
  if (!https) {
    return https.error();
  }
  shared.httpsPort = boundHttps;
  std::vector<int> http(static_cast<size_t>(workers), -1);
  if (options.http) {
    uint16_t boundHttp = 0;
    Result<std::vector<int>> opened = openListeners(*options.http, workers, boundHttp);
    if (!opened) {
      for (int fd : *https) {
        ::close(fd);
      }
      return opened.error();
    }
    http = std::move(*opened);
    shared.httpPort = boundHttp;
  }
  return std::pair(std::move(*https), std::move(http));
}

// The workers' threads started, each past its own set-up; the first error any of them met.
Result<void> startThreads(Engine::Shared& shared) {
  const int workers = static_cast<int>(shared.workers.size());
  // Workers take no signals: SIGTERM/SIGINT go to the control thread, and a SIGPIPE raised by
  // splice() into a reset socket stays blocked (the EPIPE error is what we act on).
  sigset_t all;
  sigset_t old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &old);
  std::latch started(workers);
  std::vector<std::string> initErrors(static_cast<size_t>(workers));
  for (int i = 0; i < workers; ++i) {
    engine_detail::Worker* w = shared.workers[static_cast<size_t>(i)].get();
    std::string* err = &initErrors[static_cast<size_t>(i)];
    shared.threads.emplace_back([w, &started, err] { w->run(started, *err); });
  }
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  started.wait();
  for (const std::string& err : initErrors) {
    if (!err.empty()) {
      return terminal(err);
    }
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::start(const EngineOptions& options, Metrics& metrics,
                                              std::shared_ptr<const ActiveConfig> config) {
  Result<int> workers = workerCount(options);
  if (!workers) {
    return workers.error();
  }
  std::unique_ptr<Engine> engine(new Engine());
  engine->shared_ = std::make_unique<Shared>();
  Shared& shared = *engine->shared_;
  shared.options = options;
  shared.metrics = &metrics;
  if (options.maxConnectionsPerIp != 0 || options.maxPendingHellosPerIp != 0) {
    shared.sources =
        std::make_unique<SourceLimits>(options.maxConnectionsPerIp, options.maxPendingHellosPerIp);
  }
  shared.config.store(std::move(config), std::memory_order_release);

  auto listeners = openAllListeners(shared, *workers);
  if (!listeners) {
    return listeners.error();
  }
  auto& [https, http] = *listeners;
  for (int i = 0; i < *workers; ++i) {
    shared.workers.push_back(std::make_unique<engine_detail::Worker>(shared, i));
  }
  std::string setupError;
  for (int i = 0; i < *workers; ++i) {
    // The worker owns its listeners from here, even when set-up fails.
    std::string err = shared.workers[static_cast<size_t>(i)]->setup(https[static_cast<size_t>(i)],
                                                                    http[static_cast<size_t>(i)]);
    if (!err.empty() && setupError.empty()) {
      setupError = err;
    }
  }
  if (!setupError.empty()) {
    return terminal(setupError);
  }
  if (auto started = startThreads(shared); !started) {
    return started.error();  // ~Engine stops and joins the others
  }
  return engine;
}

void Engine::setConfig(std::shared_ptr<const ActiveConfig> config) {
  shared_->config.store(std::move(config), std::memory_order_release);
  shared_->configVersion.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const ActiveConfig> Engine::config() const {
  return shared_->config.load(std::memory_order_acquire);
}

uint16_t Engine::httpsPort() const {
  return shared_->httpsPort;
}

std::optional<uint16_t> Engine::httpPort() const {
  return shared_->httpPort;
}

int Engine::workers() const {
  return static_cast<int>(shared_->workers.size());
}

size_t Engine::openConnections() const {
  return shared_->open.load(std::memory_order_acquire);
}

void Engine::stopAccepting() {
  Shared& s = *shared_;
  for (auto& w : s.workers) {
    w->stopAcceptRequested.store(true, std::memory_order_release);
    w->wake();
  }
  std::unique_lock lock(s.mu);
  s.cv.wait(lock, [&] {
    for (auto& w : s.workers) {
      if (!w->stopAcceptDone) {
        return false;
      }
    }
    return true;
  });
  s.acceptStopped = true;
}

bool Engine::drain(std::chrono::milliseconds timeout, size_t* cut) {
  Shared& s = *shared_;
  if (cut != nullptr) {
    *cut = 0;
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (s.open.load(std::memory_order_relaxed) > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (s.open.load(std::memory_order_relaxed) == 0) {
    return true;
  }
  std::vector<uint64_t> targets;
  size_t closedBefore = 0;
  {
    std::lock_guard lock(s.mu);
    for (auto& w : s.workers) {
      closedBefore += w->closedByCommand;
    }
  }
  for (auto& w : s.workers) {
    targets.push_back(w->closeAllRequested.fetch_add(1, std::memory_order_acq_rel) + 1);
    w->wake();
  }
  std::unique_lock lock(s.mu);
  s.cv.wait(lock, [&] {
    for (size_t i = 0; i < s.workers.size(); ++i) {
      if (s.workers[i]->closeAllDone < targets[i]) {
        return false;
      }
    }
    return true;
  });
  if (cut != nullptr) {
    size_t closed = 0;
    for (auto& w : s.workers) {
      closed += w->closedByCommand;
    }
    *cut = closed - closedBefore;
  }
  return false;
}

Engine::~Engine() {
  if (!shared_) {
    return;
  }
  for (auto& w : shared_->workers) {
    w->stopRequested.store(true, std::memory_order_release);
    w->wake();
  }
  for (std::thread& t : shared_->threads) {
    t.join();
  }
  shared_->workers.clear();  // closes the remaining connections and the listeners
}

}  // namespace edgeplane::proxy
