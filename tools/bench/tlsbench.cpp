// tlsbench: the TLS backend and load client of tools/bench/passthrough (bulk throughput,
// closed-loop connection rate, open-loop handshake latency, idle connections), on OpenSSL
// with non-blocking sockets and epoll, so one small tool drives every proxy the same way.
//
//   tlsbench server  --listen IP:PORT --cert FILE --key FILE [--threads N]
//   tlsbench bulk    --connect IP:PORT --sni NAME --bytes N [--max-seconds S]
//   tlsbench rate    --connect IP:PORT --sni NAME --concurrency C --seconds S [--threads T]
//   tlsbench latency --connect IP:PORT --sni NAME --rate R --seconds S
//   tlsbench idle    --connect IP:PORT --sni NAME --count N
//
// Wire protocol after the handshake (client -> server, one line): "P\n" is answered with
// "pong\n"; "S <n>\n" is answered with n bytes. Every handshake is a full one: the server
// issues no tickets and the client caches no sessions. Each client mode prints one line of
// key=value figures on stdout; `idle` prints it once every connection is open, then holds
// them until its stdin reaches EOF and prints how many were still open. `cpu_s` is the
// client's own CPU time for the run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kChunk = 64 * 1024;
constexpr const char kPong[] = "pong\n";
constexpr size_t kPongLen = sizeof(kPong) - 1;
// A connection that makes no progress for this long counts as failed (bounds every mode).
constexpr auto kConnTimeout = std::chrono::seconds(10);

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU time of this process (user + system, all threads), so the caller can add up what
// client, proxy and backend spent: that figure does not depend on how busy the machine is.
double cpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "tlsbench: %s\n", what);
  std::exit(2);
}

struct Args {
  std::map<std::string, std::string> values;
  const char* get(const char* key) const {
    auto it = values.find(key);
    return it == values.end() ? nullptr : it->second.c_str();
  }
  std::string need(const char* key) const {
    const char* v = get(key);
    if (v == nullptr) {
      std::fprintf(stderr, "tlsbench: missing --%s\n", key);
      std::exit(2);
    }
    return v;
  }
  uint64_t number(const char* key, uint64_t fallback, bool required = false) const {
    const char* v = get(key);
    if (v == nullptr) {
      if (required) {
        need(key);
      }
      return fallback;
    }
    char* end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
      std::fprintf(stderr, "tlsbench: --%s wants a number, got '%s'\n", key, v);
      std::exit(2);
    }
    return n;
  }
};

sockaddr_in parseAddress(const std::string& text) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  size_t colon = text.rfind(':');
  if (colon == std::string::npos) {
    die("address must be IPv4:PORT");
  }
  std::string host = text.substr(0, colon);
  char* end = nullptr;
  unsigned long port = std::strtoul(text.c_str() + colon + 1, &end, 10);
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1 || *end != '\0' || port == 0 ||
      port > 65535) {
    die("address must be IPv4:PORT");
  }
  sa.sin_port = htons(static_cast<uint16_t>(port));
  return sa;
}

void raiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Returns the epoll events an SSL call's error asks for, or 0 when the connection is dead.
uint32_t wantedEvents(SSL* ssl, int ret) {
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return EPOLLIN;
    case SSL_ERROR_WANT_WRITE:
      return EPOLLOUT;
    default:
      ERR_clear_error();
      return 0;
  }
}

