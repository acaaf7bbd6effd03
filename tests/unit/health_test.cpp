// Tests of proxy/health: the state machine, expect_status, the registry across generations, and
// the prober against real HTTP servers on 127.0.0.1 (bounded waits, no sleeps-and-hope).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/health/prober.h"
#include "proxy/health/registry.h"
#include "proxy/health/state.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::proxy::health {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

Endpoint ep(const std::string& text) {
  auto e = Endpoint::parse(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e.value_or(Endpoint{});
}

SnapshotRoute site(const std::string& name, std::vector<Endpoint> backends,
                   Duration interval = 100ms, Duration timeout = 200ms) {
  SnapshotRoute r;
  r.kind = RouteKind::Site;
  r.name = name;
  r.hostnames = {name + ".example.com"};
  r.netns = "";
  r.backends = std::move(backends);
  r.health_path = "/healthz";
  r.health_interval = interval;
  r.health_timeout = timeout;
  return r;
}

std::shared_ptr<ActiveConfig> configOf(std::vector<SnapshotRoute> specs, int64_t generation = 1) {
  auto config = std::make_shared<ActiveConfig>();
  config->generation = generation;
  for (SnapshotRoute& spec : specs) {
    auto route = std::make_unique<ActiveRoute>();
    route->spec = std::move(spec);
    route->stats = std::make_shared<RouteStats>();
    config->routes.push_back(std::move(route));
  }
  return config;
}

HealthSpec specOf(const SnapshotRoute& route) {
  auto spec = HealthSpec::of(route);
  EXPECT_TRUE(spec.ok()) << spec.error().message;
  EXPECT_TRUE(spec.ok() && spec->has_value());
  return spec.ok() && spec->has_value() ? **spec : HealthSpec{};
}

// ---- expect_status and the spec ----

TEST(ExpectStatus, ParsesCodesAndRanges) {
  auto one = ExpectStatus::parse("200");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->low, 200);
  EXPECT_EQ(one->high, 200);
  EXPECT_TRUE(one->matches(200));
  EXPECT_FALSE(one->matches(201));
  EXPECT_EQ(one->str(), "200");

  auto range = ExpectStatus::parse("200-399");
  ASSERT_TRUE(range.ok());
  EXPECT_TRUE(range->matches(200));
  EXPECT_TRUE(range->matches(302));
  EXPECT_TRUE(range->matches(399));
  EXPECT_FALSE(range->matches(199));
  EXPECT_FALSE(range->matches(400));
  EXPECT_EQ(range->str(), "200-399");
  EXPECT_EQ(ExpectStatus{}, *range);  // the default

  auto edges = ExpectStatus::parse("100-599");
  ASSERT_TRUE(edges.ok());
  EXPECT_TRUE(edges->matches(100));
  EXPECT_TRUE(edges->matches(599));
}

TEST(ExpectStatus, RefusesMalformedText) {
  for (const char* bad : {"", "abc", "99", "600", "2000", "20", "200-", "-200", "399-200", "200 ",
                          " 200", "+200", "200-399-400", "200,204", "2oo", "200--399"}) {
    auto parsed = ExpectStatus::parse(bad);
    EXPECT_FALSE(parsed.ok()) << "\"" << bad << "\"";
    if (!parsed.ok()) {
      EXPECT_NE(parsed.error().message.find("expect_status"), std::string::npos);
    }
  }
}

