// The proxy engine in-process on 127.0.0.1:0: real OpenSSL ClientHellos, plain TCP backends.
#include "proxy/engine.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "proxy/engine/source_limits.h"
#include "proxy/netns_socket.h"
#include "proxy/proxy_protocol.h"
#include "proxy/sni_router.h"
#include "tests/support/eventually.h"

namespace edgeplane::proxy {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<uint8_t>;

// ---------------------------------------------------------------------------------------------
// Real ClientHellos from an OpenSSL client writing into a memory BIO.

constexpr unsigned int kPaddingExtType = 0xFFA5;

int addPaddingExt(SSL*, unsigned int, unsigned int, const unsigned char** out, size_t* outlen,
                  X509*, size_t, int*, void* arg) {
  static const std::vector<unsigned char> kFill(65535, 0x5A);
  *out = kFill.data();
  *outlen = *static_cast<size_t*>(arg);
  return 1;
}

Bytes clientHello(const std::optional<std::string>& sni, size_t padding = 0) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  EXPECT_NE(ctx, nullptr);
  if (padding > 0) {
    EXPECT_EQ(SSL_CTX_add_custom_ext(ctx.get(), kPaddingExtType, SSL_EXT_CLIENT_HELLO,
                                     addPaddingExt, nullptr, &padding, nullptr, nullptr),
              1);
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  if (sni) {
    EXPECT_EQ(SSL_set_tlsext_host_name(ssl.get(), sni->c_str()), 1);
  }
  const unsigned char alpn[] = "\x02h2\x08http/1.1";
  EXPECT_EQ(SSL_set_alpn_protos(ssl.get(), alpn, sizeof alpn - 1), 0);
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);
  SSL_set_connect_state(ssl.get());
  EXPECT_EQ(SSL_do_handshake(ssl.get()), -1);
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  return Bytes(reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + n);
}

// ---------------------------------------------------------------------------------------------
// Sockets.

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    reset();
    fd = o.fd;
    o.fd = -1;
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) {
      ::close(fd);
    }
    fd = -1;
  }
};

void setTimeouts(int fd, std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000),
             static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// `from`: the source address to bind first (nullptr: the kernel's choice).
Fd connectTo(uint16_t port, std::chrono::milliseconds timeout = 10s, const char* from = nullptr) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (from != nullptr) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    if (::inet_pton(AF_INET, from, &src.sin_addr) != 1 ||
        ::bind(fd.fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
      return Fd();
    }
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) {
    return Fd();
  }
  int one = 1;
  ::setsockopt(fd.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setTimeouts(fd.fd, timeout);
  return fd;
}

bool sendAll(int fd, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) {
        continue;
      }
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}
bool sendAll(int fd, const Bytes& b) {
  return sendAll(fd, b.data(), b.size());
}
bool sendAll(int fd, std::string_view s) {
  return sendAll(fd, s.data(), s.size());
}

// Reads exactly n bytes (fewer on EOF, error or timeout).
Bytes readExactly(int fd, size_t n) {
  Bytes out(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) {
        continue;
      }
      break;
    }
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

// Everything until EOF; nullopt on a reset or a timeout.
std::optional<std::string> readToEof(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r == 0) {
      return out;
    }
    if (r < 0) {
      if (errno == EINTR) {
        continue;
      }
      return std::nullopt;
    }
    out.append(buf, static_cast<size_t>(r));
  }
}

// True if the peer closed (EOF or reset) within the socket's receive timeout, having sent
// nothing.
bool closedWithoutData(int fd) {
  char c;
  ssize_t r = ::recv(fd, &c, 1, 0);
  return r == 0 || (r < 0 && (errno == ECONNRESET || errno == EPIPE));
}

std::string str(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

// ---------------------------------------------------------------------------------------------
// A plain TCP backend: each accepted connection runs the handler on its own thread.

class Backend {
 public:
  using Handler = std::function<void(int fd)>;

  explicit Backend(Handler handler) : handler_(std::move(handler)) {
    listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(listener_.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(listener_.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    EXPECT_EQ(::listen(listener_.fd, 128), 0);
    socklen_t len = sizeof sin;
    ::getsockname(listener_.fd, reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~Backend() {
    stop_ = true;
    acceptor_.join();
    std::lock_guard lock(mu_);
    for (std::thread& t : handlers_) {
      t.join();
    }
  }

  uint16_t port() const { return port_; }
  Endpoint endpoint() const { return *Endpoint::parse("127.0.0.1:" + std::to_string(port_)); }
  int accepts() const { return accepts_.load(); }

 private:
  void acceptLoop() {
    while (!stop_) {
      pollfd p{listener_.fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) {
        continue;
      }
      int fd = ::accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        continue;
      }
      setTimeouts(fd, 20s);
      ++accepts_;
      std::lock_guard lock(mu_);
      handlers_.emplace_back([this, fd] {
        handler_(fd);
        ::close(fd);
      });
    }
  }

  Handler handler_;
  Fd listener_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> handlers_;
};

// Reads the hello (its length is known to the test), answers `name`, then echoes everything
// until EOF and closes.
Backend::Handler namedEcho(const std::string& name, size_t helloLen) {
  return [name, helloLen](int fd) {
    Bytes hello = readExactly(fd, helloLen);
    if (hello.size() != helloLen || !sendAll(fd, name)) {
      return;
    }
    char buf[65536];
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0 || !sendAll(fd, buf, static_cast<size_t>(n))) {
        return;
      }
    }
  };
}

// A port with nothing listening (bound, never listened: connect is refused).
struct ClosedPort {
  Fd fd;
  uint16_t port = 0;
  ClosedPort() {
    fd = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    ::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&sin), &len);
    port = ntohs(sin.sin_port);
  }
  Endpoint endpoint() const { return *Endpoint::parse("127.0.0.1:" + std::to_string(port)); }
};

// ---------------------------------------------------------------------------------------------
// Configs built by hand, as the control side would from a snapshot.

struct RouteDef {
  RouteDef(std::string n, std::vector<std::string> h, std::vector<Endpoint> b,
           ProxyProtocol pp = ProxyProtocol::None, RouteKind k = RouteKind::Passthrough)
      : name(std::move(n)),
        hosts(std::move(h)),
        backends(std::move(b)),
        proxyProtocol(pp),
        kind(k) {}
  std::string name;
  std::vector<std::string> hosts;
  std::vector<Endpoint> backends;
  ProxyProtocol proxyProtocol = ProxyProtocol::None;
  RouteKind kind = RouteKind::Passthrough;
  std::string netns;
  Balance balance = Balance::RoundRobin;
  bool redirectHttp = false;  // sites
};

std::shared_ptr<const ActiveConfig> makeConfig(const std::vector<RouteDef>& defs,
                                               int64_t generation = 1) {
  auto config = std::make_shared<ActiveConfig>();
  config->generation = generation;
  std::vector<RouteHosts> hosts;
  for (size_t i = 0; i < defs.size(); ++i) {
    auto route = std::make_unique<ActiveRoute>();
    route->spec.kind = defs[i].kind;
    route->spec.name = defs[i].name;
    route->spec.hostnames = defs[i].hosts;
    route->spec.netns = defs[i].netns;
    route->spec.backends = defs[i].backends;
    route->spec.balance = defs[i].balance;
    route->spec.proxy_protocol = defs[i].proxyProtocol;
    route->spec.redirect_http = defs[i].redirectHttp;
    route->stats = std::make_shared<RouteStats>();
    config->routes.push_back(std::move(route));
    hosts.push_back({static_cast<RouteId>(i), defs[i].hosts});
  }
  std::vector<RouteTableIssue> issues;
  config->table = RoutingTable::build(hosts, issues);
  EXPECT_TRUE(issues.empty());
  return config;
}

