// Tests of the health prober against real HTTP servers on 127.0.0.1:0, run in threads of the
// test: up, down by refusal, by status, by timeout, by garbage, back up, passive marking, config
// swaps, the in-flight bound and a clean stop. Every wait polls with a deadline.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/health/prober.h"
#include "proxy/health/registry.h"
#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::proxy::health {
namespace {

using testing::eventually;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;

constexpr Ms kInterval = 100ms;
constexpr Ms kTimeout = 200ms;
// What a loaded CI machine (2 cores, several builds) may add to a bound: scheduling, not logic.
constexpr Ms kSlack = 500ms;

// A tiny HTTP server: answers every request with `status` (0: accepts and never answers;
// -1: 8 KiB without a newline), in its own thread. close() makes the port refuse connections;
// reopen() listens on the same port again.
//
// With `netnsLink`, the server thread first moves into a new network namespace of its own (lo
// up) listening on `port` there, and `netnsLink` becomes a symlink to that namespace - a
// stand-in for /run/netns/NAME. Needs CAP_SYS_ADMIN.
class TestBackend {
 public:
  explicit TestBackend(int status, std::string netnsLink = {}, uint16_t port = 0)
      : status_(status), netnsLink_(std::move(netnsLink)), port_(port) {
    std::unique_lock lock(mu_);
    thread_ = std::thread([this] { loop(); });
    cv_.wait(lock, [this] { return listenFd_ >= 0 || failed_; });
  }
  ~TestBackend() {
    stopping_ = true;
    thread_.join();
    if (nsFd_ >= 0) {
      ::close(nsFd_);
    }
  }
  bool ok() {
    std::lock_guard lock(mu_);
    return !failed_;
  }

  Endpoint endpoint() const { return Endpoint{IpAddress::v4(INADDR_LOOPBACK), port_}; }
  void close() { setOpen(false); }
  void reopen() { setOpen(true); }
  int accepted() const { return accepted_.load(); }
  std::string lastRequest() {
    std::lock_guard lock(mu_);
    return lastRequest_;
  }
  std::vector<Clock::time_point> acceptTimes() {
    std::lock_guard lock(mu_);
    return acceptTimes_;
  }

 private:
  void setOpen(bool open) {
    std::unique_lock lock(mu_);
    wantOpen_ = open;
    cv_.wait(lock, [&] { return (listenFd_ >= 0) == open || failed_; });
    ASSERT_FALSE(failed_);
  }

  // Runs on the server thread only, with mu_ held.
  void reconcileLocked() {
    if (wantOpen_ && listenFd_ < 0) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(port_);
      socklen_t len = sizeof addr;
      if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0 ||
          ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        failed_ = true;
      } else {
        listenFd_ = fd;
        port_ = ntohs(addr.sin_port);
      }
      cv_.notify_all();
    } else if (!wantOpen_ && listenFd_ >= 0) {
      ::close(listenFd_);
      listenFd_ = -1;
      cv_.notify_all();
    }
  }

  void serve(int fd) {
    std::string request;
    char buf[2048];
    auto deadline = Clock::now() + 2s;
    while (request.find("\r\n\r\n") == std::string::npos && Clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) {
        continue;
      }
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        break;
      }
      request.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lock(mu_);
      lastRequest_ = request;
    }
    int status = status_.load();
    if (status == 0) {
      held_.push_back(fd);  // never answered; closed when the server stops
      return;
    }
    std::string reply = status < 0 ? std::string(8192, 'x')
                                   : "HTTP/1.1 " + std::to_string(status) +
                                         " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
  }

  // On the server thread: a new network namespace for this thread only, its lo up.
  bool enterOwnNamespace() {
    if (::unshare(CLONE_NEWNET) != 0) {
      return false;
    }
    nsFd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int ctl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = ::ioctl(ctl, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    up = up && ::ioctl(ctl, SIOCSIFFLAGS, &ifr) == 0;
    ::close(ctl);
    std::string target = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(nsFd_);
    return up && nsFd_ >= 0 && ::symlink(target.c_str(), netnsLink_.c_str()) == 0;
  }

  void loop() {
    if (!netnsLink_.empty() && !enterOwnNamespace()) {
      std::lock_guard lock(mu_);
      failed_ = true;
      cv_.notify_all();
      return;
    }
    while (!stopping_) {
      int fd = -1;
      {
        std::lock_guard lock(mu_);
        reconcileLocked();
        fd = listenFd_;
      }
      if (fd < 0) {
        std::this_thread::sleep_for(5ms);  // closed: only wait for reopen() or the end
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5) <= 0) {
        continue;
      }
      int conn = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) {
        continue;
      }
      {
        std::lock_guard lock(mu_);
        acceptTimes_.push_back(Clock::now());
      }
      accepted_.fetch_add(1);
      serve(conn);
    }
    std::lock_guard lock(mu_);
    for (int fd : held_) {
      ::close(fd);
    }
    if (listenFd_ >= 0) {
      ::close(listenFd_);
    }
  }

  std::atomic<int> status_;
  const std::string netnsLink_;
  int nsFd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool wantOpen_ = true;
  bool failed_ = false;
  int listenFd_ = -1;
  uint16_t port_;
  std::string lastRequest_;
  std::vector<Clock::time_point> acceptTimes_;
  std::vector<int> held_;
  std::thread thread_;
};