TEST(HealthSpec, DefaultsAndRouteFields) {
  SnapshotRoute none = site("shop", {ep("10.0.0.5:8080")});
  none.health_path.reset();
  none.health_interval.reset();
  none.health_timeout.reset();
  auto absent = HealthSpec::of(none);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  SnapshotRoute onlyPath = none;
  onlyPath.health_path = "/up";
  HealthSpec d = specOf(onlyPath);
  EXPECT_EQ(d.path, "/up");
  EXPECT_EQ(d.host, "shop.example.com");
  EXPECT_EQ(d.interval, kDefaultInterval);
  EXPECT_EQ(d.timeout, kDefaultTimeout);
  EXPECT_EQ(d.healthyThreshold, 2u);
  EXPECT_EQ(d.unhealthyThreshold, 3u);
  EXPECT_EQ(d.expect, (ExpectStatus{200, 399}));

  SnapshotRoute full = site("shop", {ep("10.0.0.5:8080")}, 5000ms, 700ms);
  full.hostnames = {"*.apps.example.com", "x.example.com"};
  full.health_healthy_threshold = 1;
  full.health_unhealthy_threshold = 5;
  full.health_expect_status = "204";
  HealthSpec f = specOf(full);
  EXPECT_EQ(f.host, "apps.example.com");  // a wildcard's "*." is not a host name
  EXPECT_EQ(f.interval, 5000ms);
  EXPECT_EQ(f.timeout, 700ms);
  EXPECT_EQ(f.healthyThreshold, 1u);
  EXPECT_EQ(f.unhealthyThreshold, 5u);
  EXPECT_EQ(f.expect, (ExpectStatus{204, 204}));
}

TEST(HealthSpec, RefusesBadChecks) {
  auto refused = [](const std::function<void(SnapshotRoute&)>& edit, const std::string& needle) {
    SnapshotRoute r = site("shop", {ep("10.0.0.5:8080")});
    edit(r);
    auto spec = HealthSpec::of(r);
    ASSERT_FALSE(spec.ok()) << needle;
    EXPECT_NE(spec.error().message.find("route \"site shop\" health check"), std::string::npos);
    EXPECT_NE(spec.error().message.find(needle), std::string::npos) << spec.error().message;
  };
  refused([](SnapshotRoute& r) { r.health_expect_status = "2xx"; }, "expect_status \"2xx\"");
  refused([](SnapshotRoute& r) { r.health_healthy_threshold = 0; }, "at least 1");
  refused([](SnapshotRoute& r) { r.health_unhealthy_threshold = 0; }, "at least 1");
  refused([](SnapshotRoute& r) { r.health_interval = 0ms; }, "positive");
  refused([](SnapshotRoute& r) { r.health_timeout = -1ms; }, "positive");
  refused([](SnapshotRoute& r) { r.health_path = "healthz"; }, "path");
  refused([](SnapshotRoute& r) { r.health_path = "/a HTTP/1.1\r\nX: y"; }, "path");
  refused([](SnapshotRoute& r) { r.hostnames = {"a b"}; }, "host name");
}

// A gateway endpoint's spec: its own health_* fields, the route's host.
TEST(HealthSpec, GatewayEndpointFields) {
  SnapshotRoute gateway;
  gateway.kind = RouteKind::Gateway;
  gateway.name = "ping";
  gateway.hostnames = {"manager.example.com"};
  SnapshotEndpoint plain{"/r", "POST", {ep("10.0.0.5:80")}};
  auto absent = HealthSpec::of(gateway, plain);
  ASSERT_TRUE(absent.ok());
  EXPECT_FALSE(absent->has_value());

  SnapshotEndpoint checked{"/t", "GET", {ep("10.0.0.5:80")}};
  checked.health_path = "/ready";
  checked.health_interval = 5000ms;
  checked.health_timeout = 700ms;
  checked.health_healthy_threshold = 1;
  checked.health_unhealthy_threshold = 5;
  checked.health_expect_status = "204";
  auto spec = HealthSpec::of(gateway, checked);
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  ASSERT_TRUE(spec->has_value());
  EXPECT_EQ(**spec, (HealthSpec{"/ready", "manager.example.com", 5000ms, 700ms, 1, 5,
                                ExpectStatus{204, 204}}));

  SnapshotEndpoint onlyPath{"/t", "GET", {ep("10.0.0.5:80")}};
  onlyPath.health_path = "/";
  auto defaults = HealthSpec::of(gateway, onlyPath);
  ASSERT_TRUE(defaults.ok() && defaults->has_value());
  EXPECT_EQ(**defaults, (HealthSpec{"/", "manager.example.com", kDefaultInterval, kDefaultTimeout,
                                    2, 3, ExpectStatus{200, 399}}));

  checked.health_expect_status = "2xx";
  auto bad = HealthSpec::of(gateway, checked);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("route \"gateway ping\" endpoint GET /t health check: "
                                     "expect_status \"2xx\""),
            std::string::npos)
      << bad.error().message;
}