// 127.0.0.1:0 (Endpoint::parse refuses port 0, rightly for configs).
Endpoint loopbackAnyPort() {
  return Endpoint{IpAddress::v4(INADDR_LOOPBACK), 0};
}

uint64_t errors(const Metrics& m, ErrorKind k) {
  return m.errors[static_cast<size_t>(k)].load();
}

using testing::eventually;

class EngineTest : public ::testing::Test {
 protected:
  void start(EngineOptions options = {}) {
    options.https = loopbackAnyPort();
    if (options.workers == 0) {
      options.workers = 2;
    }
    options.accessLog = accessLog_;
    auto started = Engine::start(options, metrics_);
    ASSERT_TRUE(started.ok()) << started.error().message;
    engine_ = std::move(started.value());
  }
  Fd client() { return connectTo(engine_->httpsPort()); }

  Metrics metrics_;
  std::unique_ptr<Engine> engine_;
  bool accessLog_ = false;
};

// ---------------------------------------------------------------------------------------------

TEST_F(EngineTest, RoutesBySniExactAndWildcard) {
  Bytes helloA = clientHello("a.example.com");
  Bytes helloB = clientHello("x.b.example.com");
  Backend a(namedEcho("A", helloA.size()));
  Backend b(namedEcho("B", helloB.size()));
  start();
  auto config = makeConfig(
      {{"a", {"a.example.com"}, {a.endpoint()}}, {"b", {"*.b.example.com"}, {b.endpoint()}}});
  engine_->setConfig(config);

  Fd ca = client();
  ASSERT_TRUE(sendAll(ca.fd, helloA));
  EXPECT_EQ(str(readExactly(ca.fd, 1)), "A");
  Fd cb = client();
  ASSERT_TRUE(sendAll(cb.fd, helloB));
  EXPECT_EQ(str(readExactly(cb.fd, 1)), "B");
  // The relay works both ways after the hello.
  ASSERT_TRUE(sendAll(ca.fd, std::string_view("ping")));
  EXPECT_EQ(str(readExactly(ca.fd, 4)), "ping");
  ca.reset();
  cb.reset();
  EXPECT_EQ(a.accepts(), 1);
  EXPECT_EQ(b.accepts(), 1);
  EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 0; }));
  EXPECT_EQ(config->routes[0]->stats->connections.load(), 1u);
  EXPECT_EQ(config->routes[0]->stats->bytesIn.load(), helloA.size() + 4);
  EXPECT_EQ(config->routes[0]->stats->bytesOut.load(), 1u + 4);
  EXPECT_EQ(metrics_.connectionsTotal.load(), 2u);
  EXPECT_EQ(metrics_.connectionsOpen.load(), 0u);
}

TEST_F(EngineTest, HelloOneByteAtATimeAndLargerThanASegment) {
  Bytes small = clientHello("a.example.com");
  Bytes large = clientHello("a.example.com", 12000);  // ~12 KiB, sent in 1000-byte segments
  ASSERT_GT(large.size(), 12000u);
  Backend a([&](int fd) {
    // The first byte tells which hello to expect: both are replayed byte-exact.
    Bytes first = readExactly(fd, 1);
    if (first.empty()) {
      return;
    }
    Bytes rest = readExactly(fd, small.size() - 1);
    Bytes got = first;
    got.insert(got.end(), rest.begin(), rest.end());
    if (got == small) {
      sendAll(fd, std::string_view("small-ok"));
      return;
    }
    Bytes more = readExactly(fd, large.size() - small.size());
    got.insert(got.end(), more.begin(), more.end());
    sendAll(fd, std::string_view(got == large ? "large-ok" : "mismatch"));
  });
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));

  Fd c1 = client();
  for (uint8_t byte : small) {
    ASSERT_TRUE(sendAll(c1.fd, &byte, 1));
    std::this_thread::sleep_for(200us);
  }
  EXPECT_EQ(str(readExactly(c1.fd, 8)), "small-ok");

  Fd c2 = client();
  for (size_t at = 0; at < large.size(); at += 1000) {
    ASSERT_TRUE(sendAll(c2.fd, large.data() + at, std::min<size_t>(1000, large.size() - at)));
    std::this_thread::sleep_for(2ms);
  }
  EXPECT_EQ(str(readExactly(c2.fd, 8)), "large-ok");
  EXPECT_EQ(errors(metrics_, ErrorKind::HelloMalformed), 0u);
}

TEST_F(EngineTest, UnknownOrMissingSniClosedWithoutBackendConnection) {
  Backend a(namedEcho("A", 0));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com", "*.apps.example.com"}, {a.endpoint()}}}));
  for (const std::optional<std::string>& sni :
       {std::optional<std::string>("unknown.example.com"),
        std::optional<std::string>("x.y.apps.example.com"),  // a wildcard is one label only
        std::optional<std::string>()}) {
    Fd c = client();
    ASSERT_TRUE(sendAll(c.fd, clientHello(sni)));
    EXPECT_TRUE(closedWithoutData(c.fd));
  }
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::NoRoute) == 3; }));
  EXPECT_EQ(a.accepts(), 0);
}

TEST_F(EngineTest, NoConfigMeansNoRoute) {
  start();
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, clientHello("a.example.com")));
  EXPECT_TRUE(closedWithoutData(c.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::NoRoute) == 1; }));
}

// Regression: the proxy bound its listeners and ran its workers before it could hand them the
// config it had already loaded, so connections queued at startup were closed as no_route. The
// config given to start() is in place before the first accept; no setConfig() here.
TEST_F(EngineTest, ConfigGivenAtStartRoutesTheFirstConnections) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  EngineOptions o;
  o.https = loopbackAnyPort();
  o.workers = 2;
  o.accessLog = false;
  auto started =
      Engine::start(o, metrics_, makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}, 7));
  ASSERT_TRUE(started.ok()) << started.error().message;
  engine_ = std::move(started.value());
  ASSERT_NE(engine_->config(), nullptr);
  EXPECT_EQ(engine_->config()->generation, 7);
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  EXPECT_EQ(str(readExactly(c.fd, 1)), "A");
  EXPECT_EQ(errors(metrics_, ErrorKind::NoRoute), 0u);
}

