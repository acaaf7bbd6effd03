// Tests of the proxy routing snapshot: building from a config, the canonical JSON, the decoder.
#include "schema/snapshot.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "schema/diagnostic.h"
#include "schema/loader.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// By absolute path: __FILE__ is relative under CCACHE_BASEDIR, and ctest runs from build/tests.
fs::path examplesDir() {
  return fs::path(EDGEPLANE_EXAMPLES_DIR);
}

Desired fullExample() {
  Diagnostics diags;
  Desired all = loadAndValidate(examplesDir() / "full", diags);
  EXPECT_TRUE(diags.empty()) << diags.format();
  return all;
}

std::vector<std::string> keys(const ProxySnapshot& s) {
  std::vector<std::string> out;
  for (const auto& r : s.routes) {
    out.push_back(r.key());
  }
  return out;
}

const SnapshotRoute* findRoute(const ProxySnapshot& s, RouteKind kind, std::string_view name) {
  for (const auto& r : s.routes) {
    if (r.kind == kind && r.name == name) {
      return &r;
    }
  }
  return nullptr;
}

Endpoint ep(std::string_view text) {
  auto e = Endpoint::parse(text);
  EXPECT_TRUE(e.has_value()) << text;
  return e.value_or(Endpoint{});
}

// `text` with the first occurrence of `from` replaced by `to`.
std::string replaced(std::string text, std::string_view from, std::string_view to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "not in the text: " << from;
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// The certificates a route names, as the reconciler would list them (made-up files).
ProxySnapshot withCertificates(ProxySnapshot s) {
  std::set<std::string> names;
  for (const auto& r : s.routes) {
    if (r.certificate) {
      names.insert(*r.certificate);
    }
  }
  for (const auto& n : names) {
    s.certificates.push_back(SnapshotCertificate{n,
                                                 std::string(64, 'a'),
                                                 "/certs/" + n + "/cert.pem",
                                                 "/certs/" + n + "/key.pem",
                                                 {"x.example.com"},
                                                 1900000000});
  }
  return s;
}

// ---- building from examples/full ----

TEST(SnapshotBuild, FullExampleEdge2HasEveryRouteKindSorted) {
  const Desired all = fullExample();
  const ProxySnapshot s = buildSnapshot(resolveFor(all, "edge-2"), "edge-2", "0123abcd");
  EXPECT_EQ(s.host, "edge-2");
  EXPECT_EQ(s.commit, "0123abcd");
  EXPECT_EQ(keys(s), (std::vector<std::string>{"passthrough legacy", "passthrough mail",
                                               "passthrough secure", "site app", "site shop",
                                               "site www", "gateway ping"}));

  const SnapshotRoute* secure = findRoute(s, RouteKind::Passthrough, "secure");
  ASSERT_NE(secure, nullptr);
  EXPECT_EQ(secure->hostnames,
            (std::vector<std::string>{"secure.example.com", "*.tenants.example.com"}));
  EXPECT_EQ(secure->namespace_name, "tenant-b");
  EXPECT_EQ(secure->netns, "ep-tenant-b");
  EXPECT_EQ(secure->backends, (std::vector<Endpoint>{ep("10.51.0.20:443"), ep("10.51.0.21:443")}));
  EXPECT_EQ(secure->balance, Balance::RoundRobin);
  EXPECT_EQ(secure->proxy_protocol, ProxyProtocol::V2);
  EXPECT_FALSE(secure->certificate.has_value());

  const SnapshotRoute* mail = findRoute(s, RouteKind::Passthrough, "mail");
  ASSERT_NE(mail, nullptr);
  EXPECT_EQ(mail->hostnames, (std::vector<std::string>{"mail.gw.example.com"}));  // subdomain
  EXPECT_EQ(mail->proxy_protocol, ProxyProtocol::None);

  const SnapshotRoute* www = findRoute(s, RouteKind::Site, "www");
  ASSERT_NE(www, nullptr);
  EXPECT_EQ(www->hostnames, (std::vector<std::string>{"www.example.com", "example.com"}));
  EXPECT_EQ(www->netns, "ep-tenant-a");
  EXPECT_EQ(www->balance, Balance::Random);
  EXPECT_EQ(www->certificate, "www");
  EXPECT_TRUE(www->redirect_http);
  EXPECT_EQ(www->health_path, "/healthz");
  EXPECT_EQ(www->health_interval, Duration{10s});
  EXPECT_EQ(www->health_timeout, Duration{2s});

  const SnapshotRoute* app = findRoute(s, RouteKind::Site, "app");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->backends, (std::vector<Endpoint>{ep("[fd50::12]:8080")}));
  EXPECT_FALSE(app->redirect_http);
  EXPECT_FALSE(app->health_interval.has_value());
  EXPECT_FALSE(app->health_path.has_value());

  const SnapshotRoute* ping = findRoute(s, RouteKind::Gateway, "ping");
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ(ping->hostnames, (std::vector<std::string>{"manager.example.com"}));
  EXPECT_EQ(ping->certificate, "manager");
  EXPECT_EQ(ping->rate_limit, "100/minute");
  ASSERT_EQ(ping->endpoints.size(), 2u);
  EXPECT_EQ(ping->endpoints[0].path, "/api/gateway/target");
  EXPECT_EQ(ping->endpoints[0].method, "GET");
  EXPECT_EQ(ping->endpoints[0].backends,
            (std::vector<Endpoint>{ep("10.51.0.5:8080"), ep("10.51.0.6:8080")}));
  // The first endpoint's health_check, every field written; the second has none.
  EXPECT_EQ(ping->endpoints[0].health_path, "/healthz");
  EXPECT_EQ(ping->endpoints[0].health_interval, Duration{5s});
  EXPECT_EQ(ping->endpoints[0].health_timeout, Duration{1s});
  EXPECT_EQ(ping->endpoints[0].health_healthy_threshold, 2u);
  EXPECT_EQ(ping->endpoints[0].health_unhealthy_threshold, 3u);
  EXPECT_EQ(ping->endpoints[0].health_expect_status, "200");
  EXPECT_EQ(ping->endpoints[1].method, "POST");
  EXPECT_FALSE(ping->endpoints[1].health_path.has_value());
  EXPECT_FALSE(ping->endpoints[1].health_interval.has_value());
  EXPECT_FALSE(ping->endpoints[1].health_expect_status.has_value());
  EXPECT_FALSE(ping->health_path.has_value());  // a gateway route has none of its own
  EXPECT_TRUE(ping->backends.empty());
}