TEST(StatusLine, ParsesOnlyWellFormedLines) {
  EXPECT_EQ(parseStatusLine("HTTP/1.1 200 OK"), 200);
  EXPECT_EQ(parseStatusLine("HTTP/1.0 503 Service Unavailable"), 503);
  EXPECT_EQ(parseStatusLine("HTTP/1.1 204"), 204);
  for (const char* bad : {"", "HTTP/1.1", "HTTP/1.1 20 OK", "HTTP/1.1 2000 OK", "HTTP/2 200 OK",
                          "HTTP/1.1  200 OK", "http/1.1 200 OK", "HTTP/1.1 099 X", "HTTP/1.1 200OK",
                          "SSH-2.0-OpenSSH_9.6", "HTTP/1.9 200 OK"}) {
    EXPECT_FALSE(parseStatusLine(bad).has_value()) << "\"" << bad << "\"";
  }
}

// ---- the state machine ----

TEST(HealthState, StartsUpAndFollowsTheThresholds) {
  HealthSpec spec;  // 2 up, 3 down
  HealthState s;
  s.lastChangeMs = 1;
  EXPECT_TRUE(s.up);
  EXPECT_FALSE(s.checked);
  ProbeResult ok{true, {}};
  ProbeResult bad{false, "status 500 (expected 200-399)"};

  EXPECT_EQ(s.record(spec, ok, 10), Transition::None);
  EXPECT_TRUE(s.checked);
  EXPECT_EQ(s.record(spec, bad, 20), Transition::None);
  EXPECT_EQ(s.record(spec, bad, 30), Transition::None);
  EXPECT_EQ(s.record(spec, ok, 40), Transition::None);  // a pass breaks the run of failures
  EXPECT_EQ(s.failures, 0u);
  EXPECT_EQ(s.lastError, "status 500 (expected 200-399)");  // kept for the admin API
  EXPECT_EQ(s.record(spec, bad, 50), Transition::None);
  EXPECT_EQ(s.record(spec, bad, 60), Transition::None);
  EXPECT_TRUE(s.up);
  EXPECT_EQ(s.lastChangeMs, 1);
  EXPECT_EQ(s.record(spec, bad, 70), Transition::Down);
  EXPECT_FALSE(s.up);
  EXPECT_EQ(s.lastChangeMs, 70);
  EXPECT_EQ(s.failures, 3u);
  EXPECT_EQ(s.record(spec, bad, 80), Transition::None);  // reported once
  EXPECT_EQ(s.failures, 4u);

  EXPECT_EQ(s.record(spec, ok, 90), Transition::None);
  EXPECT_EQ(s.record(spec, bad, 100), Transition::None);  // a failure breaks the passes
  EXPECT_EQ(s.record(spec, ok, 110), Transition::None);
  EXPECT_FALSE(s.up);
  EXPECT_EQ(s.record(spec, ok, 120), Transition::Up);
  EXPECT_TRUE(s.up);
  EXPECT_EQ(s.lastChangeMs, 120);
  EXPECT_EQ(s.record(spec, ok, 130), Transition::None);
  EXPECT_EQ(s.passes, 3u);
}

TEST(HealthState, ThresholdsOfOne) {
  HealthSpec spec;
  spec.healthyThreshold = 1;
  spec.unhealthyThreshold = 1;
  HealthState s;
  EXPECT_EQ(s.record(spec, ProbeResult{false, "x"}, 1), Transition::Down);
  EXPECT_EQ(s.record(spec, ProbeResult{true, {}}, 2), Transition::Up);
}

