// The worker loop: epoll, the ClientHello and SNI routing, dispatch, closing (accepting:
// worker_accept.cpp).
#include "proxy/engine/worker.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <new>

#include "proxy/clienthello.h"
#include "proxy/engine/access_log.h"
#include "proxy/engine/listeners.h"
#include "proxy/engine/shared.h"
#include "proxy/netns_socket.h"

namespace edgeplane::proxy {

namespace {

constexpr int kMaxEvents = 256;
constexpr size_t kMinScratchBytes = 16384;
constexpr int64_t kNetnsSweepMs = 1000;
constexpr uint64_t kTagMask = 7;

int64_t monotonicMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Connection: the engine's own target until a handler takes over.

void Connection::finish(Outcome outcome) {
  worker_->finish(this, outcome);
}

void Connection::onIo(uint32_t tag, uint32_t events) {
  if (handler_) {
    handler_->onIo(tag, events);
    return;
  }
  readable_ |= (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  writable_ |= (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  worker_->readHello(this);
}

void Connection::onTimer() {
  finish(Outcome::fail(ErrorKind::HelloTimeout));
}

void Connection::onReady() {}

namespace engine_detail {

Worker::~Worker() {
  closeAll(Outcome::shutdown());
  for (auto& p : protocols_.entries) {
    if (p) {
      p->shutdown();
    }
  }
  freeRetired();
  for (Connection* c : deadConnections_) {
    delete c;
  }
  deadConnections_.clear();
  graveyard_.clear();
  closeListeners();
  for (auto [r, w] : pipePool_) {
    ::close(r);
    ::close(w);
  }
  for (int fd : {reserveFd_, wake_, epoll_}) {
    if (fd >= 0) {
      ::close(fd);
    }
  }
}

const EngineOptions& Worker::options() const {
  return shared_.options;
}

Metrics& Worker::metrics() {
  return *shared_.metrics;
}

std::string Worker::setup(int httpsListener, int httpListener) {
  httpsListener_ = httpsListener;
  httpListener_ = httpListener;
  epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_ < 0) {
    const int err = errno;
    return "epoll_create1: " + errnoText(err);
  }
  wake_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_ < 0) {
    const int err = errno;
    return "eventfd: " + errnoText(err);
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWake;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev) != 0) {
    const int err = errno;
    return "epoll_ctl: " + errnoText(err);
  }
  ev.data.u64 = kHttpsListener;
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpsListener_, &ev) != 0) {
    const int err = errno;
    return "epoll_ctl: " + errnoText(err);
  }
  if (httpListener_ >= 0) {
    ev.data.u64 = kHttpListener;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, httpListener_, &ev) != 0) {
      const int err = errno;
      return "epoll_ctl: " + errnoText(err);
    }
  }
  reserveFd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  scratch_.resize(std::max(shared_.options.bufferBytes, kMinScratchBytes));
  rng_ = (static_cast<uint64_t>(monotonicMs()) << 8) ^ (0x9E3779B97F4A7C15ull * (index_ + 1));
  now_ = monotonicMs();
  timers_.start(now_);
  protocols_ = defaultProtocols(*this);
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
    } else if (timers_.size() > 0 || acceptResumeMs_ >= 0) {
      timeout = static_cast<int>(TimerWheel::kTickMs);
    } else if (!netns_->empty()) {
      timeout = static_cast<int>(kNetnsSweepMs);  // so a deleted namespace is let go of
    }
    int n = ::epoll_wait(epoll_, events.data(), kMaxEvents, timeout);
    now_ = monotonicMs();
    for (int i = 0; i < n; ++i) {
      onEvent(events[i].data.u64, events[i].events);
    }
    runReady();
    timers_.advance(now_, expired_);
    for (EventTarget* t : expired_) {
      if (!t->retired_) {
        t->onTimer();
      }
    }
    expired_.clear();
    if (acceptResumeMs_ >= 0 && now_ >= acceptResumeMs_) {
      resumeAccepting();
    }
    if (now_ - lastSweepMs_ >= kNetnsSweepMs) {
      lastSweepMs_ = now_;
      sweep();
    }
    freeRetired();
    if (!eventLog_.empty()) {
      flushEventLog();
    }
    handleCommands();
  }
  flushEventLog();
}

