// The agent's local trigger: a unix socket (<state-dir>/agent.sock, 0600) speaking one line
// each way. "reconcile\n" -> "accepted\n"; "reconcile-wait\n" -> "done <run id> <result>\n"
// once the run that serves the request has ended; anything else -> "error …\n".
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "schema/result.h"
#include "schema/store.h"

namespace edgeplane::cli {

inline constexpr std::string_view kAgentSocketName = "agent.sock";

class TriggerSocket {
 public:
  // `onTrigger` asks for a run and returns its ticket: the number of the run that will serve
  // it (see Scheduler::trigger). A socket file left by a dead agent is replaced; one a live
  // agent answers on is refused.
  static Result<std::unique_ptr<TriggerSocket>> listen(const std::filesystem::path& path,
                                                       std::function<uint64_t()> onTrigger);
  ~TriggerSocket();  // stops; waiting clients get "error agent stopping"
  TriggerSocket(const TriggerSocket&) = delete;
  TriggerSocket& operator=(const TriggerSocket&) = delete;

  // Run number `run` (its store id `runId`) ended with `result`: every client waiting on a
  // ticket up to `run` is answered and closed.
  void complete(uint64_t run, int64_t runId, RunResult result);
  // How many clients are waiting (tests).
  size_t waiting() const;

  struct Impl;

 private:
  explicit TriggerSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The client: sends one request and returns the agent's answer line (without the newline).
// No agent listening is a clear error; so is no answer within `timeout`.
Result<std::string> requestTrigger(const std::filesystem::path& path, bool wait,
                                   std::chrono::milliseconds timeout);

}  // namespace edgeplane::cli