TEST(HealthState, PassiveFailuresTakeItDownAndProbesBringItBack) {
  HealthSpec spec;
  HealthState s;
  EXPECT_EQ(s.markPassive(spec, 2, 10), Transition::None);
  EXPECT_TRUE(s.up);
  EXPECT_EQ(s.markPassive(spec, 3, 20), Transition::Down);
  EXPECT_FALSE(s.up);
  EXPECT_EQ(s.lastChangeMs, 20);
  EXPECT_EQ(s.lastError, "3 consecutive connect failures in traffic");
  EXPECT_EQ(s.markPassive(spec, 9, 30), Transition::None);  // already down
  EXPECT_EQ(s.record(spec, ProbeResult{true, {}}, 40), Transition::None);
  EXPECT_EQ(s.record(spec, ProbeResult{true, {}}, 50), Transition::Up);
}

// ---- the registry ----

TEST(HealthRegistry, CarriesStateAcrossGenerationsByKeyAndDropsRemovedBackends) {
  int64_t now = 1000;
  HealthRegistry registry([&] { return now; });
  auto a = ep("10.0.0.5:8080");
  auto b = ep("10.0.0.6:8080");
  auto c = ep("10.0.0.7:8080");
  auto d = ep("10.0.0.8:8080");

  auto first = configOf({site("shop", {a, b, c})});
  ASSERT_TRUE(registry.attach(*first).ok());
  ASSERT_EQ(first->routes[0]->health.size(), 3u);
  EXPECT_EQ(registry.size(), 3u);
  auto entryB = registry.find(HealthKey{"", b, specOf(first->routes[0]->spec)});
  ASSERT_NE(entryB, nullptr);
  EXPECT_EQ(entryB->health(), first->routes[0]->health[1]);
  EXPECT_EQ(entryB->route(), "site shop");
  EXPECT_EQ(entryB->health()->changedAtMs.load(), 1000);
  now = 2000;
  for (int i = 0; i < 3; ++i) {
    entryB->record(ProbeResult{false, "connect: Connection refused"}, now);
  }
  EXPECT_FALSE(first->routes[0]->health[1]->up.load());
  EXPECT_EQ(first->routes[0]->health[1]->changedAtMs.load(), 2000);

  // Generation 2: a and c gone, d new, b carried with its state.
  now = 3000;
  auto second = configOf({site("shop", {d, b})}, 2);
  ASSERT_TRUE(registry.attach(*second).ok());
  ASSERT_EQ(second->routes[0]->health.size(), 2u);
  EXPECT_EQ(second->routes[0]->health[1], first->routes[0]->health[1]);
  EXPECT_FALSE(second->routes[0]->health[1]->up.load());
  EXPECT_TRUE(second->routes[0]->health[0]->up.load());
  EXPECT_EQ(second->routes[0]->health[0]->changedAtMs.load(), 3000);
  EXPECT_EQ(registry.size(), 2u);
  EXPECT_EQ(registry.find(HealthKey{"", a, specOf(first->routes[0]->spec)}), nullptr);
  EXPECT_EQ(registry.find(HealthKey{"", b, specOf(first->routes[0]->spec)})->state().failures, 3u);
  // The old generation still holds its (dropped) entries for its connections.
  EXPECT_TRUE(first->routes[0]->health[0]->up.load());

  // A changed check is another probe: a fresh entry, up again.
  auto third = configOf({site("shop", {b}, 200ms)}, 3);
  ASSERT_TRUE(registry.attach(*third).ok());
  EXPECT_NE(third->routes[0]->health[0], second->routes[0]->health[1]);
  EXPECT_TRUE(third->routes[0]->health[0]->up.load());
  EXPECT_EQ(registry.size(), 1u);
}