void setEvents(int epfd, int fd, uint32_t& current, uint32_t wanted, void* tag) {
  if (current == wanted) {
    return;
  }
  epoll_event ev{};
  ev.events = wanted;
  ev.data.ptr = tag;
  epoll_ctl(epfd, current == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
  current = wanted;
}

// ---- server ----------------------------------------------------------------------------

struct ServerConn {
  int fd = -1;
  SSL* ssl = nullptr;
  enum class State { Handshake, Command, Reply, Source } state = State::Handshake;
  std::string line;
  uint64_t remaining = 0;  // Source: bytes still to send; Reply: offset into kPong
  uint32_t events = 0;
};

// Advances one connection until OpenSSL wants I/O; false when it is finished or broken.
bool stepServer(ServerConn& c, const char* chunk, uint32_t& want) {
  for (;;) {
    switch (c.state) {
      case ServerConn::State::Handshake: {
        int r = SSL_accept(c.ssl);
        if (r != 1) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.state = ServerConn::State::Command;
        break;
      }
      case ServerConn::State::Command: {
        char buf[256];
        int r = SSL_read(c.ssl, buf, sizeof buf);
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.line.append(buf, static_cast<size_t>(r));
        if (c.line.size() > 128) {
          return false;
        }
        size_t nl = c.line.find('\n');
        if (nl == std::string::npos) {
          break;
        }
        std::string cmd = c.line.substr(0, nl);
        c.line.erase(0, nl + 1);
        if (cmd == "P") {
          c.state = ServerConn::State::Reply;
          c.remaining = 0;
        } else if (cmd.size() > 2 && cmd[0] == 'S' && cmd[1] == ' ') {
          c.remaining = std::strtoull(cmd.c_str() + 2, nullptr, 10);
          c.state = ServerConn::State::Source;
        } else {
          return false;
        }
        break;
      }
      case ServerConn::State::Reply: {
        int r = SSL_write(c.ssl, kPong + c.remaining, static_cast<int>(kPongLen - c.remaining));
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.remaining += static_cast<uint64_t>(r);
        if (c.remaining == kPongLen) {
          c.state = ServerConn::State::Command;
        }
        break;
      }
      case ServerConn::State::Source: {
        if (c.remaining == 0) {
          c.state = ServerConn::State::Command;
          break;
        }
        int n = static_cast<int>(std::min<uint64_t>(c.remaining, kChunk));
        int r = SSL_write(c.ssl, chunk, n);
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0;
        }
        c.remaining -= static_cast<uint64_t>(r);
        break;
      }
    }
  }
}

void serverThread(SSL_CTX* ctx, sockaddr_in addr) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(lfd, 4096) != 0) {
    std::perror("tlsbench: bind/listen");
    std::exit(2);
  }
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
  std::vector<char> chunk(kChunk, 'x');
  std::vector<epoll_event> events(256);
  for (;;) {
    int n = epoll_wait(epfd, events.data(), static_cast<int>(events.size()), -1);
    for (int i = 0; i < n; ++i) {
      auto* c = static_cast<ServerConn*>(events[i].data.ptr);
      if (c == nullptr) {
        for (;;) {
          int fd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) {
            break;
          }
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          c = new ServerConn;
          c->fd = fd;
          c->ssl = SSL_new(ctx);
          SSL_set_fd(c->ssl, fd);
          uint32_t want = 0;
          if (stepServer(*c, chunk.data(), want)) {
            setEvents(epfd, fd, c->events, want, c);
          } else {
            SSL_free(c->ssl);
            close(fd);
            delete c;
          }
        }
        continue;
      }
      uint32_t want = 0;
      if (stepServer(*c, chunk.data(), want)) {
        setEvents(epfd, c->fd, c->events, want, c);
      } else {
        SSL_free(c->ssl);
        close(c->fd);  // also removes it from the epoll set
        delete c;
      }
    }
  }
}

int runServer(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("listen"));
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(ctx, args.need("cert").c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, args.need("key").c_str(), SSL_FILETYPE_PEM) != 1) {
    die("cannot load --cert/--key");
  }
  unsigned threads = static_cast<unsigned>(args.number("threads", 2));
  std::vector<std::thread> pool;
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    pool.emplace_back(serverThread, ctx, addr);
  }
  std::fprintf(stdout, "tlsbench: serving %s with %u threads\n", args.need("listen").c_str(),
               std::max(1u, threads));
  std::fflush(stdout);
  for (auto& t : pool) {
    t.join();
  }
  return 0;
}

// ---- client ----------------------------------------------------------------------------

SSL_CTX* clientContext() {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

struct ClientConn {
  int fd = -1;
  SSL* ssl = nullptr;
  enum class State { Connecting, Handshake, Command, Reply, Hold } state = State::Connecting;
  size_t progress = 0;  // bytes of the command sent / of the reply read
  Clock::time_point scheduled;
  Clock::time_point deadline;
  double handshakeSeconds = 0;  // scheduled start -> handshake complete
  uint32_t events = 0;
  bool held = false;  // counted and moved to ClientLoop::held
};

enum class Step { Pending, Done, Failed };

ClientConn* startConn(SSL_CTX* ctx, const sockaddr_in& addr, const std::string& sni,
                      Clock::time_point scheduled) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return nullptr;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool connected = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (!connected && errno != EINPROGRESS) {
    close(fd);
    return nullptr;
  }
  auto* c = new ClientConn;
  if (connected) {
    c->state = ClientConn::State::Handshake;
  }
  c->fd = fd;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, fd);
  SSL_set_tlsext_host_name(c->ssl, sni.c_str());
  c->scheduled = scheduled;
  c->deadline = Clock::now() + kConnTimeout;
  return c;
}