TEST_F(EngineTest, GarbageClosedWhileAnotherClientIsServed) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd good = client();
  ASSERT_TRUE(sendAll(good.fd, hello));
  ASSERT_EQ(str(readExactly(good.fd, 1)), "A");

  Fd http = client();
  ASSERT_TRUE(sendAll(http.fd, std::string_view("GET / HTTP/1.1\r\nHost: a\r\n\r\n")));
  EXPECT_TRUE(closedWithoutData(http.fd));
  Fd junk = client();
  Bytes bad = hello;
  bad[9] = 0x7F;  // legacy_version of the body
  ASSERT_TRUE(sendAll(junk.fd, bad));
  EXPECT_TRUE(closedWithoutData(junk.fd));
  // A truncated hello followed by EOF.
  Fd truncated = client();
  ASSERT_TRUE(sendAll(truncated.fd, hello.data(), hello.size() / 2));
  ::shutdown(truncated.fd, SHUT_WR);
  EXPECT_TRUE(closedWithoutData(truncated.fd));

  ASSERT_TRUE(sendAll(good.fd, std::string_view("still here")));
  EXPECT_EQ(str(readExactly(good.fd, 10)), "still here");
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::HelloMalformed) == 3; }));
  EXPECT_EQ(a.accepts(), 1);
}

TEST_F(EngineTest, HelloTimeoutCutsSilentAndSlowlorisClients) {
  Backend a(namedEcho("A", 0));
  EngineOptions o;
  o.helloTimeout = 300ms;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Bytes hello = clientHello("a.example.com");
  auto begin = std::chrono::steady_clock::now();  // before the accept that starts the 300 ms
  Fd slowloris = client();
  Fd silent = client();
  // One byte every 50 ms: bytes keep coming, but the whole hello is not there in time.
  std::atomic<bool> cut{false};
  std::thread trickle([&] {
    for (size_t i = 0; i < hello.size() && !cut; ++i) {
      if (!sendAll(slowloris.fd, &hello[i], 1)) {
        return;
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  EXPECT_TRUE(closedWithoutData(slowloris.fd));
  auto took = std::chrono::steady_clock::now() - begin;
  cut = true;
  trickle.join();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(closedWithoutData(silent.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::HelloTimeout) == 2; }));
  EXPECT_EQ(a.accepts(), 0);
}

TEST_F(EngineTest, HelloOverTheLimitIsMalformed) {
  Backend a(namedEcho("A", 0));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Bytes huge = clientHello("a.example.com", 17000);  // more than the 16 KiB the reader buffers
  Fd c = client();
  sendAll(c.fd, huge);  // may fail half-way: the engine closes as soon as it knows
  EXPECT_TRUE(closedWithoutData(c.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::HelloMalformed) == 1; }));
  EXPECT_EQ(a.accepts(), 0);
}

TEST_F(EngineTest, RandomBalanceUsesEveryBackend) {
  Bytes hello = clientHello("a.example.com");
  Backend one(namedEcho("1", hello.size()));
  Backend two(namedEcho("2", hello.size()));
  start();
  RouteDef r{"a", {"a.example.com"}, {one.endpoint(), two.endpoint()}};
  r.balance = Balance::Random;
  engine_->setConfig(makeConfig({r}));
  for (int i = 0; i < 40; ++i) {
    Fd c = client();
    ASSERT_TRUE(sendAll(c.fd, hello));
    ASSERT_EQ(readExactly(c.fd, 1).size(), 1u);
  }
  EXPECT_EQ(one.accepts() + two.accepts(), 40);
  EXPECT_GT(one.accepts(), 0);  // 2^-39 odds of a false failure
  EXPECT_GT(two.accepts(), 0);
}

TEST_F(EngineTest, RefusedBackendIsSkippedForTheNext) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  ClosedPort dead;
  start();
  auto config =
      makeConfig({{"a", {"a.example.com"}, {dead.endpoint(), a.endpoint(), dead.endpoint()}}});
  engine_->setConfig(config);
  // Round robin starts at each backend in turn; every connection must still reach A.
  for (int i = 0; i < 6; ++i) {
    Fd c = client();
    ASSERT_TRUE(sendAll(c.fd, hello));
    EXPECT_EQ(str(readExactly(c.fd, 1)), "A") << "connection " << i;
  }
  EXPECT_EQ(a.accepts(), 6);
  EXPECT_GE(metrics_.backendAttemptFailures.load(), 6u);
  EXPECT_EQ(errors(metrics_, ErrorKind::UpstreamConnect), 0u);

  // Every backend refusing: closed, counted, route failure.
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {dead.endpoint()}}}, 2));
  auto config2 = engine_->config();
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  EXPECT_TRUE(closedWithoutData(c.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::UpstreamConnect) == 1; }));
  EXPECT_EQ(config2->routes[0]->stats->failures.load(), 1u);
}

TEST_F(EngineTest, ConnectTimeoutMovesToTheNextBackend) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  // A listener whose accept queue is full drops further SYNs: connecting to it hangs.
  Fd full(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(full.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ASSERT_EQ(::listen(full.fd, 0), 0);
  socklen_t len = sizeof sin;
  ::getsockname(full.fd, reinterpret_cast<sockaddr*>(&sin), &len);
  uint16_t fullPort = ntohs(sin.sin_port);
  std::vector<Fd> fillers;
  for (int i = 0; i < 2; ++i) {
    Fd f(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    (void)::connect(f.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);  // EINPROGRESS
    fillers.push_back(std::move(f));
  }
  std::this_thread::sleep_for(50ms);

  EngineOptions o;
  o.connectTimeout = 300ms;
  o.workers = 1;
  start(o);
  Endpoint hanging = *Endpoint::parse("127.0.0.1:" + std::to_string(fullPort));
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {hanging, a.endpoint()}}}));
  auto begin = std::chrono::steady_clock::now();
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  EXPECT_EQ(str(readExactly(c.fd, 1)), "A");
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(metrics_.backendAttemptFailures.load(), 1u);
}

TEST_F(EngineTest, ProxyProtocolV1AndV2CarryTheClientAddress) {
  Bytes hello = clientHello("pp.example.com");
  for (ProxyProtocol version : {ProxyProtocol::V1, ProxyProtocol::V2}) {
    std::mutex mu;
    std::optional<ProxyHeader> seen;
    Bytes afterHeader;
    Backend b([&](int fd) {
      ProxyHeaderDecoder decoder;
      Bytes rest;
      uint8_t buf[4096];
      while (decoder.status() == ProxyHeaderDecoder::Status::NeedMore) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          return;
        }
        auto r = decoder.feed(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
        rest.insert(rest.end(), buf + r.consumed, buf + n);
      }
      if (decoder.status() != ProxyHeaderDecoder::Status::Done) {
        return;
      }
      Bytes more = readExactly(fd, hello.size() - std::min(hello.size(), rest.size()));
      rest.insert(rest.end(), more.begin(), more.end());
      {
        std::lock_guard lock(mu);
        seen = decoder.header();
        afterHeader = rest;
      }
      sendAll(fd, std::string_view("ok"));
    });
    start();
    engine_->setConfig(makeConfig({{"pp", {"pp.example.com"}, {b.endpoint()}, version}},
                                  version == ProxyProtocol::V1 ? 1 : 2));
    Fd c = client();
    sockaddr_in local{};
    socklen_t len = sizeof local;
    ::getsockname(c.fd, reinterpret_cast<sockaddr*>(&local), &len);
    ASSERT_TRUE(sendAll(c.fd, hello));
    EXPECT_EQ(str(readExactly(c.fd, 2)), "ok");
    std::lock_guard lock(mu);
    ASSERT_TRUE(seen.has_value());
    EXPECT_EQ(seen->version,
              version == ProxyProtocol::V1 ? ProxyHeader::Version::V1 : ProxyHeader::Version::V2);
    ASSERT_TRUE(seen->source.has_value());
    EXPECT_EQ(seen->source->str(), "127.0.0.1:" + std::to_string(ntohs(local.sin_port)));
    ASSERT_TRUE(seen->destination.has_value());
    EXPECT_EQ(seen->destination->str(), "127.0.0.1:" + std::to_string(engine_->httpsPort()));
    if (version == ProxyProtocol::V2) {
      const ProxyTlv* authority = seen->findTlv(kPp2TypeAuthority);
      ASSERT_NE(authority, nullptr);
      EXPECT_EQ(authority->value, "pp.example.com");
    }
    EXPECT_EQ(afterHeader, hello);  // the hello follows the header, byte-exact
    c.reset();
    engine_.reset();
  }
}

