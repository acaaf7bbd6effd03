// The worker gateway: its rate limiter and endpoint routing (pure), and the filter in the https
// handler in-process (TLS on loopback, backends in the test, a blocking OpenSSL client).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "proxy/gateway/config.h"
#include "proxy/gateway/rate_limiter.h"
#include "schema/api_key.h"
#include "schema/encoding.h"
#include "tests/support/https_fixture.h"

namespace edgeplane::proxy {
namespace {

using gateway::RateLimiter;
using testing::BackendRequest;
using testing::keepAliveBackend;
using testing::okResponse;
using testing::TestBackend;
using testing_https::HttpsTest;

// ---- the rate limiter ----

IpAddress ip(const char* text) {
  return *IpAddress::parse(text);
}

TEST(GatewayRateLimiter, ABurstOfNThenOnePerInterval) {
  RateLimiter limiter;
  const RateLimit limit = *RateLimit::parse("10/second");  // one per 100 ms
  int64_t now = 5'000'000;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limiter.admit(1, ip("192.0.2.1"), limit, now).allowed) << i;
  }
  RateLimiter::Decision d = limiter.admit(1, ip("192.0.2.1"), limit, now);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retryAfterUs, 100'000);
  // Refused requests do not use the allowance up further.
  EXPECT_FALSE(limiter.admit(1, ip("192.0.2.1"), limit, now + 99'999).allowed);
  EXPECT_TRUE(limiter.admit(1, ip("192.0.2.1"), limit, now + 100'000).allowed);
  EXPECT_FALSE(limiter.admit(1, ip("192.0.2.1"), limit, now + 100'000).allowed);
  // Other clients and other gateways have their own budgets.
  EXPECT_TRUE(limiter.admit(1, ip("192.0.2.2"), limit, now).allowed);
  EXPECT_TRUE(limiter.admit(2, ip("192.0.2.1"), limit, now).allowed);
  EXPECT_TRUE(limiter.admit(1, ip("2001:db8::1"), limit, now).allowed);
  EXPECT_EQ(limiter.clients(), 4u);
  // A client idle for a whole period is forgotten (and has its full burst again).
  EXPECT_EQ(limiter.purge(now + 1'100'001), 0u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(limiter.admit(1, ip("192.0.2.1"), limit, now + 1'100'001).allowed) << i;
  }
}

// One IPv6 subscriber gets a /64 and picks addresses in it at will: the limit is per /64, as
// the proxy's per-source connection caps are (found by review: each address had its own
// budget, so changing address per request was never limited).
TEST(GatewayRateLimiter, AnIpv6ClientIsItsSlash64) {
  RateLimiter limiter;
  const RateLimit limit = *RateLimit::parse("2/second");
  const int64_t now = 5'000'000;
  EXPECT_TRUE(limiter.admit(1, ip("2001:db8::1"), limit, now).allowed);
  EXPECT_TRUE(limiter.admit(1, ip("2001:db8::2"), limit, now).allowed);
  EXPECT_FALSE(limiter.admit(1, ip("2001:db8::ffff:3"), limit, now).allowed);
  EXPECT_TRUE(limiter.admit(1, ip("2001:db8:0:1::1"), limit, now).allowed);  // another /64
  EXPECT_TRUE(limiter.admit(2, ip("2001:db8::1"), limit, now).allowed);      // another gateway
  EXPECT_EQ(limiter.clients(), 3u);
}

TEST(GatewayRateLimiter, ExactAcrossThreads) {
  RateLimiter limiter;
  const RateLimit limit = *RateLimit::parse("100/minute");
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        if (limiter.admit(7, ip("198.51.100.9"), limit, 1'000'000).allowed) {
          allowed.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(allowed.load(), 100);
}

// ---- endpoint routing ----

TEST(GatewayConfig, LongestPathWinsAndPrefixesEndInASlash) {
  ActiveConfig config;
  auto route = std::make_unique<ActiveRoute>();
  route->spec.kind = RouteKind::Gateway;
  route->spec.name = "g";
  route->spec.endpoints = {{"/api/", "GET", {}, Balance::RoundRobin},
                           {"/api/jobs", "GET", {}, Balance::RoundRobin},
                           {"/api/jobs", "POST", {}, Balance::RoundRobin},
                           {"/exact", "GET", {}, Balance::RoundRobin}};
  config.routes.push_back(std::move(route));
  auto g = gateway::GatewayConfig::build(config, {}, nullptr);
  const gateway::GatewayEntry* e = g->find(config.routes[0].get());
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->match("/api/jobs").size(), 2u);
  EXPECT_EQ(e->match("/api/other").size(), 1u);
  EXPECT_EQ(e->match("/api/other")[0]->spec->path, "/api/");
  EXPECT_EQ(e->match("/api/jobs/1")[0]->spec->path, "/api/");  // "/api/jobs" is exact only
  EXPECT_TRUE(e->match("/api").empty());
  EXPECT_TRUE(e->match("/exact/").empty());
  EXPECT_TRUE(e->match("/exactly").empty());
}

// A path is matched as sent, and backends resolve dot-segments (some also decode '%2e', take
// "..;" for "..", or '\' and an encoded '/' for '/'): such a path would leave the endpoint it
// matched, so it is refused rather than routed (found by review: "/files/../admin" went to the
// "/files/" endpoint's backend, in a key scoped to "/files/").
TEST(GatewayConfig, APathThatLeavesItsEndpointOnTheBackendIsNotNormal) {
  for (std::string_view path : {"/", "/api/jobs", "/files/a.txt", "/files/...", "/files/.env",
                                "/a//b", "/a/%2E%2Ex", "/a/b;c=d", "/%41"}) {
    EXPECT_TRUE(gateway::normalPath(path)) << path;
  }
  for (std::string_view path :
       {"/files/..", "/files/../admin", "/files/./x", "/files/.", "/files/%2e%2e/admin",
        "/files/%2E%2e/admin", "/files/.%2e/admin", "/files/%2e/x", "/files/..;/admin",
        "/files/..;x=1/admin", "/files/.;/x", "/files/a%2fb", "/files/a%2Fb", "/files/a%5cb",
        "/files/a\\b", "/.."}) {
    EXPECT_FALSE(gateway::normalPath(path)) << path;
  }
}

// ---- the filter in the https handler ----

// Captures what the process writes to stderr (the gateway's log lines) while alive.
class StderrCapture {
 public:
  StderrCapture() {
    path_ = "/tmp/edgeplane-gateway-test-" + std::to_string(::getpid()) + ".log";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    saved_ = ::dup(2);
    ::dup2(fd_, 2);
  }
  ~StderrCapture() {
    ::dup2(saved_, 2);
    ::close(saved_);
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  std::string text() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  size_t count(const std::string& line) const {
    std::string all = text();
    size_t n = 0;
    for (size_t at = all.find(line); at != std::string::npos; at = all.find(line, at + 1)) {
      ++n;
    }
    return n;
  }

 private:
  std::string path_;
  int fd_ = -1;
  int saved_ = -1;
};

TestBackend::Handler named(const std::string& name) {
  return keepAliveBackend([name](const BackendRequest& r) {
    return okResponse(name + " " + r.method + " " + r.target + "\n" + r.head + "\n" + r.body);
  });
}

struct Key {
  std::string text;
  SnapshotApiKey spec;
};

Key makeKey(std::string name, std::vector<std::string> gateways,
            ApiKeyRole role = ApiKeyRole::Worker, std::vector<std::string> endpoints = {}) {
  auto k = generateApiKey();
  EXPECT_TRUE(k.has_value());
  return Key{k->key, SnapshotApiKey{k->id, std::move(name), toHex(k->sha256.data(), 32),
                                    std::move(gateways), std::move(endpoints), role, true}};
}

class GatewayTest : public HttpsTest {
 protected:
  std::string bearer(const Key& k) { return "Authorization: Bearer " + k.text + "\r\n"; }

  std::optional<testing::ClientResponse> send(const std::string& request) {
    auto c = client("ws.example.test");
    if (!c->write(request)) {
      return std::nullopt;
    }
    return c->readResponse();
  }

  std::shared_ptr<const ActiveConfig> configureGateway(std::vector<Endpoint> in,
                                                       std::vector<Endpoint> out,
                                                       std::optional<std::string> rate = {},
                                                       std::vector<bool> up = {}) {
    testing_https::Site g{"ping", {"ws.example.test"}, {}, "main", std::move(up)};
    g.kind = RouteKind::Gateway;
    g.endpoints = {{"/api/gateway/target", "GET", std::move(in), Balance::RoundRobin},
                   {"/api/gateway/result", "POST", std::move(out), Balance::RoundRobin}};
    g.rateLimit = std::move(rate);
    testing_https::Site other{"pong", {"app.example.com"}, {}};
    other.kind = RouteKind::Gateway;
    other.endpoints = {{"/x", "GET", {refusedEndpoint()}, Balance::RoundRobin}};
    return configure({g, other});
  }

  static std::string post(const std::string& path, const std::string& body,
                          const std::string& extra) {
    return "POST " + path +
           " HTTP/1.1\r\nHost: ws.example.test\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra + "\r\n" + body;
  }
  static Endpoint refusedEndpoint() { return testing_https::refusedEndpoint(); }
};

TEST_F(GatewayTest, WorkerFlowReachesEachEndpointsBackendsWithTheKeyNamedNotSent) {
  StderrCapture log;
  TestBackend input(named("input"));
  TestBackend output(named("output"));
  Key worker = makeKey("Ping Worker #1", {"ping"});
  apiKeys_ = {worker.spec};
  start();
  configureGateway({input.endpoint()}, {output.endpoint()});
  auto r = send(testing_https::get(
      "ws.example.test", "/api/gateway/target",
      bearer(worker) + "X-Edgeplane-Key-Id: forged\r\n" + "X_Edgeplane_Key_Name: forged\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.rfind("input GET /api/gateway/target\n", 0), 0u) << r->body;
  EXPECT_NE(r->body.find("X-Edgeplane-Key-Id: " + worker.spec.id + "\r\n"), std::string::npos);
  EXPECT_NE(r->body.find("X-Edgeplane-Key-Name: Ping Worker #1\r\n"), std::string::npos);
  EXPECT_EQ(r->body.find("forged"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find("Authorization"), std::string::npos) << r->body;
  EXPECT_EQ(r->body.find(worker.text), std::string::npos);
  r = send(post("/api/gateway/result", R"({"ok":true})",
                bearer(worker) + "Content-Type: application/json\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.rfind("output POST /api/gateway/result\n", 0), 0u) << r->body;
  EXPECT_NE(r->body.find(R"({"ok":true})"), std::string::npos);
  EXPECT_TRUE(testing::eventually([&] {
    return log.count("API_KEY_AUTH: Ping Worker #1 (type: ping) from IP 127.0.0.1\n") == 2u;
  })) << log.text();
  EXPECT_EQ(log.text().find(worker.text), std::string::npos);
}

// A WebSocket backend: answers the upgrade with 101, then echoes what comes, prefixed.
TestBackend::Handler websocketEcho() {
  return [](int fd) {
    std::string buffer;
    auto req = testing::readBackendRequest(fd, buffer);
    if (!req || !req->upgrade) {
      testing::sendBytes(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    testing::sendBytes(fd,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\n\r\n");
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      testing::sendBytes(fd, "echo:" + std::string(buf, static_cast<size_t>(n)));
    }
  };
}

// A tunnel lives as long as the key that opened it may call its endpoint. Blocking the key, or a
// configuration that disables it or takes the endpoint away, ends its tunnels within about a
// second (with an event line); the tunnels of other keys go on, also through a reload.
TEST_F(GatewayTest, ATunnelEndsWhenItsKeyIsRevoked) {
  StderrCapture log;
  TestBackend ws(websocketEcho());
  Key blocked = makeKey("blocked", {"ping"});
  Key disabled = makeKey("disabled", {"ping"});
  Key kept = makeKey("kept", {"ping"});
  apiKeys_ = {blocked.spec, disabled.spec, kept.spec};
  start();
  auto config = configureGateway({ws.endpoint()}, {refusedEndpoint()});
  auto open = [&](const Key& k) {
    auto c = client("ws.example.test");
    EXPECT_TRUE(c->write(testing_https::get(
        "ws.example.test", "/api/gateway/target",
        bearer(k) + "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n")));
    auto r = c->readResponse(true);
    EXPECT_TRUE(r && r->status == 101);
    return c;
  };
  auto echoes = [](testing::TlsClient& c, const std::string& msg) {
    if (!c.write(msg)) {
      return false;
    }
    const std::string want = "echo:" + msg;
    while (c.buffered().size() < want.size() && c.fill()) {
    }
    const bool ok = c.buffered() == want;
    c.buffered().clear();
    return ok;
  };
  // Closed by the proxy within 5 s (the client's own timeout is 20 s).
  auto endsSoon = [](testing::TlsClient& c) {
    const auto begin = std::chrono::steady_clock::now();
    return c.closedByPeer() && std::chrono::steady_clock::now() - begin < std::chrono::seconds(5);
  };
  auto a = open(blocked);
  auto b = open(disabled);
  auto c = open(kept);
  for (auto* t : {a.get(), b.get(), c.get()}) {
    ASSERT_TRUE(echoes(*t, "hello"));
  }

  config->gateway->applyBlocks({blocked.spec.id});
  EXPECT_TRUE(endsSoon(*a));
  EXPECT_TRUE(echoes(*b, "still"));
  EXPECT_TRUE(echoes(*c, "still"));

  disabled.spec.enabled = false;
  apiKeys_ = {disabled.spec, kept.spec};
  configureGateway({ws.endpoint()}, {refusedEndpoint()});
  EXPECT_TRUE(endsSoon(*b));
  EXPECT_TRUE(echoes(*c, "after the reload"));

  // The endpoint gone from the gateway (the key is unscoped): its tunnels end too.
  testing_https::Site moved{"ping", {"ws.example.test"}, {}, "main", {}};
  moved.kind = RouteKind::Gateway;
  moved.endpoints = {{"/api/gateway/moved", "GET", {ws.endpoint()}, Balance::RoundRobin}};
  configure({moved});
  EXPECT_TRUE(endsSoon(*c));
  EXPECT_TRUE(testing::eventually([&] {
    return log.count(
               "API_KEY_REVOKED: blocked (type: ping) connection closed, from IP 127.0.0.1\n") ==
               1u &&
           log.count(
               "API_KEY_REVOKED: disabled (type: ping) connection closed, from IP 127.0.0.1\n") ==
               1u &&
           log.count("API_KEY_REVOKED: kept (type: ping) connection closed, from IP 127.0.0.1\n") ==
               1u;
  })) << log.text();
}

// A streamed response (chunked, one chunk every 50 ms for up to 20 s) lives only as long as
// its key, like a tunnel: blocked, the response is cut within about a second, and its access
// line says so (outcome=revoked: neither a success nor a failure of the proxy).
TEST_F(GatewayTest, AStreamedResponseEndsWhenItsKeyIsBlocked) {
  StderrCapture log;
  accessLog_ = true;
  std::atomic<bool> stop{false};
  TestBackend stream([&](int fd) {
    std::string buffer;
    if (!testing::readBackendRequest(fd, buffer)) {
      return;
    }
    testing::sendBytes(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 400 && !stop; ++i) {
      if (!testing::sendBytes(fd, "5\r\ntick\n\r\n")) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  Key key = makeKey("streamer", {"ping"});
  apiKeys_ = {key.spec};
  start();
  auto config = configureGateway({stream.endpoint()}, {refusedEndpoint()});
  auto c = client("ws.example.test");
  ASSERT_TRUE(c->write(testing_https::get("ws.example.test", "/api/gateway/target", bearer(key))));
  auto ticks = [&] {
    size_t n = 0;
    for (size_t at = c->buffered().find("tick"); at != std::string::npos;
         at = c->buffered().find("tick", at + 1)) {
      ++n;
    }
    return n;
  };
  while (ticks() < 2 && c->fill()) {
  }
  ASSERT_GE(ticks(), 2u) << c->buffered();
  config->gateway->applyBlocks({key.spec.id});
  const auto begin = std::chrono::steady_clock::now();
  while (c->fill()) {  // until the proxy closes (or the client's 20 s timeout)
  }
  EXPECT_LT(std::chrono::steady_clock::now() - begin, std::chrono::seconds(5));
  stop = true;
  EXPECT_TRUE(testing::eventually([&] {
    return log.count(
               "API_KEY_REVOKED: streamer (type: ping) connection closed, from IP 127.0.0.1\n") ==
               1u &&
           log.count("access-https ") == 1u;
  })) << log.text();
  EXPECT_EQ(log.count("path=/api/gateway/target status=200 "), 1u) << log.text();
  EXPECT_EQ(log.count(" outcome=revoked\n"), 1u) << log.text();
}

TEST_F(GatewayTest, EveryRefusalIs401WithItsLogLineAndReachesNoBackend) {
  StderrCapture log;
  TestBackend input(named("input"));
  TestBackend output(named("output"));
  Key worker = makeKey("w", {"ping"});
  Key disabled = makeKey("off", {"ping"});
  disabled.spec.enabled = false;
  Key blocked = makeKey("blocked", {"ping"});
  Key elsewhere = makeKey("pong only", {"pong"});
  Key scoped = makeKey("results only", {"ping"}, ApiKeyRole::Worker, {"/api/gateway/result"});
  apiKeys_ = {worker.spec, disabled.spec, blocked.spec, elsewhere.spec, scoped.spec};
  start();
  auto config = configureGateway({input.endpoint()}, {output.endpoint()});
  config->gateway->applyBlocks({blocked.spec.id});
  const std::string target = "/api/gateway/target";
  auto r = send(testing_https::get("ws.example.test", target));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(r->header("www-authenticate"), "Bearer");
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->body, "{\"error\":\"missing API key\"}\n");
  EXPECT_TRUE(testing::eventually([&] {
    return log.count("API_KEY_MISSING: Request from IP 127.0.0.1\n") == 1u;
  })) << log.text();
  std::string wrongSecret = worker.text;
  wrongSecret.back() = wrongSecret.back() == '0' ? '1' : '0';
  for (const std::string& auth : std::vector<std::string>{
           "Authorization: Bearer " + wrongSecret + "\r\n",
           "Authorization: Bearer ep_unknown1." + std::string(64, '0') + "\r\n",
           "Authorization: Basic dXNlcjpwYXNz\r\n", "Authorization: Bearer\r\n",
           bearer(worker) + bearer(worker),  // two credentials
           bearer(disabled), bearer(blocked), bearer(elsewhere),
           bearer(scoped),  // outside its endpoints
       }) {
    r = send(testing_https::get("ws.example.test", target, auth));
    ASSERT_TRUE(r) << auth;
    EXPECT_EQ(r->status, 401) << auth;
    EXPECT_EQ(r->body, "{\"error\":\"invalid API key\"}\n");
  }
  EXPECT_TRUE(testing::eventually([&] {
    return log.count("API_KEY_INVALID: Failed auth from IP 127.0.0.1\n") == 9u;
  })) << log.text();
  EXPECT_EQ(log.count("API_KEY_AUTH"), 0u);
  EXPECT_EQ(input.accepts(), 0);
  // The scoped key is good for its own endpoint; the unblocked key once lifted.
  r = send(post("/api/gateway/result", "{}", bearer(scoped)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  config->gateway->applyBlocks({});
  r = send(testing_https::get("ws.example.test", target, bearer(blocked)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(GatewayTest, APathLeavingItsEndpointIs400AndReachesNoBackend) {
  TestBackend files(named("files"));
  TestBackend admin(named("admin"));
  Key scoped = makeKey("files only", {"ping"}, ApiKeyRole::Worker, {"/files/"});
  apiKeys_ = {scoped.spec};
  start();
  testing_https::Site g{"ping", {"ws.example.test"}, {}};
  g.kind = RouteKind::Gateway;
  g.endpoints = {{"/files/", "GET", {files.endpoint()}, Balance::RoundRobin},
                 {"/admin", "GET", {admin.endpoint()}, Balance::RoundRobin}};
  configure({g});
  for (const std::string path : {"/files/../admin", "/files/%2e%2e/admin", "/files/..;/admin",
                                 "/files/..%2fadmin", "/files/..\\admin"}) {
    auto r = send(testing_https::get("ws.example.test", path, bearer(scoped)));
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 400) << path;
    EXPECT_EQ(r->body, "{\"error\":\"path not in normal form\"}\n") << path;
  }
  EXPECT_EQ(files.accepts(), 0);
  EXPECT_EQ(admin.accepts(), 0);
  auto r = send(testing_https::get("ws.example.test", "/files/report.txt", bearer(scoped)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.rfind("files GET /files/report.txt\n", 0), 0u) << r->body;
}

TEST_F(GatewayTest, UnknownPathIs404WrongMethod405WithAllow) {
  TestBackend input(named("input"));
  Key worker = makeKey("w", {"ping"});
  apiKeys_ = {worker.spec};
  start();
  configureGateway({input.endpoint()}, {input.endpoint()});
  auto r = send(testing_https::get("ws.example.test", "/api/gateway/nope", bearer(worker)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  r = send(testing_https::get("ws.example.test", "/api/gateway/result", bearer(worker)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("allow"), "POST");
  EXPECT_EQ(input.accepts(), 0);
}

TEST_F(GatewayTest, StatsForAdminKeysOnly) {
  TestBackend input(named("input"));
  Key worker = makeKey("w", {"ping"});
  Key admin = makeKey("ops", {}, ApiKeyRole::Admin);
  apiKeys_ = {worker.spec, admin.spec};
  start();
  const Endpoint down = refusedEndpoint();
  configureGateway({input.endpoint(), down}, {input.endpoint()}, std::nullopt, {true, false, true});
  auto r = send(testing_https::get("ws.example.test", "/api/gateway/stats", bearer(admin)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "application/json");
  const std::string in = input.endpoint().str();
  EXPECT_EQ(r->body, R"({"gateway":"ping","endpoints":[{"path":"/api/gateway/target",)"
                     R"("method":"GET","backends":[")" +
                         in + R"(",")" + down.str() + R"("],"healthy_backends":[")" + in +
                         R"("]},)"
                         R"({"path":"/api/gateway/result","method":"POST","backends":[")" +
                         in + R"("],"healthy_backends":[")" + in +
                         R"("]}],)"
                         R"("totals":{"endpoints":2,"backends":3,"healthy_backends":2}})"
                         "\n");
  r = send(testing_https::get("ws.example.test", "/api/gateway/stats", bearer(worker)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(input.accepts(), 0);
}

TEST_F(GatewayTest, NoHealthyBackendIs503Json) {
  Key worker = makeKey("w", {"ping"});
  apiKeys_ = {worker.spec};
  start();
  configureGateway({refusedEndpoint()}, {refusedEndpoint()}, std::nullopt, {false, true});
  auto r = send(testing_https::get("ws.example.test", "/api/gateway/target", bearer(worker)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->header("content-type"), "application/json");
  EXPECT_EQ(r->body, "{\"error\":\"no healthy backends available\"}\n");
  r = send(post("/api/gateway/result", "{}", bearer(worker)));  // up, but refuses connects
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 502);
  EXPECT_EQ(r->body, "{\"error\":\"bad gateway\"}\n");
}

TEST_F(GatewayTest, RateLimitCountsFailedAuthAndAnswers429WithRetryAfter) {
  StderrCapture log;
  TestBackend input(named("input"));
  Key worker = makeKey("w", {"ping"});
  apiKeys_ = {worker.spec};
  start();
  configureGateway({input.endpoint()}, {input.endpoint()}, "5/minute");
  int ok = 0;
  for (int i = 0; i < 3; ++i) {  // failed authentications use the budget too
    auto r = send(testing_https::get("ws.example.test", "/api/gateway/target"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
  }
  for (int i = 0; i < 4; ++i) {
    auto r = send(testing_https::get("ws.example.test", "/api/gateway/target", bearer(worker)));
    ASSERT_TRUE(r);
    if (r->status == 200) {
      ++ok;
    } else {
      EXPECT_EQ(r->status, 429);
      int retry = std::stoi(r->header("retry-after"));
      EXPECT_GE(retry, 1);
      EXPECT_LE(retry, 12);
    }
  }
  EXPECT_EQ(ok, 2);
  EXPECT_TRUE(testing::eventually([&] {
    return log.count("RATE_LIMITED: from IP 127.0.0.1\n") == 2u;
  })) << log.text();
}

TEST_F(GatewayTest, UsageIsCountedPerKeyWithStatusClasses) {
  TestBackend input(named("input"));
  Key worker = makeKey("w", {"ping"});
  apiKeys_ = {worker.spec};
  start();
  auto config = configureGateway({input.endpoint()}, {input.endpoint()});
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(send(testing_https::get("ws.example.test", "/api/gateway/target", bearer(worker))));
  }
  ASSERT_TRUE(send(testing_https::get("ws.example.test", "/nope", bearer(worker))));
  ASSERT_TRUE(send(testing_https::get("ws.example.test", "/api/gateway/target")));
  gateway::Runtime& rt = config->gateway->runtime();
  std::map<std::string, gateway::UsageCount> keys;
  EXPECT_TRUE(testing::eventually([&] {
    rt.collect();
    keys = rt.keyTotals();
    auto totals = rt.totals();
    return keys.count(worker.spec.id) != 0 && keys[worker.spec.id].requests == 4 &&
           totals[{"ping", "", 401}] == 1;
  }));
  const gateway::UsageCount& u = keys[worker.spec.id];
  EXPECT_EQ(u.classes[1], 3u);
  EXPECT_EQ(u.classes[3], 1u);
  EXPECT_EQ(u.lastIp, ip("127.0.0.1"));
  EXPECT_GT(u.lastUsedMs, 1'700'000'000'000);
  auto totals = rt.totals();
  EXPECT_EQ((totals[{"ping", worker.spec.id, 200}]), 3u);
  EXPECT_EQ((totals[{"ping", "", 401}]), 1u);
  auto pending = rt.takePending();
  ASSERT_EQ(pending.size(), 1u);
  EXPECT_EQ(pending[0].count.requests, 4u);
  EXPECT_TRUE(rt.takePending().empty());
}

}  // namespace
}  // namespace edgeplane::proxy
