// The worker's accepting: batches of accept4 under the process, per-address and pending-hello
// limits; refusing over a limit; shedding and pausing when out of file descriptors.
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>
#include <new>

#include "proxy/engine/access_log.h"
#include "proxy/engine/listeners.h"
#include "proxy/engine/shared.h"
#include "proxy/engine/worker.h"

namespace edgeplane::proxy::engine_detail {

namespace {

constexpr int kAcceptBatch = 64;
constexpr int64_t kAcceptPauseMs = 100;  // listeners unwatched after an EMFILE we cannot shed

}  // namespace

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
      refuseOverLimit(fd, ss, http, ErrorKind::ConnectionLimit);
      continue;
    }
    Endpoint client = fromSockaddr(ss);
    SourceKey source = SourceKey::of(client.address);
    if (shared_.sources) {
      SourceVerdict verdict = shared_.sources->admit(source, !http);
      if (verdict != SourceVerdict::Admitted) {
        shared_.open.fetch_sub(1, std::memory_order_relaxed);
        refuseOverLimit(fd, ss, http,
                        verdict == SourceVerdict::TooManyHellos ? ErrorKind::IpHelloLimit
                                                                : ErrorKind::IpConnectionLimit);
        continue;
      }
    }
    auto* c = new (std::nothrow) Connection;
    if (c == nullptr) {
      shared_.open.fetch_sub(1, std::memory_order_relaxed);
      if (shared_.sources) {
        shared_.sources->release(source, !http);
      }
      m.count(ErrorKind::ConnectionLimit);
      ::close(fd);
      continue;
    }
    c->sourceCounted_ = shared_.sources != nullptr;
    c->helloCounted_ = c->sourceCounted_ && !http;
    c->source_ = source;
    m.connectionsOpen.fetch_add(1, std::memory_order_relaxed);
    setNoDelay(fd);
    c->ctx_ = this;
    c->worker_ = this;
    c->http_ = http;
    c->fd_ = fd;
    c->client_ = client;
    c->startMs_ = now_;
    c->aNext_ = all_;
    if (all_ != nullptr) {
      all_->aPrev_ = c;
    }
    all_ = c;
    if (!watch(fd, c, kClientTag, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)) {
      finish(c, Outcome::fail(ErrorKind::ConnectionLimit));
      continue;
    }
    if (http) {
      dispatch(c, Entry::PlainHttp);
    } else {
      c->parser_ = std::make_unique<ClientHelloParser>();
      schedule(c, now_ + o.helloTimeout.count());
    }
  }
}

void Worker::refuseOverLimit(int fd, const sockaddr_storage& ss, bool http, ErrorKind kind) {
  shared_.metrics->count(kind);
  if (shared_.options.accessLog) {
    char client[64];
    formatEndpoint(fromSockaddr(ss), client, sizeof client);
    char line[160];
    std::string_view outcome = toString(kind);
    int n =
        std::snprintf(line, sizeof line, "access%s client=%s outcome=%.*s\n", http ? "-http" : "",
                      client, static_cast<int>(outcome.size()), outcome.data());
    writeLogLine(*this, line, sizeof line, n);
  }
  setLingerZero(fd);
  ::close(fd);
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

}  // namespace edgeplane::proxy::engine_detail