TEST_F(EngineTest, HalfCloseKeepsTheOtherDirection) {
  Bytes hello = clientHello("a.example.com");
  Backend a([&](int fd) {
    // Reads until the client's FIN, then answers with what it got, then closes.
    std::optional<std::string> all = readToEof(fd);
    if (!all) {
      return;
    }
    std::string reply = "got " + std::to_string(all->size()) + " bytes";
    sendAll(fd, reply);
  });
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  ASSERT_TRUE(sendAll(c.fd, std::string_view("request body")));
  ASSERT_EQ(::shutdown(c.fd, SHUT_WR), 0);
  std::optional<std::string> reply = readToEof(c.fd);
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(*reply, "got " + std::to_string(hello.size() + 12) + " bytes");
  EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 0; }));
  EXPECT_EQ(errors(metrics_, ErrorKind::Relay), 0u);
}

// 64 MiB each way at once, checksummed: through splice, and through the copy fallback.
class EngineTransferTest : public EngineTest, public ::testing::WithParamInterface<bool> {};

TEST_P(EngineTransferTest, LargeTransferBothWays) {
  constexpr size_t kSize = 64u << 20;
  Bytes hello = clientHello("bulk.example.com");
  auto pattern = [](uint64_t seed, size_t at) {
    uint64_t x = (at / 8) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    return static_cast<uint8_t>(x >> (8 * (at % 8)));
  };
  std::atomic<uint64_t> backendSum{0};
  std::atomic<size_t> backendGot{0};
  Backend b([&](int fd) {
    Bytes h = readExactly(fd, hello.size());
    if (h != hello) {
      return;
    }
    std::thread writer([&] {
      std::vector<uint8_t> chunk(1 << 16);
      for (size_t at = 0; at < kSize; at += chunk.size()) {
        for (size_t i = 0; i < chunk.size(); ++i) {
          chunk[i] = pattern(2, at + i);
        }
        if (!sendAll(fd, chunk.data(), chunk.size())) {
          return;
        }
      }
      ::shutdown(fd, SHUT_WR);
    });
    std::vector<uint8_t> buf(1 << 16);
    uint64_t sum = 0;
    size_t got = 0;
    bool same = true;
    while (true) {
      ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
      if (n <= 0) {
        break;
      }
      for (ssize_t i = 0; i < n; ++i) {
        same = same && buf[static_cast<size_t>(i)] == pattern(1, got + static_cast<size_t>(i));
        sum += buf[static_cast<size_t>(i)];
      }
      got += static_cast<size_t>(n);
    }
    writer.join();
    backendSum = same ? sum : 0;
    backendGot = got;
  });
  EngineOptions o;
  o.splice = GetParam();
  start(o);
  engine_->setConfig(makeConfig({{"bulk", {"bulk.example.com"}, {b.endpoint()}}}));
  Fd c = client();
  setTimeouts(c.fd, 60s);
  ASSERT_TRUE(sendAll(c.fd, hello));
  std::thread writer([&] {
    std::vector<uint8_t> chunk(1 << 16);
    for (size_t at = 0; at < kSize; at += chunk.size()) {
      for (size_t i = 0; i < chunk.size(); ++i) {
        chunk[i] = pattern(1, at + i);
      }
      if (!sendAll(c.fd, chunk.data(), chunk.size())) {
        return;
      }
    }
    ::shutdown(c.fd, SHUT_WR);
  });
  std::vector<uint8_t> buf(1 << 16);
  size_t got = 0;
  bool same = true;
  uint64_t expectedSum = 0;
  while (true) {
    ssize_t n = ::recv(c.fd, buf.data(), buf.size(), 0);
    if (n <= 0) {
      break;
    }
    for (ssize_t i = 0; i < n; ++i) {
      same = same && buf[static_cast<size_t>(i)] == pattern(2, got + static_cast<size_t>(i));
    }
    got += static_cast<size_t>(n);
  }
  writer.join();
  for (size_t i = 0; i < kSize; ++i) {
    expectedSum += pattern(1, i);
  }
  EXPECT_EQ(got, kSize);
  EXPECT_TRUE(same);
  c.reset();
  EXPECT_TRUE(eventually([&] { return backendGot.load() == kSize; }, 10s));
  EXPECT_EQ(backendSum.load(), expectedSum);
  EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 0; }));
  EXPECT_EQ(metrics_.bytesIn.load(), kSize + hello.size());
  EXPECT_EQ(metrics_.bytesOut.load(), kSize);
  EXPECT_EQ(errors(metrics_, ErrorKind::Relay), 0u);
}

INSTANTIATE_TEST_SUITE_P(Relay, EngineTransferTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Splice" : "Copy";
                         });

TEST_F(EngineTest, ConfigSwapKeepsOpenConnections) {
  Bytes hello = clientHello("a.example.com");
  Backend one(namedEcho("1", hello.size()));
  Backend two(namedEcho("2", hello.size()));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {one.endpoint()}}}, 1));
  Fd old = client();
  ASSERT_TRUE(sendAll(old.fd, hello));
  ASSERT_EQ(str(readExactly(old.fd, 1)), "1");

  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {two.endpoint()}}}, 2));
  Fd fresh = client();
  ASSERT_TRUE(sendAll(fresh.fd, hello));
  EXPECT_EQ(str(readExactly(fresh.fd, 1)), "2");
  // The old connection still talks to backend 1 through the old route.
  ASSERT_TRUE(sendAll(old.fd, std::string_view("hello again")));
  EXPECT_EQ(str(readExactly(old.fd, 11)), "hello again");

  // A removed route refuses new connections; the open ones go on.
  engine_->setConfig(makeConfig({{"other", {"other.example.com"}, {two.endpoint()}}}, 3));
  Fd refused = client();
  ASSERT_TRUE(sendAll(refused.fd, hello));
  EXPECT_TRUE(closedWithoutData(refused.fd));
  ASSERT_TRUE(sendAll(fresh.fd, std::string_view("x")));
  EXPECT_EQ(str(readExactly(fresh.fd, 1)), "x");
  EXPECT_EQ(engine_->config()->generation, 3);
  EXPECT_EQ(one.accepts(), 1);
  EXPECT_EQ(two.accepts(), 1);
}

// Site routes go to the https handler; one whose certificate is not loaded is refused.
TEST_F(EngineTest, SiteWithoutItsCertificateIsRefused) {
  Backend a(namedEcho("A", 0));
  start();
  engine_->setConfig(makeConfig(
      {{"web", {"web.example.com"}, {a.endpoint()}, ProxyProtocol::None, RouteKind::Site}}));
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, clientHello("web.example.com")));
  EXPECT_TRUE(closedWithoutData(c.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::TlsCertificate) == 1; }));
  EXPECT_EQ(a.accepts(), 0);
}