Ms since(Clock::time_point t) {
  return std::chrono::duration_cast<Ms>(Clock::now() - t);
}

SnapshotRoute site(const std::string& name, std::vector<Endpoint> backends, Ms timeout = kTimeout) {
  SnapshotRoute r;
  r.kind = RouteKind::Site;
  r.name = name;
  r.hostnames = {name + ".example.com"};
  r.backends = std::move(backends);
  r.health_path = "/healthz";
  r.health_interval = kInterval;
  r.health_timeout = timeout;
  return r;
}

// The prober over a registry, with the events it reported.
struct Harness {
  HealthRegistry registry;
  std::mutex mu;
  std::vector<HealthEvent> events;
  std::unique_ptr<Prober> prober;

  std::shared_ptr<ActiveConfig> attach(std::vector<SnapshotRoute> specs, int64_t generation) {
    auto config = std::make_shared<ActiveConfig>();
    config->generation = generation;
    for (SnapshotRoute& spec : specs) {
      auto route = std::make_unique<ActiveRoute>();
      route->spec = std::move(spec);
      route->stats = std::make_shared<RouteStats>();
      config->routes.push_back(std::move(route));
    }
    auto attached = registry.attach(*config);
    EXPECT_TRUE(attached.ok()) << attached.error().message;
    return config;
  }

  void start(std::shared_ptr<const ActiveConfig> config, ProberOptions options = {}) {
    options.onEvent = [this](const HealthEvent& e) {
      std::lock_guard lock(mu);
      events.push_back(e);
    };
    auto started = Prober::start(registry, std::move(options), std::move(config));
    ASSERT_TRUE(started.ok()) << started.error().message;
    prober = std::move(*started);
  }

  std::vector<HealthEvent> eventsOf(const Endpoint& backend) {
    std::lock_guard lock(mu);
    std::vector<HealthEvent> out;
    for (const HealthEvent& e : events) {
      if (e.backend == backend) {
        out.push_back(e);
      }
    }
    return out;
  }

  // A transition is reported just after `up` changes: a test that saw `up` change waits for
  // its event before reading the events.
  bool eventsReach(const Endpoint& backend, size_t n) {
    return eventually([&] { return eventsOf(backend).size() >= n; }, 3s);
  }

  std::shared_ptr<HealthEntry> entry(const ActiveRoute& route, size_t i) {
    auto keys = healthKeys(route.spec);
    EXPECT_TRUE(keys.ok());
    return registry.find((*keys)[i]);
  }
};