// Targets with work left over from their budget, after everyone else had a turn.
void Worker::runReady() {
  if (ready_.empty()) {
    return;
  }
  readyNow_.swap(ready_);
  for (EventTarget* t : readyNow_) {
    t->inReady_ = false;
    if (!t->retired_) {
      t->onReady();
    }
  }
  readyNow_.clear();
}

// A finished target still on the ready list is freed once that list let go of it.
// Lets go of stale per-worker state, about once a second. Not checked by UBSan's vptr check:
// that check needs a free fd (it probes memory through a pipe), and this runs also while the
// process is out of fds, where it would report every virtual call as an invalid vptr.
__attribute__((no_sanitize("vptr"))) void Worker::sweep() {
  netns_->sweep();
  for (auto& p : protocols_.entries) {
    if (p) {
      p->sweep();
    }
  }
}

void Worker::freeRetired() {
  size_t keep = 0;
  for (Connection* c : deadConnections_) {
    if (c->inReady_ || (c->handler_ && c->handler_->inReady_)) {
      deadConnections_[keep++] = c;
    } else {
      delete c;
    }
  }
  deadConnections_.resize(keep);
  keep = 0;
  for (auto& t : graveyard_) {
    if (t->inReady_) {
      graveyard_[keep++] = std::move(t);
    }
  }
  graveyard_.resize(keep);
}

// Two atomic loads per loop iteration; the mutex only when a command is pending.
void Worker::handleCommands() {
  bool stopAccept = stopAcceptRequested.load(std::memory_order_acquire);
  uint64_t closeReq = closeAllRequested.load(std::memory_order_acquire);
  if (stopAccept == stopAcceptHandled_ && closeReq == closeAllHandled_) {
    return;
  }
  bool drainNow = stopAccept && !stopAcceptHandled_;
  if (stopAccept) {
    closeListeners();
  }
  stopAcceptHandled_ = stopAccept;
  if (drainNow) {
    // Handlers may finish (idle keep-alive connections do): walk a snapshot of the list.
    std::vector<Connection*> open;
    for (Connection* c = all_; c != nullptr; c = c->aNext_) {
      open.push_back(c);
    }
    for (Connection* c : open) {
      if (!c->retired_ && c->handler_) {
        c->handler_->onDrain();
      }
    }
  }
  size_t cut = 0;
  if (closeReq != closeAllHandled_) {
    cut = closeAll(Outcome::shutdown());
  }
  closeAllHandled_ = closeReq;
  std::lock_guard lock(shared_.mu);
  stopAcceptDone = stopAccept;
  closeAllDone = closeReq;
  closedByCommand += cut;
  shared_.cv.notify_all();
}