TEST_F(EngineTest, IdleTimeout) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  EngineOptions o;
  o.idleTimeout = 400ms;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  ASSERT_EQ(str(readExactly(c.fd, 1)), "A");
  // Traffic every 200 ms keeps it open past the idle limit...
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(200ms);
    ASSERT_TRUE(sendAll(c.fd, std::string_view("k")));
    ASSERT_EQ(str(readExactly(c.fd, 1)), "k");
  }
  // ...silence closes it.
  auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(readToEof(c.fd).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::IdleTimeout) == 1; }));
}

TEST_F(EngineTest, ConnectionLimit) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  EngineOptions o;
  o.maxConnections = 2;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c1 = client();
  Fd c2 = client();
  ASSERT_TRUE(sendAll(c1.fd, hello));
  ASSERT_TRUE(sendAll(c2.fd, hello));
  ASSERT_EQ(str(readExactly(c1.fd, 1)), "A");
  ASSERT_EQ(str(readExactly(c2.fd, 1)), "A");
  Fd c3 = client();
  EXPECT_TRUE(closedWithoutData(c3.fd));
  EXPECT_EQ(errors(metrics_, ErrorKind::ConnectionLimit), 1u);
  c1.reset();
  EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 1; }));
  Fd c4 = client();
  ASSERT_TRUE(sendAll(c4.fd, hello));
  EXPECT_EQ(str(readExactly(c4.fd, 1)), "A");
}

// ---------------------------------------------------------------------------------------------
// Per-source limits: the table alone, then through the engine with clients on 127.0.0.2/.3.

IpAddress ip(std::string_view text) {
  return *IpAddress::parse(text);
}

TEST(SourceLimits, IPv4ByAddressAndIPv6BySlash64) {
  EXPECT_EQ(SourceKey::of(ip("198.51.100.7")), SourceKey::of(ip("198.51.100.7")));
  EXPECT_NE(SourceKey::of(ip("198.51.100.7")), SourceKey::of(ip("198.51.100.8")));
  EXPECT_EQ(SourceKey::of(ip("2001:db8:1:2::1")), SourceKey::of(ip("2001:db8:1:2:ffff::9")));
  EXPECT_NE(SourceKey::of(ip("2001:db8:1:2::1")), SourceKey::of(ip("2001:db8:1:3::1")));
  // 0.0.0.1 and ::1 share their numeric bits but not their family.
  EXPECT_NE(SourceKey::of(ip("0.0.0.0")), SourceKey::of(ip("::")));
}

TEST(SourceLimits, CapsConnectionsAndPendingHellosPerSource) {
  SourceLimits limits(3, 2);
  SourceKey a = SourceKey::of(ip("192.0.2.1"));
  SourceKey b = SourceKey::of(ip("192.0.2.2"));
  EXPECT_EQ(limits.admit(a, true), SourceVerdict::Admitted);
  EXPECT_EQ(limits.admit(a, true), SourceVerdict::Admitted);
  EXPECT_EQ(limits.admit(a, true), SourceVerdict::TooManyHellos);
  EXPECT_EQ(limits.admit(b, true), SourceVerdict::Admitted);   // another source is not affected
  EXPECT_EQ(limits.admit(a, false), SourceVerdict::Admitted);  // :80 takes no hello slot
  EXPECT_EQ(limits.counts(a).connections, 3u);
  EXPECT_EQ(limits.counts(a).hellos, 2u);
  limits.helloDone(a);
  EXPECT_EQ(limits.admit(a, true), SourceVerdict::TooManyConnections);
  limits.release(a, false);
  EXPECT_EQ(limits.admit(a, true), SourceVerdict::Admitted);
  EXPECT_EQ(limits.counts(a).hellos, 2u);
  // Everything given back: no entry is left behind.
  limits.release(a, true);
  limits.release(a, true);
  limits.release(a, false);
  limits.release(b, true);
  EXPECT_EQ(limits.sources(), 0u);
  EXPECT_EQ(limits.counts(a).connections, 0u);
}

TEST(SourceLimits, ZeroTurnsACapOff) {
  SourceLimits hellosOnly(0, 1);
  SourceKey a = SourceKey::of(ip("192.0.2.1"));
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(hellosOnly.admit(a, false), SourceVerdict::Admitted);
  }
  EXPECT_EQ(hellosOnly.admit(a, true), SourceVerdict::Admitted);
  EXPECT_EQ(hellosOnly.admit(a, true), SourceVerdict::TooManyHellos);
}

TEST(SourceLimits, ConcurrentAdmitsNeverExceedTheCap) {
  SourceLimits limits(50, 0);
  SourceKey a = SourceKey::of(ip("192.0.2.1"));
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (limits.admit(a, false) == SourceVerdict::Admitted) {
          admitted.fetch_add(1);
          if (i % 2 == 0) {
            limits.release(a, false);
            admitted.fetch_sub(1);
          }
        }
        EXPECT_LE(limits.counts(a).connections, 50u);
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(static_cast<int>(limits.counts(a).connections), admitted.load());
  EXPECT_EQ(admitted.load(), 50);
}

// A client socket whose source address is `from` (any 127/8 address is local).
Fd connectFrom(const char* from, uint16_t port) {
  return connectTo(port, 10s, from);
}

// One client holding N slow hellos gets the next connection reset at accept; another address
// is served meanwhile, and once the hellos time out the first address is served again.
TEST_F(EngineTest, PendingHellosAreCappedPerSource) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  EngineOptions o;
  o.maxPendingHellosPerIp = 3;
  o.helloTimeout = 1500ms;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  std::vector<Fd> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(connectFrom("127.0.0.2", engine_->httpsPort()));
    ASSERT_GE(slow.back().fd, 0);
    ASSERT_TRUE(sendAll(slow.back().fd, hello.data(), 10));  // a hello that never completes
  }
  ASSERT_TRUE(eventually([&] { return engine_->openConnections() == 3; }));
  Fd refused = connectFrom("127.0.0.2", engine_->httpsPort());
  EXPECT_TRUE(closedWithoutData(refused.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::IpHelloLimit) == 1; }));
  Fd other = connectFrom("127.0.0.3", engine_->httpsPort());
  ASSERT_TRUE(sendAll(other.fd, hello));
  EXPECT_EQ(str(readExactly(other.fd, 1)), "A");
  // The slow ones end at the hello timeout, which gives their slots back.
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::HelloTimeout) == 3; }));
  Fd again = connectFrom("127.0.0.2", engine_->httpsPort());
  ASSERT_TRUE(sendAll(again.fd, hello));
  EXPECT_EQ(str(readExactly(again.fd, 1)), "A");
  EXPECT_EQ(errors(metrics_, ErrorKind::IpConnectionLimit), 0u);
  EXPECT_EQ(errors(metrics_, ErrorKind::ConnectionLimit), 0u);
}

