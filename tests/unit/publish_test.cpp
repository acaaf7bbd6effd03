// Tests of snapshot publishing (store generations, the files published for the proxy) and the
// reconciler's requests to the proxy's admin API.
#include "reconciler/cli/publish.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "reconciler/cli/proxy_admin.h"
#include "schema/proxy_feed.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::cli {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::TempDir;

std::unique_ptr<Store> openStore(const fs::path& dir) {
  auto store = Store::open(dir / "state");
  EXPECT_TRUE(store.ok()) << store.error().message;
  return store.ok() ? std::move(store.value()) : nullptr;
}

ProxySnapshot sample() {
  Desired d;
  Namespace ns;
  ns.name = "tenant-a";
  d.namespaces = {ns};
  Passthrough p;
  p.name = "secure";
  p.namespace_name = "tenant-a";
  p.hostnames = {"secure.example.com"};
  p.backends = {*Endpoint::parse("10.50.0.12:443")};
  Site s;
  s.name = "www";
  s.namespace_name = "tenant-a";
  s.hostnames = {"www.example.com"};
  s.backends = {*Endpoint::parse("10.50.0.12:8080")};
  s.certificate = "www";
  d.passthroughs = {p};
  d.sites = {s};
  ProxySnapshot out = buildSnapshot(d, "edge-1", std::nullopt);
  out.certificates = {SnapshotCertificate{"www",
                                          std::string(64, 'a'),
                                          "/var/lib/edgeplane/certs/www/1/cert.pem",
                                          "/var/lib/edgeplane/certs/www/1/key.pem",
                                          {"www.example.com"},
                                          1900000000}};
  return out;
}

// ---- publishApiKeys ----

// The api_keys table follows the snapshot's keys, each first seen at the commit that brought it.
TEST(PublishApiKeys, TheTableFollowsTheSnapshotAndKeepsFirstSeen) {
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_NE(store, nullptr);
  ProxySnapshot s;
  SnapshotApiKey worker{"k7Hq2xPz",         "Ping", std::string(64, 'a'), {"ping"}, {"/api/r"},
                        ApiKeyRole::Worker, true};
  SnapshotApiKey admin{"admin001", "Admin", std::string(64, 'b'), {}, {}, ApiKeyRole::Admin, false};
  s.api_keys = {admin, worker};
  ASSERT_TRUE(publishApiKeys(*store, s, std::string("c1"), 100));
  s.api_keys = {worker};
  ASSERT_TRUE(publishApiKeys(*store, s, std::string("c2"), 200));
  auto keys = store->listApiKeys();
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  ASSERT_EQ(keys->size(), 1u);
  ApiKeyRecord expected{"k7Hq2xPz", "Ping", std::string(64, 'a'), {"ping"}, "worker", true};
  expected.endpoints = {"/api/r"};
  EXPECT_EQ(static_cast<const ApiKeyRecord&>(keys->front()), expected);
  EXPECT_EQ(keys->front().firstSeenCommit, "c1");
  EXPECT_EQ(apiKeyRecords(ProxySnapshot{}), std::vector<ApiKeyRecord>{});
  s.api_keys = {admin};
  EXPECT_EQ(apiKeyRecords(s).front().role, "admin");
  EXPECT_FALSE(apiKeyRecords(s).front().enabled);
}

// ---- publishSnapshot ----

TEST(PublishSnapshot, WritesGenerationOneThenSkipsAnUnchangedSnapshot) {
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_NE(store, nullptr);
  RunStart start;
  start.configSource = "test";
  start.startedAt = 1000;
  auto run = store->beginRun(start);
  ASSERT_TRUE(run.ok()) << run.error().message;

  const ProxySnapshot s = sample();
  auto first = publishSnapshot(*store, s, *run, 5000);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->generation, 1);
  EXPECT_TRUE(first->changed);
  EXPECT_EQ(first->routes, 2u);

  auto latest = store->latestSnapshot();
  ASSERT_TRUE(latest.ok()) << latest.error().message;
  ASSERT_TRUE(latest->has_value());
  EXPECT_EQ((*latest)->generation, 1);
  EXPECT_EQ((*latest)->body, snapshotToJson(s));
  EXPECT_EQ((*latest)->createdAt, 5000);
  EXPECT_EQ((*latest)->runId, *run);
  auto decoded = snapshotFromJson((*latest)->body);
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, s);

  // The same snapshot again, later and from another run: nothing written.
  auto again = publishSnapshot(*store, s, std::nullopt, 9000);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->generation, 1);
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(again->routes, 2u);
  auto stillLatest = store->latestSnapshot();
  ASSERT_TRUE(stillLatest.ok() && stillLatest->has_value());
  EXPECT_EQ((*stillLatest)->createdAt, 5000);
  EXPECT_EQ((*stillLatest)->runId, *run);
  auto generation = store->latestGeneration();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(*generation, 1);
}

