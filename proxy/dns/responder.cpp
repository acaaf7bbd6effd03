// The DNS-01 responder's sockets and thread (see responder.h); the wire format is wire.cpp's.
#include "proxy/dns/responder.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <list>
#include <vector>

#include "proxy/dns/wire.h"
#include "proxy/engine/listeners.h"
#include "proxy/gateway/rate_limiter.h"
#include "proxy/source_key.h"

namespace edgeplane::proxy::dns {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kUdpBurst = 64;              // datagrams per wake-up before TCP gets a turn
constexpr size_t kMaxPendingOutput = 131072;  // a TCP client that does not read is closed
constexpr size_t kReadChunk = 16384;
// Out of file descriptors: the listener is left alone this long (its backlog would wake poll at
// once, again and again); a failing poll is retried after it.
constexpr int kBackoffMs = 100;
// A new connection is not closed to make room before this long, unless it has had its answer.
constexpr auto kFirstQueryGrace = std::chrono::seconds(2);

Result<int> bindUdp(const Endpoint& at) {
  sockaddr_storage ss{};
  const socklen_t len = toSockaddr(at, ss);
  const int fd = ::socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    return terminal("--dns: socket for udp " + at.str() + ": " + errnoText(err));
  }
  // An IPv6 wildcard takes IPv4 too (as the TCP listener does, openListeners): the system's
  // default, not IPV6_V6ONLY.
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    const int err = errno;
    ::close(fd);
    return terminal("--dns: bind udp " + at.str() + ": " + errnoText(err));
  }
  return fd;
}

struct TcpConn {
  int fd = -1;
  SourceKey source;
  std::vector<uint8_t> in;
  std::vector<uint8_t> out;
  Clock::time_point lastActive;
  Clock::time_point acceptedAt;
  bool answered = false;  // a query of it has been answered
};

