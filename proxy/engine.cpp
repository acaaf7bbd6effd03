// The data path: per-worker epoll loops, ClientHello routing, splice relay, :80 redirects.
//
// Event model: connection sockets are registered once, edge-triggered, for
// IN|OUT|RDHUP, and never modified. Each connection keeps "readable"/"writable" flags per
// direction: an event sets them, and only EAGAIN clears them. Backpressure is then a matter of
// not reading a source while its direction still holds unsent bytes, with no epoll_ctl calls
// to toggle EPOLLOUT (level-triggered epoll would need two per stall, and would wake us in a
// loop for a readable source we deliberately leave unread). A direction reads only when its
// pipe is empty, so a splice() EAGAIN from the socket into the pipe always means "socket
// drained", never "pipe full" - the ambiguity that makes edge-triggered splice relays lose
// wake-ups. Work per wake-up is bounded (kPumpBudget reads per direction); a connection with
// more to do goes on the ready list and is resumed after the current batch, so one bulk
// transfer cannot starve the worker's other connections. Listening sockets are
// level-triggered and accept at most kAcceptBatch per wake-up for the same reason.
//
// Lifetime: a connection closed while the current epoll batch may still mention it is only
// marked closed and freed after the batch (graveyard), so stale events are ignored safely.
//
// Timers: one hashed wheel per worker (10 ms ticks, 1024 slots) with one intrusive node per
// connection - a connection waits for one thing at a time (hello, connect, idle). Idle time
// is tracked lazily: bytes only bump lastActivity; when the idle timer fires early it is
// re-armed at lastActivity + idleTimeout.
#include "proxy/engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <latch>
#include <mutex>
#include <new>
#include <span>
#include <thread>
#include <vector>

#include "proxy/clienthello.h"
#include "proxy/http_redirect.h"
#include "proxy/netns_socket.h"
#include "proxy/proxy_protocol.h"