// A completed hello gives its hello slot back at once; the connection slot stays until the
// connection ends.
TEST_F(EngineTest, ConnectionsAreCappedPerSource) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  EngineOptions o;
  o.maxConnectionsPerIp = 2;
  o.maxPendingHellosPerIp = 1;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c1 = connectFrom("127.0.0.2", engine_->httpsPort());
  ASSERT_TRUE(sendAll(c1.fd, hello));
  ASSERT_EQ(str(readExactly(c1.fd, 1)), "A");
  Fd c2 = connectFrom("127.0.0.2", engine_->httpsPort());
  ASSERT_TRUE(sendAll(c2.fd, hello));
  ASSERT_EQ(str(readExactly(c2.fd, 1)), "A");
  Fd c3 = connectFrom("127.0.0.2", engine_->httpsPort());
  EXPECT_TRUE(closedWithoutData(c3.fd));
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::IpConnectionLimit) == 1; }));
  Fd other = connectFrom("127.0.0.3", engine_->httpsPort());
  ASSERT_TRUE(sendAll(other.fd, hello));
  EXPECT_EQ(str(readExactly(other.fd, 1)), "A");
  // The two served connections still work.
  ASSERT_TRUE(sendAll(c1.fd, std::string_view("z")));
  EXPECT_EQ(str(readExactly(c1.fd, 1)), "z");
  c2.reset();
  EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 2; }));
  Fd c4 = connectFrom("127.0.0.2", engine_->httpsPort());
  ASSERT_TRUE(sendAll(c4.fd, hello));
  EXPECT_EQ(str(readExactly(c4.fd, 1)), "A");
  EXPECT_EQ(errors(metrics_, ErrorKind::IpHelloLimit), 0u);
}

// Regression: out of file descriptors, the worker shed a pending connection by closing its
// reserve fd and accepting into it; when the accept still failed (another thread of the process
// took the freed fd, or the freed number was above the limit) the reserve was lost for good, and
// from then on the level-triggered listener spun the worker at 100% CPU, counting 64
// connection_limit errors per turn. Now it stops watching the listener for a moment instead,
// and the waiting client is served once descriptors are free again.
TEST_F(EngineTest, OutOfFileDescriptorsPausesAcceptingInsteadOfSpinning) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  // A free slot below every fd the engine opens (its reserve among them), so that the reserve,
  // once closed, is above the lowered limit and cannot be accepted into or reopened.
  Fd hole(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_GE(hole.fd, 0);
  EngineOptions o;
  o.workers = 1;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_GE(c.fd, 0);
  hole.reset();
  int lowestFree = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(lowestFree, 0);
  ::close(lowestFree);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(lowestFree);  // no new fd anywhere in this process
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);

  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(engine_->httpsPort());
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int connected = ::connect(c.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  bool sent = connected == 0 && sendAll(c.fd, hello);
  std::this_thread::sleep_for(400ms);
  uint64_t refused = errors(metrics_, ErrorKind::ConnectionLimit);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_EQ(connected, 0);
  ASSERT_TRUE(sent);
  // One count per pause (100 ms), not tens of thousands of spins.
  EXPECT_LE(refused, 10u);
  // The client waited in the backlog and is served now.
  setTimeouts(c.fd, 5s);
  EXPECT_EQ(str(readExactly(c.fd, 1)), "A");
}

TEST_F(EngineTest, StopAcceptingAndDrain) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd ends = client();
  Fd lingers = client();
  ASSERT_TRUE(sendAll(ends.fd, hello));
  ASSERT_TRUE(sendAll(lingers.fd, hello));
  ASSERT_EQ(str(readExactly(ends.fd, 1)), "A");
  ASSERT_EQ(str(readExactly(lingers.fd, 1)), "A");
  engine_->stopAccepting();
  EXPECT_FALSE(connectTo(engine_->httpsPort()).fd >= 0);  // refused
  // Open connections still work while draining.
  ASSERT_TRUE(sendAll(ends.fd, std::string_view("z")));
  EXPECT_EQ(str(readExactly(ends.fd, 1)), "z");
  ends.reset();
  auto begin = std::chrono::steady_clock::now();
  // Regression: the proxy logged "closing N" from the open count read after the drain had
  // already cut them all (always 0); the drain now says how many it cut.
  size_t cut = 99;
  EXPECT_FALSE(engine_->drain(300ms, &cut));  // `lingers` never ends by itself
  EXPECT_GE(std::chrono::steady_clock::now() - begin, 280ms);
  EXPECT_EQ(cut, 1u);
  EXPECT_EQ(engine_->openConnections(), 0u);
  EXPECT_TRUE(closedWithoutData(lingers.fd));
  EXPECT_TRUE(engine_->drain(100ms, &cut));  // nothing left
  EXPECT_EQ(cut, 0u);
}

TEST_F(EngineTest, DrainReturnsTrueWhenConnectionsEndByThemselves) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  Fd c = client();
  ASSERT_TRUE(sendAll(c.fd, hello));
  ASSERT_EQ(str(readExactly(c.fd, 1)), "A");
  engine_->stopAccepting();
  std::thread closer([&] {
    std::this_thread::sleep_for(100ms);
    c.reset();
  });
  EXPECT_TRUE(engine_->drain(5s));
  closer.join();
}

TEST_F(EngineTest, AccessLogLine) {
  Bytes hello = clientHello("a.example.com");
  Backend a(namedEcho("A", hello.size()));
  char path[] = "/tmp/engine-test-log-XXXXXX";
  Fd log(::mkstemp(path));
  ::unlink(path);
  int saved = ::dup(2);
  ::dup2(log.fd, 2);
  accessLog_ = true;
  start();
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}}}));
  {
    Fd c = client();
    ASSERT_TRUE(sendAll(c.fd, hello));
    ASSERT_EQ(str(readExactly(c.fd, 1)), "A");
    c.reset();
    EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 0; }));
    Fd n = client();
    ASSERT_TRUE(sendAll(n.fd, clientHello("nope.example.com")));
    EXPECT_TRUE(closedWithoutData(n.fd));
    EXPECT_TRUE(eventually([&] { return engine_->openConnections() == 0; }));
  }
  engine_.reset();
  ::dup2(saved, 2);
  ::close(saved);
  std::string text(8192, '\0');
  ssize_t n = ::pread(log.fd, text.data(), text.size(), 0);
  text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  std::string want =
      "sni=a.example.com route=\"passthrough a\" backend=127.0.0.1:" + std::to_string(a.port()) +
      " in=" + std::to_string(hello.size()) + " out=1 ms=";
  EXPECT_NE(text.find("access client=127.0.0.1:"), std::string::npos) << text;
  EXPECT_NE(text.find(want), std::string::npos) << text;
  EXPECT_NE(text.find("outcome=ok\n"), std::string::npos) << text;
  EXPECT_NE(text.find("sni=nope.example.com route=\"-\" backend=- in=0 out=0 ms="),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("outcome=no_route\n"), std::string::npos) << text;
}

