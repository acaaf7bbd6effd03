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

SnapshotRoute gatewayRoute(std::string name) {
  SnapshotRoute r;
  r.kind = RouteKind::Gateway;
  r.name = std::move(name);
  r.hostnames = {r.name + ".example.net"};
  r.namespace_name = "blue";
  r.netns = netnsName("blue");
  r.certificate = r.name;
  r.rate_limit = "100/minute";
  for (const char* path : {"/api/a", "/api/b"}) {
    r.endpoints.push_back({path, "GET", {*Endpoint::parse("10.0.0.5:8080")}});
  }
  return r;
}

SnapshotApiKey apiKey(std::string id, std::vector<std::string> gateways, char digit = 'a') {
  SnapshotApiKey k;
  k.id = std::move(id);
  k.name = "External Ping Worker #1";
  k.sha256 = std::string(64, digit);
  k.gateways = std::move(gateways);
  return k;
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
      certTarget("vault", core::CertSource::Acme, {"vault.example.net"}),
      certTarget("web", core::CertSource::Acme, {"web.example.net"})};
  c.target.certificates[2].challenge = AcmeChallengeType::TlsAlpn01;
  c.target.proxy.routes = {passRoute("secure", {"secure.example.net"}),
                           siteRoute("shop", "shop", {"shop.example.net"})};
  // vault names no challenge: it is chosen when ordering, from the proxy's listeners.
  EXPECT_EQ(lines(c.plan()), (std::vector<std::string>{
                                 "+ certificate shop (self-signed, 2 domains)",
                                 "+ certificate vault (acme, 1 domain)",
                                 "+ certificate web (acme tls-alpn-01, 1 domain)",
                                 "+ passthrough secure (secure.example.net → 1 backend in blue)",
                                 "+ site shop (shop.example.net → 2 backends in blue)"}));
  // The site waits for its certificate.
  const core::Plan p = c.plan();
  EXPECT_EQ(p.ops[4].dependsOn, (std::vector<size_t>{0}));
}

// A site of the host itself (no namespace: loopback backends such as the agent's webhook)
// plans as "on the host", and moving a site there shows as a namespace change.
TEST(PlanProxy, ASiteOfTheHostPlansOnTheHost) {
  Case c;
  SnapshotRoute hooks = siteRoute("hooks", "hooks", {"hooks.example.net"});
  hooks.namespace_name = "";
  hooks.netns = "";
  hooks.backends = {*Endpoint::parse("127.0.0.1:9000")};
  c.target.proxy.routes = {hooks};
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"+ site hooks (hooks.example.net → 1 backend on the host)"}));
  c.store.snapshot = ProxySnapshot{};
  c.store.snapshot->routes = {siteRoute("hooks", "hooks", {"hooks.example.net"})};
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ site hooks (namespace: blue → (none: the host); backends: "
                                      "10.0.0.1:80, 10.0.0.2:80 → 127.0.0.1:9000)"}));
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

// ACME: a placeholder until the first order, which runs after the snapshot; an issued
// certificate is re-ordered when its domains change or its renewal is due, and renew_before
// longer than the lifetime means every run (a forced renewal).
TEST(PlanProxy, AcmeCertificateIsOrderedUntilIssuedThenRenewed) {
  Case c;
  c.target.certificates = {certTarget("shop", core::CertSource::Acme, {"shop.example.net"})};
  core::Plan p = c.plan();
  ASSERT_EQ(p.ops.size(), 1U);
  EXPECT_TRUE(p.ops[0].placeholder);
  const int64_t lifetime = 90 * kDay;
  core::CertView placeholder = view({"shop.example.net"}, kNow, kNow + lifetime);
  placeholder.selfIssued = true;
  c.observed.generatedCerts["shop"] = placeholder;
  p = c.plan();
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ certificate shop (acme: the placeholder is served until the first "
                          "certificate)"}));
  EXPECT_FALSE(p.ops[0].placeholder);  // the placeholder in place stays until the order
  c.observed.generatedCerts["shop"] = view({"shop.example.net"}, kNow, kNow + lifetime);
  EXPECT_TRUE(c.plan().empty());
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 29 * kDay - lifetime, kNow + 29 * kDay);
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ certificate shop (acme: renew: 696h left (a third of its "
                                      "lifetime))"}));
  c.observed.generatedCerts["shop"] = view({"old.example.net"}, kNow, kNow + lifetime);
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ certificate shop (acme: its domains changed)"}));
  c.observed.generatedCerts["shop"] = view({"shop.example.net"}, kNow, kNow + lifetime);
  c.target.certificates[0].renewBefore = lifetime + kDay;
  EXPECT_EQ(
      lines(c.plan()),
      (std::vector<std::string>{"~ certificate shop (acme: renew: 2160h left (renew_before))"}));
}