TEST(Prober, UpStaysUpGoesDownWhenStoppedAndComesBackAfterTheThreshold) {
  TestBackend backend(200);
  Harness h;
  auto config = h.attach({site("shop", {backend.endpoint()})}, 1);
  const auto& health = config->routes[0]->health[0];
  h.start(config);

  // Up, and stays up over several probes.
  ASSERT_TRUE(eventually([&] { return h.prober->probesFinished() >= 3; }, 3s));
  EXPECT_TRUE(health->up.load());
  HealthState state = h.entry(*config->routes[0], 0)->state();
  EXPECT_TRUE(state.checked);
  EXPECT_GE(state.passes, 3u);
  EXPECT_EQ(backend.lastRequest(),
            "GET /healthz HTTP/1.1\r\nHost: shop.example.com\r\nUser-Agent: edgeplane-health/1\r\n"
            "Connection: close\r\n\r\n");
  EXPECT_TRUE(h.eventsOf(backend.endpoint()).empty());

  // Stopped: down within interval x unhealthy_threshold + timeout.
  auto stopped = Clock::now();
  backend.close();
  ASSERT_TRUE(eventually([&] { return !health->up.load(); }, 5s));
  EXPECT_LE(since(stopped), kInterval * 3 + kTimeout + kSlack);
  ASSERT_TRUE(h.eventsReach(backend.endpoint(), 1));
  auto events = h.eventsOf(backend.endpoint());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].up);
  EXPECT_EQ(events[0].route, "site shop");
  EXPECT_EQ(events[0].reason, "connect: Connection refused");

  // Started again: up after healthy_threshold (2) passes, so not before one interval.
  auto restarted = Clock::now();  // before: a probe may connect as soon as it listens
  backend.reopen();
  ASSERT_TRUE(eventually([&] { return health->up.load(); }, 5s));
  EXPECT_GE(since(restarted), kInterval);
  EXPECT_LE(since(restarted), kInterval * 3 + kSlack);
  state = h.entry(*config->routes[0], 0)->state();
  EXPECT_GE(state.passes, 2u);
  EXPECT_EQ(state.failures, 0u);
  ASSERT_TRUE(h.eventsReach(backend.endpoint(), 2));
  events = h.eventsOf(backend.endpoint());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[1].up);
  EXPECT_EQ(events[1].reason, "2 consecutive passed probes");
}

TEST(Prober, A500AnswerIsDownWithTheDefaultExpectation) {
  TestBackend bad(500);
  TestBackend redirect(302);
  Harness h;
  auto config = h.attach({site("shop", {bad.endpoint(), redirect.endpoint()})}, 1);
  auto started = Clock::now();
  h.start(config);
  ASSERT_TRUE(eventually([&] { return !config->routes[0]->health[0]->up.load(); }, 5s));
  EXPECT_LE(since(started), kInterval * 2 + kTimeout + kSlack);
  HealthState state = h.entry(*config->routes[0], 0)->state();
  EXPECT_EQ(state.lastError, "status 500 (expected 200-399)");
  EXPECT_GE(state.failures, 3u);
  // 302 is within 200-399.
  EXPECT_TRUE(config->routes[0]->health[1]->up.load());
  EXPECT_TRUE(h.entry(*config->routes[0], 1)->state().checked);
  EXPECT_TRUE(h.eventsOf(redirect.endpoint()).empty());
}

TEST(Prober, ASilentBackendIsDownByTimeout) {
  TestBackend silent(0);
  Harness h;
  auto config = h.attach({site("shop", {silent.endpoint()})}, 1);
  auto started = Clock::now();
  h.start(config);
  ASSERT_TRUE(eventually([&] { return !config->routes[0]->health[0]->up.load(); }, 5s));
  // Three probes, each timing out; the next starts an interval after the last one started.
  EXPECT_LE(since(started), (kInterval + kTimeout) * 3 + kSlack);
  EXPECT_GE(since(started), kTimeout * 3);
  EXPECT_EQ(h.entry(*config->routes[0], 0)->state().lastError,
            "timeout after 200ms waiting for the status line");
  ASSERT_TRUE(h.eventsReach(silent.endpoint(), 1));
  auto events = h.eventsOf(silent.endpoint());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].reason, "timeout after 200ms waiting for the status line");
}