namespace edgeplane::proxy {

namespace {

constexpr int64_t kTickMs = 10;
constexpr size_t kWheelSlots = 1024;
constexpr int kMaxEvents = 256;
constexpr int kAcceptBatch = 64;
constexpr int kPumpBudget = 8;  // reads per direction per wake-up
constexpr size_t kMaxPooledPipes = 128;
constexpr size_t kMinBufferBytes = 16384;
constexpr size_t kMinPipeBytes = 65536;
constexpr int64_t kHttpLingerMs = 1000;
constexpr size_t kHttpLingerMaxBytes = size_t{64} * 1024;
constexpr size_t kMaxLogLine = 1024;
constexpr int64_t kNetnsSweepMs = 1000;
constexpr int64_t kAcceptPauseMs = 100;  // listeners unwatched after an EMFILE we cannot shed

// epoll_event.data.u64: a Conn pointer (8-aligned) with the socket's role in the low bits.
enum Tag : uint64_t {
  kHttpsListener = 0,
  kHttpListener = 1,
  kClient = 2,
  kUpstream = 3,
  kWake = 4
};
constexpr uint64_t kTagMask = 7;

int64_t monotonicMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// "ip:port" / "[v6]:port" without allocating.
void formatEndpoint(const Endpoint& e, char* out, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (e.address.family == IpAddress::Family::V4) {
    ::inet_ntop(AF_INET, e.address.bytes.data(), ip, sizeof ip);
    std::snprintf(out, size, "%s:%u", ip, static_cast<unsigned>(e.port));
  } else {
    ::inet_ntop(AF_INET6, e.address.bytes.data(), ip, sizeof ip);
    std::snprintf(out, size, "[%s]:%u", ip, static_cast<unsigned>(e.port));
  }
}

std::string errnoText(int err) {
  char buf[128];
  return std::string(::strerror_r(err, buf, sizeof buf));
}

void setNoDelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// An abortive close (RST): for connections refused at once, so they cost no TIME_WAIT.
void setLingerZero(int fd) {
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

namespace engine_detail {

class Worker;

// How a connection ended.
struct Outcome {
  enum Kind : uint8_t { Ok, Error, Empty, Shutdown };
  Kind kind = Ok;
  ErrorKind error = ErrorKind::kCount;

  static Outcome ok() { return {}; }
  static Outcome empty() { return {Empty, ErrorKind::kCount}; }
  static Outcome shutdown() { return {Shutdown, ErrorKind::kCount}; }
  static Outcome fail(ErrorKind e) { return {Error, e}; }
};

enum class Phase : uint8_t { Hello, Connecting, Relay, HttpRead, HttpWrite, HttpLinger };

// One direction of a relay: bytes from `src` to `dst`, through a pipe (splice) or, as the
// fallback, a copy buffer. `pending` bytes sit in between; the source is read only when
// nothing is pending.
struct Direction {
  int src = -1;
  int dst = -1;
  bool srcReadable = false;
  bool dstWritable = false;
  bool srcEof = false;
  bool shut = false;  // shutdown(dst, SHUT_WR) done after srcEof and a full flush
  bool copyMode = false;
  int pipeR = -1;
  int pipeW = -1;
  size_t pending = 0;
  size_t copyOff = 0;
  std::unique_ptr<uint8_t[]> copyBuf;
  uint64_t bytes = 0;
};

struct Conn {
  Worker* worker = nullptr;
  Phase phase = Phase::Hello;
  bool http = false;
  bool closed = false;
  bool inReady = false;
  bool preambleDone = false;
  int client = -1;
  int upstream = -1;
  int savedErrno = 0;
  Endpoint clientAddr;
  int64_t startMs = 0;
  int64_t lastActivityMs = 0;

  // Timer wheel node.
  Conn* tPrev = nullptr;
  Conn* tNext = nullptr;
  int64_t tTick = -1;  // -1: not scheduled

  // Every connection of the worker, for closing them all.
  Conn* aPrev = nullptr;
  Conn* aNext = nullptr;

  std::vector<uint8_t> buf;  // hello (+ early bytes) for replay, or the HTTP head
  std::unique_ptr<ClientHelloParser> parser;
  std::string sni;  // or the HTTP Host

  std::shared_ptr<const ActiveConfig> config;  // keeps `route` alive
  const ActiveRoute* route = nullptr;
  uint32_t firstBackend = 0;
  uint32_t tried = 0;
  int backend = -1;  // index of the backend in use or last tried

  std::string proxyHeader;
  size_t preambleSent = 0;  // of proxyHeader + buf

  Direction up;    // client -> backend
  Direction down;  // backend -> client

  int httpStatus = 0;
  std::string response;
  size_t responseSent = 0;
  size_t lingered = 0;
};

enum class Flow : uint8_t { Blocked, Budget, Error };

}  // namespace engine_detail

struct Engine::Shared {
  EngineOptions options;
  Metrics* metrics = nullptr;
  std::atomic<std::shared_ptr<const ActiveConfig>> config;
  std::atomic<uint64_t> configVersion{1};
  std::atomic<size_t> open{0};
  uint16_t httpsPort = 0;
  std::optional<uint16_t> httpPort;
  std::vector<std::unique_ptr<engine_detail::Worker>> workers;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  bool acceptStopped = false;  // guarded by mu
};

namespace engine_detail {

class Worker {
 public:
  Worker(Engine::Shared& shared, int index) : shared_(shared), index_(index) {}
  ~Worker();
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

 private:
  void loop();
  void handleCommands();
  void onEvent(uint64_t data, uint32_t events);
  void acceptBatch(int listener, bool http);
  bool shedOneConnection(int listener);
  void pauseAccepting();
  void resumeAccepting();

  // HTTPS (passthrough) path.
  void readHello(Conn* c);
  void routeHello(Conn* c);
  void dispatchRoute(Conn* c);
  void startPassthrough(Conn* c);
  void connectNext(Conn* c);
  void onConnectEvent(Conn* c, uint32_t events);
  void attemptFailed(Conn* c);
  void onConnected(Conn* c);
  void pump(Conn* c);
  void pumpOrFail(Conn* c, uint32_t events);
  static bool closingReset(const Conn* c, bool socketError);
  bool sendPreamble(Conn* c);
  Flow pumpDirection(Conn* c, Direction& d, uint64_t& moved);
  bool acquirePipe(Direction& d);
  void releasePipe(Direction& d);

  // :80 path.
  void readHttp(Conn* c);
  void answerHttp(Conn* c, size_t headEnd);
  void writeHttp(Conn* c);
  void lingerHttp(Conn* c);
  Outcome httpOutcome(const Conn* c) const;

  // Timers.
  void schedule(Conn* c, int64_t deadlineMs);
  void unschedule(Conn* c);
  void advanceTimers();
  void onTimer(Conn* c);

  void addReady(Conn* c);
  void finish(Conn* c, Outcome outcome);
  size_t closeAll(Outcome outcome);
  void closeListeners();
  void logAccess(const Conn* c, Outcome outcome);
  std::shared_ptr<const ActiveConfig> currentConfig();
  uint32_t random();

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
  std::vector<std::pair<int, int>> pipePool_;
  size_t pipeSize_ = 0;
  std::vector<uint8_t> scratch_;

  std::shared_ptr<const ActiveConfig> config_;
  uint64_t configVersion_ = 0;

  std::array<Conn*, kWheelSlots> wheel_{};
  int64_t lastTick_ = 0;
  size_t timerCount_ = 0;
  std::vector<Conn*> expired_;

  Conn* all_ = nullptr;
  std::vector<Conn*> ready_;
  std::vector<Conn*> readyNow_;
  std::vector<Conn*> graveyard_;
};

Worker::~Worker() {
  closeAll(Outcome::shutdown());
  for (Conn* c : graveyard_) {
    delete c;
  }
  graveyard_.clear();
  closeListeners();
  for (auto [r, w] : pipePool_) {
    ::close(r);
    ::close(w);
  }
  if (reserveFd_ >= 0) {
    ::close(reserveFd_);
  }
  if (wake_ >= 0) {
    ::close(wake_);
  }
  if (epoll_ >= 0) {
    ::close(epoll_);
  }
}

std::string Worker::setup(int httpsListener, int httpListener) {
  httpsListener_ = httpsListener;
  httpListener_ = httpListener;
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) {
    return "epoll_create1: " + errnoText(errno);
  }
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_ < 0) {
    return "eventfd: " + errnoText(errno);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWake;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
    return "epoll_ctl: " + errnoText(errno);
  }
  ev.data.u64 = kHttpsListener;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpsListener_, &ev) != 0) {
    return "epoll_ctl: " + errnoText(errno);
  }
  if (httpListener_ >= 0) {
    ev.data.u64 = kHttpListener;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpListener_, &ev) != 0) {
      return "epoll_ctl: " + errnoText(errno);
    }
  }
  reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  scratch_.resize(std::max(shared_.options.bufferBytes, kMaxHttpHead));
  rng_ = (static_cast<uint64_t>(monotonicMs()) << 8) ^ (0x9E3779B97F4A7C15ull * (index_ + 1));
  now_ = monotonicMs();
  lastTick_ = now_ / kTickMs;
  return {};
}

void Worker::run(std::latch& started, std::string& initError) {
  char name[16];
  std::snprintf(name, sizeof name, "ep-worker-%d", index_);
  ::pthread_setname_np(::pthread_self(), name);  // for top -H, perf and gdb
  netns_ = std::make_unique<NetnsSocketFactory>(shared_.options.netnsDir);
  int rc = netns_->init();
  if (rc != 0) {
    initError = "open /proc/thread-self/ns/net: " + errnoText(-rc);
  }
  started.count_down();
  if (rc != 0) {
    return;
  }
  loop();
}

void Worker::wake() {
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_, &one, sizeof one);
}