TEST(PublishSnapshot, ADifferentSnapshotGetsTheNextGeneration) {
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_NE(store, nullptr);
  const ProxySnapshot a = sample();
  ProxySnapshot b = a;
  b.routes[0].backends.push_back(*Endpoint::parse("10.50.0.13:443"));

  auto first = publishSnapshot(*store, a, std::nullopt, 1);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_EQ(first->generation, 1);
  auto second = publishSnapshot(*store, b, std::nullopt, 2);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->generation, 2);
  EXPECT_TRUE(second->changed);
  auto latest = store->latestSnapshot();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*latest)->body, snapshotToJson(b));

  // Back to the first: it differs from the latest, so it is a new generation (3), not 1.
  auto third = publishSnapshot(*store, a, std::nullopt, 3);
  ASSERT_TRUE(third.ok()) << third.error().message;
  EXPECT_EQ(third->generation, 3);
  EXPECT_TRUE(third->changed);

  // A new commit alone is a change too: the proxy reports which commit it serves.
  ProxySnapshot c = a;
  c.commit = "0123456789abcdef0123456789abcdef01234567";
  auto fourth = publishSnapshot(*store, c, std::nullopt, 4);
  ASSERT_TRUE(fourth.ok()) << fourth.error().message;
  EXPECT_EQ(fourth->generation, 4);
}

TEST(PublishSnapshot, AnEmptyRoutingTableIsPublished) {
  // Every route withdrawn (all tenants suspended) must reach the proxy like any change.
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(publishSnapshot(*store, sample(), std::nullopt, 1).ok());
  ProxySnapshot empty;
  empty.host = "edge-1";
  auto r = publishSnapshot(*store, empty, std::nullopt, 2);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->generation, 2);
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(r->routes, 0u);
}