TEST(HealthRegistry, SameBackendInTwoNamespacesIsTwoEntries) {
  HealthRegistry registry([] { return int64_t{1}; });
  SnapshotRoute blue = site("blue", {ep("10.0.0.5:8080")});
  blue.netns = "ep-blue";
  SnapshotRoute green = site("blue", {ep("10.0.0.5:8080")});
  green.name = "green";
  green.hostnames = {"blue.example.com"};  // even the same probe: another namespace
  green.netns = "ep-green";
  auto config = configOf({blue, green});
  ASSERT_TRUE(registry.attach(*config).ok());
  EXPECT_NE(config->routes[0]->health[0], config->routes[1]->health[0]);
  EXPECT_EQ(registry.size(), 2u);
}

// Gateway "ping" in ep-a: GET /t on .5 and .6, POST /r on .5 again, no health checks.
SnapshotRoute pingGateway() {
  SnapshotRoute gateway;
  gateway.kind = RouteKind::Gateway;
  gateway.name = "ping";
  gateway.hostnames = {"manager.example.com"};
  gateway.netns = "ep-a";
  gateway.endpoints = {SnapshotEndpoint{"/t", "GET", {ep("10.0.0.5:80"), ep("10.0.0.6:80")}},
                       SnapshotEndpoint{"/r", "POST", {ep("10.0.0.5:80")}}};
  return gateway;
}

TEST(HealthRegistry, GatewaysFlattenEndpointsAndUncheckedRoutesAreAlwaysUp) {
  HealthRegistry registry([] { return int64_t{1}; });
  SnapshotRoute gateway = pingGateway();
  SnapshotRoute pass;
  pass.kind = RouteKind::Passthrough;
  pass.name = "secure";
  pass.hostnames = {"secure.example.com"};
  pass.netns = "ep-a";
  pass.backends = {ep("10.0.0.5:80")};
  auto config = configOf({gateway, pass});
  ASSERT_TRUE(registry.attach(*config).ok());
  const auto& g = config->routes[0]->health;
  ASSERT_EQ(g.size(), 3u);
  // One backend, no check, same namespace: one entry shared by every place it appears.
  EXPECT_EQ(g[0], g[2]);
  EXPECT_NE(g[0], g[1]);
  EXPECT_EQ(config->routes[1]->health[0], g[0]);
  EXPECT_EQ(registry.size(), 2u);
  auto entry = registry.find(HealthKey{"ep-a", ep("10.0.0.5:80"), std::nullopt});
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->record(ProbeResult{false, "x"}, 5), Transition::None);
  entry->health()->passiveFailures = 100;
  EXPECT_EQ(entry->markPassive(5), Transition::None);
  EXPECT_TRUE(g[0]->up.load());

  auto rows = registry.describe(*config);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].route, "gateway ping");
  EXPECT_EQ(rows[1].backend, "10.0.0.6:80");
  EXPECT_EQ(rows[3].route, "passthrough secure");
  EXPECT_EQ(rows[3].netns, "ep-a");
  EXPECT_FALSE(rows[3].checked);
  EXPECT_TRUE(rows[3].up);
}