// The time the ACME step chose in the CA's RFC 9773 window (kept in the store) decides the
// plan's renewal as it decides apply's, for the certificate it was given for only.
TEST(PlanProxy, AcmeRenewalFollowsTheCasWindowForThatCertificate) {
  Case c;
  c.target.certificates = {certTarget("shop", core::CertSource::Acme, {"shop.example.net"})};
  const int64_t lifetime = 90 * kDay;
  // A third of the lifetime is left: due by the lifetime rule...
  c.observed.generatedCerts["shop"] =
      view({"shop.example.net"}, kNow + 29 * kDay - lifetime, kNow + 29 * kDay);
  ASSERT_EQ(c.plan().ops.size(), 1U);
  // ...but the CA's window for this certificate starts later: nothing to do yet.
  c.store.ariRenewals["shop"] = {std::string(64, 'a'), kNow + 10 * kDay};
  EXPECT_TRUE(c.plan().empty()) << ::testing::PrintToString(lines(c.plan()));
  // A window given for another certificate (an older fingerprint) is void.
  c.store.ariRenewals["shop"] = {std::string(64, 'b'), kNow + 10 * kDay};
  EXPECT_EQ(c.plan().ops.size(), 1U);
  // A window that has begun renews a certificate the lifetime rule would keep.
  c.observed.generatedCerts["shop"] = view({"shop.example.net"}, kNow, kNow + lifetime);
  EXPECT_TRUE(c.plan().empty());
  c.store.ariRenewals["shop"] = {std::string(64, 'a'), kNow - 60};
  auto l = lines(c.plan());
  ASSERT_EQ(l.size(), 1U);
  EXPECT_NE(l[0].find("RFC 9773"), std::string::npos) << l[0];
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
  EXPECT_NE(core::renderText(p).find("  ! certificate bad: "), std::string::npos)
      << core::renderText(p);

  // Apply: the broken certificate's op fails, its route is left out, the other one stays.
  struct NoHost : core::HostDriver {
    Result<core::HostState> observe() override { return core::HostState{}; }
    Result<void> createNamespace(const std::string&) override { return {}; }
    Result<void> deleteNamespace(const std::string&) override { return {}; }
    Result<void> setHostForwarding(bool) override { return {}; }
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

// A files certificate is served from its copy in the state directory; one served straight from
// the operator's files (applied before copies were made) is copied, its content unchanged.
TEST(PlanProxy, AFilesCertificateServedFromTheOperatorsFilesIsCopied) {
  Case c;
  c.target.certificates = {certTarget("ext", core::CertSource::Files, {"ext.example.net"})};
  c.target.proxy.routes = {siteRoute("ext", "ext", {"ext.example.net"})};
  core::CertView direct = view({"ext.example.net"}, kNow, kNow + 60 * kDay);
  direct.certFile = c.target.certificates[0].certFile;
  direct.keyFile = c.target.certificates[0].keyFile;
  c.observed.fileCerts["ext"] = direct;
  ProxySnapshot applied;
  applied.host = "h";
  applied.routes = c.target.proxy.routes;
  applied.certificates = {SnapshotCertificate{"ext",
                                              direct.fingerprint,
                                              direct.certFile,
                                              direct.keyFile,
                                              {"ext.example.net"},
                                              direct.notAfter}};
  c.store.snapshot = applied;
  const core::Plan p = c.plan();
  EXPECT_EQ(lines(p),
            (std::vector<std::string>{"~ certificate ext (files: copy into the state directory)"}));
  ASSERT_EQ(p.ops.size(), 1u);
  EXPECT_EQ(p.ops[0].changes[0].field, "cert_file");
  EXPECT_EQ(p.ops[0].changes[0].before, direct.certFile);

  // Served from its copy: converged.
  const core::CertView copy = view({"ext.example.net"}, kNow, kNow + 60 * kDay);
  c.observed.fileCerts["ext"] = copy;
  c.store.snapshot->certificates[0].cert_file = copy.certFile;
  c.store.snapshot->certificates[0].key_file = copy.keyFile;
  EXPECT_TRUE(c.plan().ops.empty()) << lines(c.plan())[0];
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

TEST(PlanProxy, GatewaysAreDiffedLikeOtherRoutes) {
  Case c;
  SnapshotRoute changed = gatewayRoute("ping");
  changed.rate_limit = "10/second";
  c.target.proxy.routes = {changed, gatewayRoute("pong")};
  ProxySnapshot applied;
  applied.routes = {gatewayRoute("ping"), gatewayRoute("old")};
  c.store.snapshot = applied;
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ gateway ping (rate_limit: 100/minute → 10/second)",
                                      "+ gateway pong (pong.example.net → 2 endpoints in blue)",
                                      "- gateway old"}));
}