TEST(Prober, ReadsAtMostAFewKiB) {
  TestBackend garbage(-1);
  Harness h;
  auto config = h.attach({site("shop", {garbage.endpoint()})}, 1);
  h.start(config);
  ASSERT_TRUE(eventually([&] { return !config->routes[0]->health[0]->up.load(); }, 5s));
  EXPECT_EQ(h.entry(*config->routes[0], 0)->state().lastError,
            "no status line in the first 4096 bytes");
}

TEST(Prober, PassiveFailuresTakeItDownAtTheNextTurnAndProbesBringItBack) {
  TestBackend backend(200);
  Harness h;
  auto config = h.attach({site("shop", {backend.endpoint()})}, 1);
  const auto& health = config->routes[0]->health[0];
  h.start(config);
  ASSERT_TRUE(eventually([&] { return h.entry(*config->routes[0], 0)->state().checked; }, 3s));
  ASSERT_TRUE(health->up.load());

  // The workers saw three connect failures in a row (a handler calls connectFailed()).
  for (int i = 0; i < 3; ++i) {
    health->connectFailed();
  }
  // Down only until the probe after next, which a busy machine may keep this thread from
  // seeing: the events tell.
  ASSERT_TRUE(eventually([&] { return !h.eventsOf(backend.endpoint()).empty(); }, 3s));
  EXPECT_EQ(health->passiveFailures.load(), 0u);
  ASSERT_TRUE(eventually([&] { return h.eventsOf(backend.endpoint()).size() >= 2; }, 3s));
  EXPECT_TRUE(health->up.load());
  auto events = h.eventsOf(backend.endpoint());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_FALSE(events[0].up);
  EXPECT_EQ(events[0].reason, "3 consecutive connect failures in traffic");
  EXPECT_TRUE(events[1].up);

  // Fewer than unhealthy_threshold changes nothing.
  health->connectFailed();
  health->connectFailed();
  uint64_t before = h.prober->probesFinished();
  ASSERT_TRUE(eventually([&] { return h.prober->probesFinished() >= before + 3; }, 3s));
  EXPECT_TRUE(health->up.load());
  EXPECT_EQ(h.eventsOf(backend.endpoint()).size(), 2u);
}

TEST(Prober, AConfigSwapKeepsStateAndForgetsRemovedBackends) {
  TestBackend a(200);
  TestBackend b(200);
  TestBackend c(200);
  b.close();  // refused from the start
  Harness h;
  auto first = h.attach({site("shop", {a.endpoint(), b.endpoint()})}, 1);
  h.start(first);
  ASSERT_TRUE(eventually([&] { return !first->routes[0]->health[1]->up.load(); }, 5s));
  ASSERT_TRUE(h.eventsReach(b.endpoint(), 1));
  ASSERT_EQ(h.eventsOf(b.endpoint()).size(), 1u);
  uint32_t failuresBefore = h.entry(*first->routes[0], 1)->state().failures;

  // Generation 2: the same route plus another one.
  auto second =
      h.attach({site("other", {c.endpoint()}), site("shop", {a.endpoint(), b.endpoint()})}, 2);
  h.prober->setConfig(second);
  EXPECT_EQ(second->routes[1]->health[0], first->routes[0]->health[0]);
  EXPECT_EQ(second->routes[1]->health[1], first->routes[0]->health[1]);
  ASSERT_TRUE(eventually([&] { return c.accepted() >= 2; }, 3s));
  ASSERT_TRUE(eventually(
      [&] { return h.entry(*second->routes[1], 1)->state().failures >= failuresBefore + 2; }, 3s));
  EXPECT_FALSE(second->routes[1]->health[1]->up.load());  // still down: no reset to up
  EXPECT_EQ(h.eventsOf(b.endpoint()).size(), 1u);         // and no new transition
  EXPECT_TRUE(second->routes[1]->health[0]->up.load());
  EXPECT_TRUE(h.eventsOf(c.endpoint()).empty());

  // Generation 3: `a` removed. A probe in flight may still land; then no more.
  auto third = h.attach({site("shop", {b.endpoint()})}, 3);
  h.prober->setConfig(third);
  uint64_t mark = h.prober->probesFinished();
  ASSERT_TRUE(eventually([&] { return h.prober->probesFinished() >= mark + 2; }, 3s));
  int seen = a.accepted();
  mark = h.prober->probesFinished();
  ASSERT_TRUE(eventually([&] { return h.prober->probesFinished() >= mark + 3; }, 3s));
  EXPECT_EQ(a.accepted(), seen);
  EXPECT_EQ(h.registry.size(), 1u);
}