void Worker::loop() {
  std::array<epoll_event, kMaxEvents> events{};
  while (!stopRequested.load(std::memory_order_acquire)) {
    int timeout = -1;
    if (!ready_.empty()) {
      timeout = 0;
    } else if (timerCount_ > 0 || acceptResumeMs_ >= 0) {
      timeout = static_cast<int>(kTickMs);
    } else if (!netns_->empty()) {
      timeout = static_cast<int>(kNetnsSweepMs);  // so a deleted namespace is let go of
    }
    int n = ::epoll_wait(epoll_, events.data(), kMaxEvents, timeout);
    now_ = monotonicMs();
    for (int i = 0; i < n; ++i) {
      onEvent(events[i].data.u64, events[i].events);
    }
    // Connections with work left over from their budget, after everyone else had a turn.
    if (!ready_.empty()) {
      readyNow_.swap(ready_);
      for (Conn* c : readyNow_) {
        c->inReady = false;
        if (!c->closed && c->phase == Phase::Relay) {
          pump(c);
        }
      }
      readyNow_.clear();
    }
    advanceTimers();
    if (acceptResumeMs_ >= 0 && now_ >= acceptResumeMs_) {
      resumeAccepting();
    }
    if (now_ - lastSweepMs_ >= kNetnsSweepMs) {
      lastSweepMs_ = now_;
      netns_->sweep();
    }
    // A closed connection still on the ready list is freed once that list let go of it.
    size_t keep = 0;
    for (Conn* c : graveyard_) {
      if (c->inReady) {
        graveyard_[keep++] = c;
      } else {
        delete c;
      }
    }
    graveyard_.resize(keep);
    handleCommands();
  }
}

// Two atomic loads per loop iteration; the mutex only when a command is pending.
void Worker::handleCommands() {
  bool stopAccept = stopAcceptRequested.load(std::memory_order_acquire);
  uint64_t closeReq = closeAllRequested.load(std::memory_order_acquire);
  if (stopAccept == stopAcceptHandled_ && closeReq == closeAllHandled_) {
    return;
  }
  if (stopAccept) {
    closeListeners();
  }
  size_t cut = 0;
  if (closeReq != closeAllHandled_) {
    cut = closeAll(Outcome::shutdown());
  }
  stopAcceptHandled_ = stopAccept;
  closeAllHandled_ = closeReq;
  std::lock_guard lock(shared_.mu);
  stopAcceptDone = stopAccept;
  closeAllDone = closeReq;
  closedByCommand += cut;
  shared_.cv.notify_all();
}

void Worker::closeListeners() {
  if (httpsListener_ >= 0) {
    ::close(httpsListener_);
    httpsListener_ = -1;
  }
  if (httpListener_ >= 0) {
    ::close(httpListener_);
    httpListener_ = -1;
  }
}

void Worker::onEvent(uint64_t data, uint32_t events) {
  uint64_t tag = data & kTagMask;
  // The tag packing is what lets one epoll_data word name both the connection and the socket.
  Conn* c = reinterpret_cast<Conn*>(data & ~kTagMask);  // NOLINT(performance-no-int-to-ptr)
  switch (tag) {
    case kWake: {
      uint64_t v = 0;
      [[maybe_unused]] ssize_t n = ::read(wake_, &v, sizeof v);
      return;
    }
    case kHttpsListener:
      if (httpsListener_ >= 0) {
        acceptBatch(httpsListener_, false);
      }
      return;
    case kHttpListener:
      if (httpListener_ >= 0) {
        acceptBatch(httpListener_, true);
      }
      return;
    case kClient:
    case kUpstream:
      break;
    default:
      return;
  }
  if (c->closed) {
    return;  // closed earlier in this batch
  }
  bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  bool writable = (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  if (tag == kClient) {
    c->up.srcReadable |= readable;
    c->down.dstWritable |= writable;
    switch (c->phase) {
      case Phase::Hello:
        readHello(c);
        return;
      case Phase::Connecting:
        if ((events & EPOLLERR) != 0) {
          finish(c, Outcome::fail(ErrorKind::Relay));  // the client reset while we connect
        }
        return;
      case Phase::Relay:
        pumpOrFail(c, events);
        return;
      case Phase::HttpRead:
        readHttp(c);
        return;
      case Phase::HttpWrite:
        writeHttp(c);
        return;
      case Phase::HttpLinger:
        lingerHttp(c);
        return;
    }
    return;
  }
  // Upstream socket.
  c->down.srcReadable |= readable;
  c->up.dstWritable |= writable;
  if (c->phase == Phase::Connecting) {
    onConnectEvent(c, events);
  } else if (c->phase == Phase::Relay) {
    pumpOrFail(c, events);
  }
}

// ------------------------------------------------------------------------------------------
// Accepting

void Worker::acceptBatch(int listener, bool http) {
  Metrics& m = *shared_.metrics;
  const EngineOptions& o = shared_.options;
  for (int i = 0; i < kAcceptBatch; ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd =
        ::accept4(listener, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        if (shedOneConnection(listener)) {
          continue;
        }
        pauseAccepting();
        return;
      }
      return;  // EAGAIN, or ENOBUFS/ENOMEM: retried on the next wake-up
    }
    m.connectionsTotal.fetch_add(1, std::memory_order_relaxed);
    if (shared_.open.fetch_add(1, std::memory_order_relaxed) >= o.maxConnections) {
      shared_.open.fetch_sub(1, std::memory_order_relaxed);
      m.count(ErrorKind::ConnectionLimit);
      if (o.accessLog) {
        char client[64];
        formatEndpoint(fromSockaddr(ss), client, sizeof client);
        char line[160];
        int n = std::snprintf(line, sizeof line, "access%s client=%s outcome=connection_limit\n",
                              http ? "-http" : "", client);
        [[maybe_unused]] ssize_t w = ::write(2, line, static_cast<size_t>(n));
      }
      setLingerZero(fd);
      ::close(fd);
      continue;
    }
    auto* c = new (std::nothrow) Conn;
    if (c == nullptr) {
      shared_.open.fetch_sub(1, std::memory_order_relaxed);
      m.count(ErrorKind::ConnectionLimit);
      ::close(fd);
      continue;
    }
    m.connectionsOpen.fetch_add(1, std::memory_order_relaxed);
    setNoDelay(fd);
    c->worker = this;
    c->http = http;
    c->client = fd;
    c->clientAddr = fromSockaddr(ss);
    c->startMs = now_;
    c->lastActivityMs = now_;
    c->up.src = fd;
    c->down.dst = fd;
    c->down.dstWritable = true;  // a new socket has room; the first EAGAIN says otherwise
    c->phase = http ? Phase::HttpRead : Phase::Hello;
    if (!http) {
      c->parser = std::make_unique<ClientHelloParser>();
    }
    c->aNext = all_;
    if (all_ != nullptr) {
      all_->aPrev = c;
    }
    all_ = c;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = reinterpret_cast<uint64_t>(c) | kClient;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      finish(c, Outcome::fail(ErrorKind::ConnectionLimit));
      continue;
    }
    schedule(c, now_ + o.helloTimeout.count());
  }
}

