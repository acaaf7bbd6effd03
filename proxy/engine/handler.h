// The seam between the engine and the protocol handlers: what a handler may ask of its worker.
//
// The engine accepts, reads the ClientHello, routes by SNI and hands the connection to the
// handler its Protocol creates (passthrough, TLS termination, :80, ...); from then on the
// handler drives the connection through a Context and ends it with Connection::finish().
// A new protocol is a Protocol + Handler pair, not a branch in the worker.
//
// Threads: everything here lives on one worker thread; nothing is locked.
//
// Events: fds are registered with the worker's epoll by watch(); the event goes to the given
// EventTarget with the small tag passed at registration (a handler owning several fds tells
// them apart by it). The client fd is registered by the engine, edge-triggered for
// IN|OUT|RDHUP, and its events reach the connection's handler with tag kClientTag.
//
// Lifetime: a target is never deleted while the current epoll batch may still name it: the
// engine frees finished connections (and targets passed to retire()) after the batch, and
// does not deliver events, timers or turns to them once finished/retired.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/engine/engine.h"
#include "proxy/engine/source_limits.h"
#include "proxy/runtime.h"
#include "schema/net.h"

namespace edgeplane::proxy {

namespace engine_detail {
class Worker;
class TimerWheel;
}  // namespace engine_detail

// How a connection ended.
struct Outcome {
  // Revoked: ended because its API key was revoked while it lasted (a policy, not a failure).
  enum Kind : uint8_t { Ok, Error, Empty, Shutdown, Revoked };
  Kind kind = Ok;
  ErrorKind error = ErrorKind::kCount;

  static Outcome ok() { return {}; }
  static Outcome empty() { return {Empty, ErrorKind::kCount}; }
  static Outcome shutdown() { return {Shutdown, ErrorKind::kCount}; }
  static Outcome revoked() { return {Revoked, ErrorKind::kCount}; }
  static Outcome fail(ErrorKind e) { return {Error, e}; }
};

// Anything that gets epoll events, timer expiries or turns from the ready list.
class EventTarget {
 public:
  virtual ~EventTarget() = default;
  // `tag` as given to Context::watch (kClientTag for the client fd); `events` epoll's bits.
  virtual void onIo(uint32_t tag, uint32_t events) = 0;
  // The deadline given to Context::schedule passed (a target has at most one timer).
  virtual void onTimer() = 0;
  // The turn asked for by Context::markReady, after the other targets' events.
  virtual void onReady() {}

  bool retired() const { return retired_; }

 protected:
  EventTarget() = default;
  EventTarget(const EventTarget&) = delete;
  EventTarget& operator=(const EventTarget&) = delete;

 private:
  friend class engine_detail::Worker;
  friend class engine_detail::TimerWheel;
  bool retired_ = false;
  bool inReady_ = false;
  EventTarget* tPrev_ = nullptr;
  EventTarget* tNext_ = nullptr;
  int64_t tTick_ = -1;  // -1: no timer
};

inline constexpr uint32_t kClientTag = 0;
inline constexpr uint32_t kMaxTag = 7;  // tags are packed in the pointer's low bits

class Connection;

// The worker's services, for handlers and their per-worker state (e.g. an upstream pool).
class Context {
 public:
  virtual ~Context() = default;

  virtual int64_t now() const = 0;  // monotonic ms, once per loop iteration
  virtual const EngineOptions& options() const = 0;
  virtual Metrics& metrics() = 0;
  // The config published last (nullptr: none); cheap, once per request is fine.
  virtual std::shared_ptr<const ActiveConfig> currentConfig() = 0;
  // stopAccepting() was called: finish keep-alive work and end (see Handler::onDrain).
  virtual bool draining() const = 0;

  // epoll registration, edge-triggered unless `events` says otherwise. False on failure.
  virtual bool watch(int fd, EventTarget* target, uint32_t tag, uint32_t events) = 0;
  virtual bool rewatch(int fd, EventTarget* target, uint32_t tag, uint32_t events) = 0;
  virtual void unwatch(int fd) = 0;  // closing an fd also unwatches it

  virtual void schedule(EventTarget* target, int64_t deadlineMs) = 0;  // replaces its timer
  virtual void unschedule(EventTarget* target) = 0;
  // One more turn (onReady) after everyone else's events: bounded work per wake-up.
  virtual void markReady(EventTarget* target) = 0;
  // Deletes `target` once the current batch cannot name it any more; no calls reach it after.
  virtual void retire(std::unique_ptr<EventTarget> target) = 0;

  // A non-blocking TCP socket in network namespace `netns` ("" = the worker's), or -errno.
  virtual int upstreamSocket(std::string_view netns, int family) = 0;
  // A non-blocking pipe pair for splice from the worker's pool; false if none can be made.
  virtual bool acquirePipe(int& readFd, int& writeFd, size_t& capacity) = 0;
  // Back to the pool (only call with an empty pipe; `dirty` closes it instead).
  virtual void releasePipe(int readFd, int writeFd, bool dirty) = 0;