TEST(PublishSnapshot, ASnapshotTheProxyWouldRefuseIsNotWritten) {
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_NE(store, nullptr);
  ProxySnapshot bad = sample();
  bad.routes[0].hostnames = {"not a hostname"};
  auto r = publishSnapshot(*store, bad, std::nullopt, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.error().retryable);
  EXPECT_NE(r.error().message.find("would be refused by the proxy"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("routes[0].hostnames[0]"), std::string::npos)
      << r.error().message;
  auto generation = store->latestGeneration();
  ASSERT_TRUE(generation.ok());
  EXPECT_EQ(*generation, 0);
}

// ---- notifyProxy against a tiny in-test HTTP server ----

// Listens on a unix socket or 127.0.0.1:0; one thread serves connections one at a time: reads
// the request head, records its first line, and answers `response` — or, when silent, keeps
// the connection open without a word until the server is destroyed.
class TestServer {
 public:
  enum class Kind { Unix, Tcp };
  TestServer(Kind kind, const fs::path& dir, std::string response, bool silent = false,
             bool accept = true)
      : response_(std::move(response)), silent_(silent) {
    EXPECT_EQ(::pipe2(stop_, O_CLOEXEC), 0);
    if (kind == Kind::Unix) {
      const std::string path = (dir / "admin.sock").string();
      listen_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      std::strncpy(un.sun_path, path.c_str(), sizeof(un.sun_path) - 1);
      EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0)
          << std::strerror(errno);
      address_ = "unix:" + path;
    } else {
      listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(listen_, reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0)
          << std::strerror(errno);
      socklen_t len = sizeof(in);
      EXPECT_EQ(::getsockname(listen_, reinterpret_cast<sockaddr*>(&in), &len), 0);
      address_ = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
    }
    EXPECT_EQ(::listen(listen_, 8), 0) << std::strerror(errno);
    if (accept) {
      thread_ = std::thread([this] { serve(); });
    }
  }
  ~TestServer() {
    (void)!::write(stop_[1], "x", 1);
    if (thread_.joinable()) {
      thread_.join();
    }
    ::close(listen_);
    ::close(stop_[0]);
    ::close(stop_[1]);
  }
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  const std::string& address() const { return address_; }
  std::string head() const {
    std::lock_guard<std::mutex> lock(mu_);
    return head_;
  }
  std::string requestLine() const {
    const std::string h = head();
    return h.substr(0, h.find("\r\n"));
  }
  int connections() const { return connections_.load(); }

 private:
  // Waits for fd or the stop pipe; false when stopping (or after 10 s, so a test never hangs).
  bool wait(int fd) const {
    pollfd p[2] = {{fd, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    return ::poll(p, 2, 10000) > 0 && (p[1].revents & POLLIN) == 0;
  }

  void serve() {
    while (wait(listen_)) {
      const int c = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      ++connections_;
      std::string got;
      char buf[512];
      while (got.find("\r\n\r\n") == std::string::npos && wait(c)) {
        const ssize_t n = ::read(c, buf, sizeof(buf));
        if (n <= 0) {
          break;
        }
        got.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        head_ = got;
      }
      if (silent_) {
        (void)wait(c);  // until the test is over
      } else {
        (void)!::send(c, response_.data(), response_.size(), MSG_NOSIGNAL);
      }
      ::close(c);
    }
  }

  std::string response_;
  bool silent_;
  int listen_ = -1;
  int stop_[2] = {-1, -1};
  std::string address_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::string head_;
  std::atomic<int> connections_{0};
};

constexpr std::string_view kOk = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

class NotifyProxy : public ::testing::TestWithParam<TestServer::Kind> {
 protected:
  TempDir dir_;
};

TEST_P(NotifyProxy, PostsReloadAndAcceptsA2xx) {
  TestServer server(GetParam(), dir_.path(), std::string(kOk));
  auto r = notifyProxy(server.address(), 2000ms);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(server.requestLine(), "POST /api/v1/reload HTTP/1.1");
  const std::string head = server.head();
  EXPECT_NE(head.find("\r\nContent-Length: 0\r\n"), std::string::npos) << head;
  const std::string host = GetParam() == TestServer::Kind::Unix ? "localhost" : server.address();
  EXPECT_NE(head.find("\r\nHost: " + host + "\r\n"), std::string::npos) << head;
  EXPECT_EQ(server.connections(), 1);
}

// A TCP admin API needs the proxy's token: the agent sends it from its owner-only file, and
// refuses a file others may read (without sending anything).
TEST_P(NotifyProxy, SendsTheAdminTokenFromItsFile) {
  TestServer server(GetParam(), dir_.path(), std::string(kOk));
  const std::filesystem::path file = dir_.path() / "admin.token";
  std::ofstream(file) << "0123456789abcdef0123\n";
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  auto loose = notifyProxy(server.address(), 2000ms, file);
  ASSERT_FALSE(loose.ok());
  EXPECT_NE(loose.error().message.find("0644"), std::string::npos) << loose.error().message;
  EXPECT_EQ(server.connections(), 0);
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  auto r = notifyProxy(server.address(), 2000ms, file);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(server.head().find("\r\nAuthorization: Bearer 0123456789abcdef0123\r\n"),
            std::string::npos)
      << server.head();
  // Without a file, no Authorization at all.
  ASSERT_TRUE(notifyProxy(server.address(), 2000ms).ok());
  EXPECT_EQ(server.head().find("Authorization"), std::string::npos) << server.head();
}

TEST_P(NotifyProxy, A204WithoutReasonIsSuccessToo) {
  TestServer server(GetParam(), dir_.path(), "HTTP/1.0 204\r\n\r\n");
  auto r = notifyProxy(server.address(), 2000ms);
  EXPECT_TRUE(r.ok()) << r.error().message;
}

TEST_P(NotifyProxy, ANon2xxAnswerIsAnError) {
  TestServer server(GetParam(), dir_.path(),
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  auto r = notifyProxy(server.address(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_NE(r.error().message.find("answered \"503 Service Unavailable\""), std::string::npos)
      << r.error().message;
  EXPECT_EQ(server.requestLine(), "POST /api/v1/reload HTTP/1.1");
}

TEST_P(NotifyProxy, SomethingOtherThanHttpIsAnError) {
  TestServer server(GetParam(), dir_.path(), std::string("SSH-2.0-OpenSSH\x01\r\n", 18));
  auto r = notifyProxy(server.address(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not an HTTP answer: \"SSH-2.0-OpenSSH?\""), std::string::npos)
      << r.error().message;
}

// A Content-Length that is not a decimal number makes the answer unreadable; it was read up to
// its first non-digit (or ninth digit), and the body cut to that (a review's finding).
TEST_P(NotifyProxy, AMalformedContentLengthIsAnError) {
  int n = 0;
  for (const std::string length : {"2x", "2 2", "+2", "2, 2", "123456789012345678901234"}) {
    const fs::path dir = dir_.path() / std::to_string(n++);
    fs::create_directory(dir);
    TestServer server(GetParam(), dir,
                      "HTTP/1.1 200 OK\r\nContent-Length: " + length + "\r\n\r\nhello");
    auto r = proxyAdminRequest(server.address(), "GET", "/api/v1/listeners", 2000ms, std::nullopt);
    ASSERT_FALSE(r.ok()) << length << ": read as \"" << r->body << "\"";
    EXPECT_TRUE(r.error().retryable);
    EXPECT_NE(r.error().message.find("malformed Content-Length \"" + length + "\""),
              std::string::npos)
        << r.error().message;
  }
  // The largest value is one; the body, shorter, is all of it.
  {
    const fs::path dir = dir_.path() / "max";
    fs::create_directory(dir);
    TestServer server(GetParam(), dir,
                      "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nhello");
    auto r = proxyAdminRequest(server.address(), "GET", "/api/v1/listeners", 2000ms, std::nullopt);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->body, "hello");
  }
  // A well-formed one, in any case and with blanks around it, still bounds the body.
  TestServer server(GetParam(), dir_.path(),
                    "HTTP/1.1 200 OK\r\ncontent-LENGTH: \t02 \r\nX-A: 1\r\n\r\nhello");
  auto r = proxyAdminRequest(server.address(), "GET", "/api/v1/listeners", 2000ms, std::nullopt);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "he");
}

TEST_P(NotifyProxy, AConnectionClosedWithoutAnswerIsAnError) {
  TestServer server(GetParam(), dir_.path(), "");
  auto r = notifyProxy(server.address(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("closed without an answer"), std::string::npos)
      << r.error().message;
}

TEST_P(NotifyProxy, AServerThatNeverAnswersTimesOut) {
  TestServer server(GetParam(), dir_.path(), "", /*silent=*/true);
  const auto start = Clock::now();
  auto r = notifyProxy(server.address(), 300ms);
  const auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_NE(r.error().message.find("no answer within 300ms"), std::string::npos)
      << r.error().message;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2500ms);
  EXPECT_EQ(server.requestLine(), "POST /api/v1/reload HTTP/1.1");  // it was sent
}

TEST_P(NotifyProxy, AServerThatNeverAcceptsTimesOut) {
  // Listening, never accepting: the kernel completes the connection from the backlog.
  TestServer server(GetParam(), dir_.path(), "", /*silent=*/false, /*accept=*/false);
  const auto start = Clock::now();
  auto r = notifyProxy(server.address(), 300ms);
  const auto took = Clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no answer within 300ms"), std::string::npos)
      << r.error().message;
  EXPECT_LT(took, 2500ms);
}

INSTANTIATE_TEST_SUITE_P(UnixAndTcp, NotifyProxy,
                         ::testing::Values(TestServer::Kind::Unix, TestServer::Kind::Tcp),
                         [](const auto& param) {
                           return param.param == TestServer::Kind::Unix ? "Unix" : "Tcp";
                         });

TEST(NotifyProxyNothingListening, UnixSocketPathAbsent) {
  TempDir dir;
  const auto start = Clock::now();
  auto r = notifyProxy("unix:" + (dir.path() / "no.sock").string(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_NE(r.error().message.find("connect: No such file or directory"), std::string::npos)
      << r.error().message;
  EXPECT_LT(Clock::now() - start, 1000ms);
}

TEST(NotifyProxyNothingListening, TcpPortClosed) {
  // A port that was just free: bound, never listened on, so connects are refused.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof(in)), 0);
  socklen_t len = sizeof(in);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len), 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(in.sin_port));
  const auto start = Clock::now();
  auto r = notifyProxy(address, 2000ms);
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_NE(r.error().message.find("connect: Connection refused"), std::string::npos)
      << r.error().message;
  EXPECT_LT(Clock::now() - start, 1000ms);
}

// The admin socket is in a directory the proxy writes (<state-dir>/proxy): a link planted in its
// place would send root's requests to another socket of the host, which the proxy's own
// namespace may not even show. Not followed (a review's finding).
TEST(NotifyProxyNothingListening, ALinkInPlaceOfTheSocketIsNotFollowed) {
  TempDir dir;
  TestServer server(TestServer::Kind::Unix, dir.path(), std::string(kOk));
  const fs::path link = dir.path() / "planted.sock";
  fs::create_symlink(dir.path() / "admin.sock", link);
  auto r = notifyProxy("unix:" + link.string(), 2000ms);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  EXPECT_EQ(server.connections(), 0);
  // Not a socket at all: refused before any connect.
  std::ofstream(dir.path() / "file.sock") << "x";
  auto f = notifyProxy("unix:" + (dir.path() / "file.sock").string(), 2000ms);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("not a socket"), std::string::npos) << f.error().message;
  // The socket itself still works.
  EXPECT_TRUE(notifyProxy(server.address(), 2000ms).ok());
}

TEST(NotifyProxyAddress, MalformedAddressesAreTerminalErrors) {
  for (const std::string& address :
       std::vector<std::string>{"", "localhost:8080", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536",
                                "unix:", "unix:/" + std::string(200, 'x'), "tcp://127.0.0.1:80"}) {
    auto r = notifyProxy(address, 100ms);
    ASSERT_FALSE(r.ok()) << address;
    EXPECT_FALSE(r.error().retryable) << address;
    EXPECT_NE(r.error().message.find("proxy admin address"), std::string::npos)
        << r.error().message;
  }
}

// ---- queryProxyListeners: GET /api/v1/listeners ----

TEST(QueryProxyListeners, ReadsTheProxysListeners) {
  TempDir dir;
  const std::string body = R"({"https":"0.0.0.0:443","http":"off","dns":"[::1]:53"})";
  TestServer server(TestServer::Kind::Unix, dir.path(),
                    "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                        "\r\nContent-Type: application/json\r\n\r\n" + body);
  auto r = queryProxyListeners(server.address(), 2000ms);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(server.requestLine(), "GET /api/v1/listeners HTTP/1.1");
  EXPECT_EQ(r->https, "0.0.0.0:443");
  EXPECT_EQ(r->http, "off");
  EXPECT_EQ(r->dns, "[::1]:53");
}

TEST(QueryProxyListeners, AnOlderProxyOrABadAnswerIsAnError) {
  TempDir dir;
  {
    // A proxy without the endpoint answers 404.
    TestServer server(TestServer::Kind::Unix, dir.path(),
                      "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}");
    auto r = queryProxyListeners(server.address(), 2000ms);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("answered \"404 Not Found\""), std::string::npos)
        << r.error().message;
  }
  fs::remove(dir.path() / "admin.sock");
  {
    TestServer server(TestServer::Kind::Unix, dir.path(),
                      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{\"http\":1}");
    auto r = queryProxyListeners(server.address(), 2000ms);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("has no \"http\""), std::string::npos) << r.error().message;
  }
  fs::remove(dir.path() / "admin.sock");
  {
    // A body cut short by the close: not JSON.
    TestServer server(TestServer::Kind::Unix, dir.path(),
                      "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{\"http\":\"o");
    auto r = queryProxyListeners(server.address(), 2000ms);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find("not a JSON object"), std::string::npos) << r.error().message;
  }
}

// ---- queryProxyUsage: GET /api/v1/apikeys ----

TEST(QueryProxyUsage, ReadsEachKeysUsage) {
  TempDir dir;
  const std::string body =
      R"([{"id":"k7Hq2xPz","name":"Ping Worker","gateways":["ping"],"role":"worker",)"
      R"("enabled":true,"blocked":false,"request_count":3,"last_used_at":1700000003000,)"
      R"("last_ip":"203.0.113.9","responses":{"1xx":0,"2xx":2,"3xx":0,"4xx":0,"5xx":1}},)"
      R"({"id":"idle0001","name":"Idle","gateways":[],"role":"admin","enabled":true,)"
      R"("blocked":false,"request_count":0,"last_used_at":null,"last_ip":null,)"
      R"("responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}}])";
  TestServer server(
      TestServer::Kind::Unix, dir.path(),
      "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  auto r = queryProxyUsage(server.address(), 2000ms);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(server.requestLine(), "GET /api/v1/apikeys HTTP/1.1");
  ASSERT_EQ(r->size(), 2U);
  EXPECT_EQ((*r)[0], (ApiKeyUsage{"k7Hq2xPz", 3, 1700000003000, "203.0.113.9", {0, 2, 0, 0, 1}}));
  EXPECT_EQ((*r)[1], (ApiKeyUsage{"idle0001", 0, std::nullopt, std::nullopt, {0, 0, 0, 0, 0}}));
}