TEST_F(EngineTest, HttpListenerRedirectsKnownHosts) {
  EngineOptions o;
  o.http = loopbackAnyPort();
  start(o);
  ASSERT_TRUE(engine_->httpPort().has_value());
  engine_->setConfig(makeConfig({{"a", {"a.example.com", "*.apps.example.com"}, {}}}));
  auto request = [&](std::string_view req) {
    Fd c = connectTo(*engine_->httpPort());
    EXPECT_TRUE(sendAll(c.fd, req));
    std::optional<std::string> reply = readToEof(c.fd);
    return reply.value_or("<reset>");
  };
  std::string r = request("GET /x?y=1 HTTP/1.1\r\nHost: A.Example.com:80\r\nAccept: */*\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 Permanent Redirect\r\n")) << r;
  EXPECT_NE(r.find("\r\nLocation: https://a.example.com/x?y=1\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos) << r;
  r = request("HEAD / HTTP/1.0\r\nHost: w.apps.example.com\r\n\r\n");
  EXPECT_NE(r.find("Location: https://w.apps.example.com/\r\n"), std::string::npos) << r;
  r = request("GET / HTTP/1.1\r\nHost: other.example.com\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 404 ")) << r;
  // One trailing dot is the same name; two are no name (as the ClientHello parser has it), not
  // a redirect to "a.example.com." (found by an attacker's read).
  r = request("GET /p HTTP/1.1\r\nHost: a.example.com.\r\n\r\n");
  EXPECT_NE(r.find("\r\nLocation: https://a.example.com/p\r\n"), std::string::npos) << r;
  r = request("GET /p HTTP/1.1\r\nHost: a.example.com..\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 404 ")) << r;
  r = request("GET / HTTP/1.1\r\nHost: a.example.com\r\nHost: b.example.com\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 400 ")) << r;
  r = request(std::string(9000, 'A'));
  EXPECT_TRUE(r.starts_with("HTTP/1.1 400 ")) << r;
  // Bytes after the head (a body the redirect ignores) do not turn the answer into a reset.
  r = request("POST / HTTP/1.1\r\nHost: a.example.com\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 ")) << r;
  EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::HttpMalformed) == 2; }));
}

// ACME HTTP-01: a pending token is answered before any redirect, for any Host; an unknown
// token or another method falls through to the redirect (or 404).
TEST_F(EngineTest, HttpListenerAnswersAcmeChallengesBeforeRedirects) {
  EngineOptions o;
  o.http = loopbackAnyPort();
  auto board = std::make_shared<AcmeChallengeBoard>();
  o.acmeChallenges = board;
  start(o);
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {}}}));
  auto request = [&](std::string_view req) {
    Fd c = connectTo(*engine_->httpPort());
    EXPECT_TRUE(sendAll(c.fd, req));
    return readToEof(c.fd).value_or("<reset>");
  };
  const std::string get =
      "GET /.well-known/acme-challenge/tok_1-A HTTP/1.1\r\nHost: a.example.com\r\n\r\n";
  std::string r = request(get);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 ")) << r;  // not pending (yet)
  EXPECT_TRUE(board->replace({{"tok_1-A", "tok_1-A.thumbprint"}}, {}));
  EXPECT_FALSE(board->replace({{"tok_1-A", "tok_1-A.thumbprint"}}, {}));
  r = request(get);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\nContent-Length: 18\r\nConnection: close\r\n\r\ntok_1-A.thumbprint"))
      << r;
  r = request("HEAD /.well-known/acme-challenge/tok_1-A HTTP/1.1\r\nHost: new.example.com\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
  r = request("GET /.well-known/acme-challenge/tok_1-B HTTP/1.1\r\nHost: x.example.com\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 404 ")) << r;
  r = request("POST /.well-known/acme-challenge/tok_1-A HTTP/1.1\r\nHost: a.example.com\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 ")) << r;
  EXPECT_TRUE(board->replace({}, {}));
  r = request(get);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 ")) << r;
}

TEST(AcmeChallengeToken, OnlyBase64urlTokensInTheWellKnownPath) {
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/aB-_9"), "aB-_9");
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/"), "");
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/a?b=1"), "");
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/a/b"), "");
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/a%2e"), "");
  EXPECT_EQ(acmeChallengeToken("/x/.well-known/acme-challenge/a"), "");
  EXPECT_EQ(acmeChallengeToken("/.well-known/acme-challenge/" + std::string(257, 'a')), "");
}

// A site's names are redirected only with redirect_http = true; a site without it serves
// nothing on :80 (404), as nginx would with no server block for the name.
TEST_F(EngineTest, HttpListenerRedirectsOnlySitesThatAskForIt) {
  EngineOptions o;
  o.http = loopbackAnyPort();
  start(o);
  RouteDef on{"on", {"on.example.com"}, {}, ProxyProtocol::None, RouteKind::Site};
  on.redirectHttp = true;
  RouteDef off{"off", {"off.example.com"}, {}, ProxyProtocol::None, RouteKind::Site};
  engine_->setConfig(makeConfig({on, off}));
  auto request = [&](std::string_view host) {
    Fd c = connectTo(*engine_->httpPort());
    EXPECT_TRUE(sendAll(c.fd, "GET /p HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"));
    return readToEof(c.fd).value_or("<reset>");
  };
  std::string r = request("on.example.com");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 308 ")) << r;
  EXPECT_NE(r.find("\r\nLocation: https://on.example.com/p\r\n"), std::string::npos) << r;
  r = request("off.example.com");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 404 ")) << r;
}