// An endpoint's health_check is part of the endpoints text: added, changed or removed, it
// shows as an "endpoints" change (a site's shows as its own "health_check" field).
TEST(PlanProxy, GatewayEndpointHealthCheckChangesShow) {
  auto withCheck = [](std::string interval) {
    SnapshotRoute r = gatewayRoute("ping");
    SnapshotEndpoint& e = r.endpoints[0];
    e.health_path = "/ready";
    e.health_interval = Duration{std::stoll(interval)};
    e.health_timeout = Duration{1000};
    e.health_healthy_threshold = 2;
    e.health_unhealthy_threshold = 3;
    e.health_expect_status = "204";
    return r;
  };
  const std::string plain = "GET /api/a → 10.0.0.5:8080 (round_robin)";
  const std::string rest = "; GET /api/b → 10.0.0.5:8080 (round_robin)";
  const std::string every5s =
      "GET /api/a → 10.0.0.5:8080 (round_robin, health_check /ready "
      "every 5s timeout 1s up 2 down 3 expect 204)";
  const std::string every10s =
      "GET /api/a → 10.0.0.5:8080 (round_robin, health_check /ready "
      "every 10s timeout 1s up 2 down 3 expect 204)";

  Case c;
  c.target.proxy.routes = {withCheck("5000")};
  ProxySnapshot applied;
  applied.routes = {gatewayRoute("ping")};
  c.store.snapshot = applied;
  core::Plan added = c.plan();
  EXPECT_EQ(lines(added), (std::vector<std::string>{"~ gateway ping (endpoints: " + plain + rest +
                                                    " → " + every5s + rest + ")"}));
  ASSERT_EQ(added.ops.size(), 1u);
  ASSERT_EQ(added.ops[0].changes.size(), 1u);
  EXPECT_EQ(added.ops[0].changes[0].field, "endpoints");

  c.store.snapshot->routes = {withCheck("10000")};
  EXPECT_EQ(lines(c.plan()), (std::vector<std::string>{"~ gateway ping (endpoints: " + every10s +
                                                       rest + " → " + every5s + rest + ")"}));

  c.target.proxy.routes = {gatewayRoute("ping")};
  EXPECT_EQ(lines(c.plan()), (std::vector<std::string>{"~ gateway ping (endpoints: " + every10s +
                                                       rest + " → " + plain + rest + ")"}));

  c.store.snapshot->routes = c.target.proxy.routes;
  EXPECT_TRUE(c.plan().empty());
}