// The answer comes from a process that may be taken over: anything but the shape is an error.
TEST(QueryProxyUsage, AnAnswerOfAnotherShapeIsAnError) {
  TempDir dir;
  for (const std::string body :
       {R"({"id":"k"})", R"([{"id":"k","request_count":-1,"responses":{}}])",
        R"([{"id":"k","request_count":1,"responses":{"1xx":0}}])", R"([7])",
        // Printed by `apikey list`: an address that is not one (a terminal escape, a forged
        // row), an id that is not one, a count that would overflow when added up.
        R"([{"id":"k7Hq2xPz","request_count":1,"last_ip":"[2J","responses":)"
        R"({"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}}])",
        R"([{"id":"k7Hq
xPz","request_count":1,"responses":)"
        R"({"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}}])",
        R"([{"id":"k7Hq2xPz","request_count":9223372036854775807,"responses":)"
        R"({"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}}])"}) {
    fs::remove(dir.path() / "admin.sock");
    TestServer server(
        TestServer::Kind::Unix, dir.path(),
        "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    auto r = queryProxyUsage(server.address(), 2000ms);
    EXPECT_FALSE(r.ok()) << body;
  }
}

// ---- the files published for the proxy ----

PublishedState sampleState() {
  PublishedState s;
  s.blocks = {{"key-1", 5}, {"key-2", 6}};
  s.challenges = {{"tok-1", "a.example.com", "tok-1.thumb", 1},
                  {"tok-2", "b.example.com", "tok-2.thumb", 2, AcmeChallengeType::TlsAlpn01},
                  {"tok-3", "*.example.com", "tok-3.thumb", 3, AcmeChallengeType::Dns01}};
  AcmeState full{"web", "http-01 web.example.com", 3, "urn:x: \"quoted\"\n", 1, 2, 3};
  full.ariCert = "ab12";
  full.ariStart = 10;
  full.ariEnd = 20;
  full.ariRenewAt = 15;
  full.ariNextCheck = 12;
  full.ariExplanation = "https://ca.example/why";
  s.acme = {full, AcmeState{"pending", "dns-01 p.example.com", 0, "", std::nullopt, std::nullopt,
                            std::nullopt}};
  return s;
}