  // A per-worker buffer, valid until the handler returns to the loop.
  virtual std::span<uint8_t> scratch() = 0;
  virtual uint32_t random() = 0;
  // One access-log record (ends with '\n'); no-op when the access log is off.
  virtual void accessLog(std::string_view line) = 0;
  // One event record for operators and their tools (e.g. the gateway's API_KEY_* lines for
  // fail2ban; ends with '\n'), written whatever the access-log setting. Buffered: the
  // worker writes what one loop iteration logged with one write(2) at its end.
  virtual void eventLog(std::string_view line) = 0;
};

// A client connection: engine-owned, from accept to finish.
class Connection final : public EventTarget {
 public:
  Context& context() const { return *ctx_; }
  int fd() const { return fd_; }
  const Endpoint& client() const { return client_; }
  int64_t startMs() const { return startMs_; }
  // The SNI (:443) or, for :80, what the handler stores (the Host).
  std::string& serverName() { return sni_; }
  const std::string& serverName() const { return sni_; }
  // The ClientHello bytes read so far and any early bytes after it, for replay.
  std::vector<uint8_t>& hello() { return hello_; }
  // The route and the config it came from (kept alive for the connection's life). The route
  // is null for the :80 listener.
  const ActiveRoute* route() const { return route_; }
  const std::shared_ptr<const ActiveConfig>& config() const { return config_; }
  // Readiness of the client fd as last seen by the engine (an event sets, EAGAIN clears):
  // what the handler starts from.
  bool readable() const { return readable_; }
  bool writable() const { return writable_; }

  // Closes the client fd and the handler (Handler::onClose), counts and logs. Idempotent.
  void finish(Outcome outcome);
  bool finished() const { return retired(); }

  // Interface
  void onIo(uint32_t tag, uint32_t events) override;
  void onTimer() override;
  void onReady() override;

 private:
  friend class engine_detail::Worker;
  Connection() = default;

  Context* ctx_ = nullptr;
  engine_detail::Worker* worker_ = nullptr;
  int fd_ = -1;
  Endpoint client_;
  int64_t startMs_ = 0;
  bool http_ = false;  // accepted on the :80 listener
  // Holds a slot in the engine's per-source table (and a pending-hello slot until the hello
  // is complete).
  bool sourceCounted_ = false;
  bool helloCounted_ = false;
  SourceKey source_;
  bool readable_ = false;
  bool writable_ = true;  // a new socket has room; the first EAGAIN says otherwise
  std::string sni_;
  std::vector<uint8_t> hello_;
  std::unique_ptr<class ClientHelloParser> parser_;
  std::shared_ptr<const ActiveConfig> config_;
  const ActiveRoute* route_ = nullptr;
  std::unique_ptr<class Handler> handler_;
  Connection* aPrev_ = nullptr;  // the worker's list of open connections
  Connection* aNext_ = nullptr;
};

// One protocol's per-connection state machine, created when the engine hands a connection
// over. Its events arrive through EventTarget (the client fd with kClientTag).
class Handler : public EventTarget {
 public:
  explicit Handler(Connection& conn) : conn_(conn) {}

  // The connection is handed over; conn().readable()/writable() say where the client is.
  virtual void start() = 0;
  // The connection is finishing: close the fds the handler owns (not the client's), give back
  // pipes, write the access-log line(s). No event reaches the handler afterwards.
  virtual void onClose(Outcome outcome) = 0;
  // stopAccepting() was called: idle connections end now, busy ones after their exchange.
  virtual void onDrain() {}

  Connection& conn() { return conn_; }
  const Connection& conn() const { return conn_; }
  Context& ctx() { return conn_.context(); }

 private:
  Connection& conn_;
};

// Creates the handlers of one protocol on one worker and owns that worker's protocol state
// (pools, caches). nullptr from create(): the connection is finished with `refusal`.
class Protocol {
 public:
  virtual ~Protocol() = default;
  virtual std::unique_ptr<Handler> create(Connection& conn) = 0;
  // About once a second: let go of stale per-worker state.
  virtual void sweep() {}
  // The worker is going away: close pooled fds (no handler is alive any more).
  virtual void shutdown() {}
};

// Which protocol gets a connection: by listener (:80) or by the route kind behind the SNI.
// Terminate serves sites; Gateway the same TLS-terminating proxy behind the API-key filter
// (proxy/gateway). A set without a Gateway protocol closes gateway connections as
// route_unsupported: a gateway is never served unauthenticated. AcmeTlsAlpn answers a CA's
// TLS-ALPN-01 validation for a name with a pending challenge, before any route.
enum class Entry : uint8_t { Passthrough, Terminate, Gateway, PlainHttp, AcmeTlsAlpn, kCount };

inline Entry entryFor(RouteKind kind) {
  switch (kind) {
    case RouteKind::Passthrough:
      return Entry::Passthrough;
    case RouteKind::Gateway:
      return Entry::Gateway;
    case RouteKind::Site:
      break;
  }
  return Entry::Terminate;
}

struct Protocols {
  std::array<std::unique_ptr<Protocol>, static_cast<size_t>(Entry::kCount)> entries;
  Protocol* get(Entry e) const { return entries[static_cast<size_t>(e)].get(); }
};

// The protocols each worker serves; proxy/handlers/handlers.cpp builds the default set.
Protocols defaultProtocols(Context& ctx);

}  // namespace edgeplane::proxy
