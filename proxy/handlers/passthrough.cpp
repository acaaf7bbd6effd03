// The passthrough handler: backend connect with failover, PROXY preamble, splice relay.
#include "proxy/handlers/passthrough.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <new>
#include <optional>
#include <string>

#include "proxy/engine/access_log.h"
#include "proxy/engine/listeners.h"
#include "proxy/proxy_protocol.h"

namespace edgeplane::proxy {

namespace {

constexpr int kPumpBudget = 8;  // reads per direction per turn
constexpr uint32_t kUpstreamTag = 1;
constexpr uint32_t kSocketEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

enum class Flow : uint8_t { Blocked, Budget, Error };

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
  size_t pipeSize = 0;
  size_t pending = 0;
  size_t copyOff = 0;
  std::unique_ptr<uint8_t[]> copyBuf;
  uint64_t bytes = 0;
};

class PassthroughHandler final : public Handler {
 public:
  explicit PassthroughHandler(Connection& conn) : Handler(conn) {}

  // Interface
  void start() override;
  void onIo(uint32_t tag, uint32_t events) override;
  void onTimer() override;
  void onReady() override;
  void onClose(Outcome outcome) override;

 private:
  enum class Phase : uint8_t { Connecting, Relay };

  void connectNext();
  void onConnectEvent(uint32_t events);
  void attemptFailed();
  void onConnected();
  void pump();
  void pumpOrFail(uint32_t events);
  bool closingReset(bool socketError) const;
  bool sendPreamble();
  Flow pumpDirection(Direction& d, uint64_t& moved);
  std::optional<Flow> flushPending(Direction& d, uint64_t& moved);
  std::optional<Flow> fillPending(Direction& d, int& budget);
  void releasePipe(Direction& d);

