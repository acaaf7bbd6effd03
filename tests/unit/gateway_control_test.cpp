// The control side of the worker gateway: blocked keys as the reconciler publishes them, usage
// flushed into the proxy's own store, GET /api/v1/apikeys and the gateway's metric series.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "proxy/admin.h"
#include "proxy/control.h"
#include "proxy/gateway/config.h"
#include "reconciler/cli/publish.h"
#include "schema/proxy_feed.h"
#include "schema/store.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::proxy {
namespace {

using testing::TempDir;

ProxySnapshot gatewaySnapshot(bool enabled = true) {
  ProxySnapshot s;
  s.host = "edge-1";
  SnapshotRoute r;
  r.kind = RouteKind::Gateway;
  r.name = "ping";
  r.hostnames = {"manager.example.com"};
  r.namespace_name = "tenant-a";
  r.netns = netnsName("tenant-a");
  r.endpoints = {
      {"/api/gateway/target", "GET", {*Endpoint::parse("10.50.0.5:8080")}, Balance::RoundRobin}};
  r.certificate = "manager";
  s.routes = {r};
  // Not on disk: left out of the TLS set with a log line, which these tests do not need.
  s.certificates = {SnapshotCertificate{"manager",
                                        std::string(64, 'f'),
                                        "/nonexistent/cert.pem",
                                        "/nonexistent/key.pem",
                                        {"manager.example.com"},
                                        1'800'000'000}};
  s.api_keys = {SnapshotApiKey{
      "k7Hq2xPz", "Ping Worker", std::string(64, 'a'), {"ping"}, {}, ApiKeyRole::Worker, enabled}};
  return s;
}

struct GatewayControl : ::testing::Test {
  TempDir dir;
  Metrics metrics;
  std::unique_ptr<Controller> controller;
  std::vector<std::string> logs;

  void SetUp() override {
    ControllerOptions o;
    o.stateDir = dir.path();
    o.clock = [] { return int64_t{1'700'000'000'000}; };
    o.log = [this](std::string_view line) { logs.emplace_back(line); };
    controller = std::make_unique<Controller>(o, metrics);
  }
  // The reconciler's store.
  std::unique_ptr<Store> store() {
    auto s = Store::open(dir.path());
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  // The proxy's own, where the usage goes.
  std::unique_ptr<Store> counters() {
    StoreOptions options;
    options.fileName = std::string(kProxyCounters);
    auto s = Store::open(proxyOwnDir(dir.path()), options);
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
    return s.ok() ? std::move(s.value()) : nullptr;
  }
  // What the reconciler's store holds, published for the proxy, which is then told.
  void feed() {
    auto fed = cli::publishProxyFeed(dir.path(), *store());
    ASSERT_TRUE(fed.ok()) << fed.error().message;
    controller->reload();
  }
  void publish(const ProxySnapshot& s) {
    ASSERT_TRUE(store()->writeSnapshot(snapshotToJson(s), 1'700'000'000'000, std::nullopt).ok());
    auto fed = cli::publishProxyFeed(dir.path(), *store());
    ASSERT_TRUE(fed.ok()) << fed.error().message;
    ReloadOutcome r = controller->reload();
    ASSERT_TRUE(r.changed) << r.error;
  }
  const gateway::KeyEntry* key() { return controller->current()->gateway->findKey("k7Hq2xPz"); }
};

TEST_F(GatewayControl, PublishedBlocksReachTheKeysAndSurviveNewGenerations) {
  publish(gatewaySnapshot());
  ASSERT_NE(key(), nullptr);
  EXPECT_FALSE(key()->blocked.load());
  ASSERT_TRUE(store()->blockApiKey("k7Hq2xPz", 1'700'000'000'000).ok());
  controller->reload();
  EXPECT_FALSE(key()->blocked.load());  // in the store, not published yet
  feed();  // what `edgeplane apikey block` does, then the proxy's next poll
  EXPECT_TRUE(key()->blocked.load());
  EXPECT_EQ(logs.back(), "API keys blocked on this host: k7Hq2xPz");
  publish(gatewaySnapshot(false));  // a new generation keeps the block
  EXPECT_TRUE(key()->blocked.load());
  ASSERT_TRUE(store()->unblockApiKey("k7Hq2xPz").ok());
  feed();
  EXPECT_FALSE(key()->blocked.load());
}

TEST_F(GatewayControl, UsageIsFlushedToTheProxysStoreAndListedWithoutDigests) {
  publish(gatewaySnapshot());
  gateway::Runtime& rt = controller->gatewayRuntime();
  auto shard = rt.addShard();
  shard->record("ping", "k7Hq2xPz", *IpAddress::parse("203.0.113.7"), 200, 1'700'000'001'000);
  shard->record("ping", "k7Hq2xPz", *IpAddress::parse("203.0.113.8"), 502, 1'700'000'002'000);
  shard->record("ping", "", *IpAddress::parse("198.51.100.1"), 401, 1'700'000'002'500);
  auto flushed = controller->flushUsage();
  ASSERT_TRUE(flushed.ok()) << flushed.error().message;
  EXPECT_EQ(*flushed, 1u);           // one key; the refused request is not a key's usage
  auto none = store()->listUsage();  // never the reconciler's store
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  auto usage = counters()->listUsage();
  ASSERT_TRUE(usage.ok());
  ASSERT_EQ(usage->size(), 1u);
  EXPECT_EQ((*usage)[0].keyId, "k7Hq2xPz");
  EXPECT_EQ((*usage)[0].requestCount, 2);
  EXPECT_EQ((*usage)[0].lastUsedAt, 1'700'000'002'000);
  EXPECT_EQ((*usage)[0].lastIp, "203.0.113.8");
  EXPECT_EQ((*usage)[0].responses, (std::array<int64_t, 5>{0, 1, 0, 0, 1}));
  // Nothing new: nothing written twice.
  ASSERT_TRUE(controller->flushUsage().ok());
  auto again = counters()->listUsage();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0].requestCount, 2);

  shard->record("ping", "k7Hq2xPz", *IpAddress::parse("203.0.113.9"), 200, 1'700'000'003'000);
  AdminResponse r = handleAdminRequest(*controller, metrics, "GET", "/api/v1/apikeys");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            R"([{"id":"k7Hq2xPz","name":"Ping Worker","gateways":["ping"],"role":"worker",)"
            R"("enabled":true,"blocked":false,"request_count":3,"last_used_at":1700000003000,)"
            R"("last_ip":"203.0.113.9","responses":{"1xx":0,"2xx":2,"3xx":0,"4xx":0,"5xx":1}}])"
            "\n");
  EXPECT_EQ(r.body.find(std::string(64, 'a')), std::string::npos);

  AdminResponse m = handleAdminRequest(*controller, metrics, "GET", "/metrics");
  EXPECT_NE(m.body.find("edgeplane_gateway_requests_total{gateway=\"ping\",key_id=\"k7Hq2xPz\","
                        "code=\"200\"} 2\n"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("edgeplane_gateway_requests_total{gateway=\"ping\",key_id=\"\","
                        "code=\"401\"} 1\n"),
            std::string::npos);
}

TEST_F(GatewayControl, UsageStaysPendingWhileTheProxysStoreCannotBeOpened) {
  gateway::Runtime& rt = controller->gatewayRuntime();
  rt.addShard()->record("ping", "k7Hq2xPz", *IpAddress::parse("203.0.113.7"), 200, 1);
  std::ofstream(proxyOwnDir(dir.path())) << "not a directory";
  EXPECT_FALSE(controller->flushUsage().ok());  // nothing lost
  std::filesystem::remove(proxyOwnDir(dir.path()));
  publish(gatewaySnapshot());
  auto flushed = controller->flushUsage();
  ASSERT_TRUE(flushed.ok()) << flushed.error().message;
  EXPECT_EQ(*flushed, 1u);
  auto usage = counters()->listUsage();
  ASSERT_TRUE(usage.ok());
  ASSERT_EQ(usage->size(), 1u);
  EXPECT_EQ((*usage)[0].requestCount, 1);
}

}  // namespace
}  // namespace edgeplane::proxy