// The loop's state and its steps; all on the responder's thread.
class Loop {
 public:
  Loop(const ResponderOptions& o, ResponderStats& stats, int udpFd, int tcpFd, int wakeFd)
      : o_(o), stats_(stats), udpFd_(udpFd), tcpFd_(tcpFd), wakeFd_(wakeFd) {
    lookup_ = [this](const std::string& name) { return o_.board->lookupDns01(name); };
  }
  ~Loop() {
    for (TcpConn& c : conns_) {
      ::close(c.fd);
    }
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wakeFd_, POLLIN, 0});
      fds.push_back({udpFd_, POLLIN, 0});
      fds.push_back(
          {tcpFd_, static_cast<short>(Clock::now() >= acceptPausedUntil_ ? POLLIN : 0), 0});
      for (const TcpConn& c : conns_) {
        const bool reading = c.out.size() < kMaxPendingOutput / 2;
        fds.push_back(
            {c.fd, static_cast<short>((reading ? POLLIN : 0) | (c.out.empty() ? 0 : POLLOUT)), 0});
      }
      const int n = ::poll(fds.data(), fds.size(), pollTimeoutMs());
      if (n < 0 && errno != EINTR) {
        ::poll(nullptr, 0, kBackoffMs);  // ENOMEM: a pause, not the end of the responder
        continue;
      }
      if (n > 0 && fds[0].revents != 0) {
        return;  // stop()
      }
      if (n > 0 && fds[1].revents != 0) {
        serveUdp();
      }
      // The connections first, then the new ones: a connection's first query is read before a
      // later arrival could take its place.
      serveTcp(fds);
      if (n > 0 && fds[2].revents != 0) {
        acceptTcp();
      }
    }
  }

 private:
  int pollTimeoutMs() const {
    if (Clock::now() < acceptPausedUntil_) {
      return kBackoffMs;
    }
    if (conns_.empty()) {
      return -1;
    }
    Clock::time_point oldest = Clock::time_point::max();
    for (const TcpConn& c : conns_) {
      oldest = std::min(oldest, c.lastActive);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        oldest + o_.tcpIdleTimeout - Clock::now());
    return static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, 60000));
  }

  // Whether a datagram from `from` may be answered (ResponderOptions::udpPerSource).
  bool udpAdmitted(const sockaddr_storage& from) {
    const auto now =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
            .count();
    if (now - lastPurgeUs_ >= 1'000'000) {  // forget sources whose budget is whole again
      udpLimiter_.purge(now);
      lastPurgeUs_ = now;
    }
    if (udpLimiter_.admit(0, fromSockaddr(from).address, o_.udpPerSource, now).allowed) {
      return true;
    }
    // Only this thread writes the counter: it also says how many came before this one.
    const uint64_t limited = stats_.udpLimited.fetch_add(1, std::memory_order_relaxed) + 1;
    if (o_.log && now - lastOverRateLogUs_ >= kOverRateLogEveryUs) {
      const uint64_t unlogged = limited - loggedOverRate_;
      o_.log("DNS-01 responder: " + std::to_string(unlogged) +
             (unlogged == 1 ? " UDP query" : " UDP queries") + " over their source's rate (" +
             o_.udpPerSource.str() + " per IPv4 address or IPv6 /64) " +
             (loggedOverRate_ != 0 ? "since the last such line" : "since the responder started") +
             "; every second one got a truncated reply");
      loggedOverRate_ = limited;
      lastOverRateLogUs_ = now;
    }
    return false;
  }

  // A datagram over its source's rate: every second one, when it is a query, gets TC.
  void answerOverRate(std::span<const uint8_t> message, const sockaddr_storage& from,
                      socklen_t fromLen) {
    if (stats_.udpLimited.load(std::memory_order_relaxed) % 2 == 0) {  // the 2nd, 4th, ...
      return;
    }
    const Parsed p = parseQuery(message);
    if (p.verdict != Verdict::Answer) {
      return;
    }
    const std::vector<uint8_t> bytes = buildTruncated(p.query);
    stats_.udpTruncated.fetch_add(1, std::memory_order_relaxed);
    (void)::sendto(udpFd_, bytes.data(), bytes.size(), MSG_DONTWAIT,
                   reinterpret_cast<const sockaddr*>(&from), fromLen);
  }

  void serveUdp() {
    std::vector<uint8_t> buf(kMaxTcpMessage);
    for (size_t i = 0; i < kUdpBurst; ++i) {
      sockaddr_storage from{};
      socklen_t fromLen = sizeof from;
      const ssize_t got = ::recvfrom(udpFd_, buf.data(), buf.size(), MSG_TRUNC,
                                     reinterpret_cast<sockaddr*>(&from), &fromLen);
      if (got < 0) {
        return;  // EAGAIN, or an ICMP error of an earlier reply: nothing to do
      }
      stats_.udpQueries.fetch_add(1, std::memory_order_relaxed);
      if (static_cast<size_t>(got) > buf.size()) {
        stats_.dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (!udpAdmitted(from)) {
        answerOverRate(std::span<const uint8_t>(buf.data(), static_cast<size_t>(got)), from,
                       fromLen);
        continue;
      }
      Reply r = respond(std::span<const uint8_t>(buf.data(), static_cast<size_t>(got)),
                        Transport::Udp, lookup_);
      if (r.verdict == Verdict::Drop) {
        stats_.dropped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      (void)::sendto(udpFd_, r.bytes.data(), r.bytes.size(), MSG_DONTWAIT,
                     reinterpret_cast<sockaddr*>(&from), fromLen);
    }
  }

  void acceptTcp() {
    for (;;) {
      sockaddr_storage from{};
      socklen_t fromLen = sizeof from;
      const int fd = ::accept4(tcpFd_, reinterpret_cast<sockaddr*>(&from), &fromLen,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          acceptPausedUntil_ = Clock::now() + std::chrono::milliseconds(kBackoffMs);
        }
        return;
      }
      const SourceKey source = SourceKey::of(fromSockaddr(from).address);
      const auto fromSource = std::count_if(conns_.begin(), conns_.end(),
                                            [&](const TcpConn& c) { return c.source == source; });
      if (static_cast<size_t>(fromSource) >= o_.maxTcpPerSource) {
        // Counted before the reset, so that whoever sees the reset sees the count.
        stats_.tcpRefused.fetch_add(1, std::memory_order_relaxed);
        setLingerZero(fd);
        ::close(fd);
        continue;
      }
      if (conns_.size() >= o_.maxTcpConnections && !evictOne()) {
        stats_.tcpRefused.fetch_add(1, std::memory_order_relaxed);
        setLingerZero(fd);
        ::close(fd);
        continue;
      }
      setNoDelay(fd);
      const Clock::time_point now = Clock::now();
      conns_.push_back(TcpConn{fd, source, {}, {}, now, now, false});
    }
  }

  // Closes one connection to make room (RFC 7766 6.2.3): of the source holding the most, the one
  // idle longest; never one still owed its first answer within kFirstQueryGrace of its accept
  // (a CA's, just connected). False when every connection is such a new one.
  bool evictOne() {
    const Clock::time_point now = Clock::now();
    auto held = [&](const SourceKey& source) {
      return std::count_if(conns_.begin(), conns_.end(),
                           [&](const TcpConn& c) { return c.source == source; });
    };
    auto victim = conns_.end();
    std::ptrdiff_t victimHeld = 0;
    for (auto it = conns_.begin(); it != conns_.end(); ++it) {
      if (!it->answered && now - it->acceptedAt < kFirstQueryGrace) {
        continue;
      }
      const std::ptrdiff_t h = held(it->source);
      if (victim == conns_.end() || h > victimHeld ||
          (h == victimHeld && it->lastActive < victim->lastActive)) {
        victim = it;
        victimHeld = h;
      }
    }
    if (victim == conns_.end()) {
      return false;
    }
    stats_.tcpEvicted.fetch_add(1, std::memory_order_relaxed);
    ::close(victim->fd);
    conns_.erase(victim);
    return true;
  }

  // Reads what there is and answers every complete message; false: close the connection.
  bool readTcp(TcpConn& c) {
    uint8_t chunk[kReadChunk];
    const ssize_t got = ::recv(c.fd, chunk, sizeof chunk, 0);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
      return false;
    }
    if (got < 0) {
      return true;
    }
    c.in.insert(c.in.end(), chunk, chunk + got);
    size_t at = 0;
    while (c.in.size() - at >= 2) {
      const size_t len = size_t{c.in[at]} << 8 | c.in[at + 1];
      if (c.in.size() - at - 2 < len) {
        break;
      }
      stats_.tcpQueries.fetch_add(1, std::memory_order_relaxed);
      Reply r =
          respond(std::span<const uint8_t>(c.in.data() + at + 2, len), Transport::Tcp, lookup_);
      at += 2 + len;
      if (r.verdict == Verdict::Drop || r.verdict == Verdict::FormErr) {
        // RFC 7766 section 6.2.2 leaves it to us: a stream that framed garbage is not
        // worth reading on.
        stats_.dropped.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      c.out.push_back(static_cast<uint8_t>(r.bytes.size() >> 8));
      c.out.push_back(static_cast<uint8_t>(r.bytes.size()));
      c.out.insert(c.out.end(), r.bytes.begin(), r.bytes.end());
      c.lastActive = Clock::now();  // idle counts from the last complete query
      c.answered = true;
    }
    c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(at));
    return c.out.size() <= kMaxPendingOutput;
  }

  // Writes pending output; false: close the connection.
  static bool flushTcp(TcpConn& c) {
    while (!c.out.empty()) {
      const ssize_t put = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (put < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      c.out.erase(c.out.begin(), c.out.begin() + put);
    }
    return true;
  }

  void serveTcp(const std::vector<pollfd>& fds) {
    const Clock::time_point now = Clock::now();
    size_t i = 3;
    for (auto it = conns_.begin(); it != conns_.end(); ++i) {
      TcpConn& c = *it;
      // Connections accepted in this round have no pollfd yet: only the idle check.
      const short revents = i < fds.size() && fds[i].fd == c.fd ? fds[i].revents : 0;
      bool keep = true;
      if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        keep = readTcp(c);
      }
      if (keep) {
        keep = flushTcp(c);
      }
      if (keep && now - c.lastActive >= o_.tcpIdleTimeout) {
        keep = false;
      }
      if (keep) {
        ++it;
        continue;
      }
      ::close(c.fd);
      it = conns_.erase(it);
    }
  }

  const ResponderOptions& o_;
  ResponderStats& stats_;
  int udpFd_;
  int tcpFd_;
  int wakeFd_;
  TxtLookup lookup_;
  std::list<TcpConn> conns_;
  Clock::time_point acceptPausedUntil_{};
  gateway::RateLimiter udpLimiter_;
  int64_t lastPurgeUs_ = 0;
  static constexpr int64_t kOverRateLogEveryUs = 60'000'000;
  uint64_t loggedOverRate_ = 0;  // stats_.udpLimited when the last line was logged (0: none yet)
  int64_t lastOverRateLogUs_ = std::numeric_limits<int64_t>::min() / 2;  // the first is logged
};

}  // namespace