void finishConn(ClientConn* c, bool clean) {
  if (clean) {
    SSL_shutdown(c->ssl);  // one try: sends close_notify, does not wait for the peer's
  }
  SSL_free(c->ssl);
  close(c->fd);
  delete c;
}

// Connect, handshake, "P\n", "pong\n"; then Done, or Hold when `hold` is set.
Step stepClient(ClientConn& c, bool hold, uint32_t& want) {
  for (;;) {
    switch (c.state) {
      case ClientConn::State::Connecting: {  // only reached once the socket is writable
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
          return Step::Failed;
        }
        c.state = ClientConn::State::Handshake;
        break;
      }
      case ClientConn::State::Handshake: {
        int r = SSL_connect(c.ssl);
        if (r != 1) {
          want = wantedEvents(c.ssl, r);
          return want != 0 ? Step::Pending : Step::Failed;
        }
        c.handshakeSeconds = secondsSince(c.scheduled);
        c.state = ClientConn::State::Command;
        c.progress = 0;
        break;
      }
      case ClientConn::State::Command: {
        static const char kCmd[] = "P\n";
        int r = SSL_write(c.ssl, kCmd + c.progress, static_cast<int>(2 - c.progress));
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0 ? Step::Pending : Step::Failed;
        }
        c.progress += static_cast<size_t>(r);
        if (c.progress == 2) {
          c.state = ClientConn::State::Reply;
          c.progress = 0;
        }
        break;
      }
      case ClientConn::State::Reply: {
        char buf[16];
        int r = SSL_read(c.ssl, buf, static_cast<int>(kPongLen - c.progress));
        if (r <= 0) {
          want = wantedEvents(c.ssl, r);
          return want != 0 ? Step::Pending : Step::Failed;
        }
        if (std::memcmp(buf, kPong + c.progress, static_cast<size_t>(r)) != 0) {
          return Step::Failed;
        }
        c.progress += static_cast<size_t>(r);
        if (c.progress == kPongLen) {
          if (!hold) {
            return Step::Done;
          }
          c.state = ClientConn::State::Hold;
        }
        break;
      }
      case ClientConn::State::Hold: {
        char buf[64];
        int r = SSL_read(c.ssl, buf, sizeof buf);
        if (r > 0) {
          return Step::Failed;  // nothing is expected on an idle connection
        }
        want = wantedEvents(c.ssl, r);
        return want != 0 ? Step::Pending : Step::Failed;
      }
    }
  }
}

// One event loop of client connections, driven by the modes below: they add connections
// and poll; the loop tracks which are in flight and which are held open.
struct ClientLoop {
  ClientLoop(SSL_CTX* c, const sockaddr_in& a, std::string name)
      : ctx(c), addr(a), sni(std::move(name)) {}
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  SSL_CTX* ctx;
  sockaddr_in addr;
  std::string sni;
  bool hold = false;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  std::vector<ClientConn*> live;  // in flight (not holding)
  std::vector<ClientConn*> held;
  uint64_t done = 0, failed = 0;
  std::vector<double> handshakes;

  ~ClientLoop() {
    for (auto* c : live) {
      finishConn(c, false);
    }
    for (auto* c : held) {
      finishConn(c, true);
    }
    close(epfd);
  }

  void add(Clock::time_point scheduled) {
    ClientConn* c = startConn(ctx, addr, sni, scheduled);
    if (c == nullptr) {
      ++failed;
      return;
    }
    live.push_back(c);
    if (c->state == ClientConn::State::Connecting) {
      setEvents(epfd, c->fd, c->events, EPOLLOUT, c);  // connect in progress
      return;
    }
    uint32_t want = 0;
    handle(c, want);
  }

  void remove(std::vector<ClientConn*>& from, ClientConn* c) {
    auto it = std::find(from.begin(), from.end(), c);
    if (it != from.end()) {
      *it = from.back();
      from.pop_back();
    }
  }