TEST(SnapshotBuild, FullExampleEdge1HasOnlyItsNamespacesRoutes) {
  const Desired all = fullExample();
  // edge-1 carries tenant-a, the suspended tenant-c (which has only a forward) and the site of
  // the host "hooks-1" (hosts = ["edge-1"]: not on edge-2), which has no namespace.
  const ProxySnapshot s = buildSnapshot(resolveFor(all, "edge-1"), "edge-1", std::nullopt);
  EXPECT_EQ(keys(s), (std::vector<std::string>{"passthrough legacy", "site app", "site hooks-1",
                                               "site www"}));
  for (const auto& r : s.routes) {
    EXPECT_EQ(r.namespace_name, r.name == "hooks-1" ? "" : "tenant-a") << r.key();
    EXPECT_EQ(r.netns, r.name == "hooks-1" ? "" : "ep-tenant-a") << r.key();
  }
  EXPECT_EQ(snapshotToJson(s).find("\"commit\""), std::string::npos);
}

TEST(SnapshotBuild, FullExampleRoundTripsAndIsCanonical) {
  const Desired all = fullExample();
  for (const char* host : {"edge-1", "edge-2"}) {
    const ProxySnapshot s = withCertificates(buildSnapshot(resolveFor(all, host), host, "cafe"));
    const std::string text = snapshotToJson(s);
    auto back = snapshotFromJson(text);
    ASSERT_TRUE(back.ok()) << host << ": " << back.error().message << "\n" << text;
    EXPECT_EQ(*back, s) << host;
    EXPECT_EQ(snapshotToJson(*back), text) << host;
    // Building again from a fresh load gives byte-identical text.
    EXPECT_EQ(snapshotToJson(
                  withCertificates(buildSnapshot(resolveFor(fullExample(), host), host, "cafe"))),
              text);
  }
}

// ---- building from small inline configs ----

Namespace ns(std::string name, bool suspended = false) {
  Namespace n;
  n.name = std::move(name);
  n.suspended = suspended;
  return n;
}

Passthrough passthrough(std::string name, std::string nsName, std::vector<std::string> hosts) {
  Passthrough p;
  p.name = std::move(name);
  p.namespace_name = std::move(nsName);
  p.hostnames = std::move(hosts);
  p.backends = {ep("10.0.0.1:443")};
  return p;
}

Site site(std::string name, std::string nsName, std::vector<std::string> hosts) {
  Site s;
  s.name = std::move(name);
  s.namespace_name = std::move(nsName);
  s.hostnames = std::move(hosts);
  s.backends = {ep("10.0.0.2:8080")};
  s.certificate = "c";
  return s;
}

Gateway gateway(std::string name, std::string nsName, std::string host) {
  Gateway g;
  g.name = std::move(name);
  g.namespace_name = std::move(nsName);
  g.hostname = std::move(host);
  g.certificate = "g";
  GatewayEndpoint e;
  e.path = "/x";
  e.method = "POST";
  e.backends = {ep("10.0.0.3:9000")};
  g.endpoints = {e};
  return g;
}

TEST(SnapshotBuild, SuspendedNamespacesRoutesAreLeftOut) {
  Desired d;
  d.namespaces = {ns("live"), ns("paused", true)};
  d.passthroughs = {passthrough("p-live", "live", {"a.example.com"}),
                    passthrough("p-paused", "paused", {"b.example.com"})};
  d.sites = {site("s-paused", "paused", {"c.example.com"}),
             site("s-live", "live", {"d.example.com"})};
  d.gateways = {gateway("g-paused", "paused", "e.example.com"),
                gateway("g-live", "live", "f.example.com")};
  const ProxySnapshot s = buildSnapshot(d, "h", std::nullopt);
  EXPECT_EQ(keys(s),
            (std::vector<std::string>{"passthrough p-live", "site s-live", "gateway g-live"}));

  // Un-suspending brings them back.
  d.namespaces[1].suspended = false;
  EXPECT_EQ(buildSnapshot(d, "h", std::nullopt).routes.size(), 6u);
}

TEST(SnapshotBuild, RoutesOfNamespacesNotOnTheHostAreLeftOut) {
  Desired d;  // as if resolveFor had not been applied: the route's namespace is unknown
  d.namespaces = {ns("here")};
  d.passthroughs = {passthrough("elsewhere", "gone", {"a.example.com"}),
                    passthrough("local", "here", {"b.example.com"})};
  EXPECT_EQ(keys(buildSnapshot(d, "h", std::nullopt)),
            (std::vector<std::string>{"passthrough local"}));
}

TEST(SnapshotBuild, HostnamesLowerCasedAndRoutesSortedByKindThenName) {
  Desired d;
  d.namespaces = {ns("t")};
  d.gateways = {gateway("a-gw", "t", "API.Example.COM")};
  d.sites = {site("zeta", "t", {"Zeta.Example.com"}), site("alpha", "t", {"ALPHA.example.com"})};
  d.passthroughs = {passthrough("b", "t", {"*.Apps.Example.com"}),
                    passthrough("a", "t", {"a.example.com"})};
  const ProxySnapshot s = buildSnapshot(d, "h", std::nullopt);
  EXPECT_EQ(keys(s), (std::vector<std::string>{"passthrough a", "passthrough b", "site alpha",
                                               "site zeta", "gateway a-gw"}));
  EXPECT_EQ(s.routes[1].hostnames, (std::vector<std::string>{"*.apps.example.com"}));
  EXPECT_EQ(s.routes[2].hostnames, (std::vector<std::string>{"alpha.example.com"}));
  EXPECT_EQ(s.routes[4].hostnames, (std::vector<std::string>{"api.example.com"}));
  EXPECT_EQ(s.routes[4].netns, "ep-t");

  // The config's order does not matter: reversed input, same text.
  Desired r = d;
  std::reverse(r.sites.begin(), r.sites.end());
  std::reverse(r.passthroughs.begin(), r.passthroughs.end());
  EXPECT_EQ(snapshotToJson(buildSnapshot(r, "h", std::nullopt)), snapshotToJson(s));
}