void Worker::closeListeners() {
  for (int* fd : {&httpsListener_, &httpListener_}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

void Worker::onEvent(uint64_t data, uint32_t events) {
  auto tag = static_cast<uint32_t>(data & kTagMask);
  // The tag packing is what lets one epoll_data word name both the target and the socket.
  auto* t = reinterpret_cast<EventTarget*>(data & ~kTagMask);  // NOLINT(performance-no-int-to-ptr)
  if (t != nullptr) {
    if (!t->retired_) {
      t->onIo(tag, events);  // else closed earlier in this batch
    }
    return;
  }
  if (tag == kWake) {
    uint64_t v = 0;
    [[maybe_unused]] ssize_t n = ::read(wake_, &v, sizeof v);
  } else if (tag == kHttpsListener && httpsListener_ >= 0) {
    acceptBatch(httpsListener_, false);
  } else if (tag == kHttpListener && httpListener_ >= 0) {
    acceptBatch(httpListener_, true);
  }
}

// ------------------------------------------------------------------------------------------
// ClientHello and routing

void Worker::readHello(Connection* c) {
  const size_t cap = ClientHelloParser::kDefaultMaxBytes;
  while (c->readable_) {
    size_t have = c->hello_.size();
    // The parser refuses more than `cap` bytes; read at most one byte past it so an
    // oversized hello is seen as such (anything after a complete hello is kept for replay).
    size_t want = std::min(scratch_.size(), cap + 1 - std::min(have, cap));
    ssize_t n = ::recv(c->fd_, scratch_.data(), want, 0);
    if (n > 0) {
      c->hello_.insert(c->hello_.end(), scratch_.data(), scratch_.data() + n);
      auto r = c->parser_->feed(
          std::span<const uint8_t>(c->hello_.data() + have, static_cast<size_t>(n)));
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
      c->readable_ = false;
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

void Worker::routeHello(Connection* c) {
  if (c->helloCounted_) {
    c->helloCounted_ = false;
    shared_.sources->helloDone(c->source_);
  }
  const ClientHello& hello = c->parser_->hello();
  if (hello.sni) {
    c->sni_ = *hello.sni;
  }
  const AcmeChallengeBoard* board = shared_.options.acmeChallenges.get();
  const bool acmeValidation = board != nullptr && board->answersTlsAlpn(hello);
  c->parser_.reset();  // its reassembly buffer is not needed any more
  if (acmeValidation) {
    unschedule(c);
    dispatch(c, Entry::AcmeTlsAlpn);
    return;
  }
  std::shared_ptr<const ActiveConfig> config = currentConfig();
  if (c->sni_.empty() || !config || !config->table) {
    finish(c, Outcome::fail(ErrorKind::NoRoute));
    return;
  }
  std::optional<RouteId> id = config->table->lookup(c->sni_);
  if (!id || *id >= config->routes.size() || !config->routes[*id]) {
    finish(c, Outcome::fail(ErrorKind::NoRoute));
    return;
  }
  c->route_ = config->routes[*id].get();
  c->config_ = std::move(config);
  if (c->route_->stats) {
    c->route_->stats->connections.fetch_add(1, std::memory_order_relaxed);
  }
  unschedule(c);
  dispatch(c, entryFor(c->route_->spec.kind));
}

// The one place a connection gets its handler; a protocol the build does not serve (yet)
// closes the connection as RouteUnsupported.
void Worker::dispatch(Connection* c, Entry entry) {
  Protocol* protocol = protocols_.get(entry);
  std::unique_ptr<Handler> handler = protocol != nullptr ? protocol->create(*c) : nullptr;
  if (!handler) {
    finish(c, Outcome::fail(ErrorKind::RouteUnsupported));
    return;
  }
  c->handler_ = std::move(handler);
  c->handler_->start();
}

// ------------------------------------------------------------------------------------------
// Closing

void Worker::finish(Connection* c, Outcome outcome) {
  if (c->retired_) {
    return;
  }
  c->retired_ = true;
  unschedule(c);
  Metrics& m = *shared_.metrics;
  if (outcome.kind == Outcome::Error) {
    m.count(outcome.error);
    bool routeFailure =
        outcome.error == ErrorKind::UpstreamConnect || outcome.error == ErrorKind::Relay;
    if (routeFailure && c->route_ != nullptr && c->route_->stats) {
      c->route_->stats->failures.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (c->handler_) {
    c->handler_->retired_ = true;
    unschedule(c->handler_.get());
    c->handler_->onClose(outcome);
  } else if (!c->http_) {
    logConnection(*c, nullptr, 0, 0, outcome);
  }
  if (c->fd_ >= 0) {
    ::close(c->fd_);
    c->fd_ = -1;
  }
  if (c->sourceCounted_) {
    shared_.sources->release(c->source_, c->helloCounted_);
    c->sourceCounted_ = false;
    c->helloCounted_ = false;
  }
  m.connectionsOpen.fetch_sub(1, std::memory_order_relaxed);
  // Last: whoever sees openConnections() drop sees the source's slot and the gauge freed too.
  shared_.open.fetch_sub(1, std::memory_order_release);
  if (c->aPrev_ != nullptr) {
    c->aPrev_->aNext_ = c->aNext_;
  } else {
    all_ = c->aNext_;
  }
  if (c->aNext_ != nullptr) {
    c->aNext_->aPrev_ = c->aPrev_;
  }
  c->aPrev_ = nullptr;
  c->aNext_ = nullptr;
  deadConnections_.push_back(c);
}

size_t Worker::closeAll(Outcome outcome) {
  size_t n = 0;
  while (all_ != nullptr) {
    finish(all_, outcome);
    ++n;
  }
  return n;
}

}  // namespace engine_detail
}  // namespace edgeplane::proxy