TEST(ProxyFeed, TheFilesRoundTrip) {
  const Snapshot snap{7, 1700000000000, 3, R"({"version":1})"};
  auto back = decodePublishedSnapshot(encodePublishedSnapshot(snap));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->generation, 7);
  EXPECT_EQ(back->createdAt, 1700000000000);
  EXPECT_EQ(back->body, snap.body);
  EXPECT_EQ(publishedSnapshotHeader("edgeplane-snapshot/1 7 1 13\n{never read").value(),
            std::pair(int64_t{7}, size_t{41}));

  const PublishedState state = sampleState();
  auto decoded = decodePublishedState(encodePublishedState(state));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(*decoded, state);
  auto empty = decodePublishedState(encodePublishedState(PublishedState{}));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, PublishedState{});
}

TEST(ProxyFeed, DamagedFilesAreErrors) {
  for (const std::string text : {"", "edgeplane-snapshot/2 1 1 2\n{}", "edgeplane-snapshot/1 1 1 0",
                                 "edgeplane-snapshot/1 0 1 0\n", "edgeplane-snapshot/1 x 1 0\n",
                                 "edgeplane-snapshot/1 1 0\n", "edgeplane-snapshot/1 1 1 0 \n",
                                 "edgeplane-snapshot/1 1 1\n"}) {
    EXPECT_FALSE(decodePublishedSnapshot(text).ok()) << text;
  }
  for (const std::string text :
       {"", "[]", R"({"blocks":[],"challenges":[]})", R"({"blocks":{},"challenges":[],"acme":[]})",
        R"({"blocks":[7],"challenges":[],"acme":[]})",
        R"({"blocks":[],"challenges":[{"token":"t","domain":"d","key_authorization":"k",)"
        R"("created_at":1,"type":"dns-02"}],"acme":[]})",
        R"({"blocks":[{"id":"k"}],"challenges":[],"acme":[]})"}) {
    EXPECT_FALSE(decodePublishedState(text).ok()) << text;
  }
}