TEST(SnapshotBuild, HealthThresholdsOnlyWithAHealthCheck) {
  Desired d;
  d.namespaces = {ns("t")};
  Site checked = site("a", "t", {"a.example.com"});
  checked.health_check = HealthCheck{};
  checked.health_check->healthy_threshold = 5;
  checked.health_check->unhealthy_threshold = 1;
  checked.health_check->expect_status = "204";
  Site plain = site("b", "t", {"b.example.com"});
  d.sites = {checked, plain};
  const ProxySnapshot s = buildSnapshot(d, "h", std::nullopt);
  ASSERT_EQ(s.routes.size(), 2u);
  EXPECT_EQ(s.routes[0].health_healthy_threshold, 5u);
  EXPECT_EQ(s.routes[0].health_unhealthy_threshold, 1u);
  EXPECT_EQ(s.routes[0].health_expect_status, "204");
  EXPECT_FALSE(s.routes[1].health_healthy_threshold.has_value());
  EXPECT_FALSE(s.routes[1].health_unhealthy_threshold.has_value());
  EXPECT_FALSE(s.routes[1].health_expect_status.has_value());
  EXPECT_TRUE(s.certificates.empty());  // the reconciler fills them in
}

// A site without namespace (the host's own loopback services): no namespace, no netns; its
// route survives the JSON round trip and is not withdrawn for want of a serving namespace.
TEST(SnapshotBuild, ASiteOfTheHostHasNoNamespaceAndRoundTrips) {
  Desired d;
  Site s = site("hooks", "", {"hooks.example.com"});
  s.backends = {ep("127.0.0.1:9000"), ep("[::1]:9000")};
  d.sites = {s};
  ProxySnapshot snap = buildSnapshot(d, "edge-1", std::nullopt);
  ASSERT_EQ(snap.routes.size(), 1u);
  EXPECT_EQ(snap.routes[0].namespace_name, "");
  EXPECT_EQ(snap.routes[0].netns, "");
  snap.certificates = {SnapshotCertificate{
      "c", std::string(64, 'a'), "/c.pem", "/c.key", {"hooks.example.com"}, 1900000000}};
  auto back = snapshotFromJson(snapshotToJson(snap));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, snap);
}

TEST(SnapshotBuild, NetnsNameFollowsTheReconcilersRule) {
  EXPECT_EQ(netnsName("tenant-a"), "ep-tenant-a");
  EXPECT_EQ(std::string(kNetnsPrefix) + "x", netnsName("x"));
}

// ---- canonical text ----

// One route of each kind with every optional member set, and the exact text it must give.
ProxySnapshot sample() {
  Desired d;
  d.namespaces = {ns("tenant-a")};
  Passthrough p = passthrough("secure", "tenant-a", {"secure.example.com", "*.apps.example.com"});
  p.backends = {ep("10.50.0.12:443"), ep("[fd00::1]:8443")};
  p.proxy_protocol = ProxyProtocol::V1;
  p.balance = Balance::Random;
  Site s = site("web \"main\"", "tenant-a", {"www.example.com"});
  s.redirect_http = true;
  s.health_check = HealthCheck{"/healthz", Duration{10s}, Duration{1500ms}};
  Gateway g = gateway("ping", "tenant-a", "manager.example.com");
  g.rate_limit = RateLimit::parse("100/minute");
  g.endpoints[0].health_check = HealthCheck{"/ready", Duration{5s}, Duration{500ms}, 1, 4, "204"};
  GatewayEndpoint e2;
  e2.path = "/y";
  e2.method = "GET";
  e2.backends = {ep("10.0.0.4:9001"), ep("10.0.0.5:9001")};
  e2.balance = Balance::Random;
  g.endpoints.push_back(e2);
  d.passthroughs = {p};
  d.sites = {s};
  d.gateways = {g};
  ProxySnapshot out = buildSnapshot(d, "edge-1", "abc123");
  out.certificates = {
      SnapshotCertificate{"c",
                          "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
                          "/var/lib/edgeplane/certs/c/cert.pem",
                          "/var/lib/edgeplane/certs/c/key.pem",
                          {"www.example.com", "*.example.com"},
                          1790000000},
      SnapshotCertificate{"g",
                          std::string(64, 'f'),
                          "/etc/tls/g.pem",
                          "/etc/tls/g.key",
                          {"manager.example.com"},
                          1800000000}};
  out.api_keys = {
      SnapshotApiKey{"admin-1", "Ops", std::string(64, 'a'), {}, {}, ApiKeyRole::Admin, true},
      SnapshotApiKey{"k7Hq2xPz",
                     "Worker \"1\"",
                     std::string(64, '0'),
                     {"ping"},
                     {"/x"},
                     ApiKeyRole::Worker,
                     false}};
  return out;
}

constexpr std::string_view kSampleJson =
    R"({"version":3,"host":"edge-1","commit":"abc123","routes":[)"
    R"({"kind":"passthrough","name":"secure","hostnames":["secure.example.com",)"
    R"("*.apps.example.com"],"namespace":"tenant-a","netns":"ep-tenant-a",)"
    R"("backends":["10.50.0.12:443","[fd00::1]:8443"],"balance":"random",)"
    R"("proxy_protocol":"v1"},)"
    R"({"kind":"site","name":"web \"main\"","hostnames":["www.example.com"],)"
    R"("namespace":"tenant-a","netns":"ep-tenant-a","backends":["10.0.0.2:8080"],)"
    R"("balance":"round_robin","certificate":"c","redirect_http":true,"health_path":"/healthz",)"
    R"("health_interval_ms":10000,"health_timeout_ms":1500,"health_healthy_threshold":2,)"
    R"("health_unhealthy_threshold":3,"health_expect_status":"200-399"},)"
    R"({"kind":"gateway","name":"ping","hostnames":["manager.example.com"],)"
    R"("namespace":"tenant-a","netns":"ep-tenant-a","certificate":"g",)"
    R"("rate_limit":"100/minute","endpoints":[{"path":"/x","method":"POST",)"
    R"("backends":["10.0.0.3:9000"],"balance":"round_robin","health_path":"/ready",)"
    R"("health_interval_ms":5000,"health_timeout_ms":500,"health_healthy_threshold":1,)"
    R"("health_unhealthy_threshold":4,"health_expect_status":"204"},{"path":"/y","method":"GET",)"
    R"("backends":["10.0.0.4:9001","10.0.0.5:9001"],"balance":"random"}]}],)"
    R"("certificates":[{"name":"c","fingerprint":)"
    R"("0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",)"
    R"("cert_file":"/var/lib/edgeplane/certs/c/cert.pem",)"
    R"("key_file":"/var/lib/edgeplane/certs/c/key.pem",)"
    R"("domains":["www.example.com","*.example.com"],"not_after":1790000000},)"
    R"({"name":"g","fingerprint":"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",)"
    R"("cert_file":"/etc/tls/g.pem","key_file":"/etc/tls/g.key",)"
    R"("domains":["manager.example.com"],"not_after":1800000000}],)"
    R"("api_keys":[{"id":"admin-1","name":"Ops",)"
    R"("sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",)"
    R"("gateways":[],"endpoints":[],"role":"admin","enabled":true},)"
    R"({"id":"k7Hq2xPz","name":"Worker \"1\"",)"
    R"("sha256":"0000000000000000000000000000000000000000000000000000000000000000",)"
    R"("gateways":["ping"],"endpoints":["/x"],"role":"worker","enabled":false}]})";

