// The planner's certificate and route decisions, and the snapshot an apply leaves. Pure.
#include <gtest/gtest.h>

#include "reconciler/core/apply.h"
#include "reconciler/core/plan.h"

namespace edgeplane {
namespace {

using core::Action;
using core::Kind;

constexpr int64_t kDay = 86400;
constexpr int64_t kNow = 1800000000;

SnapshotRoute siteRoute(std::string name, std::string cert, std::vector<std::string> hosts) {
  SnapshotRoute r;
  r.kind = RouteKind::Site;
  r.name = std::move(name);
  r.hostnames = std::move(hosts);
  r.namespace_name = "blue";
  r.netns = netnsName("blue");
  r.backends = {*Endpoint::parse("10.0.0.1:80"), *Endpoint::parse("10.0.0.2:80")};
  r.certificate = std::move(cert);
  return r;
}

SnapshotRoute passRoute(std::string name, std::vector<std::string> hosts) {
  SnapshotRoute r;
  r.kind = RouteKind::Passthrough;
  r.name = std::move(name);
  r.hostnames = std::move(hosts);
  r.namespace_name = "blue";
  r.netns = netnsName("blue");
  r.backends = {*Endpoint::parse("10.0.0.3:443")};
  return r;
}

core::CertTarget certTarget(std::string name, core::CertSource source,
                            std::vector<std::string> domains) {
  core::CertTarget c;
  c.name = std::move(name);
  c.source = source;
  c.domains = std::move(domains);
  if (source == core::CertSource::Files) {
    c.certFile = "/etc/tls/" + c.name + ".pem";
    c.keyFile = "/etc/tls/" + c.name + ".key";
  }
  return c;
}

core::CertView view(std::vector<std::string> domains, int64_t notBefore, int64_t notAfter,
                    std::string fp = std::string(64, 'a')) {
  core::CertView v;
  v.certFile = "/state/certs/x/1/cert.pem";
  v.keyFile = "/state/certs/x/1/key.pem";
  v.fingerprint = std::move(fp);
  v.domains = std::move(domains);
  v.notBefore = notBefore;
  v.notAfter = notAfter;
  return v;
}

struct Case {
  core::Target target;
  core::HostState observed;
  core::StoreView store;
  Case() {
    target.host = "h";
    target.proxy.host = "h";
    observed.now = kNow;
  }
  core::Plan plan() const { return core::plan(target, observed, store); }
};

std::vector<std::string> lines(const core::Plan& p) {
  std::vector<std::string> out;
  for (const auto& op : p.ops) {
    out.push_back(std::string(1, op.action == Action::Create   ? '+'
                                 : op.action == Action::Update ? '~'
                                                               : '-') +
                  " " + std::string(core::toString(op.kind)) + " " + op.name +
                  (op.summary.empty() ? "" : " (" + op.summary + ")"));
  }
  return out;
}

TEST(PlanProxy, NothingObservedPlansEveryCertificateAndRouteAsAdded) {
  Case c;
  c.target.certificates = {
      certTarget("shop", core::CertSource::SelfSigned, {"a.example.net", "shop.example.net"}),
      certTarget("vault", core::CertSource::Placeholder, {"vault.example.net"})};
  c.target.proxy.routes = {passRoute("secure", {"secure.example.net"}),
                           siteRoute("shop", "shop", {"shop.example.net"})};
  EXPECT_EQ(lines(c.plan()), (std::vector<std::string>{
                                 "+ certificate shop (self-signed, 2 domains)",
                                 "+ certificate vault (placeholder (acme pending), 1 domain)",
                                 "+ passthrough secure (secure.example.net → 1 backend in blue)",
                                 "+ site shop (shop.example.net → 2 backends in blue)"}));
  // The site waits for its certificate.
  const core::Plan p = c.plan();
  EXPECT_EQ(p.ops[3].dependsOn, (std::vector<size_t>{0}));
}

TEST(PlanProxy, GeneratedCertificateRenewsWhenAThirdOfItsLifetimeIsLeft) {
  Case c;
  c.target.certificates = {certTarget("shop", core::CertSource::SelfSigned, {"shop.example.net"})};
  const int64_t lifetime = 90 * kDay;
  // 31 days left of 90: not yet (a third is 30 days).
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 31 * kDay - lifetime, kNow + 31 * kDay);
  EXPECT_TRUE(c.plan().empty());
  // 30 days left: renew.
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 30 * kDay - lifetime, kNow + 30 * kDay);
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ certificate shop (renew: expires in 30 days)"}));
  // Expired.
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow - 2 * kDay - lifetime, kNow - 2 * kDay);
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ certificate shop (renew: expired 2 days ago)"}));
}

TEST(PlanProxy, RenewBeforeMovesTheThreshold) {
  Case c;
  c.target.certificates = {certTarget("shop", core::CertSource::SelfSigned, {"shop.example.net"})};
  c.target.certificates[0].renewBefore = 45 * kDay;
  const int64_t lifetime = 90 * kDay;
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 46 * kDay - lifetime, kNow + 46 * kDay);
  EXPECT_TRUE(c.plan().empty());
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 44 * kDay - lifetime, kNow + 44 * kDay);
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ certificate shop (renew: expires in 44 days)"}));
  // As long as the lifetime: a third of it instead, not a renewal on every run.
  c.target.certificates[0].renewBefore = lifetime;
  EXPECT_TRUE(c.plan().empty());
}

TEST(PlanProxy, DomainsChangingReissuesAndUnusedGeneratedFilesAreRemoved) {
  Case c;
  c.target.certificates = {
      certTarget("shop", core::CertSource::SelfSigned, {"a.example.net", "b.example.net"})};
  c.observed.generatedCerts["shop"] =
      view({"a.example.net", "c.example.net"}, kNow, kNow + 90 * kDay);
  c.observed.generatedCerts["old"] = view({"old.example.net"}, kNow, kNow + 90 * kDay);
  EXPECT_EQ(lines(c.plan()), (std::vector<std::string>{
                                 "~ certificate shop (domains: + b.example.net, - c.example.net)",
                                 "- certificate old"}));
}