TEST(PublishProxyFeed, WritesWhatTheStoreHoldsAndOnlyWhatChanged) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  // Nothing applied yet: the state file only, empty; no snapshot.
  auto first = publishProxyFeed(state, *store);
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_TRUE(*first);
  EXPECT_FALSE(fs::exists(publishedDir(state) / kPublishedSnapshot));
  auto none = readPublishedSnapshot(state);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  EXPECT_EQ(readPublishedGeneration(state).value(), 0);

  auto g1 = publishSnapshot(*store, sample(), std::nullopt, 1000);
  ASSERT_TRUE(g1.ok());
  ASSERT_TRUE(store->blockApiKey("key-1", 5).ok());
  ASSERT_TRUE(store->putAcmeChallenge({"tok-1", "a.example.com", "tok-1.thumb", 1}).ok());
  auto second = publishProxyFeed(state, *store);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_TRUE(*second);
  auto snap = readPublishedSnapshot(state);
  ASSERT_TRUE(snap.ok() && snap->has_value());
  EXPECT_EQ((*snap)->generation, g1->generation);
  auto latest = store->latestSnapshot();
  ASSERT_TRUE(latest.ok() && latest->has_value());
  EXPECT_EQ((*snap)->body, (*latest)->body);
  auto published = readPublishedState(state);
  ASSERT_TRUE(published.ok()) << published.error().message;
  EXPECT_EQ(published->blocks, (std::vector<ApiKeyBlock>{{"key-1", 5}}));
  ASSERT_EQ(published->challenges.size(), 1U);
  EXPECT_EQ(published->challenges[0].keyAuthorization, "tok-1.thumb");
  for (std::string_view name : {kPublishedSnapshot, kPublishedState}) {
    struct stat st {};
    ASSERT_EQ(::stat((publishedDir(state) / name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600U) << name;
  }

  // Nothing changed: nothing written (the files keep their inodes).
  struct stat before {};
  ASSERT_EQ(::stat((publishedDir(state) / kPublishedState).c_str(), &before), 0);
  auto third = publishProxyFeed(state, *store);
  ASSERT_TRUE(third.ok());
  EXPECT_FALSE(*third);
  struct stat after {};
  ASSERT_EQ(::stat((publishedDir(state) / kPublishedState).c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // A damaged snapshot file is replaced even though the store's generation did not move.
  std::ofstream(publishedDir(state) / kPublishedSnapshot) << "garbage";
  auto fourth = publishProxyFeed(state, *store);
  ASSERT_TRUE(fourth.ok());
  EXPECT_TRUE(*fourth);
  EXPECT_EQ(readPublishedGeneration(state).value(), g1->generation);
}

// The state directory is the operator's path and may be a link (to a data disk); only what is
// inside it is never followed (a review's finding: every publish failed on such a host).
TEST(PublishProxyFeed, AStateDirectoryThatIsALinkIsFollowed) {
  TempDir dir;
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  const fs::path link = dir.path() / "state-link";
  fs::create_directory_symlink(dir.path() / "state", link);
  auto r = publishProxyFeed(link, *store);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "state/published" / kPublishedState));
}

// Two publishers at once (an apply and `apikey block`): each reads the store under one lock, so
// the last file written holds the last change, and no temporary file is shared.
TEST(PublishProxyFeed, ConcurrentPublishersLeaveTheLastChange) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(publishSnapshot(*store, sample(), std::nullopt, 1000).ok());
  std::atomic<bool> failed{false};
  std::thread other([&] {
    auto second = openStore(dir.path());
    for (int i = 0; i < 200 && second; ++i) {
      if (!publishProxyFeed(state, *second).ok()) {
        failed = true;
      }
    }
  });
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(store->blockApiKey("key-" + std::to_string(1000 + i), i).ok());
    auto r = publishProxyFeed(state, *store);
    ASSERT_TRUE(r.ok()) << r.error().message;
  }
  other.join();
  EXPECT_FALSE(failed.load());
  auto published = readPublishedState(state);
  ASSERT_TRUE(published.ok()) << published.error().message;
  EXPECT_EQ(published->blocks.size(), 50U);
  auto snap = readPublishedSnapshot(state);
  ASSERT_TRUE(snap.ok()) << snap.error().message;
  ASSERT_TRUE(snap->has_value());
}

