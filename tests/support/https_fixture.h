// The https handler tests' fixture: an in-process engine with one worker, two self-signed
// certificates ("main" and "second", see SetUp) and site routes
// configured per test.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/engine.h"
#include "proxy/gateway/config.h"
#include "proxy/sni_router.h"
#include "proxy/tls/context.h"
#include "tests/support/https_peers.h"
#include "tests/support/temp_dir.h"

namespace edgeplane::proxy::testing_https {

using namespace std::chrono_literals;
using edgeplane::testing::TlsClient;

struct Site {
  Site(std::string n, std::vector<std::string> h, std::vector<Endpoint> b,
       std::string cert = "main", std::vector<bool> health = {})
      : name(std::move(n)),
        hosts(std::move(h)),
        backends(std::move(b)),
        certificate(std::move(cert)),
        up(std::move(health)) {}
  std::string name;
  std::vector<std::string> hosts;
  std::vector<Endpoint> backends;
  std::string certificate = "main";
  std::vector<bool> up;              // health, parallel to backends; empty: no health entries
  RouteKind kind = RouteKind::Site;  // Gateway: `endpoints`, else one endpoint "/" over `backends`
  std::vector<SnapshotEndpoint> endpoints;
  std::optional<std::string> rateLimit;  // gateway
};

// A port with nothing listening: connects are refused.
inline Endpoint refusedEndpoint() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  socklen_t len = sizeof sin;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  ::close(fd);  // the port is free again; nothing listens on it
  return *Endpoint::parse("127.0.0.1:" + std::to_string(ntohs(sin.sin_port)));
}

inline std::string get(const std::string& host, const std::string& path = "/",
                       const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n" + extra + "\r\n";
}

class HttpsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_.push_back(edgeplane::testing::makeCertificate(
        dir_.path(), "main",
        {"shop.example.test", "blog.example.test", "ws.example.test", "app.example.com"}));
    certs_.push_back(
        edgeplane::testing::makeCertificate(dir_.path(), "second", {"other.example.test"}));
    std::vector<std::string> errors;
    contexts_ = tls::ContextSet::build(certs_, nullptr, nullptr, &errors);
    ASSERT_TRUE(errors.empty()) << errors.front();
  }

  void start(EngineOptions options = {}) {
    options.https = Endpoint{IpAddress::v4(INADDR_LOOPBACK), 0};
    options.workers = 1;  // one upstream pool, so reuse is visible
    options.accessLog = accessLog_;
    auto started = Engine::start(options, metrics_);
    ASSERT_TRUE(started.ok()) << started.error().message;
    engine_ = std::move(started.value());
  }

  std::shared_ptr<const ActiveConfig> configure(const std::vector<Site>& sites) {
    auto config = std::make_shared<ActiveConfig>();
    config->generation = ++generation_;
    std::vector<RouteHosts> hosts;
    for (size_t i = 0; i < sites.size(); ++i) {
      auto route = std::make_unique<ActiveRoute>();
      route->spec.kind = sites[i].kind;
      route->spec.name = sites[i].name;
      if (sites[i].kind == RouteKind::Gateway) {
        route->spec.endpoints = sites[i].endpoints;
        if (route->spec.endpoints.empty()) {
          route->spec.endpoints = {
              SnapshotEndpoint{"/", "GET", sites[i].backends, Balance::RoundRobin}};
        }
        route->spec.rate_limit = sites[i].rateLimit;
      }
      route->spec.hostnames = sites[i].hosts;
      route->spec.backends = sites[i].backends;
      route->spec.certificate = sites[i].certificate;
      route->stats = std::make_shared<RouteStats>();
      for (bool up : sites[i].up) {
        route->health.push_back(std::make_shared<BackendHealth>());
        route->health.back()->up = up;
      }
      config->routes.push_back(std::move(route));
      hosts.push_back({static_cast<RouteId>(i), sites[i].hosts});
    }
    std::vector<RouteTableIssue> issues;
    config->table = RoutingTable::build(hosts, issues);
    config->tls = contexts_;
    auto gateways = gateway::GatewayConfig::build(*config, apiKeys_, gatewayRuntime_);
    gatewayRuntime_ = gateways->runtimePtr();
    config->gateway = std::move(gateways);
    engine_->setConfig(config);
    return config;
  }

  std::unique_ptr<TlsClient> client(const std::string& sni) {
    auto c = std::make_unique<TlsClient>(engine_->httpsPort(), sni);
    EXPECT_TRUE(c->connected());
    return c;
  }

  uint64_t errors(ErrorKind k) const { return metrics_.errors[static_cast<size_t>(k)].load(); }

  edgeplane::testing::TempDir dir_;
  std::vector<SnapshotCertificate> certs_;
  std::shared_ptr<const tls::ContextSet> contexts_;
  Metrics metrics_;
  std::unique_ptr<Engine> engine_;
  int64_t generation_ = 0;
  bool accessLog_ = false;
  std::vector<SnapshotApiKey> apiKeys_;  // the gateways' keys, for configure()
  std::shared_ptr<gateway::Runtime> gatewayRuntime_;
};

}  // namespace edgeplane::proxy::testing_https
