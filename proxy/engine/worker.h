// One worker thread: its epoll loop, accepting and shedding, the ClientHello read and SNI
// routing, dispatch to the protocols' handlers, timers, the ready list, closing.
//
// Event model: sockets are registered edge-triggered; targets keep readiness flags that an
// event sets and only EAGAIN clears, so backpressure needs no epoll_ctl calls. Work per
// wake-up is bounded by the handlers; one with more to do asks for another turn
// (markReady) and is resumed after the current batch, so one bulk transfer cannot starve the
// worker's other connections. Listening sockets are level-triggered and accept at most
// kAcceptBatch per wake-up for the same reason.
//
// epoll_event.data.u64 is an EventTarget pointer (8-aligned) with the target's tag in the low
// three bits; a null pointer names the worker's own fds (listeners, wake-up eventfd).
#pragma once

#include <atomic>
#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proxy/engine/engine.h"
#include "proxy/engine/handler.h"
#include "proxy/engine/timer_wheel.h"
#include "proxy/netns_socket.h"

namespace edgeplane::proxy {

namespace engine_detail {

class Worker final : public Context {
 public:
  Worker(Engine::Shared& shared, int index) : shared_(shared), index_(index) {}
  ~Worker() override;
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // On the starting thread: epoll, eventfd, listeners registered. "" or an error text.
  std::string setup(int httpsListener, int httpListener);
  // The thread body. `initError` receives a message if per-thread set-up fails.
  void run(std::latch& started, std::string& initError);

  void wake();

  // Commands from the control thread; acknowledged under shared_.mu / shared_.cv.
  std::atomic<bool> stopAcceptRequested{false};
  bool stopAcceptDone = false;  // guarded by shared_.mu
  std::atomic<uint64_t> closeAllRequested{0};
  uint64_t closeAllDone = 0;   // guarded by shared_.mu
  size_t closedByCommand = 0;  // guarded by shared_.mu: connections cut by closeAll requests
  std::atomic<bool> stopRequested{false};

  // Interface (Context)
  int64_t now() const override { return now_; }
  const EngineOptions& options() const override;
  Metrics& metrics() override;
  std::shared_ptr<const ActiveConfig> currentConfig() override;
  bool draining() const override { return stopAcceptHandled_; }
  bool watch(int fd, EventTarget* target, uint32_t tag, uint32_t events) override;
  bool rewatch(int fd, EventTarget* target, uint32_t tag, uint32_t events) override;
  void unwatch(int fd) override;
  void schedule(EventTarget* target, int64_t deadlineMs) override;
  void unschedule(EventTarget* target) override;
  void markReady(EventTarget* target) override;
  void retire(std::unique_ptr<EventTarget> target) override;
  int upstreamSocket(std::string_view netns, int family) override;
  bool acquirePipe(int& readFd, int& writeFd, size_t& capacity) override;
  void releasePipe(int readFd, int writeFd, bool dirty) override;
  std::span<uint8_t> scratch() override { return scratch_; }
  uint32_t random() override;
  void accessLog(std::string_view line) override;
  void eventLog(std::string_view line) override;

  // Connection's side of the seam.
  void readHello(Connection* c);
  void finish(Connection* c, Outcome outcome);

 private:
  // Tags of the worker's own fds (null target pointer).
  static constexpr uint64_t kHttpsListener = 0;
  static constexpr uint64_t kHttpListener = 1;
  static constexpr uint64_t kWake = 2;

  void loop();
  void flushEventLog();
  void runReady();
  void freeRetired();
  void sweep();
  void handleCommands();
  void onEvent(uint64_t data, uint32_t events);
  void acceptBatch(int listener, bool http);
  void refuseOverLimit(int fd, const sockaddr_storage& ss, bool http, ErrorKind kind);
  bool shedOneConnection(int listener);
  void pauseAccepting();
  void resumeAccepting();
  void routeHello(Connection* c);
  void dispatch(Connection* c, Entry entry);
  size_t closeAll(Outcome outcome);
  void closeListeners();

  Engine::Shared& shared_;
  int index_;
  int epoll_ = -1;
  int wake_ = -1;
  int httpsListener_ = -1;
  int httpListener_ = -1;
  int reserveFd_ = -1;           // spare fd released to shed a connection at EMFILE
  int64_t acceptResumeMs_ = -1;  // >= 0: the listeners are out of the epoll set until then
  int64_t now_ = 0;
  int64_t lastSweepMs_ = 0;
  uint64_t rng_ = 0;
  bool stopAcceptHandled_ = false;
  uint64_t closeAllHandled_ = 0;

  std::unique_ptr<NetnsSocketFactory> netns_;
  Protocols protocols_;
  std::vector<std::pair<int, int>> pipePool_;
  size_t pipeSize_ = 0;
  std::vector<uint8_t> scratch_;
  std::string eventLog_;  // eventLog() records of this loop iteration
  static constexpr size_t kEventLogFlushBytes = 16384;

  std::shared_ptr<const ActiveConfig> config_;
  uint64_t configVersion_ = 0;

  TimerWheel timers_;
  std::vector<EventTarget*> expired_;

  Connection* all_ = nullptr;
  std::vector<EventTarget*> ready_;
  std::vector<EventTarget*> readyNow_;
  std::vector<Connection*> deadConnections_;             // finished; freed after the batch
  std::vector<std::unique_ptr<EventTarget>> graveyard_;  // retired targets, same
};

}  // namespace engine_detail
}  // namespace edgeplane::proxy