// A publisher that stopped while it held publish.lock (SIGSTOP, a write hung on a dead disk)
// must not stall every later one for ever: an apply, an ACME challenge, `apikey block`. The wait
// is bounded and ends in a retryable error that names the lock.
TEST(PublishProxyFeed, AHeldLockIsWaitedForOnlySoLong) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(publishProxyFeed(state, *store).ok());  // makes the lock file
  const int held = ::open((state / "publish.lock").c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);  // another open file description: it conflicts
  auto waiting =
      std::async(std::launch::async, [&] { return publishProxyFeed(state, *store, 300ms); });
  const bool ended = waiting.wait_for(30s) == std::future_status::ready;
  ::close(held);  // lets a publisher that waits for ever end, so that the test does
  ASSERT_TRUE(ended) << "the publisher still waited for the lock after 30 s";
  auto r = waiting.get();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().retryable);
  EXPECT_NE(r.error().message.find("publish.lock"), std::string::npos) << r.error().message;
  // In the state lock's words (lock.cpp), as long as it was.
  EXPECT_NE(r.error().message.find("gave up after 300ms"), std::string::npos) << r.error().message;
  EXPECT_TRUE(publishProxyFeed(state, *store, 300ms).ok());  // released: it goes on
}

// A snapshot file cut short (a torn copy, a disk that lost the tail) is an error for the proxy,
// which then retries, and the publisher replaces it: its header tells the body's length.
TEST(ProxyFeed, ASnapshotCutShortIsAnErrorAndIsReplaced) {
  const Snapshot snap{7, 1700000000000, 3, R"({"version":1,"routes":[]})"};
  const std::string whole = encodePublishedSnapshot(snap);
  EXPECT_FALSE(decodePublishedSnapshot(whole.substr(0, whole.size() - 3)).ok());
  EXPECT_FALSE(decodePublishedSnapshot(whole + "x").ok());
  TempDir dir;
  const fs::path state = dir.path() / "state";
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  ASSERT_TRUE(publishSnapshot(*store, sample(), std::nullopt, 1000).ok());
  ASSERT_TRUE(publishProxyFeed(state, *store).ok());
  const fs::path file = publishedDir(state) / kPublishedSnapshot;
  fs::resize_file(file, fs::file_size(file) - 5);
  EXPECT_FALSE(readPublishedSnapshot(state).ok());
  auto again = publishProxyFeed(state, *store);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_TRUE(*again);
  auto read = readPublishedSnapshot(state);
  ASSERT_TRUE(read.ok()) << read.error().message;
}

TEST(PublishProxyFeed, ALinkInPlaceOfTheDirectoryIsRefused) {
  TempDir dir;
  const fs::path state = dir.path() / "state";
  auto store = openStore(dir.path());
  ASSERT_TRUE(store);
  fs::create_directory(dir.path() / "elsewhere");
  fs::create_directory_symlink(dir.path() / "elsewhere", publishedDir(state));
  auto r = publishProxyFeed(state, *store);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("symbolic link"), std::string::npos) << r.error().message;
  EXPECT_TRUE(fs::is_empty(dir.path() / "elsewhere"));
}

}  // namespace
}  // namespace edgeplane::cli