TEST(Prober, AMissingNamespaceIsAFailedProbe) {
  testing::TempDir netnsDir;
  Harness h;
  SnapshotRoute route = site("shop", {*Endpoint::parse("127.0.0.1:9")});
  route.netns = "ep-gone";
  auto config = h.attach({route}, 1);
  ProberOptions options;
  options.netnsDir = netnsDir.path().string();
  h.start(config, options);
  ASSERT_TRUE(eventually([&] { return !config->routes[0]->health[0]->up.load(); }, 5s));
  EXPECT_EQ(h.entry(*config->routes[0], 0)->state().lastError,
            "socket in netns \"ep-gone\": No such file or directory");
}

TEST(Prober, AtMostMaxInFlightProbesRunAtOnce) {
  TestBackend first(0);
  TestBackend second(0);
  Harness h;
  auto config = h.attach({site("shop", {first.endpoint(), second.endpoint()}, 500ms)}, 1);
  ProberOptions options;
  options.maxInFlight = 1;
  h.start(config, options);
  ASSERT_TRUE(eventually([&] { return first.accepted() >= 1 && second.accepted() >= 1; }, 5s));
  // Both were due at once; the second had to wait for the first one's timeout.
  auto gap = first.acceptTimes()[0] - second.acceptTimes()[0];
  // (The margin is for the test servers' own accept delay under load.)
  EXPECT_GE(std::chrono::abs(std::chrono::duration_cast<Ms>(gap)), 300ms);
}

TEST(Prober, StopsPromptlyWithProbesInFlight) {
  TestBackend silent(0);
  Harness h;
  auto config = h.attach({site("shop", {silent.endpoint()}, 10s)}, 1);
  h.start(config);
  ASSERT_TRUE(eventually([&] { return silent.accepted() >= 1; }, 3s));
  auto stopping = Clock::now();
  h.prober->stop();
  EXPECT_LE(since(stopping), 1s);
  EXPECT_EQ(h.prober->probesFinished(), 0u);  // the probe in flight was closed, not judged
  h.prober->stop();                           // idempotent
  EXPECT_TRUE(config->routes[0]->health[0]->up.load());
}

TEST(Prober, RoutesWithoutAHealthCheckAreNotProbed) {
  TestBackend backend(200);
  Harness h;
  SnapshotRoute route = site("shop", {backend.endpoint()});
  route.health_path.reset();
  route.health_interval.reset();
  route.health_timeout.reset();
  TestBackend checked(200);
  auto config = h.attach({route, site("zz", {checked.endpoint()})}, 1);
  h.start(config);
  ASSERT_TRUE(eventually([&] { return checked.accepted() >= 3; }, 3s));
  EXPECT_EQ(backend.accepted(), 0);
  EXPECT_TRUE(config->routes[0]->health[0]->up.load());
}

