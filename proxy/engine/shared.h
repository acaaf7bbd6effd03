// The state the Engine and its workers share (engine-internal).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "proxy/engine/engine.h"
#include "proxy/engine/source_limits.h"
#include "proxy/engine/worker.h"

namespace edgeplane::proxy {

struct Engine::Shared {
  EngineOptions options;
  Metrics* metrics = nullptr;
  std::atomic<std::shared_ptr<const ActiveConfig>> config;
  std::atomic<uint64_t> configVersion{1};
  std::atomic<size_t> open{0};
  std::unique_ptr<SourceLimits> sources;  // nullptr: no per-IP cap
  uint16_t httpsPort = 0;
  std::optional<uint16_t> httpPort;
  std::vector<std::unique_ptr<engine_detail::Worker>> workers;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  bool acceptStopped = false;  // guarded by mu
};

}  // namespace edgeplane::proxy