// Out of file descriptors: accept and drop one pending connection using the reserve fd, so
// the level-triggered listener does not spin, and the client is told at once. False when no
// connection could be shed: the reserve is gone (the fd table is shared by every worker, so
// another thread may take the number we free) and cannot be reopened, or the accept into it
// failed anyway.
bool Worker::shedOneConnection(int listener) {
  if (reserveFd_ < 0) {
    reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (reserveFd_ < 0) {
      return false;
    }
  }
  ::close(reserveFd_);
  int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd >= 0) {
    setLingerZero(fd);
    ::close(fd);
    shared_.metrics->count(ErrorKind::ConnectionLimit);
  }
  reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  return fd >= 0;
}

// Nothing could be shed: a level-triggered listener would wake us at once, forever, while the
// process is out of fds. Stop watching the listeners for kAcceptPauseMs instead; pending
// clients wait in the backlog (and are served when fds are back) rather than being spun on.
// Counted once per pause as ConnectionLimit, so the condition shows in the metrics.
void Worker::pauseAccepting() {
  if (acceptResumeMs_ >= 0) {
    return;
  }
  shared_.metrics->count(ErrorKind::ConnectionLimit);
  for (int fd : {httpsListener_, httpListener_}) {
    if (fd >= 0) {
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    }
  }
  acceptResumeMs_ = now_ + kAcceptPauseMs;
}

void Worker::resumeAccepting() {
  acceptResumeMs_ = -1;
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (httpsListener_ >= 0) {
    ev.data.u64 = kHttpsListener;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpsListener_, &ev);
  }
  if (httpListener_ >= 0) {
    ev.data.u64 = kHttpListener;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpListener_, &ev);
  }
}

// ------------------------------------------------------------------------------------------
// ClientHello and routing

void Worker::readHello(Conn* c) {
  const size_t cap = ClientHelloParser::kDefaultMaxBytes;
  while (c->up.srcReadable) {
    size_t have = c->buf.size();
    // The parser refuses more than `cap` bytes; read at most one byte past it so an
    // oversized hello is seen as such (anything after a complete hello is kept for replay).
    size_t want = std::min(scratch_.size(), cap + 1 - std::min(have, cap));
    ssize_t n = ::recv(c->client, scratch_.data(), want, 0);
    if (n > 0) {
      c->buf.insert(c->buf.end(), scratch_.data(), scratch_.data() + n);
      auto r =
          c->parser->feed(std::span<const uint8_t>(c->buf.data() + have, static_cast<size_t>(n)));
      if (r.status == ClientHelloParser::Status::Done) {
        routeHello(c);
        return;
      }
      if (r.status == ClientHelloParser::Status::Error) {
        finish(c, Outcome::fail(ErrorKind::HelloMalformed));
        return;
      }
      continue;
    }
    if (n == 0) {
      finish(c, have == 0 ? Outcome::empty() : Outcome::fail(ErrorKind::HelloMalformed));
      return;
    }
    if (errno == EAGAIN) {
      c->up.srcReadable = false;
      return;
    }
    if (errno == EINTR) {
      continue;
    }
    // Reset mid-hello: a truncated hello if anything came, else just a client that left.
    finish(c, have == 0 ? Outcome::empty() : Outcome::fail(ErrorKind::HelloMalformed));
    return;
  }
}

void Worker::routeHello(Conn* c) {
  const ClientHello& hello = c->parser->hello();
  if (hello.sni) {
    c->sni = *hello.sni;
  }
  c->parser.reset();  // its reassembly buffer is not needed any more
  std::shared_ptr<const ActiveConfig> config = currentConfig();
  if (c->sni.empty() || !config || !config->table) {
    finish(c, Outcome::fail(ErrorKind::NoRoute));
    return;
  }
  std::optional<RouteId> id = config->table->lookup(c->sni);
  if (!id || *id >= config->routes.size() || !config->routes[*id]) {
    finish(c, Outcome::fail(ErrorKind::NoRoute));
    return;
  }
  c->route = config->routes[*id].get();
  c->config = std::move(config);
  if (c->route->stats) {
    c->route->stats->connections.fetch_add(1, std::memory_order_relaxed);
  }
  dispatchRoute(c);
}

// The one place a route kind picks its handler. TLS termination (site, gateway) and the
// TLS-ALPN-01 responder plug in here; the hello bytes are still in c->buf for them.
void Worker::dispatchRoute(Conn* c) {
  switch (c->route->spec.kind) {
    case RouteKind::Passthrough:
      startPassthrough(c);
      return;
    case RouteKind::Site:
    case RouteKind::Gateway:
      break;
  }
  finish(c, Outcome::fail(ErrorKind::RouteUnsupported));
}

void Worker::startPassthrough(Conn* c) {
  const SnapshotRoute& spec = c->route->spec;
  if (spec.backends.empty()) {
    finish(c, Outcome::fail(ErrorKind::UpstreamConnect));
    return;
  }
  auto n = static_cast<uint32_t>(spec.backends.size());
  if (spec.balance == Balance::Random) {
    c->firstBackend = random() % n;
  } else {
    c->firstBackend = c->route->cursor.fetch_add(1, std::memory_order_relaxed) % n;
  }
  c->tried = 0;
  c->phase = Phase::Connecting;
  connectNext(c);
}