  Phase phase_ = Phase::Connecting;
  int upstream_ = -1;
  int savedErrno_ = 0;
  int64_t lastActivityMs_ = 0;
  uint32_t firstBackend_ = 0;
  uint32_t tried_ = 0;
  int backend_ = -1;  // index of the backend in use or last tried
  bool preambleDone_ = false;
  std::string proxyHeader_;
  size_t preambleSent_ = 0;  // of proxyHeader_ + the hello
  Direction up_;             // client -> backend
  Direction down_;           // backend -> client
};

class PassthroughProtocol final : public Protocol {
 public:
  std::unique_ptr<Handler> create(Connection& conn) override {
    return std::make_unique<PassthroughHandler>(conn);
  }
};

void PassthroughHandler::start() {
  up_.src = conn().fd();
  down_.dst = conn().fd();
  up_.srcReadable = conn().readable();
  down_.dstWritable = conn().writable();
  const SnapshotRoute& spec = conn().route()->spec;
  if (spec.backends.empty()) {
    conn().finish(Outcome::fail(ErrorKind::UpstreamConnect));
    return;
  }
  auto n = static_cast<uint32_t>(spec.backends.size());
  if (spec.balance == Balance::Random) {
    firstBackend_ = ctx().random() % n;
  } else {
    firstBackend_ = conn().route()->cursor.fetch_add(1, std::memory_order_relaxed) % n;
  }
  tried_ = 0;
  phase_ = Phase::Connecting;
  connectNext();
}

void PassthroughHandler::onIo(uint32_t tag, uint32_t events) {
  bool readable = (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
  bool writable = (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0;
  if (tag == kClientTag) {
    up_.srcReadable |= readable;
    down_.dstWritable |= writable;
    if (phase_ == Phase::Connecting) {
      if ((events & EPOLLERR) != 0) {
        conn().finish(Outcome::fail(ErrorKind::Relay));  // the client reset while we connect
      }
      return;
    }
    pumpOrFail(events);
    return;
  }
  down_.srcReadable |= readable;
  up_.dstWritable |= writable;
  if (phase_ == Phase::Connecting) {
    onConnectEvent(events);
  } else {
    pumpOrFail(events);
  }
}

void PassthroughHandler::onTimer() {
  if (phase_ == Phase::Connecting) {
    attemptFailed();  // connect timeout: the next backend
    connectNext();
    return;
  }
  int64_t deadline = lastActivityMs_ + ctx().options().idleTimeout.count();
  if (ctx().now() >= deadline) {
    conn().finish(Outcome::fail(ErrorKind::IdleTimeout));
  } else {
    ctx().schedule(this, deadline);
  }
}

void PassthroughHandler::onReady() {
  if (phase_ == Phase::Relay) {
    pump();
  }
}

void PassthroughHandler::onClose(Outcome outcome) {
  if (upstream_ >= 0) {
    ::close(upstream_);
    upstream_ = -1;
  }
  releasePipe(up_);
  releasePipe(down_);
  char backend[64] = "-";
  if (backend_ >= 0) {
    formatEndpoint(conn().route()->spec.backends[static_cast<size_t>(backend_)], backend,
                   sizeof backend);
  }
  logConnection(conn(), backend, up_.bytes, down_.bytes, outcome);
}

// Tries the backends after the ones already tried, each once, until one is connecting.
void PassthroughHandler::connectNext() {
  const SnapshotRoute& spec = conn().route()->spec;
  Metrics& m = ctx().metrics();
  auto n = static_cast<uint32_t>(spec.backends.size());
  while (tried_ < n) {
    backend_ = static_cast<int>((firstBackend_ + tried_) % n);
    ++tried_;
    const Endpoint& be = spec.backends[static_cast<size_t>(backend_)];
    int family = be.address.family == IpAddress::Family::V4 ? AF_INET : AF_INET6;
    int fd = ctx().upstreamSocket(spec.netns, family);
    if (fd < 0) {
      m.backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    setNoDelay(fd);
    sockaddr_storage ss{};
    socklen_t len = toSockaddr(be, ss);
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
    if ((rc != 0 && errno != EINPROGRESS) || !ctx().watch(fd, this, kUpstreamTag, kSocketEvents)) {
      ::close(fd);
      m.backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    upstream_ = fd;
    up_.dst = fd;
    down_.src = fd;
    up_.dstWritable = false;
    down_.srcReadable = false;
    if (rc == 0) {
      up_.dstWritable = true;
      onConnected();
    } else {
      ctx().schedule(this, ctx().now() + ctx().options().connectTimeout.count());
    }
    return;
  }
  conn().finish(Outcome::fail(ErrorKind::UpstreamConnect));
}

void PassthroughHandler::onConnectEvent(uint32_t events) {
  if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
    return;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(upstream_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) {
    onConnected();
    return;
  }
  attemptFailed();
  connectNext();
}

void PassthroughHandler::attemptFailed() {
  ctx().metrics().backendAttemptFailures.fetch_add(1, std::memory_order_relaxed);
  ::close(upstream_);  // also leaves the epoll set
  upstream_ = -1;
  up_.dst = -1;
  down_.src = -1;
  up_.dstWritable = false;
  down_.srcReadable = false;
}

void PassthroughHandler::onConnected() {
  phase_ = Phase::Relay;
  lastActivityMs_ = ctx().now();
  ctx().schedule(this, lastActivityMs_ + ctx().options().idleTimeout.count());
  ProxyProtocol pp = conn().route()->spec.proxy_protocol;
  if (pp != ProxyProtocol::None) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    Endpoint local;
    if (::getsockname(conn().fd(), reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
      local = fromSockaddr(ss);
    }
    if (pp == ProxyProtocol::V1) {
      proxyHeader_ = encodeV1(conn().client(), local);
    } else {
      // The SNI as PP2_TYPE_AUTHORITY: a backend behind several names can tell which one.
      std::array<ProxyTlvView, 1> tlvs{ProxyTlvView{kPp2TypeAuthority, conn().serverName()}};
      std::optional<std::string> v2 = encodeV2(conn().client(), local, tlvs);
      proxyHeader_ = v2 ? std::move(*v2) : encodeV2Local();
    }
  }
  pump();
}

// The PROXY header then the buffered hello (and any early bytes), before any splicing.
bool PassthroughHandler::sendPreamble() {
  std::vector<uint8_t>& hello = conn().hello();
  size_t headerLen = proxyHeader_.size();
  size_t total = headerLen + hello.size();
  while (preambleSent_ < total) {
    if (!up_.dstWritable) {
      return false;
    }
    iovec iov[2];
    int count = 0;
    if (preambleSent_ < headerLen) {
      iov[count++] = {proxyHeader_.data() + preambleSent_, headerLen - preambleSent_};
    }
    size_t bufFrom = preambleSent_ > headerLen ? preambleSent_ - headerLen : 0;
    if (bufFrom < hello.size()) {
      iov[count++] = {hello.data() + bufFrom, hello.size() - bufFrom};
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<size_t>(count);
    ssize_t n = ::sendmsg(upstream_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN) {
        up_.dstWritable = false;
        return false;
      }
      savedErrno_ = errno;
      conn().finish(Outcome::fail(ErrorKind::Relay));
      return false;
    }
    size_t before = preambleSent_;
    preambleSent_ += static_cast<size_t>(n);
    // Only the client's own bytes count as traffic, not our PROXY header.
    size_t helloBytes = std::min(preambleSent_, total) - std::max(before, headerLen);
    if (preambleSent_ > headerLen) {
      up_.bytes += helloBytes;
      ctx().metrics().bytesIn.fetch_add(helloBytes, std::memory_order_relaxed);
      if (RouteStats* s = conn().route()->stats.get()) {
        s->bytesIn.fetch_add(helloBytes, std::memory_order_relaxed);
      }
    }
  }
  preambleDone_ = true;
  std::vector<uint8_t>().swap(hello);  // an idle connection keeps no 16 KiB buffer
  std::string().swap(proxyHeader_);
  return true;
}

// An empty pipe goes back to the pool; one still holding bytes is closed, never reused.
void PassthroughHandler::releasePipe(Direction& d) {
  if (d.pipeR < 0) {
    return;
  }
  ctx().releasePipe(d.pipeR, d.pipeW, d.pending != 0);
  d.pipeR = -1;
  d.pipeW = -1;
}

// Writes what is pending in `d` to its destination. nullopt: all of it went.
std::optional<Flow> PassthroughHandler::flushPending(Direction& d, uint64_t& moved) {
  while (d.pending > 0) {
    if (!d.dstWritable) {
      return Flow::Blocked;
    }
    ssize_t n;
    if (d.copyMode) {
      n = ::send(d.dst, d.copyBuf.get() + d.copyOff, d.pending, MSG_NOSIGNAL);
    } else {
      n = ::splice(d.pipeR, nullptr, d.dst, nullptr, d.pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    }
    if (n < 0) {
      if (errno == EAGAIN) {
        d.dstWritable = false;
        return Flow::Blocked;
      }
      if (errno == EINTR) {
        continue;
      }
      savedErrno_ = errno;
      return Flow::Error;
    }
    d.pending -= static_cast<size_t>(n);
    d.copyOff += static_cast<size_t>(n);
    d.bytes += static_cast<uint64_t>(n);
    moved += static_cast<uint64_t>(n);
  }
  return std::nullopt;
}

// One read from `d`'s source, into its pipe or, without one, its copy buffer. nullopt: go
// round again (bytes now pending, the end of the stream, EINTR, or a switch to copying, which
// gives the read back to `budget`).
std::optional<Flow> PassthroughHandler::fillPending(Direction& d, int& budget) {
  const EngineOptions& o = ctx().options();
  if (!d.copyMode && d.pipeR < 0 &&
      (!o.splice || !ctx().acquirePipe(d.pipeR, d.pipeW, d.pipeSize))) {
    d.copyMode = true;  // out of fds or pipe memory: copy through user space instead
  }
  ssize_t n;
  if (d.copyMode) {
    if (!d.copyBuf) {
      d.copyBuf.reset(new (std::nothrow) uint8_t[o.bufferBytes]);
      if (!d.copyBuf) {
        savedErrno_ = ENOMEM;
        return Flow::Error;
      }
    }
    n = ::recv(d.src, d.copyBuf.get(), o.bufferBytes, 0);
  } else {
    n = ::splice(d.src, nullptr, d.pipeW, nullptr, d.pipeSize, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  }
  if (n > 0) {
    d.pending = static_cast<size_t>(n);
    d.copyOff = 0;
    return std::nullopt;
  }
  if (n == 0) {
    d.srcEof = true;
    return std::nullopt;
  }
  if (errno == EAGAIN) {
    d.srcReadable = false;  // the pipe is empty, so this is the socket's EAGAIN
    releasePipe(d);
    return Flow::Blocked;
  }
  if (errno == EINTR) {
    return std::nullopt;
  }
  if (errno == EINVAL && !d.copyMode) {
    releasePipe(d);  // this socket cannot be spliced: copy from now on
    d.copyMode = true;
    ++budget;
    return std::nullopt;
  }
  savedErrno_ = errno;
  return Flow::Error;
}

Flow PassthroughHandler::pumpDirection(Direction& d, uint64_t& moved) {
  int budget = kPumpBudget;
  while (true) {
    if (auto stop = flushPending(d, moved)) {
      return *stop;
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
    if (auto stop = fillPending(d, budget)) {
      return *stop;
    }
  }
}

void PassthroughHandler::pump() {
  if (!preambleDone_ && !sendPreamble() && conn().finished()) {
    return;
  }
  uint64_t in = 0;
  uint64_t out = 0;
  Flow a = preambleDone_ ? pumpDirection(up_, in) : Flow::Blocked;
  Flow b = a == Flow::Error ? Flow::Error : pumpDirection(down_, out);
  if (in + out > 0) {
    lastActivityMs_ = ctx().now();
    Metrics& m = ctx().metrics();
    m.bytesIn.fetch_add(in, std::memory_order_relaxed);
    m.bytesOut.fetch_add(out, std::memory_order_relaxed);
    if (RouteStats* s = conn().route()->stats.get()) {
      s->bytesIn.fetch_add(in, std::memory_order_relaxed);
      s->bytesOut.fetch_add(out, std::memory_order_relaxed);
    }
  }
  if (a == Flow::Error || b == Flow::Error) {
    conn().finish(closingReset(false) ? Outcome::ok() : Outcome::fail(ErrorKind::Relay));
    return;
  }
  if (up_.shut && down_.shut) {
    conn().finish(Outcome::ok());
    return;
  }
  if (a == Flow::Budget || b == Flow::Budget) {
    ctx().markReady(this);
  }
}

// A socket error (typically a reset) ends the connection, but only after relaying what the
// failed socket had already received: a backend that writes its answer and resets still gets
// the answer delivered. The closes that follow are ordinary ones, so the kernel still sends
// what we queued to the other peer (then a FIN, or a RST if it had unread bytes for us).
void PassthroughHandler::pumpOrFail(uint32_t events) {
  pump();
  if (!conn().finished() && (events & EPOLLERR) != 0) {
    conn().finish(closingReset(true) ? Outcome::ok() : Outcome::fail(ErrorKind::Relay));
  }
}

// A reset (or a write to a peer that reset) once one side has already ended its stream with
// a FIN is how many peers finish: the last bytes (typically a TLS close_notify) cross the
// other's close. That is the end of the connection, not a relay error.
bool PassthroughHandler::closingReset(bool socketError) const {
  const bool oneSideEnded = up_.srcEof || down_.srcEof;
  return oneSideEnded && (socketError || savedErrno_ == EPIPE || savedErrno_ == ECONNRESET);
}

}  // namespace

std::unique_ptr<Protocol> makePassthroughProtocol(Context&) {
  return std::make_unique<PassthroughProtocol>();
}

}  // namespace edgeplane::proxy
