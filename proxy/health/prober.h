// The active health prober: one thread with its own epoll that probes, every interval, each
// backend of each route with a health check in the config it follows, from inside the route's
// network namespace.
//
// A probe is a non-blocking TCP connect (the socket made in the route's namespace by a
// NetnsSocketFactory owned by the prober thread), one request
//   GET <path> HTTP/1.1\r\nHost: <host>\r\nUser-Agent: edgeplane-health/1\r\nConnection: close
// and a read up to the end of the status line (at most maxReplyBytes), judged against the
// spec's expect_status. A refused connect, a missing namespace, a close before the status
// line, a malformed status line or no status line within the timeout is a failed probe.
//
// Scheduling: a backend new to the prober is probed at once, then every interval plus a random
// jitter of up to a tenth of it, so thousands of backends that appeared together drift apart.
// At most maxInFlight probes run at once; the others wait for a free slot. A config swap keeps
// the schedule and the state of every backend still present (same registry entry) and forgets
// the others (a probe in flight for one finishes but is not repeated).
//
// The prober does not log: each up/down transition is handed to `onEvent` once, on the prober
// thread; the top level logs it (formatEvent).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/health/registry.h"
#include "proxy/runtime.h"
#include "schema/result.h"

namespace edgeplane::proxy::health {

struct HealthEvent {
  std::string route;  // "site shop"
  std::string netns;
  Endpoint backend;
  bool up = false;
  std::string reason;
};

// health route="site shop" backend=10.0.0.5:8080 down reason="status 500"
std::string formatEvent(const HealthEvent& event);

struct ProberOptions {
  std::string netnsDir = "/run/netns";
  size_t maxInFlight = 256;
  size_t maxReplyBytes = 4096;  // a status line longer than this fails the probe
  std::function<void(const HealthEvent&)> onEvent;  // called on the prober thread
};

class Prober {
 public:
  // Starts the thread (its namespace factory initialized there) following `config`. An error
  // when the thread's epoll, wake-up fd or namespace factory cannot be set up.
  static Result<std::unique_ptr<Prober>> start(HealthRegistry& registry, ProberOptions options,
                                               std::shared_ptr<const ActiveConfig> config);
  ~Prober();  // stop()
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Thread-safe; the prober switches to `config` at its next turn (within milliseconds).
  void setConfig(std::shared_ptr<const ActiveConfig> config);
  // Joins the thread, closing the probes in flight. Idempotent.
  void stop();

  uint64_t probesStarted() const { return started_.load(std::memory_order_relaxed); }
  // Probes whose result is recorded (and its transition reported).
  uint64_t probesFinished() const { return finished_.load(std::memory_order_acquire); }

  struct Loop;  // the thread's state (prober.cpp)

 private:
  Prober(HealthRegistry& registry, ProberOptions options);
  void run(Loop& loop);

  HealthRegistry& registry_;
  ProberOptions options_;
  int wakeFd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> started_{0};
  std::atomic<uint64_t> finished_{0};
  std::mutex mu_;
  std::shared_ptr<const ActiveConfig> pending_;  // set by setConfig, taken by the thread
  std::thread thread_;
};

}  // namespace edgeplane::proxy::health