TEST(PlanProxy, ApiKeysAreDiffedWithoutEverShowingADigest) {
  Case c;
  c.target.proxy.routes = {gatewayRoute("ping")};
  SnapshotApiKey disabled = apiKey("k7Hq2xPz", {"ping"});
  disabled.enabled = false;
  SnapshotApiKey rekeyed = apiKey("rekeyed1", {"ping"}, 'c');
  rekeyed.endpoints = {"/api/a"};
  SnapshotApiKey admin = apiKey("admin001", {});
  admin.role = ApiKeyRole::Admin;
  c.target.proxy.api_keys = {admin, disabled, apiKey("newkey01", {"ping"}), rekeyed};
  ProxySnapshot applied;
  applied.routes = {gatewayRoute("ping")};
  applied.api_keys = {admin, apiKey("gone0001", {"ping"}), apiKey("k7Hq2xPz", {"ping"}),
                      apiKey("rekeyed1", {"ping"}, 'b')};
  c.store.snapshot = applied;
  c.store.blockedApiKeys = {"k7Hq2xPz"};
  const core::Plan p = c.plan();
  EXPECT_EQ(lines(p), (std::vector<std::string>{
                          "~ api_key k7Hq2xPz (enabled: true → false)",
                          "+ api_key newkey01 (External Ping Worker #1)",
                          "~ api_key rekeyed1 (endpoints: all → /api/a; sha256: changed)",
                          "- api_key gone0001 (External Ping Worker #1)"}));
  const std::string text = core::renderText(p);
  const std::string json = core::renderJson(p);
  for (char digit : {'a', 'b', 'c'}) {
    EXPECT_EQ(text.find(std::string(64, digit)), std::string::npos) << text;
    EXPECT_EQ(json.find(std::string(64, digit)), std::string::npos) << json;
  }
  EXPECT_NE(text.find("      gateways: ping\n      role: worker\n      enabled: true\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\nnote: api_key k7Hq2xPz is blocked on this host (edgeplane apikey "
                      "unblock k7Hq2xPz)\n"),
            std::string::npos)
      << text;
  EXPECT_NE(json.find(R"x("notes":["api_key k7Hq2xPz is blocked on this host (edgeplane )x"
                      R"x(apikey unblock k7Hq2xPz)"])x"),
            std::string::npos)
      << json;
  EXPECT_NE(json.find(R"({"action":"update","kind":"api_key","name":"rekeyed1")"),
            std::string::npos)
      << json;

  // Converged but blocked: no changes, the note stays.
  c.store.snapshot->api_keys = c.target.proxy.api_keys;
  const core::Plan converged = c.plan();
  EXPECT_TRUE(converged.empty());
  EXPECT_EQ(converged.notes.size(), 1u);
  // Each field of a key is a change of its own.
  SnapshotApiKey renamed = disabled;
  renamed.name = "Renamed";
  renamed.role = ApiKeyRole::Admin;
  renamed.gateways = {};
  c.target.proxy.api_keys[1] = renamed;
  EXPECT_EQ(lines(c.plan()),
            (std::vector<std::string>{"~ api_key k7Hq2xPz (name: External Ping Worker #1 → "
                                      "Renamed; gateways: ping → all; role: worker → admin)"}));
}

// A gateway left out of the snapshot (its certificate is not usable) takes its keys' claims
// on it along: the proxy's decoder refuses a key naming a gateway that is not served.
TEST(PlanProxy, KeysOfAGatewayLeftOutAreLeftOutToo) {
  core::Plan p;
  p.target.proxy.host = "h";
  // ping's certificate was never materialised; pong's is on disk.
  p.target.certificates = {certTarget("ping", core::CertSource::Files, {"ping.example.net"}),
                           certTarget("pong", core::CertSource::Files, {"pong.example.net"})};
  core::HostState observed;
  observed.fileCerts["pong"] = view({"pong.example.net"}, 0, kNow + kDay);
  p.target.proxy.routes = {gatewayRoute("ping"), gatewayRoute("pong")};
  SnapshotApiKey admin = apiKey("admin001", {});
  admin.role = ApiKeyRole::Admin;
  p.target.proxy.api_keys = {admin, apiKey("both0001", {"ping", "pong"}),
                             apiKey("ping0001", {"ping"})};
  std::vector<std::string> leftOut;
  const ProxySnapshot s = core::snapshotAfter(p, core::ApplyResult{}, observed, leftOut);
  ASSERT_EQ(leftOut.size(), 1u);
  ASSERT_EQ(s.api_keys.size(), 2u);
  EXPECT_EQ(s.api_keys[0].id, "admin001");
  EXPECT_EQ(s.api_keys[1].id, "both0001");
  EXPECT_EQ(s.api_keys[1].gateways, std::vector<std::string>{"pong"});
  auto decoded = snapshotFromJson(snapshotToJson(s));
  EXPECT_TRUE(decoded.ok()) << decoded.error().message;

  // No gateway left at all: no keys.
  p.target.proxy.routes = {gatewayRoute("ping")};
  leftOut.clear();
  EXPECT_TRUE(core::snapshotAfter(p, core::ApplyResult{}, observed, leftOut).api_keys.empty());
}

TEST(PlanProxy, WildcardCoverage) {
  EXPECT_TRUE(core::certCovers({"*.example.net"}, "a.example.net"));
  EXPECT_FALSE(core::certCovers({"*.example.net"}, "example.net"));
  EXPECT_FALSE(core::certCovers({"*.example.net"}, "a.b.example.net"));
  EXPECT_TRUE(core::certCovers({"a.example.net"}, "a.example.net"));
}

}  // namespace
}  // namespace edgeplane