// Tries the backends after the ones already tried, each once, until one is connecting.
void Worker::connectNext(Conn* c) {
  const SnapshotRoute& spec = c->route->spec;
  auto n = static_cast<uint32_t>(spec.backends.size());
  while (c->tried < n) {
    c->backend = static_cast<int>((c->firstBackend + c->tried) % n);
    ++c->tried;
    const Endpoint& be = spec.backends[static_cast<size_t>(c->backend)];
    int family = be.address.family == IpAddress::Family::V4 ? AF_INET : AF_INET6;
    int fd = netns_->tcpSocket(spec.netns, family);
    if (fd < 0) {
      shared_.metrics->backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    setNoDelay(fd);
    sockaddr_storage ss{};
    socklen_t len = toSockaddr(be, ss);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    if (rc != 0 && errno != EINPROGRESS) {
      ::close(fd);
      shared_.metrics->backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = reinterpret_cast<uint64_t>(c) | kUpstream;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      shared_.metrics->backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    c->upstream = fd;
    c->up.dst = fd;
    c->down.src = fd;
    c->up.dstWritable = false;
    c->down.srcReadable = false;
    if (rc == 0) {
      c->up.dstWritable = true;
      onConnected(c);
    } else {
      schedule(c, now_ + shared_.options.connectTimeout.count());
    }
    return;
  }
  finish(c, Outcome::fail(ErrorKind::UpstreamConnect));
}

void Worker::onConnectEvent(Conn* c, uint32_t events) {
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(c->upstream, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) {
    onConnected(c);
    return;
  }
  attemptFailed(c);
  connectNext(c);
}

void Worker::attemptFailed(Conn* c) {
  shared_.metrics->backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
  ::close(c->upstream);  // also leaves the epoll set
  c->upstream = -1;
  c->up.dst = -1;
  c->down.src = -1;
  c->up.dstWritable = false;
  c->down.srcReadable = false;
}

void Worker::onConnected(Conn* c) {
  c->phase = Phase::Relay;
  c->lastActivityMs = now_;
  schedule(c, now_ + shared_.options.idleTimeout.count());
  ProxyProtocol pp = c->route->spec.proxy_protocol;
  if (pp != ProxyProtocol::None) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Endpoint local;
    if (::getsockname(c->client, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      local = fromSockaddr(ss);
    }
    if (pp == ProxyProtocol::V1) {
      c->proxyHeader = encodeV1(c->clientAddr, local);
    } else {
      // The SNI as PP2_TYPE_AUTHORITY: a backend behind several names can tell which one.
      std::array<ProxyTlvView, 1> tlvs{ProxyTlvView{kPp2TypeAuthority, c->sni}};
      std::optional<std::string> v2 = encodeV2(c->clientAddr, local, tlvs);
      c->proxyHeader = v2 ? std::move(*v2) : encodeV2Local();
    }
  }
  pump(c);
}

// ------------------------------------------------------------------------------------------
// Relay

// The PROXY header then the buffered hello (and any early bytes), before any splicing.
bool Worker::sendPreamble(Conn* c) {
  size_t headerLen = c->proxyHeader.size();
  size_t total = headerLen + c->buf.size();
  while (c->preambleSent < total) {
    if (!c->up.dstWritable) {
      return false;
    }
    iovec iov[2];
    int count = 0;
    if (c->preambleSent < headerLen) {
      iov[count++] = {c->proxyHeader.data() + c->preambleSent, headerLen - c->preambleSent};
    }
    size_t bufFrom = c->preambleSent > headerLen ? c->preambleSent - headerLen : 0;
    if (bufFrom < c->buf.size()) {
      iov[count++] = {c->buf.data() + bufFrom, c->buf.size() - bufFrom};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(c->upstream, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        c->up.dstWritable = false;
        return false;
      }
      c->savedErrno = errno;
      finish(c, Outcome::fail(ErrorKind::Relay));
      return false;
    }
    size_t before = c->preambleSent;
    c->preambleSent += static_cast<size_t>(n);
    // Only the client's own bytes count as traffic, not our PROXY header.
    size_t helloBytes = std::min(c->preambleSent, total) - std::max(before, headerLen);
    if (c->preambleSent > headerLen) {
      c->up.bytes += helloBytes;
      shared_.metrics->bytesIn.fetch_add(helloBytes, std::memory_order_relaxed);
      if (c->route->stats) {
        c->route->stats->bytesIn.fetch_add(helloBytes, std::memory_order_relaxed);
      }
    }
  }
  c->preambleDone = true;
  std::vector<uint8_t>().swap(c->buf);  // an idle connection keeps no 16 KiB buffer
  std::string().swap(c->proxyHeader);
  return true;
}

bool Worker::acquirePipe(Direction& d) {
  if (!pipePool_.empty()) {
    d.pipeR = pipePool_.back().first;
    d.pipeW = pipePool_.back().second;
    pipePool_.pop_back();
    return true;
  }
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    return false;
  }
  // Never below the kernel's default 64 KiB: a pipe holds data only in flight (an idle
  // connection has none, see releasePipe), and 16 KiB pipes cost about 20% of bulk throughput
  // in our loopback measurements (more syscalls per byte).
  size_t want = std::max(shared_.options.bufferBytes, kMinPipeBytes);
  int size = ::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(want));
  if (size <= 0) {
    size = ::fcntl(fds[1], F_GETPIPE_SZ);
  }
  if (size <= 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  pipeSize_ = static_cast<size_t>(size);
  d.pipeR = fds[0];
  d.pipeW = fds[1];
  return true;
}

// An empty pipe goes back to the pool; one still holding bytes (a connection cut mid-stream)
// is closed, never reused.
void Worker::releasePipe(Direction& d) {
  if (d.pipeR < 0) {
    return;
  }
  if (d.pending == 0 && pipePool_.size() < kMaxPooledPipes) {
    pipePool_.emplace_back(d.pipeR, d.pipeW);
  } else {
    ::close(d.pipeR);
    ::close(d.pipeW);
  }
  d.pipeR = -1;
  d.pipeW = -1;
}

Flow Worker::pumpDirection(Conn* c, Direction& d, uint64_t& moved) {
  int budget = kPumpBudget;
  while (true) {
    if (d.pending > 0) {
      if (!d.dstWritable) {
        return Flow::Blocked;
      }
      ssize_t n;
      if (d.copyMode) {
        n = ::send(d.dst, d.copyBuf.get() + d.copyOff, d.pending, MSG_NOSIGNAL);
      } else {
        n = ::splice(d.pipeR, nullptr, d.dst, nullptr, d.pending,
                     SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      }
      if (n < 0) {
        if (errno == EAGAIN) {
          d.dstWritable = false;
          return Flow::Blocked;
        }
        if (errno == EINTR) {
          continue;
        }
        c->savedErrno = errno;
        return Flow::Error;
      }
      d.pending -= static_cast<size_t>(n);
      d.copyOff += static_cast<size_t>(n);
      d.bytes += static_cast<uint64_t>(n);
      moved += static_cast<uint64_t>(n);
      continue;
    }
    if (d.srcEof) {
      releasePipe(d);
      if (!d.shut) {
        ::shutdown(d.dst, SHUT_WR);  // ENOTCONN if the peer is gone: nothing to tell it
        d.shut = true;
      }
      return Flow::Blocked;
    }
    if (!d.srcReadable) {
      releasePipe(d);
      return Flow::Blocked;
    }
    if (budget == 0) {
      return Flow::Budget;
    }
    --budget;
    if (!d.copyMode && d.pipeR < 0 && (!shared_.options.splice || !acquirePipe(d))) {
      d.copyMode = true;  // out of fds or pipe memory: copy through user space instead
    }
    ssize_t n;
    if (d.copyMode) {
      if (!d.copyBuf) {
        d.copyBuf.reset(new (std::nothrow) uint8_t[shared_.options.bufferBytes]);
        if (!d.copyBuf) {
          c->savedErrno = ENOMEM;
          return Flow::Error;
        }
      }
      n = ::recv(d.src, d.copyBuf.get(), shared_.options.bufferBytes, 0);
    } else {
      n = ::splice(d.src, nullptr, d.pipeW, nullptr, pipeSize_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }
    if (n > 0) {
      d.pending = static_cast<size_t>(n);
      d.copyOff = 0;
      continue;
    }
    if (n == 0) {
      d.srcEof = true;
      continue;
    }
    if (errno == EAGAIN) {
      d.srcReadable = false;  // the pipe is empty, so this is the socket's EAGAIN
      releasePipe(d);
      return Flow::Blocked;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EINVAL && !d.copyMode) {
      releasePipe(d);  // this socket cannot be spliced: copy from now on
      d.copyMode = true;
      ++budget;
      continue;
    }
    c->savedErrno = errno;
    return Flow::Error;
  }
}

void Worker::pump(Conn* c) {
  if (!c->preambleDone && !sendPreamble(c)) {
    if (c->closed) {
      return;
    }
  }
  uint64_t in = 0;
  uint64_t out = 0;
  Flow a = c->preambleDone ? pumpDirection(c, c->up, in) : Flow::Blocked;
  Flow b = a == Flow::Error ? Flow::Error : pumpDirection(c, c->down, out);
  if (in + out > 0) {
    c->lastActivityMs = now_;
    Metrics& m = *shared_.metrics;
    m.bytesIn.fetch_add(in, std::memory_order_relaxed);
    m.bytesOut.fetch_add(out, std::memory_order_relaxed);
    if (RouteStats* s = c->route->stats.get()) {
      s->bytesIn.fetch_add(in, std::memory_order_relaxed);
      s->bytesOut.fetch_add(out, std::memory_order_relaxed);
    }
  }
  if (a == Flow::Error || b == Flow::Error) {
    finish(c, closingReset(c, false) ? Outcome::ok() : Outcome::fail(ErrorKind::Relay));
    return;
  }
  if (c->up.shut && c->down.shut) {
    finish(c, Outcome::ok());
    return;
  }
  if (a == Flow::Budget || b == Flow::Budget) {
    addReady(c);
  }
}

// A socket error (typically a reset) ends the connection, but only after relaying what the
// failed socket had already received: a backend that writes its answer and resets still gets
// the answer delivered. The closes that follow are ordinary ones, so the kernel still sends
// what we queued to the other peer (then a FIN, or a RST if it had unread bytes for us).
void Worker::pumpOrFail(Conn* c, uint32_t events) {
  pump(c);
  if (!c->closed && (events & EPOLLERR) != 0) {
    finish(c, closingReset(c, true) ? Outcome::ok() : Outcome::fail(ErrorKind::Relay));
  }
}

// A reset (or a write to a peer that reset) once one side has already ended its stream with
// a FIN is how many peers finish: the last bytes (typically a TLS close_notify) cross the
// other's close. That is the end of the connection, not a relay error.
bool Worker::closingReset(const Conn* c, bool socketError) {
  const bool oneSideEnded = c->up.srcEof || c->down.srcEof;
  return oneSideEnded && (socketError || c->savedErrno == EPIPE || c->savedErrno == ECONNRESET);
}

void Worker::addReady(Conn* c) {
  if (!c->inReady) {
    c->inReady = true;
    ready_.push_back(c);
  }
}

// ------------------------------------------------------------------------------------------
// :80

void Worker::readHttp(Conn* c) {
  while (c->up.srcReadable) {
    size_t have = c->buf.size();
    if (have >= kMaxHttpHead) {
      c->httpStatus = 400;  // no end of head within the limit
      c->phase = Phase::HttpWrite;
      c->response.assign(httpBadRequestResponse());
      writeHttp(c);
      return;
    }
    ssize_t n = ::recv(c->client, scratch_.data(), kMaxHttpHead - have, 0);
    if (n > 0) {
      c->buf.insert(c->buf.end(), scratch_.data(), scratch_.data() + n);
      size_t end = findHttpHeadEnd(
          std::string_view(reinterpret_cast<const char*>(c->buf.data()), c->buf.size()), have);
      if (end > 0) {
        answerHttp(c, end);
        return;
      }
      continue;
    }
    if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      finish(c, have == 0 ? Outcome::empty() : Outcome::fail(ErrorKind::HttpMalformed));
      return;
    }
    if (errno == EAGAIN) {
      c->up.srcReadable = false;
    }
  }
}

void Worker::answerHttp(Conn* c, size_t headEnd) {
  HttpHead head;
  std::string_view text(reinterpret_cast<const char*>(c->buf.data()), headEnd);
  if (!parseHttpHead(text, head)) {
    c->httpStatus = 400;
    c->response.assign(httpBadRequestResponse());
  } else {
    c->sni = head.host;
    std::shared_ptr<const ActiveConfig> config = currentConfig();
    if (config && config->table && config->table->lookup(head.host)) {
      c->httpStatus = 308;
      c->response = httpRedirectResponse(head);
    } else {
      c->httpStatus = 404;
      c->response.assign(httpNotFoundResponse());
    }
  }
  std::vector<uint8_t>().swap(c->buf);
  c->phase = Phase::HttpWrite;
  writeHttp(c);
}

void Worker::writeHttp(Conn* c) {
  while (c->responseSent < c->response.size()) {
    if (!c->down.dstWritable) {
      return;
    }
    ssize_t n = ::send(c->client, c->response.data() + c->responseSent,
                       c->response.size() - c->responseSent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        c->down.dstWritable = false;
        return;
      }
      finish(c, httpOutcome(c));
      return;
    }
    c->responseSent += static_cast<size_t>(n);
    c->down.bytes += static_cast<uint64_t>(n);
  }
  // Half-close and read what the client still sends until it closes: closing a socket with
  // unread bytes would RST it, and the RST can destroy the response before the client reads it.
  ::shutdown(c->client, SHUT_WR);
  c->phase = Phase::HttpLinger;
  schedule(c, now_ + std::min<int64_t>(kHttpLingerMs, shared_.options.helloTimeout.count()));
  lingerHttp(c);
}

void Worker::lingerHttp(Conn* c) {
  while (c->up.srcReadable) {
    ssize_t n = ::recv(c->client, scratch_.data(), scratch_.size(), 0);
    if (n > 0) {
      c->lingered += static_cast<size_t>(n);
      if (c->lingered > kHttpLingerMaxBytes) {
        finish(c, httpOutcome(c));
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      c->up.srcReadable = false;
      return;
    }
    finish(c, httpOutcome(c));
    return;
  }
}

Outcome Worker::httpOutcome(const Conn* c) const {
  return c->httpStatus == 400 ? Outcome::fail(ErrorKind::HttpMalformed) : Outcome::ok();
}

// ------------------------------------------------------------------------------------------
// Timers

void Worker::schedule(Conn* c, int64_t deadlineMs) {
  unschedule(c);
  int64_t tick = (deadlineMs + kTickMs - 1) / kTickMs;
  if (tick <= lastTick_) {
    tick = lastTick_ + 1;
  }
  c->tTick = tick;
  Conn*& head = wheel_[static_cast<size_t>(tick) % kWheelSlots];
  c->tPrev = nullptr;
  c->tNext = head;
  if (head != nullptr) {
    head->tPrev = c;
  }
  head = c;
  ++timerCount_;
}

void Worker::unschedule(Conn* c) {
  if (c->tTick < 0) {
    return;
  }
  if (c->tPrev != nullptr) {
    c->tPrev->tNext = c->tNext;
  } else {
    wheel_[static_cast<size_t>(c->tTick) % kWheelSlots] = c->tNext;
  }
  if (c->tNext != nullptr) {
    c->tNext->tPrev = c->tPrev;
  }
  c->tPrev = nullptr;
  c->tNext = nullptr;
  c->tTick = -1;
  --timerCount_;
}

void Worker::advanceTimers() {
  int64_t nowTick = now_ / kTickMs;
  if (nowTick <= lastTick_) {
    return;
  }
  int64_t steps = std::min<int64_t>(nowTick - lastTick_, static_cast<int64_t>(kWheelSlots));
  for (int64_t s = 1; s <= steps; ++s) {
    Conn* c = wheel_[static_cast<size_t>(lastTick_ + s) % kWheelSlots];
    while (c != nullptr) {
      Conn* next = c->tNext;
      if (c->tTick <= nowTick) {
        expired_.push_back(c);  // entries of later revolutions stay
      }
      c = next;
    }
  }
  lastTick_ = nowTick;
  for (Conn* c : expired_) {
    unschedule(c);
  }
  for (Conn* c : expired_) {
    if (!c->closed) {
      onTimer(c);
    }
  }
  expired_.clear();
}

void Worker::onTimer(Conn* c) {
  switch (c->phase) {
    case Phase::Hello:
    case Phase::HttpRead:
      finish(c, Outcome::fail(ErrorKind::HelloTimeout));
      return;
    case Phase::HttpWrite:
    case Phase::HttpLinger:
      finish(c, httpOutcome(c));
      return;
    case Phase::Connecting:
      attemptFailed(c);  // connect timeout: the next backend
      connectNext(c);
      return;
    case Phase::Relay: {
      int64_t deadline = c->lastActivityMs + shared_.options.idleTimeout.count();
      if (now_ >= deadline) {
        finish(c, Outcome::fail(ErrorKind::IdleTimeout));
      } else {
        schedule(c, deadline);
      }
      return;
    }
  }
}

// ------------------------------------------------------------------------------------------
// Closing

void Worker::finish(Conn* c, Outcome outcome) {
  if (c->closed) {
    return;
  }
  c->closed = true;
  unschedule(c);
  Metrics& m = *shared_.metrics;
  if (outcome.kind == Outcome::Error) {
    m.count(outcome.error);
    bool routeFailure =
        outcome.error == ErrorKind::UpstreamConnect || outcome.error == ErrorKind::Relay;
    if (routeFailure && c->route != nullptr && c->route->stats) {
      c->route->stats->failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (c->upstream >= 0) {
    ::close(c->upstream);
    c->upstream = -1;
  }
  if (c->client >= 0) {
    ::close(c->client);
    c->client = -1;
  }
  releasePipe(c->up);
  releasePipe(c->down);
  if (shared_.options.accessLog) {
    logAccess(c, outcome);
  }
  shared_.open.fetch_sub(1, std::memory_order_relaxed);
  m.connectionsOpen.fetch_sub(1, std::memory_order_relaxed);
  if (c->aPrev != nullptr) {
    c->aPrev->aNext = c->aNext;
  } else {
    all_ = c->aNext;
  }
  if (c->aNext != nullptr) {
    c->aNext->aPrev = c->aPrev;
  }
  c->aPrev = nullptr;
  c->aNext = nullptr;
  c->config.reset();
  graveyard_.push_back(c);
}

size_t Worker::closeAll(Outcome outcome) {
  size_t n = 0;
  while (all_ != nullptr) {
    finish(all_, outcome);
    ++n;
  }
  return n;
}

void Worker::logAccess(const Conn* c, Outcome outcome) {
  char client[64];
  formatEndpoint(c->clientAddr, client, sizeof client);
  std::string_view result = "ok";
  if (outcome.kind == Outcome::Error) {
    result = toString(outcome.error);
  } else if (outcome.kind == Outcome::Empty) {
    result = "empty";
  } else if (outcome.kind == Outcome::Shutdown) {
    result = "shutdown";
  }
  long long ms = static_cast<long long>(now_ - c->startMs);
  char line[kMaxLogLine];
  int n;
  if (c->http) {
    n = std::snprintf(line, sizeof line,
                      "access-http client=%s host=%s status=%d ms=%lld outcome=%.*s\n", client,
                      c->sni.empty() ? "-" : c->sni.c_str(), c->httpStatus, ms,
                      static_cast<int>(result.size()), result.data());
  } else {
    char backend[64] = "-";
    if (c->route != nullptr && c->backend >= 0) {
      formatEndpoint(c->route->spec.backends[static_cast<size_t>(c->backend)], backend,
                     sizeof backend);
    }
    std::string_view kind = c->route != nullptr ? toString(c->route->spec.kind) : "";
    std::string_view name = c->route != nullptr ? std::string_view(c->route->spec.name) : "-";
    n = std::snprintf(line, sizeof line,
                      "access client=%s sni=%s route=\"%.*s%s%.*s\" backend=%s in=%llu out=%llu "
                      "ms=%lld outcome=%.*s\n",
                      client, c->sni.empty() ? "-" : c->sni.c_str(), static_cast<int>(kind.size()),
                      kind.data(), kind.empty() ? "" : " ", static_cast<int>(name.size()),
                      name.data(), backend, static_cast<unsigned long long>(c->up.bytes),
                      static_cast<unsigned long long>(c->down.bytes), ms,
                      static_cast<int>(result.size()), result.data());
  }
  if (n <= 0) {
    return;
  }
  size_t len = std::min(static_cast<size_t>(n), sizeof line - 1);
  line[len - 1] = '\n';  // a truncated line still ends the record
  [[maybe_unused]] ssize_t w = ::write(2, line, len);
}

std::shared_ptr<const ActiveConfig> Worker::currentConfig() {
  uint64_t version = shared_.configVersion.load(std::memory_order_acquire);
  if (version != configVersion_) {
    config_ = shared_.config.load(std::memory_order_acquire);
    configVersion_ = version;
  }
  return config_;
}

uint32_t Worker::random() {
  // xorshift64*: per worker, no locks; balancing needs spread, not secrecy.
  rng_ ^= rng_ >> 12;
  rng_ ^= rng_ << 25;
  rng_ ^= rng_ >> 27;
  return static_cast<uint32_t>((rng_ * 0x2545F4914F6CDD1Dull) >> 32);
}

}  // namespace engine_detail

// ------------------------------------------------------------------------------------------
// Engine

namespace {

Result<int> openListener(const Endpoint& address, uint16_t port) {
  Endpoint at = address;
  at.port = port;
  sockaddr_storage ss{};
  socklen_t len = toSockaddr(at, ss);
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return terminal("socket for " + at.str() + ": " + errnoText(errno));
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("SO_REUSEPORT on " + at.str() + ": " + errnoText(err));
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("bind " + at.str() + ": " + errnoText(err));
  }
  if (::listen(fd, SOMAXCONN) != 0) {
    int err = errno;
    ::close(fd);
    return terminal("listen on " + at.str() + ": " + errnoText(err));
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return 0;
  }
  return fromSockaddr(ss).port;
}

// One listening socket per worker on the same address: the first binds (port 0 picks one),
// the rest join its port through SO_REUSEPORT, so the kernel spreads connections over them.
Result<std::vector<int>> openListeners(const Endpoint& address, int count, uint16_t& port) {
  std::vector<int> fds;
  port = address.port;
  for (int i = 0; i < count; ++i) {
    Result<int> fd = openListener(address, port);
    if (!fd) {
      for (int f : fds) {
        ::close(f);
      }
      return fd.error();
    }
    fds.push_back(*fd);
    if (i == 0) {
      port = boundPort(*fd);
    }
  }
  return fds;
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::start(const EngineOptions& options, Metrics& metrics,
                                              std::shared_ptr<const ActiveConfig> config) {
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
  int workers = options.workers;
  if (workers == 0) {
    long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    workers = cpus > 0 ? static_cast<int>(std::min<long>(cpus, 1024)) : 1;
  }

  std::unique_ptr<Engine> engine(new Engine());
  engine->shared_ = std::make_unique<Shared>();
  Shared& shared = *engine->shared_;
  shared.options = options;
  shared.metrics = &metrics;
  shared.config.store(std::move(config), std::memory_order_release);

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

  for (int i = 0; i < workers; ++i) {
    shared.workers.push_back(std::make_unique<engine_detail::Worker>(shared, i));
  }
  std::string setupError;
  for (int i = 0; i < workers; ++i) {
    // The worker owns its listeners from here, even when set-up fails.
    std::string err = shared.workers[static_cast<size_t>(i)]->setup(
        (*https)[static_cast<size_t>(i)], http[static_cast<size_t>(i)]);
    if (!err.empty() && setupError.empty()) {
      setupError = err;
    }
  }
  if (!setupError.empty()) {
    return terminal(setupError);
  }

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
      return terminal(err);  // ~Engine stops and joins the others
    }
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
  return shared_->open.load(std::memory_order_relaxed);
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