// A gateway: the endpoint with a health_check has its backends probed with its own spec (path,
// expect_status, thresholds, the gateway's Host), and one that fails goes down; the endpoint
// without one is never probed.
TEST(Prober, GatewayEndpointBackendsAreProbedWithTheEndpointsCheck) {
  TestBackend good(204);
  TestBackend failing(200);  // 200 is outside the endpoint's expect_status
  TestBackend unchecked(500);
  SnapshotRoute gateway;
  gateway.kind = RouteKind::Gateway;
  gateway.name = "ping";
  gateway.hostnames = {"manager.example.com"};
  SnapshotEndpoint target{"/t", "GET", {good.endpoint(), failing.endpoint()}};
  target.health_path = "/ready";
  target.health_interval = kInterval;
  target.health_timeout = kTimeout;
  target.health_unhealthy_threshold = 2;
  target.health_expect_status = "204";
  gateway.endpoints = {target, SnapshotEndpoint{"/r", "POST", {unchecked.endpoint()}}};
  Harness h;
  auto config = h.attach({gateway}, 1);
  const auto& health = config->routes[0]->health;
  ASSERT_EQ(health.size(), 3u);
  auto started = Clock::now();
  h.start(config);

  ASSERT_TRUE(eventually([&] { return !health[1]->up.load(); }, 5s));
  EXPECT_LE(since(started), kInterval * 2 + kTimeout + kSlack);
  EXPECT_EQ(h.entry(*config->routes[0], 1)->state().lastError, "status 200 (expected 204)");
  ASSERT_TRUE(h.eventsReach(failing.endpoint(), 1));
  auto events = h.eventsOf(failing.endpoint());
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].route, "gateway ping");
  EXPECT_FALSE(events[0].up);
  EXPECT_EQ(failing.lastRequest(),
            "GET /ready HTTP/1.1\r\nHost: manager.example.com\r\nUser-Agent: edgeplane-health/1\r\n"
            "Connection: close\r\n\r\n");

  ASSERT_TRUE(eventually([&] { return good.accepted() >= 3; }, 3s));
  EXPECT_TRUE(health[0]->up.load());
  EXPECT_TRUE(h.entry(*config->routes[0], 0)->state().checked);
  EXPECT_EQ(unchecked.accepted(), 0);
  EXPECT_TRUE(health[2]->up.load());
  h.prober->stop();
}

// Two tenants, the same backend address, each in its own namespace: each probe reaches its own
// tenant's server. Creates network namespaces, so it runs in the lab (lab.health_netns).
TEST(Prober, ProbesFromInsideEachRoutesNamespace) {
  if (std::getenv("EDGEPLANE_LAB") == nullptr) {
    GTEST_SKIP() << "creates network namespaces: run in the lab (ctest -L lab)";
  }
  testing::TempDir dir;
  constexpr uint16_t kPort = 8080;
  TestBackend blue(200, (dir.path() / "ep-blue").string(), kPort);
  TestBackend green(503, (dir.path() / "ep-green").string(), kPort);
  ASSERT_TRUE(blue.ok());
  ASSERT_TRUE(green.ok());
  Endpoint same = *Endpoint::parse("127.0.0.1:8080");
  SnapshotRoute b = site("blue", {same});
  b.netns = "ep-blue";
  SnapshotRoute g = site("green", {same});
  g.netns = "ep-green";
  Harness h;
  auto config = h.attach({b, g}, 1);
  ProberOptions options;
  options.netnsDir = dir.path().string();
  h.start(config, options);
  ASSERT_TRUE(eventually([&] { return !config->routes[1]->health[0]->up.load(); }, 5s));
  ASSERT_TRUE(eventually([&] { return blue.accepted() >= 3; }, 3s));
  EXPECT_TRUE(config->routes[0]->health[0]->up.load());
  EXPECT_EQ(h.entry(*config->routes[1], 0)->state().lastError, "status 503 (expected 200-399)");
  EXPECT_NE(blue.lastRequest().find("Host: blue.example.com\r\n"), std::string::npos);
  EXPECT_NE(green.lastRequest().find("Host: green.example.com\r\n"), std::string::npos);
  h.prober->stop();
}

}  // namespace
}  // namespace edgeplane::proxy::health