// Two endpoints, one with a health check: its backends get the endpoint's spec (and are probed,
// and passively marked), the other's none; a backend under both is two entries, in the
// flattened order gateway/config.cpp slices per endpoint.
TEST(HealthRegistry, GatewayEndpointsCarryTheirOwnHealthCheck) {
  HealthRegistry registry([] { return int64_t{1}; });
  SnapshotRoute gateway = pingGateway();
  gateway.endpoints[0].health_path = "/ready";
  gateway.endpoints[0].health_unhealthy_threshold = 2;
  auto keys = healthKeys(gateway);
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  ASSERT_EQ(keys->size(), 3u);
  const HealthSpec spec{"/ready", "manager.example.com", kDefaultInterval, kDefaultTimeout, 2,
                        2,        ExpectStatus{}};
  EXPECT_EQ((*keys)[0], (HealthKey{"ep-a", ep("10.0.0.5:80"), spec}));
  EXPECT_EQ((*keys)[1], (HealthKey{"ep-a", ep("10.0.0.6:80"), spec}));
  EXPECT_EQ((*keys)[2], (HealthKey{"ep-a", ep("10.0.0.5:80"), std::nullopt}));

  auto config = configOf({gateway});
  ASSERT_TRUE(registry.attach(*config).ok());
  const auto& g = config->routes[0]->health;
  ASSERT_EQ(g.size(), 3u);
  EXPECT_NE(g[0], g[2]);  // same backend, another check
  EXPECT_EQ(registry.size(), 3u);

  // Passive marking works for the checked endpoint's backends, not for the other's.
  auto checked = registry.find((*keys)[0]);
  ASSERT_NE(checked, nullptr);
  EXPECT_EQ(checked->route(), "gateway ping");
  g[0]->passiveFailures = 2;
  EXPECT_EQ(checked->markPassive(5), Transition::Down);
  EXPECT_FALSE(g[0]->up.load());
  auto unchecked = registry.find((*keys)[2]);
  ASSERT_NE(unchecked, nullptr);
  g[2]->passiveFailures = 100;
  EXPECT_EQ(unchecked->markPassive(5), Transition::None);
  EXPECT_TRUE(g[2]->up.load());

  // GET /api/v1/backends: one row per place, the checked ones as such.
  EXPECT_EQ(checked->record(ProbeResult{false, "status 500"}, 6), Transition::None);
  auto rows = registry.describe(*config);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].backend, "10.0.0.5:80");
  EXPECT_FALSE(rows[0].up);
  EXPECT_TRUE(rows[0].checked);
  EXPECT_EQ(rows[0].lastError, "status 500");
  EXPECT_TRUE(rows[1].up);
  EXPECT_FALSE(rows[1].checked);  // not probed yet
  EXPECT_EQ(rows[2].backend, "10.0.0.5:80");
  EXPECT_TRUE(rows[2].up);
  EXPECT_FALSE(rows[2].checked);

  // A malformed endpoint check refuses the whole config.
  gateway.endpoints[1].health_healthy_threshold = 0;
  auto refused = configOf({gateway});
  auto attached = registry.attach(*refused);
  ASSERT_FALSE(attached.ok());
  EXPECT_NE(attached.error().message.find("endpoint POST /r health check"), std::string::npos)
      << attached.error().message;
}

TEST(HealthRegistry, ARefusedCheckChangesNothing) {
  HealthRegistry registry([] { return int64_t{1}; });
  auto good = configOf({site("shop", {ep("10.0.0.5:8080")})});
  ASSERT_TRUE(registry.attach(*good).ok());
  auto kept = good->routes[0]->health[0];

  SnapshotRoute bad = site("zeta", {ep("10.0.0.9:8080")});
  bad.health_expect_status = "ok";
  auto next = configOf({site("other", {ep("10.0.0.8:8080")}), bad}, 2);
  auto attached = registry.attach(*next);
  ASSERT_FALSE(attached.ok());
  EXPECT_NE(attached.error().message.find("route \"site zeta\""), std::string::npos);
  EXPECT_TRUE(next->routes[0]->health.empty());
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_EQ(
      registry.find(HealthKey{"", ep("10.0.0.5:8080"), specOf(good->routes[0]->spec)})->health(),
      kept);
}

TEST(HealthEvent, FormatsOneLogLine) {
  HealthEvent e{"site shop", "ep-blue", ep("10.0.0.5:8080"), false, "status 500"};
  EXPECT_EQ(formatEvent(e),
            "health route=\"site shop\" backend=10.0.0.5:8080 down reason=\"status 500\"");
  e.up = true;
  e.reason = "2 consecutive passed probes";
  EXPECT_EQ(formatEvent(e),
            "health route=\"site shop\" backend=10.0.0.5:8080 up "
            "reason=\"2 consecutive passed probes\"");
}

}  // namespace
}  // namespace edgeplane::proxy::health