Result<std::unique_ptr<Responder>> Responder::start(ResponderOptions options) {
  if (!options.board) {
    return terminal("--dns: no challenge board");
  }
  if (options.udpPerSource.count == 0 || options.udpPerSource.period.count() <= 0) {
    return terminal("--dns: the UDP limit per source must be a positive count per period");
  }
  std::unique_ptr<Responder> r(new Responder(std::move(options)));
  auto tcp = openListeners(r->options_.address, 1, r->port_);
  if (!tcp) {
    return terminal("--dns: " + tcp.error().message);
  }
  r->tcpFd_ = tcp->front();
  Endpoint udpAt = r->options_.address;
  udpAt.port = r->port_;
  auto udp = bindUdp(udpAt);
  if (!udp) {
    return udp.error();  // the destructor closes the TCP socket
  }
  r->udpFd_ = *udp;
  r->wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (r->wakeFd_ < 0) {
    const int err = errno;
    return terminal("--dns: eventfd: " + errnoText(err));
  }
  r->thread_ = std::thread([raw = r.get()] { raw->run(); });
  return r;
}

void Responder::run() {
  Loop loop(options_, stats_, udpFd_, tcpFd_, wakeFd_);
  loop.run();
}

void Responder::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    (void)!::write(wakeFd_, &one, sizeof one);
    thread_.join();
  }
  for (int* fd : {&udpFd_, &tcpFd_, &wakeFd_}) {
    if (*fd >= 0) {
      ::close(*fd);
      *fd = -1;
    }
  }
}

Responder::~Responder() {
  stop();
}

}  // namespace edgeplane::proxy::dns