  void handle(ClientConn* c, uint32_t& want) {
    Step s = stepClient(*c, hold, want);
    if (s == Step::Pending) {
      if (c->state == ClientConn::State::Hold && !c->held) {
        c->held = true;
        remove(live, c);
        held.push_back(c);
        ++done;
        handshakes.push_back(c->handshakeSeconds);
      }
      setEvents(epfd, c->fd, c->events, want, c);
      return;
    }
    remove(c->held ? held : live, c);
    if (s == Step::Done) {
      ++done;
      handshakes.push_back(c->handshakeSeconds);
    } else {
      ++failed;
    }
    finishConn(c, s == Step::Done);
  }

  // Waits up to `timeoutMs` and handles what is ready; expires connections past deadline.
  void poll(int timeoutMs, bool* extraReady = nullptr) {
    epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, timeoutMs);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        if (extraReady != nullptr) {
          *extraReady = true;
        }
        continue;
      }
      auto* c = static_cast<ClientConn*>(events[i].data.ptr);
      uint32_t want = 0;
      handle(c, want);
    }
    auto now = Clock::now();
    for (size_t i = 0; i < live.size();) {
      if (live[i]->deadline < now) {
        ClientConn* c = live[i];
        live[i] = live.back();
        live.pop_back();
        ++failed;
        finishConn(c, false);
      } else {
        ++i;
      }
    }
  }
};

int runBulk(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("connect"));
  std::string sni = args.need("sni");
  uint64_t bytes = args.number("bytes", 0, true);
  // Bounds the run on a slow or busy machine: the figure is then over what arrived in time.
  double maxSeconds = static_cast<double>(args.number("max-seconds", 0));
  SSL_CTX* ctx = clientContext();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    die("bulk: connect failed");
  }
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  SSL_set_tlsext_host_name(ssl, sni.c_str());
  if (SSL_connect(ssl) != 1) {
    die("bulk: handshake failed");
  }
  std::string cmd = "S " + std::to_string(bytes) + "\n";
  auto t0 = Clock::now();
  double cpu0 = cpuSeconds();
  if (SSL_write(ssl, cmd.data(), static_cast<int>(cmd.size())) != static_cast<int>(cmd.size())) {
    die("bulk: request failed");
  }
  std::vector<char> buf(kChunk);
  uint64_t got = 0;
  while (got < bytes) {
    int r = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
    if (r <= 0) {
      std::fprintf(stderr, "tlsbench: bulk: stream ended after %llu of %llu bytes\n",
                   static_cast<unsigned long long>(got), static_cast<unsigned long long>(bytes));
      return 1;
    }
    got += static_cast<uint64_t>(r);
    if (maxSeconds > 0 && (got & 0xfffff) < static_cast<uint64_t>(r) &&
        secondsSince(t0) > maxSeconds) {
      break;  // checked about once per MiB
    }
  }
  double s = secondsSince(t0);
  double cpu = cpuSeconds() - cpu0;
  if (got < bytes) {
    // Cut short: a reset is fine, the backend just sees a write error.
    linger lg{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  } else {
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  close(fd);
  std::printf("bulk bytes=%llu seconds=%.3f MBps=%.1f cpu_s=%.3f\n",
              static_cast<unsigned long long>(got), s, static_cast<double>(got) / s / 1e6, cpu);
  return 0;
}

int runRate(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("connect"));
  std::string sni = args.need("sni");
  unsigned concurrency = static_cast<unsigned>(args.number("concurrency", 0, true));
  double seconds = static_cast<double>(args.number("seconds", 0, true));
  unsigned threads = std::max(1u, static_cast<unsigned>(args.number("threads", 2)));
  if (concurrency < threads) {
    die("rate: --concurrency must be >= --threads");
  }
  SSL_CTX* ctx = clientContext();
  std::atomic<uint64_t> done{0}, failed{0};
  auto t0 = Clock::now();
  double cpu0 = cpuSeconds();
  auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    unsigned mine = concurrency / threads + (t < concurrency % threads ? 1 : 0);
    pool.emplace_back([&, mine] {
      ClientLoop loop{ctx, addr, sni};
      for (unsigned i = 0; i < mine; ++i) {
        loop.add(Clock::now());
      }
      uint64_t counted = 0, failedCounted = 0;
      while (Clock::now() < end) {
        auto leftMs = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
        loop.poll(static_cast<int>(std::clamp<int64_t>(leftMs.count(), 0, 50)));
        // Count only what completed inside the window; keep the concurrency constant.
        counted = loop.done;
        failedCounted = loop.failed;
        while (loop.live.size() < mine && Clock::now() < end) {
          loop.add(Clock::now());
        }
      }
      done += counted;
      failed += failedCounted;
    });
  }
  for (auto& t : pool) {
    t.join();
  }
  std::printf("rate conns=%llu failed=%llu seconds=%.2f concurrency=%u cps=%.1f cpu_s=%.3f\n",
              static_cast<unsigned long long>(done.load()),
              static_cast<unsigned long long>(failed.load()), seconds, concurrency,
              static_cast<double>(done.load()) / seconds, cpuSeconds() - cpu0);
  return done.load() > 0 ? 0 : 1;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