TEST_F(EngineTest, Ipv6ListenerAndClient) {
  Fd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  if (probe.fd < 0 || ::bind(probe.fd, reinterpret_cast<sockaddr*>(&sin6), sizeof sin6) != 0) {
    GTEST_SKIP() << "no IPv6 loopback here";
  }
  probe.reset();
  Bytes hello = clientHello("a.example.com");
  std::mutex mu;
  std::optional<ProxyHeader> seen;
  Backend a([&](int fd) {
    ProxyHeaderDecoder decoder;
    uint8_t byte;
    while (decoder.status() == ProxyHeaderDecoder::Status::NeedMore &&
           ::recv(fd, &byte, 1, 0) == 1) {
      decoder.feed(std::span<const uint8_t>(&byte, 1));
    }
    if (decoder.status() == ProxyHeaderDecoder::Status::Done &&
        readExactly(fd, hello.size()) == hello) {
      std::lock_guard lock(mu);
      seen = decoder.header();
      sendAll(fd, std::string_view("A"));
    }
  });
  EngineOptions o;
  o.https = Endpoint{*IpAddress::parse("::1"), 0};
  o.workers = 1;
  o.accessLog = false;
  auto started = Engine::start(o, metrics_);
  ASSERT_TRUE(started.ok()) << started.error().message;
  engine_ = std::move(started.value());
  engine_->setConfig(makeConfig({{"a", {"a.example.com"}, {a.endpoint()}, ProxyProtocol::V2}}));
  Fd c(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sin6.sin6_port = htons(engine_->httpsPort());
  ASSERT_EQ(::connect(c.fd, reinterpret_cast<sockaddr*>(&sin6), sizeof sin6), 0);
  setTimeouts(c.fd, 10s);
  ASSERT_TRUE(sendAll(c.fd, hello));
  EXPECT_EQ(str(readExactly(c.fd, 1)), "A");
  std::lock_guard lock(mu);
  ASSERT_TRUE(seen && seen->source && seen->destination);
  EXPECT_EQ(seen->family, ProxyHeader::Family::Inet6);
  EXPECT_TRUE(seen->source->str().starts_with("[::1]:")) << seen->source->str();
  EXPECT_EQ(seen->destination->str(), "[::1]:" + std::to_string(engine_->httpsPort()));
}

TEST_F(EngineTest, BadOptionsAndBusyPortAreClearErrors) {
  EngineOptions o;
  o.https = loopbackAnyPort();
  o.bufferBytes = 4096;
  auto r = Engine::start(o, metrics_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("buffer"), std::string::npos);

  // A port held by a socket without SO_REUSEPORT cannot be shared.
  ClosedPort held;
  o.bufferBytes = 16384;
  o.https = held.endpoint();
  o.workers = 1;
  r = Engine::start(o, metrics_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bind 127.0.0.1:" + std::to_string(held.port)),
            std::string::npos)
      << r.error().message;
}

// ---------------------------------------------------------------------------------------------
// Network namespaces: two tenants with the same private address. Needs CAP_SYS_ADMIN, so it
// runs in the lab (tools/lab run), where the test may create namespaces of its own.

// A backend listening on 127.0.0.1:port inside a new anonymous network namespace, reachable
// through a symlink `<dir>/<name>` to the namespace's fd (a stand-in for /run/netns/NAME).
class NamespacedBackend {
 public:
  NamespacedBackend(const std::string& dir, const std::string& name, uint16_t port,
                    const std::string& reply) {
    std::thread([&] {
      // unshare on a helper thread: only that thread moves, then returns home.
      int home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
      if (::unshare(CLONE_NEWNET) != 0) {
        return;
      }
      nsFd_ = Fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
      Fd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
      ifreq ifr{};
      std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
      ::ioctl(ctl.fd, SIOCGIFFLAGS, &ifr);
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
      ::ioctl(ctl.fd, SIOCSIFFLAGS, &ifr);
      listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in sin{};
      sin.sin_family = AF_INET;
      sin.sin_port = htons(port);
      sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ok_ = ::bind(listener_.fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0 &&
            ::listen(listener_.fd, 16) == 0;
      ::setns(home, CLONE_NEWNET);
      ::close(home);
    }).join();
    std::string link = dir + "/" + name;
    std::filesystem::create_symlink(
        "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(nsFd_.fd), link);
    server_ = std::thread([this, reply] {
      while (!stop_) {
        pollfd p{listener_.fd, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0) {
          continue;
        }
        Fd c(::accept4(listener_.fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (c.fd >= 0) {
          sendAll(c.fd, reply);
        }
      }
    });
  }
  ~NamespacedBackend() {
    stop_ = true;
    server_.join();
  }
  bool ok() const { return ok_; }

 private:
  Fd nsFd_;
  Fd listener_;
  bool ok_ = false;
  std::atomic<bool> stop_{false};
  std::thread server_;
};

TEST_F(EngineTest, NamespacesIsolateTenantsWithTheSameAddress) {
  if (std::getenv("EDGEPLANE_LAB") == nullptr) {
    GTEST_SKIP() << "creates network namespaces: run in the lab (ctest -L lab)";
  }
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("engine-netns-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  constexpr uint16_t kPort = 8443;
  {
    NamespacedBackend tenantA(dir, "ep-tenant-a", kPort, "tenant-a");
    NamespacedBackend tenantB(dir, "ep-tenant-b", kPort, "tenant-b");
    ASSERT_TRUE(tenantA.ok());
    ASSERT_TRUE(tenantB.ok());
    EngineOptions o;
    o.netnsDir = dir.string();
    start(o);
    Endpoint same = *Endpoint::parse("127.0.0.1:" + std::to_string(kPort));
    RouteDef a{"a", {"a.example.com"}, {same}};
    a.netns = "ep-tenant-a";
    RouteDef b{"b", {"b.example.com"}, {same}};
    b.netns = "ep-tenant-b";
    RouteDef missing{"m", {"m.example.com"}, {same}};
    missing.netns = "ep-gone";
    engine_->setConfig(makeConfig({a, b, missing}));
    for (int i = 0; i < 3; ++i) {
      Fd ca = client();
      ASSERT_TRUE(sendAll(ca.fd, clientHello("a.example.com")));
      EXPECT_EQ(str(readExactly(ca.fd, 8)), "tenant-a");
      Fd cb = client();
      ASSERT_TRUE(sendAll(cb.fd, clientHello("b.example.com")));
      EXPECT_EQ(str(readExactly(cb.fd, 8)), "tenant-b");
    }
    // A namespace that does not exist fails that backend only.
    Fd cm = client();
    ASSERT_TRUE(sendAll(cm.fd, clientHello("m.example.com")));
    EXPECT_TRUE(closedWithoutData(cm.fd));
    EXPECT_TRUE(eventually([&] { return errors(metrics_, ErrorKind::UpstreamConnect) == 1; }));
    Fd ca = client();
    ASSERT_TRUE(sendAll(ca.fd, clientHello("a.example.com")));
    EXPECT_EQ(str(readExactly(ca.fd, 8)), "tenant-a");
    // The name now refers to another namespace (deleted and recreated by the reconciler): new
    // connections go to the new one, not to what the engine had cached (fd, spare sockets).
    std::filesystem::path linkA = dir / "ep-tenant-a";
    std::filesystem::path target = std::filesystem::read_symlink(dir / "ep-tenant-b");
    std::filesystem::remove(linkA);
    std::filesystem::create_symlink(target, linkA);
    for (int i = 0; i < 2; ++i) {
      Fd again = client();
      ASSERT_TRUE(sendAll(again.fd, clientHello("a.example.com")));
      EXPECT_EQ(str(readExactly(again.fd, 8)), "tenant-b");
    }
    engine_.reset();
  }
  std::filesystem::remove_all(dir);
}

// The cost of the two setns calls around socket(): printed, and bounded loosely.
TEST(NetnsSocket, SetnsCost) {
  if (std::getenv("EDGEPLANE_LAB") == nullptr) {
    GTEST_SKIP() << "creates a network namespace: run in the lab (ctest -L lab)";
  }
  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("engine-setns-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    NamespacedBackend other(dir, "ep-x", 9000, "");
    ASSERT_TRUE(other.ok());
    NetnsSocketFactory factory(dir.string());
    ASSERT_EQ(factory.init(), 0);
    constexpr int kRounds = 2000;
    auto time = [&](std::string_view ns) {
      auto begin = std::chrono::steady_clock::now();
      for (int i = 0; i < kRounds; ++i) {
        int fd = factory.tcpSocket(ns, AF_INET);
        EXPECT_GE(fd, 0);
        ::close(fd);
      }
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - begin)
                 .count() /
             kRounds;
    };
    double plain = time("");
    double inNs = time("ep-x");
    std::printf("socket()+close: %.2f us in the own namespace, %.2f us via setns (x2)\n", plain,
                inNs);
    // One setns pair per batch of sockets.
    EXPECT_EQ(factory.setnsCalls(), 2u * ((kRounds + NetnsSocketFactory::kSpareBatch - 1) /
                                          NetnsSocketFactory::kSpareBatch));
    EXPECT_LT(inNs, 1000.0);
    EXPECT_EQ(factory.tcpSocket("../etc", AF_INET), -EINVAL);
    EXPECT_EQ(factory.tcpSocket("ep-missing", AF_INET), -ENOENT);
    // A deleted namespace is let go of (fd and spare sockets), so it can really go away.
    EXPECT_FALSE(factory.empty());
    std::filesystem::remove(dir / "ep-x");
    factory.sweep();
    EXPECT_TRUE(factory.empty());
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgeplane::proxy