TEST(SnapshotJson, CanonicalTextIsExactlyThis) {
  EXPECT_EQ(snapshotToJson(sample()), kSampleJson);
  EXPECT_EQ(snapshotToJson(sample()), snapshotToJson(sample()));
}

TEST(SnapshotJson, RoundTripsEveryMember) {
  const ProxySnapshot s = sample();
  auto back = snapshotFromJson(snapshotToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(SnapshotJson, EmptySnapshotRoundTrips) {
  ProxySnapshot s;
  s.host = "edge-9";
  EXPECT_EQ(snapshotToJson(s),
            R"({"version":3,"host":"edge-9","routes":[],"certificates":[],"api_keys":[]})");
  auto back = snapshotFromJson(snapshotToJson(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(SnapshotJson, StringEscapesRoundTrip) {
  ProxySnapshot s = sample();
  s.routes[1].name = std::string("quote\" backslash\\ slash/ caf\xc3\xa9 \xf0\x9f\x99\x82");
  const std::string text = snapshotToJson(s);
  EXPECT_NE(text.find("\"quote\\\" backslash\\\\ slash/ caf\xc3\xa9 \xf0\x9f\x99\x82\""),
            std::string::npos)
      << text;
  auto back = snapshotFromJson(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(SnapshotJson, ControlCharactersAreEscapedAndRefusedInNames) {
  ProxySnapshot s = sample();
  s.routes[1].name = std::string(
      "a\tb\nc\x01"
      "d\x1f",
      8);
  const std::string text = snapshotToJson(s);
  EXPECT_NE(text.find(R"("name":"a\tb\nc\u0001d\u001f")"), std::string::npos) << text;
  // Names end up in logs and metric labels: the decoder takes none of these.
  auto back = snapshotFromJson(text);
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().message, "snapshot: routes[1].name: contains a control character");
}

TEST(SnapshotJson, DecoderAcceptsWhitespaceAndEscapesButEncoderIsCanonical) {
  std::string spaced = std::string(kSampleJson);
  // Whitespace between tokens, \u escapes (a surrogate pair included) and an escaped slash.
  auto replace = [&](std::string_view from, std::string_view to) {
    const size_t at = spaced.find(from);
    ASSERT_NE(at, std::string::npos) << from;
    spaced.replace(at, from.size(), to);
  };
  replace(R"({"version":3,)", " {\n  \"version\" : 3 ,\r\n\t");
  replace(R"("commit":"abc123")", R"("commit":"ab\u0063\/\ud83d\ude42")");
  auto back = snapshotFromJson(spaced);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->commit, "abc/\xf0\x9f\x99\x82");
  ProxySnapshot expected = sample();
  expected.commit = back->commit;
  EXPECT_EQ(*back, expected);
  // Re-encoded: no whitespace between tokens, no needless escapes.
  EXPECT_EQ(snapshotToJson(*back), replaced(std::string(kSampleJson), R"("commit":"abc123")",
                                            "\"commit\":\"abc/\xf0\x9f\x99\x82\""));
}

// ---- every error path of the decoder ----

struct BadCase {
  std::string name;
  std::string json;
  std::string message;  // a part of the expected error
};

// The sample text with the first occurrence of `from` replaced by `to`.
std::string mutate(std::string_view from, std::string_view to) {
  return replaced(std::string(kSampleJson), from, to);
}

constexpr std::string_view kCertC =
    R"({"name":"c","fingerprint":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",)"
    R"("cert_file":"/var/lib/edgeplane/certs/c/cert.pem",)"
    R"("key_file":"/var/lib/edgeplane/certs/c/key.pem","domains":["a.example.com"],)"
    R"("not_after":1900000000})";

std::string withRoutesAndCerts(std::string_view routes, std::string_view certs) {
  return R"({"version":3,"host":"h","routes":[)" + std::string(routes) + R"(],"certificates":[)" +
         std::string(certs) + R"(],"api_keys":[]})";
}

// Routes may name certificate "c" or "g"; both are listed.
std::string withRoutes(std::string_view routes) {
  const std::string g = replaced(std::string(kCertC), R"("name":"c")", R"("name":"g")");
  return withRoutesAndCerts(routes, std::string(kCertC) + "," + g);
}

std::string withCert(std::string_view from, std::string_view to) {
  return withRoutesAndCerts("", replaced(std::string(kCertC), from, to));
}

constexpr std::string_view kPass =
    R"({"kind":"passthrough","name":"p","hostnames":["a.example.com"],"namespace":"t",)"
    R"("netns":"ep-t","backends":["10.0.0.1:443"],"balance":"round_robin",)"
    R"("proxy_protocol":"none"})";

constexpr std::string_view kSite =
    R"({"kind":"site","name":"s","hostnames":["s.example.com"],"namespace":"t","netns":"ep-t",)"
    R"("backends":["10.0.0.1:80"],"balance":"random","certificate":"c","redirect_http":false})";

std::vector<BadCase> badCases() {
  const std::string pass(kPass);
  auto passWith = [&](std::string_view from, std::string_view to) {
    return withRoutes(replaced(pass, from, to));
  };
  // The sample as version 2 would have it, but for its endpoint's health check.
  std::string v2 = mutate(R"({"version":3,)", R"({"version":2,)");
  v2 = v2.substr(0, v2.find(R"(,"api_keys":)")) + "}";
  return {
      // JSON syntax and the reader's limits
      {"empty", "", "unexpected end of input"},
      {"garbage", "hello", "expected a JSON value"},
      {"bad literal", R"({"version":tru})", "invalid literal"},
      {"trailing data", withRoutes("") + "x", "unexpected data after the JSON value"},
      {"two documents", withRoutes("") + withRoutes(""), "unexpected data"},
      {"fraction", R"({"version":2.0})", "numbers must be integers"},
      {"exponent", R"({"version":2e0})", "numbers must be integers"},
      {"int64 overflow", R"({"version":9223372036854775808})", "integer out of range"},
      {"int64 underflow", R"({"version":-9223372036854775809})", "integer out of range"},
      {"leading zero", R"({"version":01})", "leading zero"},
      {"minus alone", R"({"version":-})", "invalid number"},
      {"duplicate key", R"({"version":2,"version":2,"host":"h","routes":[]})",
       "duplicate key \"version\""},
      {"key not a string", R"({version:1})", "expected a string key"},
      {"missing colon", R"({"version" 1})", "expected ':'"},
      {"bad object separator", R"({"version":2;"host":"h"})", "expected ',' or '}'"},
      {"bad array separator", withRoutes(pass + ";" + pass), "expected ',' or ']'"},
      {"unterminated object", R"({"version":2)", "unterminated object"},
      {"unterminated array", R"({"version":2,"host":"h","routes":[)", "unexpected end of input"},
      {"unterminated array after element", R"({"routes":[1)", "unterminated array"},
      {"unterminated string", R"({"version)", "unterminated string"},
      {"raw control character", "{\"host\":\"a\nb\"}", "control character in a string"},
      {"invalid escape", R"({"host":"\x"})", "invalid escape"},
      {"bad \\u digits", R"({"host":"\u12g4"})", "invalid \\u escape"},
      {"truncated \\u", R"({"host":"\u12)", "truncated \\u escape"},
      {"lone low surrogate", R"({"host":"\udc00"})", "unpaired low surrogate"},
      {"lone high surrogate", R"({"host":"\ud800x"})", "unpaired high surrogate"},
      {"high surrogate then non-surrogate", R"({"host":"\ud800\u0041"})",
       "unpaired high surrogate"},
      {"invalid UTF-8 byte", "{\"host\":\"\xff\"}", "invalid UTF-8"},
      {"overlong UTF-8", "{\"host\":\"\xe0\x80\xaf\"}", "invalid UTF-8"},
      {"UTF-8 surrogate", "{\"host\":\"\xed\xa0\x80\"}", "invalid UTF-8"},
      {"truncated UTF-8", "{\"host\":\"\xe2\x82", "invalid UTF-8"},
      {"nested too deeply", std::string(100, '['), "nested too deeply"},
      // the document's shape
      {"not an object", "[]", "must be a JSON object, not an array"},
      {"missing version", R"({"host":"h","routes":[]})", "snapshot: missing key \"version\""},
      {"version as string", R"({"version":"1","host":"h","routes":[]})",
       "version: must be an integer, not a string"},
      {"newer version", R"({"version":4,"host":"h","routes":[],"new":1})",
       "version 4 is not supported (this build reads version 3)"},
      {"version 1 (no certificates)", R"({"version":1,"host":"h","routes":[]})",
       "version 1 is not supported (this build reads version 3)"},
      {"version 2 with api_keys",
       R"({"version":2,"host":"h","routes":[],"certificates":[],"api_keys":[]})",
       "unknown key \"api_keys\""},
      {"version 3 without api_keys", R"({"version":3,"host":"h","routes":[],"certificates":[]})",
       "missing key \"api_keys\""},
      // API keys
      {"key id too short", mutate(R"("id":"admin-1")", R"("id":"ad")"),
       "api_keys[0].id: \"ad\" is not 4 to 64 of [A-Za-z0-9_-]"},
      {"key id with a dot", mutate(R"("id":"admin-1")", R"("id":"adm.n")"), "is not 4 to 64"},
      {"key digest upper-case", mutate(R"("sha256":"aaaa)", R"("sha256":"AAaa)"),
       "api_keys[0].sha256: must be 64 lower-case hex digits"},
      {"key digest short", mutate(R"("sha256":"aaaa)", R"("sha256":"aaa)"),
       "api_keys[0].sha256: must be 64 lower-case hex digits"},
      {"key for an unknown gateway", mutate(R"("gateways":["ping"])", R"("gateways":["pong"])"),
       "api_keys[1].gateways[0]: \"pong\" is not a gateway route"},
      {"worker key without gateways", mutate(R"("gateways":["ping"])", R"("gateways":[])"),
       "api_keys[1].gateways: a worker key must name its gateways"},
      {"key endpoint not a path", mutate(R"("endpoints":["/x"])", R"("endpoints":["x"])"),
       "api_keys[1].endpoints[0]: \"x\" must start with '/'"},
      {"key role unknown", mutate(R"("role":"admin")", R"("role":"root")"),
       "api_keys[0].role: \"root\" is not \"worker\" or \"admin\""},
      {"keys out of order", mutate(R"("id":"k7Hq2xPz")", R"("id":"Aaaa")"),
       "api_keys[1]: key \"Aaaa\" is out of id order"},
      {"key twice", mutate(R"("id":"k7Hq2xPz")", R"("id":"admin-1")"),
       "api_keys[1]: key \"admin-1\" appears twice"},
      {"key member unknown", mutate(R"("enabled":true)", R"("enabled":true,"key":"ep_x")"),
       "unknown key \"key\""},
      {"version zero", R"({"version":0,"host":"h","routes":[]})", "version 0 is not supported"},
      {"missing host", R"({"version":3,"routes":[]})", "missing key \"host\""},
      {"empty host", R"({"version":2,"host":"","routes":[]})", "host: must not be empty"},
      {"host with a control character", R"({"version":2,"host":"a\u0001","routes":[]})",
       "host: contains a control character"},
      {"host too long", R"({"version":2,"host":")" + std::string(254, 'a') + R"(","routes":[]})",
       "host: longer than 253 bytes"},
      {"commit not a string", mutate(R"("commit":"abc123")", R"("commit":null)"),
       "commit: must be a string, not null"},
      {"missing routes", R"({"version":2,"host":"h"})", "snapshot: missing key \"routes\""},
      {"routes not an array", R"({"version":2,"host":"h","routes":{}})",
       "routes: must be an array, not an object"},
      {"missing certificates", R"({"version":2,"host":"h","routes":[]})",
       "snapshot: missing key \"certificates\""},
      {"unknown top-level key",
       R"({"version":2,"host":"h","routes":[],"certificates":[],"extra":true})",
       "snapshot: unknown key \"extra\" in the snapshot"},
      // routes
      {"route not an object", withRoutes("1"), "routes[0]: must be an object, not an integer"},
      {"missing kind", passWith(R"("kind":"passthrough",)", ""), "missing key \"kind\""},
      {"unknown kind", passWith("\"passthrough\"", "\"tcp\""),
       "routes[0].kind: \"tcp\" is not passthrough, site or gateway"},
      {"empty name", passWith(R"("name":"p")", R"("name":"")"),
       "routes[0].name: must not be empty"},
      {"name not a string", passWith(R"("name":"p")", R"("name":false)"),
       "routes[0].name: must be a string, not a boolean"},
      {"hostnames empty", passWith(R"(["a.example.com"])", "[]"),
       "routes[0].hostnames: must not be empty"},
      {"hostname not a string", passWith(R"(["a.example.com"])", "[1]"),
       "routes[0].hostnames[0]: must be a string, not an integer"},
      {"hostname not a DNS name", passWith("a.example.com", "a..example.com"),
       "\"a..example.com\" is not a lower-case DNS name"},
      {"hostname upper-case", passWith("a.example.com", "A.example.com"),
       "\"A.example.com\" is not a lower-case DNS name"},
      {"hostname twice in a route",
       passWith(R"(["a.example.com"])", R"(["a.example.com","a.example.com"])"),
       "routes[0].hostnames[1]: \"a.example.com\" appears twice"},
      {"namespace with a slash",
       passWith(R"("namespace":"t","netns":"ep-t")", R"("namespace":"../t","netns":"ep-../t")"),
       "routes[0].namespace: \"../t\" is not a namespace name"},
      {"netns not derived from the namespace", passWith(R"("netns":"ep-t")", R"("netns":"other")"),
       "routes[0].netns: \"other\" is not the network namespace of \"t\" (\"ep-t\")"},
      {"missing netns", passWith(R"("netns":"ep-t",)", ""), "missing key \"netns\""},
      {"passthrough without a namespace",
       passWith(R"("namespace":"t","netns":"ep-t")", R"("namespace":"","netns":"")"),
       "routes[0].namespace: \"\" is not a namespace name"},
      {"site without a namespace, netns given",
       withRoutes(replaced(std::string(kSite), R"("namespace":"t")", R"("namespace":"")")),
       "routes[0].namespace: \"\" is not a namespace name"},
      {"site of the host with a backend that is not loopback",
       withRoutes(replaced(std::string(kSite), R"("namespace":"t","netns":"ep-t")",
                           R"("namespace":"","netns":"")")),
       "routes[0].backends[0]: \"10.0.0.1:80\" is not a loopback address (a site without "
       "namespace)"},
      {"missing backends", passWith(R"("backends":["10.0.0.1:443"],)", ""),
       "missing key \"backends\""},
      {"backends empty", passWith(R"(["10.0.0.1:443"])", "[]"),
       "routes[0].backends: must not be empty"},
      {"backend not an address", passWith("10.0.0.1:443", "backend.example.com:443"),
       "routes[0].backends[0]: \"backend.example.com:443\" is not an address:port"},
      {"backend port 0", passWith("10.0.0.1:443", "10.0.0.1:0"), "is not an address:port"},
      {"backend without port", passWith("10.0.0.1:443", "10.0.0.1"), "is not an address:port"},
      {"bad balance", passWith("round_robin", "least_conn"),
       "routes[0].balance: \"least_conn\" is not round_robin or random"},
      {"bad proxy_protocol", passWith(R"("proxy_protocol":"none")", R"("proxy_protocol":"v3")"),
       "routes[0].proxy_protocol: \"v3\" is not none, v1 or v2"},
      {"passthrough with a certificate",
       passWith(R"("proxy_protocol":"none")", R"("proxy_protocol":"none","certificate":"c")"),
       "unknown key \"certificate\" in a passthrough route"},
      {"site without certificate", mutate(R"("certificate":"c",)", ""),
       "routes[1]: missing key \"certificate\""},
      {"site with empty certificate", mutate(R"("certificate":"c")", R"("certificate":"")"),
       "routes[1].certificate: must not be empty"},
      {"site redirect_http not a boolean",
       mutate(R"("redirect_http":true)", R"("redirect_http":1)"),
       "routes[1].redirect_http: must be a boolean, not an integer"},
      {"site health_path relative", mutate(R"("/healthz")", R"("healthz")"),
       "routes[1].health_path: \"healthz\" must start with '/'"},
      {"site health_path with a space", mutate(R"("/healthz")", R"("/health z")"),
       "routes[1].health_path: contains a space or control character"},
      {"site health interval zero",
       mutate(R"("health_interval_ms":10000)", R"("health_interval_ms":0)"),
       "routes[1].health_interval_ms: 0 is not between 1 and 604800000 milliseconds"},
      {"site health timeout over 7 days",
       mutate(R"("health_timeout_ms":1500)", R"("health_timeout_ms":604800001)"),
       "routes[1].health_timeout_ms: 604800001 is not between"},
      {"site health interval as text",
       mutate(R"("health_interval_ms":10000)", R"("health_interval_ms":"10s")"),
       "routes[1].health_interval_ms: must be an integer, not a string"},
      {"site with proxy_protocol",
       mutate(R"("health_timeout_ms":1500)", R"("health_timeout_ms":1500,"proxy_protocol":"v1")"),
       "unknown key \"proxy_protocol\" in a site route"},
      {"gateway bad rate_limit", mutate("100/minute", "100/fortnight"),
       "routes[2].rate_limit: \"100/fortnight\" is not N/second|minute|hour"},
      {"gateway without endpoints",
       withRoutes(R"({"kind":"gateway","name":"g","hostnames":["g.example.com"],)"
                  R"("namespace":"t","netns":"ep-t","certificate":"c"})"),
       "routes[0]: missing key \"endpoints\""},
      {"gateway endpoints empty",
       withRoutes(R"({"kind":"gateway","name":"g","hostnames":["g.example.com"],)"
                  R"("namespace":"t","netns":"ep-t","certificate":"c","endpoints":[]})"),
       "routes[0].endpoints: must not be empty"},
      {"gateway endpoint not an object",
       withRoutes(R"({"kind":"gateway","name":"g","hostnames":["g.example.com"],)"
                  R"("namespace":"t","netns":"ep-t","certificate":"c","endpoints":["/x"]})"),
       "routes[0].endpoints[0]: must be an object, not a string"},
      {"gateway endpoint bad method", mutate(R"("method":"POST")", R"("method":"post")"),
       "routes[2].endpoints[0].method: \"post\" is not an HTTP method"},
      {"gateway endpoint bad path", mutate(R"("path":"/x")", R"("path":"x")"),
       "routes[2].endpoints[0].path: \"x\" must start with '/'"},
      {"gateway endpoint twice",
       mutate(R"("path":"/y","method":"GET")", R"("path":"/x","method":"POST")"),
       "routes[2].endpoints[1]: POST \"/x\" appears twice"},
      {"gateway endpoint unknown key",
       mutate(R"("balance":"random"})", R"("balance":"random","weight":1})"),
       "unknown key \"weight\" in an endpoint"},
      {"gateway endpoint health_path relative",
       mutate(R"("health_path":"/ready")", R"("health_path":"ready")"),
       "routes[2].endpoints[0].health_path: \"ready\" must start with '/'"},
      {"gateway endpoint health_path with a space",
       mutate(R"("health_path":"/ready")", R"("health_path":"/re ady")"),
       "routes[2].endpoints[0].health_path: contains a space or control character"},
      {"gateway endpoint health_path not a string",
       mutate(R"("health_path":"/ready")", R"("health_path":1)"),
       "routes[2].endpoints[0].health_path: must be a string, not an integer"},
      {"gateway endpoint health interval zero",
       mutate(R"("health_interval_ms":5000)", R"("health_interval_ms":0)"),
       "routes[2].endpoints[0].health_interval_ms: 0 is not between 1 and 604800000 milliseconds"},
      {"gateway endpoint health timeout over 7 days",
       mutate(R"("health_timeout_ms":500)", R"("health_timeout_ms":604800001)"),
       "routes[2].endpoints[0].health_timeout_ms: 604800001 is not between"},
      {"gateway endpoint health interval as text",
       mutate(R"("health_interval_ms":5000)", R"("health_interval_ms":"5s")"),
       "routes[2].endpoints[0].health_interval_ms: must be an integer, not a string"},
      {"gateway endpoint health threshold zero",
       mutate(R"("health_healthy_threshold":1)", R"("health_healthy_threshold":0)"),
       "routes[2].endpoints[0].health_healthy_threshold: 0 is not between 1 and 100"},
      {"gateway endpoint unhealthy threshold too big",
       mutate(R"("health_unhealthy_threshold":4)", R"("health_unhealthy_threshold":101)"),
       "routes[2].endpoints[0].health_unhealthy_threshold: 101 is not between 1 and 100"},
      {"gateway endpoint expect_status bad range",
       mutate(R"("health_expect_status":"204")", R"("health_expect_status":"299-200")"),
       "routes[2].endpoints[0].health_expect_status: \"299-200\" is not a status or range in "
       "100-599"},
      {"gateway endpoint health key misspelt",
       mutate(R"("health_timeout_ms":500)", R"("health_timeout":500)"),
       "unknown key \"health_timeout\" in an endpoint"},
      {"gateway route with a health check of its own",
       mutate(R"("certificate":"g",)", R"("certificate":"g","health_path":"/ready",)"),
       "unknown key \"health_path\" in a gateway route"},
      {"version 2 endpoint with a health check", v2,
       "routes[2].endpoints[0]: unknown key \"health_path\" in an endpoint"},
      {"gateway with backends",
       mutate(R"("certificate":"g",)", R"("certificate":"g","backends":["10.0.0.1:1"],)"),
       "unknown key \"backends\" in a gateway route"},
      // certificates
      {"certificates not an array", R"({"version":2,"host":"h","routes":[],"certificates":{}})",
       "certificates: must be an array, not an object"},
      {"certificate not an object", withRoutesAndCerts("", "1"),
       "certificates[0]: must be an object, not an integer"},
      {"certificate missing fingerprint",
       withCert(
           R"("fingerprint":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",)",
           ""),
       "certificates[0]: missing key \"fingerprint\""},
      {"fingerprint upper-case hex", withCert("aabbccddeeff001122", "AABBCCDDEEFF001122"),
       "certificates[0].fingerprint: must be 64 lower-case hex digits"},
      {"fingerprint too short", withCert("ccddeeff\"", "ccddee\""),
       "certificates[0].fingerprint: must be 64 lower-case hex digits"},
      {"cert_file relative", withCert("\"/var/lib/edgeplane/certs/c/cert.pem\"", "\"cert.pem\""),
       "certificates[0].cert_file: \"cert.pem\" is not an absolute path"},
      {"key_file empty", withCert("\"/var/lib/edgeplane/certs/c/key.pem\"", "\"\""),
       "certificates[0].key_file: must not be empty"},
      {"domains empty", withCert(R"(["a.example.com"])", "[]"),
       "certificates[0].domains: must not be empty"},
      {"domain not a DNS name", withCert("a.example.com", "a_b.example.com"),
       "certificates[0].domains[0]: \"a_b.example.com\" is not a lower-case DNS name"},
      {"domain twice", withCert(R"(["a.example.com"])", R"(["a.example.com","a.example.com"])"),
       "certificates[0].domains[1]: \"a.example.com\" appears twice"},
      {"not_after as text", withCert("1900000000", "\"2030-01-01\""),
       "certificates[0].not_after: must be an integer, not a string"},
      {"not_after zero", withCert("1900000000", "0"),
       "certificates[0].not_after: must be a positive unix time"},
      {"certificate unknown key", withCert("1900000000}", "1900000000,\"key\":\"PEM\"}"),
       "unknown key \"key\" in a certificate"},
      {"certificate twice", withRoutesAndCerts("", std::string(kCertC) + "," + std::string(kCertC)),
       "certificates[1]: certificate \"c\" appears twice"},
      {"certificates out of order",
       withRoutesAndCerts("", replaced(std::string(kCertC), R"("name":"c")", R"("name":"z")") +
                                  "," + std::string(kCertC)),
       "certificates[1]: certificate \"c\" is out of name order"},
      {"route names a certificate not in the list",
       withRoutesAndCerts(
           replaced(std::string(kSite), R"("certificate":"c")", R"("certificate":"missing")"),
           kCertC),
       "routes[0].certificate: \"missing\" is not in \"certificates\""},
      {"site health threshold zero",
       mutate(R"("health_healthy_threshold":2)", R"("health_healthy_threshold":0)"),
       "routes[1].health_healthy_threshold: 0 is not between 1 and 100"},
      {"site unhealthy threshold too big",
       mutate(R"("health_unhealthy_threshold":3)", R"("health_unhealthy_threshold":101)"),
       "routes[1].health_unhealthy_threshold: 101 is not between 1 and 100"},
      {"site expect_status bad range", mutate(R"("200-399")", R"("399-200")"),
       "routes[1].health_expect_status: \"399-200\" is not a status or range in 100-599"},
      {"site expect_status out of range", mutate(R"("200-399")", R"("600")"),
       "is not a status or range in 100-599"},
      // across routes
      {"routes out of order",
       withRoutes(R"({"kind":"site","name":"s","hostnames":["s.example.com"],)"
                  R"("namespace":"t","netns":"ep-t","backends":["10.0.0.1:80"],)"
                  R"("balance":"random","certificate":"c","redirect_http":false},)" +
                  pass),
       "routes[1]: route \"passthrough p\" is out of (kind, name) order"},
      {"route twice", withRoutes(pass + "," + pass),
       "routes[1]: route \"passthrough p\" appears twice"},
      {"hostname claimed by two routes",
       withRoutes(pass + "," + replaced(pass, R"("name":"p")", R"("name":"q")")),
       "routes[1]: hostname \"a.example.com\" is claimed by another route"},
  };
}

TEST(SnapshotJson, EveryDecoderErrorIsReportedClearly) {
  // The base texts themselves decode: each case fails for its one change only.
  ASSERT_TRUE(snapshotFromJson(kSampleJson).ok());
  auto base = snapshotFromJson(withRoutes(kPass));
  ASSERT_TRUE(base.ok()) << base.error().message;
  for (const BadCase& c : badCases()) {
    auto r = snapshotFromJson(c.json);
    ASSERT_FALSE(r.ok()) << c.name << ": accepted\n" << c.json;
    EXPECT_NE(r.error().message.find(c.message), std::string::npos)
        << c.name << ":\n  want: " << c.message << "\n  got:  " << r.error().message;
    EXPECT_EQ(r.error().message.rfind("snapshot", 0), 0u) << c.name << ": " << r.error().message;
    EXPECT_FALSE(r.error().retryable) << c.name;
  }
}

// A host upgraded from a build that wrote version 2 keeps serving its stored snapshot.
TEST(SnapshotJson, Version2WithoutKeysIsStillRead) {
  ProxySnapshot s = sample();
  s.api_keys.clear();
  for (SnapshotRoute& r : s.routes) {
    for (SnapshotEndpoint& e : r.endpoints) {  // version 2 had no endpoint health checks
      e = SnapshotEndpoint{e.path, e.method, e.backends, e.balance};
    }
  }
  std::string v2 = replaced(snapshotToJson(s), R"({"version":3,)", R"({"version":2,)");
  v2 = replaced(v2, R"(,"api_keys":[])", "");
  auto back = snapshotFromJson(v2);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

// Keys follow their gateways: a key whose gateways are all elsewhere is left out; an admin key
// without gateways goes wherever a gateway is.
TEST(SnapshotBuild, ApiKeysFollowTheGatewaysServedHere) {
  Desired d;
  d.namespaces = {ns("tenant-a")};
  Gateway g = gateway("ping", "tenant-a", "manager.example.com");
  d.gateways = {g};
  ApiKey mine{"w1", "k1111", {}, {"ping", "elsewhere"}, {}, ApiKeyRole::Worker, true, {}};
  ApiKey other{"w2", "k2222", {}, {"elsewhere"}, {}, ApiKeyRole::Worker, true, {}};
  ApiKey admin{"a", "k0000", {}, {}, {}, ApiKeyRole::Admin, true, {}};
  mine.sha256.fill(0xab);
  d.api_keys = {other, mine, admin};
  ProxySnapshot s = buildSnapshot(d, "edge-1", std::nullopt);
  ASSERT_EQ(s.api_keys.size(), 2u);
  EXPECT_EQ(s.api_keys[0].id, "k0000");
  EXPECT_TRUE(s.api_keys[0].gateways.empty());
  EXPECT_EQ(s.api_keys[1].id, "k1111");
  EXPECT_EQ(s.api_keys[1].gateways, std::vector<std::string>{"ping"});
  std::string abs;
  for (int i = 0; i < 32; ++i) {
    abs += "ab";
  }
  EXPECT_EQ(s.api_keys[1].sha256, abs);
  d.gateways.clear();
  EXPECT_TRUE(buildSnapshot(d, "edge-1", std::nullopt).api_keys.empty());
}

TEST(SnapshotJson, OversizedInputIsRefusedBeforeParsing) {
  // Valid JSON up to the bound (whitespace pads it): the size alone is the reason.
  std::string big = withRoutes("");
  big.append(kMaxSnapshotBytes + 1 - big.size(), ' ');
  auto r = snapshotFromJson(big);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("over the limit of " + std::to_string(kMaxSnapshotBytes)),
            std::string::npos)
      << r.error().message;
  big.pop_back();  // exactly at the bound: read
  EXPECT_TRUE(snapshotFromJson(big).ok());
}

TEST(SnapshotJson, ExtremeIntegersParseAndAreRangeChecked) {
  auto r = snapshotFromJson(R"({"version":-9223372036854775808,"host":"h","routes":[]})");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("version -9223372036854775808 is not supported"),
            std::string::npos)
      << r.error().message;
  auto m = snapshotFromJson(R"({"version":9223372036854775807,"host":"h","routes":[]})");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("version 9223372036854775807"), std::string::npos);
}

}  // namespace
}  // namespace edgeplane