TEST(PlanProxy, FilesFingerprintChangeAndErrorsIsolateTheirRoutes) {
  Case c;
  c.target.certificates = {certTarget("ext", core::CertSource::Files, {"ext.example.net"}),
                           certTarget("bad", core::CertSource::Files, {"bad.example.net"})};
  c.target.proxy.routes = {siteRoute("bad", "bad", {"bad.example.net"}),
                           siteRoute("ext", "ext", {"ext.example.net"})};
  c.observed.fileCerts["ext"] =
      view({"ext.example.net"}, kNow, kNow + 60 * kDay, std::string(64, 'b'));
  core::CertView broken = view({"other.example.net"}, kNow, kNow + 60 * kDay);
  c.observed.fileCerts["bad"] = broken;
  ProxySnapshot applied;
  applied.host = "h";
  applied.routes = c.target.proxy.routes;
  applied.certificates = {SnapshotCertificate{"bad",
                                              std::string(64, 'a'),
                                              broken.certFile,
                                              broken.keyFile,
                                              {"bad.example.net"},
                                              kNow + kDay},
                          SnapshotCertificate{"ext",
                                              std::string(64, 'a'),
                                              broken.certFile,
                                              broken.keyFile,
                                              {"ext.example.net"},
                                              kNow + kDay}};
  c.store.snapshot = applied;
  const core::Plan p = c.plan();
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ certificate ext (files: new fingerprint bbbbbbbbbbbbbbbb…, expires in "
                          "60 days)",
                          "~ certificate bad (files: error)",
                          "- site bad (withdrawn: certificate bad has an error)"}));
  EXPECT_NE(p.ops[1].error.find("does not cover bad.example.net"), std::string::npos);
  EXPECT_NE(core::renderText(p).find("      error: "), std::string::npos);

  // Apply: the broken certificate's op fails, its route is left out, the other one stays.
  struct NoHost : core::HostDriver {
    Result<core::HostState> observe() override { return core::HostState{}; }
    Result<void> createNamespace(const std::string&) override { return {}; }
    Result<void> deleteNamespace(const std::string&) override { return {}; }
    Result<void> enableHostForwarding() override { return {}; }
    Result<void> ensureUplink(const core::UplinkTarget&) override { return {}; }
    Result<void> deleteUplink(const std::string&) override { return {}; }
    Result<void> ensureWireGuard(const core::WireGuardTarget&) override { return {}; }
    Result<void> deleteWireGuard(const std::string&) override { return {}; }
    Result<void> syncPeers(const core::WireGuardTarget&) override { return {}; }
    Result<void> replaceRoute(const core::RouteTarget&) override { return {}; }
    Result<void> deleteRoute(const std::string&, const IpPrefix&) override { return {}; }
    Result<void> syncTable(const std::string&, const core::NftTableView&) override { return {}; }
    Result<void> deleteTable(const std::string&) override { return {}; }
  } host;
  struct Files : core::CertDriver {
    const core::HostState* seen = nullptr;
    Result<core::CertView> issue(const core::CertTarget&) override { return terminal("no"); }
    Result<core::CertView> read(const core::CertTarget& t) override {
      return seen->fileCerts.at(t.name);
    }
    Result<void> remove(const std::string&) override { return {}; }
  } certs;
  certs.seen = &c.observed;
  const core::ApplyResult result = core::apply(p, host, &certs);
  EXPECT_TRUE(result.ops[0].ok);
  EXPECT_FALSE(result.ops[1].ok);
  std::vector<std::string> leftOut;
  const ProxySnapshot s = core::snapshotAfter(p, result, c.observed, leftOut);
  ASSERT_EQ(s.routes.size(), 1u);
  EXPECT_EQ(s.routes[0].name, "ext");
  ASSERT_EQ(s.certificates.size(), 1u);
  EXPECT_EQ(s.certificates[0].fingerprint, std::string(64, 'b'));
  ASSERT_EQ(leftOut.size(), 1u);
  EXPECT_NE(leftOut[0].find("site bad: certificate bad:"), std::string::npos) << leftOut[0];
  EXPECT_TRUE(snapshotFromJson(snapshotToJson(s)).ok());
}

TEST(PlanProxy, RouteChangesAreDiffedAgainstThePublishedSnapshot) {
  Case c;
  c.target.proxy.routes = {passRoute("secure", {"secure.example.net", "vault.example.net"})};
  ProxySnapshot applied;
  applied.host = "h";
  applied.routes = {passRoute("secure", {"secure.example.net"}),
                    siteRoute("old", "old", {"old.example.net"})};
  c.store.snapshot = applied;
  const core::Plan p = c.plan();
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ passthrough secure (hostnames: + vault.example.net)", "- site old"}));
  EXPECT_NE(core::renderJson(p).find("\"kind\":\"passthrough\""), std::string::npos);
  // Converged: no ops.
  c.store.snapshot->routes = c.target.proxy.routes;
  EXPECT_TRUE(c.plan().empty());
}

TEST(PlanProxy, WildcardCoverage) {
  EXPECT_TRUE(core::certCovers({"*.example.net"}, "a.example.net"));
  EXPECT_FALSE(core::certCovers({"*.example.net"}, "example.net"));
  EXPECT_FALSE(core::certCovers({"*.example.net"}, "a.b.example.net"));
  EXPECT_TRUE(core::certCovers({"a.example.net"}, "a.example.net"));
}

}  // namespace
}  // namespace edgeplane