int runLatency(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("connect"));
  std::string sni = args.need("sni");
  double rate = static_cast<double>(args.number("rate", 0, true));
  double seconds = static_cast<double>(args.number("seconds", 0, true));
  if (rate <= 0 || seconds <= 0) {
    die("latency: --rate and --seconds must be > 0");
  }
  SSL_CTX* ctx = clientContext();
  ClientLoop loop{ctx, addr, sni};
  auto total = static_cast<uint64_t>(rate * seconds);
  auto t0 = Clock::now();
  auto interval = std::chrono::duration<double>(1.0 / rate);
  uint64_t launched = 0;
  // Open loop: connection i is due at t0 + i/R whatever happened to earlier ones, and its
  // latency counts from that due time (a late launch is the system's delay, not hidden).
  while (launched < total) {
    auto due = t0 + std::chrono::duration_cast<Clock::duration>(interval * launched);
    auto now = Clock::now();
    if (now >= due) {
      loop.add(due);
      ++launched;
      continue;
    }
    auto waitMs = std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count();
    loop.poll(static_cast<int>(std::max<int64_t>(0, waitMs)));
  }
  auto drainEnd = Clock::now() + kConnTimeout;
  while (!loop.live.empty() && Clock::now() < drainEnd) {
    loop.poll(50);
  }
  std::printf("latency n=%llu failed=%llu rate=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
              static_cast<unsigned long long>(loop.done),
              static_cast<unsigned long long>(loop.failed), rate,
              percentile(loop.handshakes, 0.50) * 1e3, percentile(loop.handshakes, 0.99) * 1e3,
              percentile(loop.handshakes, 1.0) * 1e3);
  return loop.done > 0 ? 0 : 1;
}

int runIdle(const Args& args) {
  sockaddr_in addr = parseAddress(args.need("connect"));
  std::string sni = args.need("sni");
  uint64_t count = args.number("count", 0, true);
  unsigned inflight = static_cast<unsigned>(args.number("inflight", 64));
  SSL_CTX* ctx = clientContext();
  ClientLoop loop{ctx, addr, sni};
  loop.hold = true;
  auto t0 = Clock::now();
  uint64_t started = 0;
  while (loop.done + loop.failed < count) {
    while (started < count && loop.live.size() < inflight) {
      loop.add(Clock::now());
      ++started;
    }
    loop.poll(50);
  }
  std::printf("idle open=%zu failed=%llu seconds=%.2f\n", loop.held.size(),
              static_cast<unsigned long long>(loop.failed), secondsSince(t0));
  std::fflush(stdout);
  // Hold until stdin ends (the caller measured what it wanted); a held connection the peer
  // closes meanwhile is counted as failed.
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(loop.epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev);
  uint64_t failedBefore = loop.failed;
  for (;;) {
    bool stdinReady = false;
    loop.poll(1000, &stdinReady);
    if (stdinReady) {
      char buf[64];
      ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
      if (r <= 0) {
        break;
      }
    }
  }
  std::printf("idle still_open=%zu dropped=%llu\n", loop.held.size(),
              static_cast<unsigned long long>(loop.failed - failedBefore));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: tlsbench server|bulk|rate|latency|idle --key value ... (see source)\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  raiseFileLimit();
  Args args;
  for (int i = 2; i < argc; ++i) {
    if (std::strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
      std::fprintf(stderr, "tlsbench: expected --key value, got '%s'\n", argv[i]);
      return 2;
    }
    args.values[argv[i] + 2] = argv[i + 1];
    ++i;
  }
  std::string mode = argv[1];
  if (mode == "server") {
    return runServer(args);
  }
  if (mode == "bulk") {
    return runBulk(args);
  }
  if (mode == "rate") {
    return runRate(args);
  }
  if (mode == "latency") {
    return runLatency(args);
  }
  if (mode == "idle") {
    return runIdle(args);
  }
  std::fprintf(stderr, "tlsbench: unknown mode '%s'\n", mode.c_str());
  return 2;
}
