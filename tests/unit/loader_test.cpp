// Loader tests: TOML -> Desired, with every syntax, type, key and value error at file:line:col.
#include "schema/loader.h"
#include "schema/encoding.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "schema/validate.h"
#include "tests/support/config_check.h"

namespace edgeplane {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kKey1 = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y=";
constexpr std::string_view kKey2 = "wFxEcLX/lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0=";

using testing::check;
using testing::kBase;
using testing::loadClean;
using testing::withBase;

IpPrefix prefix(std::string_view s) {
  auto p = IpPrefix::parse(s);
  EXPECT_TRUE(p.has_value()) << s;
  return p.value_or(IpPrefix{});
}

Endpoint endpoint(std::string_view s) {
  auto e = Endpoint::parse(s);
  EXPECT_TRUE(e.has_value()) << s;
  return e.value_or(Endpoint{});
}

// A config root in a fresh temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "edgeplane-loader-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    }
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  void write(const std::string& relative, std::string_view text) const {
    fs::path p = path_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << text;
  }

  // Diagnostics with the random root replaced by "cfg", so that expectations are exact.
  std::string show(const Diagnostics& diags) const {
    std::string out = diags.format();
    const std::string root = path_.string();
    for (size_t at = out.find(root); at != std::string::npos; at = out.find(root, at)) {
      out.replace(at, root.size(), "cfg");
    }
    return out;
  }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------------------------
// One passing case per kind, with the loaded values.

TEST(Loader, EmptyDocumentLoadsNothing) {
  Desired d = loadClean("");
  EXPECT_FALSE(d.fleet.has_value());
  EXPECT_TRUE(d.namespaces.empty());
}

TEST(Loader, Fleet) {
  Desired d = loadClean(R"([fleet]
base_domain = "gw.example.com"
acme_directory = "https://acme-v02.api.letsencrypt.org/directory"
acme_email = "ops@example.com"
uplink_pool = "100.64.0.0/16"
acme_ca_roots = "/etc/edgeplane/ca.pem"
acme_timeout = "2m"
acme_eab_file = "/etc/edgeplane/acme-eab.toml"
)");
  ASSERT_TRUE(d.fleet.has_value());
  EXPECT_EQ(d.fleet->acme_ca_roots, "/etc/edgeplane/ca.pem");
  EXPECT_EQ(d.fleet->acme_eab_file, "/etc/edgeplane/acme-eab.toml");
  EXPECT_EQ(d.fleet->acme_timeout, Duration{120000});
  EXPECT_EQ(d.fleet->base_domain, "gw.example.com");
  EXPECT_EQ(d.fleet->acme_directory, "https://acme-v02.api.letsencrypt.org/directory");
  EXPECT_EQ(d.fleet->acme_email, "ops@example.com");
  EXPECT_EQ(d.fleet->uplink_pool, prefix("100.64.0.0/16"));
  EXPECT_EQ(d.fleet->origin.table, (SourceLoc{"t.toml", 1, 1}));
  EXPECT_EQ(d.fleet->origin.at("uplink_pool"), (SourceLoc{"t.toml", 5, 15}));
}

TEST(Loader, FleetKeysAreOptional) {
  Desired d = loadClean("[fleet]\n");
  ASSERT_TRUE(d.fleet.has_value());
  EXPECT_FALSE(d.fleet->base_domain.has_value());
  EXPECT_FALSE(d.fleet->acme_directory.has_value());
  EXPECT_FALSE(d.fleet->acme_email.has_value());
  EXPECT_FALSE(d.fleet->uplink_pool.has_value());
  EXPECT_FALSE(d.fleet->acme_ca_roots.has_value());
  EXPECT_FALSE(d.fleet->acme_eab_file.has_value());
  EXPECT_FALSE(d.fleet->acme_timeout.has_value());
}

TEST(Loader, Hosts) {
  Desired d = loadClean(R"([[host]]
name = "edge-1"
[[host]]
name = "edge-2"
)");
  ASSERT_EQ(d.hosts.size(), 2u);
  EXPECT_EQ(d.hosts[0].name, "edge-1");
  EXPECT_EQ(d.hosts[1].name, "edge-2");
  EXPECT_EQ(d.hosts[1].origin.at("name"), (SourceLoc{"t.toml", 4, 8}));
}

TEST(Loader, NamespaceWithEverything) {
  Desired d = loadClean(R"([[host]]
name = "edge-1"
[[namespace]]
name = "tenant-a"
hosts = ["edge-1"]
suspended = true
[namespace.wireguard]
address = ["10.50.0.1/24", "fd00:50::1/64"]
listen_port = 51820
mtu = 1420
[[namespace.peer]]
name = "vm-12"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.12/32", "10.60.0.0/16"]
endpoint = "198.51.100.7:51820"
persistent_keepalive = 25
preshared_key_file = "/etc/edgeplane/psk/vm-12.key"
[[namespace.peer]]
name = "vm-13"
public_key = "wFxEcLX/lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0="
allowed_ips = ["10.50.0.13/32"]
[[namespace.route]]
destination = "10.60.0.0/16"
via = "10.50.0.12"
)");
  ASSERT_EQ(d.namespaces.size(), 1u);
  const Namespace& ns = d.namespaces[0];
  EXPECT_EQ(ns.name, "tenant-a");
  EXPECT_EQ(ns.hosts, std::vector<std::string>{"edge-1"});
  EXPECT_TRUE(ns.suspended);
  ASSERT_TRUE(ns.wireguard.has_value());
  ASSERT_EQ(ns.wireguard->address.size(), 2u);
  // An interface address keeps its host bits.
  EXPECT_EQ(ns.wireguard->address[0].str(), "10.50.0.1/24");
  EXPECT_EQ(ns.wireguard->address[1].str(), "fd00:50::1/64");
  EXPECT_EQ(ns.wireguard->listen_port, 51820);
  EXPECT_EQ(ns.wireguard->mtu, 1420);

  ASSERT_EQ(ns.peers.size(), 2u);
  const Peer& p0 = ns.peers[0];
  EXPECT_EQ(p0.name, "vm-12");
  EXPECT_EQ(p0.public_key.base64(), kKey1);
  EXPECT_EQ(p0.allowed_ips,
            (std::vector<IpPrefix>{prefix("10.50.0.12/32"), prefix("10.60.0.0/16")}));
  ASSERT_TRUE(p0.endpoint.has_value());
  EXPECT_EQ(p0.endpoint->host, "198.51.100.7");
  EXPECT_EQ(p0.endpoint->port, 51820);
  EXPECT_EQ(p0.persistent_keepalive, 25);
  EXPECT_EQ(p0.preshared_key_file, "/etc/edgeplane/psk/vm-12.key");
  const Peer& p1 = ns.peers[1];
  EXPECT_FALSE(p1.preshared_key_file.has_value());
  EXPECT_EQ(p1.public_key.base64(), kKey2);
  EXPECT_FALSE(p1.endpoint.has_value());
  EXPECT_FALSE(p1.persistent_keepalive.has_value());
  EXPECT_EQ(p1.origin.table, (SourceLoc{"t.toml", 18, 1}));

  ASSERT_EQ(ns.routes.size(), 1u);
  EXPECT_EQ(ns.routes[0].destination, prefix("10.60.0.0/16"));
  EXPECT_EQ(ns.routes[0].via.str(), "10.50.0.12");
}

TEST(Loader, NamespaceDefaults) {
  Desired d = loadClean(R"([[namespace]]
name = "bare"
)");
  ASSERT_EQ(d.namespaces.size(), 1u);
  EXPECT_FALSE(d.namespaces[0].hosts.has_value());
  EXPECT_FALSE(d.namespaces[0].suspended);
  EXPECT_FALSE(d.namespaces[0].wireguard.has_value());
  EXPECT_TRUE(d.namespaces[0].peers.empty());
}

TEST(Loader, PeerEndpointForms) {
  Desired d = loadClean(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "by-name"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.12/32"]
endpoint = "vpn.example.com:51820"
[[namespace.peer]]
name = "by-v6"
public_key = "wFxEcLX/lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0="
allowed_ips = ["10.50.0.13/32"]
endpoint = "[2001:db8::7]:51821"
)");
  ASSERT_EQ(d.namespaces.at(0).peers.size(), 2u);
  EXPECT_EQ(d.namespaces[0].peers[0].endpoint, (HostPort{"vpn.example.com", 51820}));
  EXPECT_EQ(d.namespaces[0].peers[1].endpoint, (HostPort{"2001:db8::7", 51821}));
}

TEST(Loader, ForwardSinglePortAndRange) {
  Desired d = loadClean(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22012
target = "10.50.0.12:22"
[[forward]]
name = "games"
namespace = "tenant-a"
protocol = "udp"
public_port = "30000-30010"
target = "10.50.0.12:40000"
[[forward]]
name = "dns"
namespace = "tenant-a"
protocol = "udp"
public_port = "5353"
target = "10.50.0.2:53"
)"));
  ASSERT_EQ(d.forwards.size(), 3u);
  EXPECT_EQ(d.forwards[0].namespace_name, "tenant-a");
  EXPECT_EQ(d.forwards[0].protocol, Protocol::Tcp);
  EXPECT_EQ(d.forwards[0].public_port, (PortRange{22012, 22012}));
  EXPECT_EQ(d.forwards[0].target, endpoint("10.50.0.12:22"));
  EXPECT_EQ(d.forwards[1].protocol, Protocol::Udp);
  EXPECT_EQ(d.forwards[1].public_port, (PortRange{30000, 30010}));
  EXPECT_EQ(d.forwards[1].target.port, 40000);
  EXPECT_EQ(d.forwards[2].public_port, (PortRange{5353, 5353}));
}

TEST(Loader, Certificates) {
  Desired d = loadClean(R"([fleet]
acme_directory = "https://acme.example.com/dir"
[[certificate]]
name = "acme"
domains = ["a.example.com", "b.example.com"]
issuer = "acme"
[[certificate]]
name = "self"
domains = ["*.example.com"]
issuer = "self-signed"
[[certificate]]
name = "files"
domains = ["*.example.org"]
issuer = "files"
cert_file = "/etc/edgeplane/certs/org.pem"
key_file = "/etc/edgeplane/certs/org.key"
[[certificate]]
name = "default"
domains = ["c.example.com"]
)");
  ASSERT_EQ(d.certificates.size(), 4u);
  EXPECT_EQ(d.certificates[0].issuer, Issuer::Acme);
  EXPECT_EQ(d.certificates[0].domains,
            (std::vector<std::string>{"a.example.com", "b.example.com"}));
  EXPECT_FALSE(d.certificates[0].cert_file.has_value());
  EXPECT_EQ(d.certificates[1].issuer, Issuer::SelfSigned);
  EXPECT_EQ(d.certificates[2].issuer, Issuer::Files);
  EXPECT_EQ(d.certificates[2].cert_file, "/etc/edgeplane/certs/org.pem");
  EXPECT_EQ(d.certificates[2].key_file, "/etc/edgeplane/certs/org.key");
  EXPECT_EQ(d.certificates[3].issuer, Issuer::Acme);  // the default
}

TEST(Loader, SiteWithHostnamesAndHealthCheck) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "web"
domains = ["*.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com", "b.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080", "10.50.0.13:8080"]
balance = "random"
certificate = "web"
redirect_http = true
health_check = { path = "/healthz", interval = "30s", timeout = "500ms" }
[[site]]
name = "plain"
hostnames = ["c.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:80"]
certificate = "web"
)"));
  ASSERT_EQ(d.sites.size(), 2u);
  const Site& s = d.sites[0];
  EXPECT_EQ(s.hostnames, (std::vector<std::string>{"a.example.com", "b.example.com"}));
  EXPECT_FALSE(s.subdomain.has_value());
  EXPECT_EQ(s.namespace_name, "tenant-a");
  EXPECT_EQ(s.backends,
            (std::vector<Endpoint>{endpoint("10.50.0.12:8080"), endpoint("10.50.0.13:8080")}));
  EXPECT_EQ(s.balance, Balance::Random);
  EXPECT_EQ(s.certificate, "web");
  EXPECT_TRUE(s.redirect_http);
  ASSERT_TRUE(s.health_check.has_value());
  EXPECT_EQ(s.health_check->path, "/healthz");
  EXPECT_EQ(s.health_check->interval, std::chrono::seconds(30));
  EXPECT_EQ(s.health_check->timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(s.origin.at("backends", 1), (SourceLoc{"t.toml", 19, 32}));

  const Site& plain = d.sites[1];
  EXPECT_EQ(plain.balance, Balance::RoundRobin);
  EXPECT_FALSE(plain.redirect_http);
  EXPECT_FALSE(plain.health_check.has_value());
}

TEST(Loader, HealthCheckDefaults) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = {}
)"));
  ASSERT_TRUE(d.sites.at(0).health_check.has_value());
  EXPECT_EQ(d.sites[0].health_check->path, "/");
  EXPECT_EQ(d.sites[0].health_check->interval, std::chrono::seconds(10));
  EXPECT_EQ(d.sites[0].health_check->timeout, std::chrono::seconds(2));
}

TEST(Loader, HealthCheckThresholdsAndExpectedStatus) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { healthy_threshold = 1, unhealthy_threshold = 100, expect_status = "204" }
)"));
  const HealthCheck& h = d.sites.at(0).health_check.value();
  EXPECT_EQ(h.healthy_threshold, 1u);
  EXPECT_EQ(h.unhealthy_threshold, 100u);
  EXPECT_EQ(h.expect_status, "204");
  const HealthCheck defaults;
  EXPECT_EQ(defaults.healthy_threshold, 2u);
  EXPECT_EQ(defaults.unhealthy_threshold, 3u);
  EXPECT_EQ(defaults.expect_status, "200-399");
}

TEST(Loader, CertificateRenewBefore) {
  Desired d = loadClean(R"([[certificate]]
name = "a"
domains = ["a.example.com"]
issuer = "self-signed"
renew_before = "720h"
[[certificate]]
name = "b"
domains = ["b.example.com"]
issuer = "self-signed"
)");
  EXPECT_EQ(d.certificates.at(0).renew_before, std::chrono::hours(720));
  EXPECT_FALSE(d.certificates.at(1).renew_before.has_value());
  EXPECT_EQ(check(R"([[certificate]]
name = "a"
domains = ["a.example.com"]
issuer = "self-signed"
renew_before = "1441h"
[[certificate]]
name = "b"
domains = ["b.example.com"]
issuer = "files"
cert_file = "/etc/b.pem"
key_file = "/etc/b.key"
renew_before = "24h"
)"),
            "t.toml:5:16: error: invalid duration (at most 1440h) \"1441h\" in 'renew_before'\n"
            "t.toml:12:16: error: 'renew_before' is not for issuer \"files\": edgeplane does "
            "not renew those\n");
}

TEST(Loader, StatusRanges) {
  for (const char* good : {"200", "100", "599", "200-399", "204-204", "100-599"}) {
    EXPECT_TRUE(isValidStatusRange(good)) << good;
  }
  for (const char* bad : {"", "99", "600", "2xx", "200-", "-200", "399-200", "200-600", "0200",
                          "200-399-400", " 200", "200 - 399"}) {
    EXPECT_FALSE(isValidStatusRange(bad)) << bad;
  }
}

TEST(Loader, HealthCheckBadThresholdsAndStatusArePointedAt) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { healthy_threshold = 0, unhealthy_threshold = 101, expect_status = "600" }
)")),
            "t.toml:21:38: error: 'healthy_threshold' must be between 1 and 100, got 0\n"
            "t.toml:21:63: error: 'unhealthy_threshold' must be between 1 and 100, got 101\n"
            "t.toml:21:84: error: invalid status \"600\" in 'expect_status' (want a status or a "
            "range like \"200-399\", within 100-599)\n");
}

TEST(Loader, Passthroughs) {
  Desired d = loadClean(withBase(R"([[passthrough]]
name = "v1"
hostnames = ["secure.example.com", "*.apps.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:443"]
proxy_protocol = "v1"
[[passthrough]]
name = "v2"
hostnames = ["other.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.13:443"]
proxy_protocol = "v2"
balance = "random"
[[passthrough]]
name = "none"
hostnames = ["third.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.13:443"]
)"));
  ASSERT_EQ(d.passthroughs.size(), 3u);
  EXPECT_EQ(d.passthroughs[0].hostnames,
            (std::vector<std::string>{"secure.example.com", "*.apps.example.com"}));
  EXPECT_EQ(d.passthroughs[0].proxy_protocol, ProxyProtocol::V1);
  EXPECT_EQ(d.passthroughs[0].balance, Balance::RoundRobin);
  EXPECT_EQ(d.passthroughs[1].proxy_protocol, ProxyProtocol::V2);
  EXPECT_EQ(d.passthroughs[1].balance, Balance::Random);
  EXPECT_EQ(d.passthroughs[2].proxy_protocol, ProxyProtocol::None);
}

TEST(Loader, GatewayWithEndpointsAndApiKey) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
rate_limit = "100/minute"
[[gateway.endpoint]]
path = "/api/gateway/target"
method = "GET"
backends = ["10.50.0.5:8080", "10.50.0.6:8080"]
[[gateway.endpoint]]
path = "/api/gateway/result"
method = "POST"
backends = ["10.50.0.10:9090"]
balance = "random"
[[api_key]]
name = "External Ping Worker #1"
id = "k7Hq2xPz"
sha256 = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"
gateways = ["ping"]
role = "admin"
enabled = false
[[api_key]]
name = "Defaults"
id = "k7Hq2xPy"
sha256 = "C48A01F49FD0F2CC404BC3CBBC80E91457A3D41BB429A695243DE4C61794155D"
gateways = ["ping"]
)"));
  ASSERT_EQ(d.gateways.size(), 1u);
  const Gateway& g = d.gateways[0];
  EXPECT_EQ(g.hostname, "manager.example.com");
  EXPECT_FALSE(g.subdomain.has_value());
  EXPECT_EQ(g.certificate, "manager");
  EXPECT_EQ(g.rate_limit, (RateLimit{100, std::chrono::minutes(1)}));
  ASSERT_EQ(g.endpoints.size(), 2u);
  EXPECT_EQ(g.endpoints[0].path, "/api/gateway/target");
  EXPECT_EQ(g.endpoints[0].method, "GET");
  EXPECT_EQ(g.endpoints[0].backends.size(), 2u);
  EXPECT_EQ(g.endpoints[0].balance, Balance::RoundRobin);
  EXPECT_EQ(g.endpoints[1].method, "POST");
  EXPECT_EQ(g.endpoints[1].backends, std::vector<Endpoint>{endpoint("10.50.0.10:9090")});
  EXPECT_EQ(g.endpoints[1].balance, Balance::Random);

  ASSERT_EQ(d.api_keys.size(), 2u);
  const ApiKey& k = d.api_keys[0];
  EXPECT_EQ(k.name, "External Ping Worker #1");
  EXPECT_EQ(k.id, "k7Hq2xPz");
  EXPECT_EQ(toHex(k.sha256.data(), k.sha256.size()),
            "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c");
  EXPECT_EQ(k.gateways, std::vector<std::string>{"ping"});
  EXPECT_EQ(k.role, ApiKeyRole::Admin);
  EXPECT_FALSE(k.enabled);
  EXPECT_EQ(d.api_keys[1].role, ApiKeyRole::Worker);
  EXPECT_TRUE(d.api_keys[1].enabled);
  EXPECT_EQ(toHex(d.api_keys[1].sha256.data(), 32),
            "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155d");
}

TEST(Loader, GatewayWithoutRateLimit) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/"
method = "GET"
backends = ["10.50.0.5:8080"]
)"));
  EXPECT_FALSE(d.gateways.at(0).rate_limit.has_value());
}

// A [[gateway.endpoint]] takes a site's health_check: the same keys, defaults and checks.
TEST(Loader, GatewayEndpointHealthCheck) {
  Desired d = loadClean(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/api/gateway/target"
method = "GET"
backends = ["10.50.0.5:8080"]
health_check = { path = "/healthz", interval = "5s", timeout = "1s", healthy_threshold = 1, unhealthy_threshold = 4, expect_status = "204" }
[[gateway.endpoint]]
path = "/api/gateway/result"
method = "POST"
backends = ["10.50.0.10:9090"]
[[gateway.endpoint]]
path = "/api/gateway/status"
method = "GET"
backends = ["10.50.0.10:9090"]
health_check = {}
)"));
  const Gateway& g = d.gateways.at(0);
  ASSERT_EQ(g.endpoints.size(), 3u);
  ASSERT_TRUE(g.endpoints[0].health_check.has_value());
  const HealthCheck& h = *g.endpoints[0].health_check;
  EXPECT_EQ(h.path, "/healthz");
  EXPECT_EQ(h.interval, std::chrono::seconds(5));
  EXPECT_EQ(h.timeout, std::chrono::seconds(1));
  EXPECT_EQ(h.healthy_threshold, 1u);
  EXPECT_EQ(h.unhealthy_threshold, 4u);
  EXPECT_EQ(h.expect_status, "204");
  EXPECT_EQ(g.endpoints[0].origin.at("health_check"), (SourceLoc{"t.toml", 24, 16}));
  EXPECT_FALSE(g.endpoints[1].health_check.has_value());
  ASSERT_TRUE(g.endpoints[2].health_check.has_value());
  const HealthCheck defaults;
  EXPECT_EQ(g.endpoints[2].health_check->path, defaults.path);
  EXPECT_EQ(g.endpoints[2].health_check->interval, defaults.interval);
  EXPECT_EQ(g.endpoints[2].health_check->timeout, defaults.timeout);
  EXPECT_EQ(g.endpoints[2].health_check->healthy_threshold, defaults.healthy_threshold);
  EXPECT_EQ(g.endpoints[2].health_check->unhealthy_threshold, defaults.unhealthy_threshold);
  EXPECT_EQ(g.endpoints[2].health_check->expect_status, defaults.expect_status);
}

// Every error of a site's health_check, from an endpoint's, with its position.
TEST(Loader, GatewayEndpointHealthCheckErrorsArePointedAt) {
  const std::string head = R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)";
  EXPECT_EQ(check(withBase(head + R"(health_check = { path = "healthz", intervall = "5s" }
)")),
            "t.toml:24:25: error: health check path \"healthz\" must start with '/'\n"
            "t.toml:24:36: error: unknown key 'intervall' in 'health_check'; did you mean "
            "'interval'?\n");
  EXPECT_EQ(check(withBase(head + R"(health_check = { interval = "5s", timeout = "5000ms" }
)")),
            "t.toml:24:45: error: health check timeout 5s must be shorter than its interval 5s\n");
  EXPECT_EQ(check(withBase(head + R"(health_check = { interval = "10", timeout = "2x" }
)")),
            "t.toml:24:29: error: invalid duration \"10\" in 'interval' (like 5s, 1.5s, 500ms, 2m "
            "or 1h30m)\n"
            "t.toml:24:45: error: invalid duration \"2x\" in 'timeout' (like 5s, 1.5s, 500ms, 2m "
            "or 1h30m)\n");
  EXPECT_EQ(
      check(withBase(
          head +
          R"(health_check = { healthy_threshold = 0, unhealthy_threshold = 101, expect_status = "600" }
)")),
      "t.toml:24:38: error: 'healthy_threshold' must be between 1 and 100, got 0\n"
      "t.toml:24:63: error: 'unhealthy_threshold' must be between 1 and 100, got 101\n"
      "t.toml:24:84: error: invalid status \"600\" in 'expect_status' (want a status or a "
      "range like \"200-399\", within 100-599)\n");
  EXPECT_EQ(check(withBase(head + R"(health_check = "/healthz"
)")),
            "t.toml:24:16: error: 'health_check' must be a table, not a string\n");
}

// ---------------------------------------------------------------------------------------------
// Syntax, keys and types.

TEST(Loader, TomlSyntaxErrorHasTomlppPosition) {
  EXPECT_EQ(check(R"([[host]]
name = "edge-1
)"),
            "t.toml:2:15: error: Error while parsing string: unescaped control characters other "
            "than TAB (U+0009) are explicitly prohibited\n");
}

TEST(Loader, TomlRedefinedKeyIsASyntaxError) {
  EXPECT_EQ(check(R"([fleet]
base_domain = "a.example.com"
[fleet]
)"),
            "t.toml:3:1: error: Error while parsing table header: cannot redefine existing table "
            "'fleet'\n");
}

TEST(Loader, UnknownKeyWithSuggestion) {
  EXPECT_EQ(check(R"([[host]]
name = "edge-1"
nmae = "edge-2"
)"),
            "t.toml:3:1: error: unknown key 'nmae' in [[host]]; did you mean 'name'?\n");
}

TEST(Loader, UnknownKeyInNestedTableWithSuggestion) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
persistent_keepalve = 25
)"),
            "t.toml:10:1: error: unknown key 'persistent_keepalve' in [[namespace.peer]]; did you "
            "mean 'persistent_keepalive'?\n");
}

TEST(Loader, MisspeltRequiredKeyIsReportedOnce) {
  // The suggestion says it all; "missing required key 'name'" would repeat the same mistake.
  EXPECT_EQ(check(R"([[host]]
nam = "edge-1"
)"),
            "t.toml:2:1: error: unknown key 'nam' in [[host]]; did you mean 'name'?\n");
}

TEST(Loader, UnknownKeyWithoutSuggestion) {
  EXPECT_EQ(check(R"([[host]]
name = "edge-1"
colour = "blue"
)"),
            "t.toml:3:1: error: unknown key 'colour' in [[host]]\n");
}

TEST(Loader, UnknownKeyInInlineTable) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { path = "/", intervall = "5s" }
)")),
            "t.toml:21:30: error: unknown key 'intervall' in 'health_check'; did you mean "
            "'interval'?\n");
}

TEST(Loader, UnknownTopLevelTable) {
  EXPECT_EQ(check(R"([[host]]
name = "edge-1"
[logging]
level = "debug"
)"),
            "t.toml:3:2: error: unknown key 'logging' in the top level\n");
}

TEST(Loader, UnknownTopLevelTableWithSuggestion) {
  EXPECT_EQ(check(R"([[hosts]]
name = "edge-1"
)"),
            "t.toml:1:3: error: unknown key 'hosts' in the top level; did you mean 'host'?\n");
}

TEST(Loader, StringWhereIntegerExpected) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = "51820"
)"),
            "t.toml:5:15: error: 'listen_port' must be an integer, not a string\n");
}

TEST(Loader, IntegerWhereStringExpected) {
  EXPECT_EQ(check(R"([[host]]
name = 1
)"),
            "t.toml:2:8: error: 'name' must be a string, not an integer\n");
}

TEST(Loader, StringWhereBooleanExpected) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
suspended = "yes"
)"),
            "t.toml:3:13: error: 'suspended' must be a boolean, not a string\n");
}

TEST(Loader, FloatWherePortExpected) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22.5
target = "10.50.0.12:22"
)")),
            "t.toml:15:15: error: 'public_port' must be an integer or a \"first-last\" string, "
            "not a float\n");
}

TEST(Loader, StringWhereTableExpected) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = "/healthz"
)")),
            "t.toml:21:16: error: 'health_check' must be a table, not a string\n");
}

TEST(Loader, TableWhereArrayOfTablesExpected) {
  // Loaded anyway, so the forward's reference to it is not reported as dangling.
  EXPECT_EQ(check(R"([[host]]
name = "edge-1"
[namespace]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
[[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
target = "10.50.0.12:22"
)"),
            "t.toml:3:1: error: 'namespace' must be an array of tables ([[namespace]]), not a "
            "table\n");
}

TEST(Loader, NestedTableWhereArrayOfTablesExpected) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[gateway.endpoint]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)")),
            "t.toml:20:1: error: 'endpoint' must be an array of tables ([[gateway.endpoint]]), "
            "not a table\n");
}

TEST(Loader, ArrayOfTablesWhereTableExpected) {
  EXPECT_EQ(check(R"([[fleet]]
acme_directory = "https://acme.example.com/dir"
[[certificate]]
name = "web"
domains = ["a.example.com"]
)"),
            "t.toml:1:1: error: 'fleet' must be a table, not an array\n");
}

TEST(Loader, NonStringArrayElement) {
  EXPECT_EQ(check(R"([[host]]
name = "edge-1"
[[namespace]]
name = "tenant-a"
hosts = ["edge-1", 2]
)"),
            "t.toml:5:20: error: elements of 'hosts' must be strings, not an integer\n");
}

TEST(Loader, ScalarWhereArrayExpected) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = "10.50.0.1/24"
listen_port = 51820
)"),
            "t.toml:4:11: error: 'address' must be an array, not a string\n");
}

// ---------------------------------------------------------------------------------------------
// Missing required keys.

TEST(Loader, MissingName) {
  EXPECT_EQ(check("[[host]]\n"), "t.toml:1:1: error: [[host]] is missing required key 'name'\n");
}

TEST(Loader, MissingForwardKeys) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
)")),
            "t.toml:11:1: error: [[forward]] is missing required key 'namespace'\n"
            "t.toml:11:1: error: [[forward]] is missing required key 'protocol'\n"
            "t.toml:11:1: error: [[forward]] is missing required key 'public_port'\n"
            "t.toml:11:1: error: [[forward]] is missing required key 'target'\n");
}

TEST(Loader, MissingForwardTargetDoesNotCascade) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
)")),
            "t.toml:11:1: error: [[forward]] is missing required key 'target'\n");
}

TEST(Loader, MissingWireGuardKeys) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
mtu = 1420
)"),
            "t.toml:3:1: error: [namespace.wireguard] is missing required key 'address'\n"
            "t.toml:3:1: error: [namespace.wireguard] is missing required key 'listen_port'\n");
}

TEST(Loader, MissingPeerKeys) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
)"),
            "t.toml:6:1: error: [[namespace.peer]] is missing required key 'allowed_ips'\n"
            "t.toml:6:1: error: [[namespace.peer]] is missing required key 'public_key'\n");
}

TEST(Loader, MissingRouteKeys) {
  EXPECT_EQ(check(withBase("[[namespace.route]]\n")),
            "t.toml:11:1: error: [[namespace.route]] is missing required key 'destination'\n"
            "t.toml:11:1: error: [[namespace.route]] is missing required key 'via'\n");
}

TEST(Loader, MissingCertificateDomains) {
  EXPECT_EQ(check(R"([[certificate]]
name = "web"
issuer = "self-signed"
)"),
            "t.toml:1:1: error: [[certificate]] is missing required key 'domains'\n");
}

// A "files" certificate's paths name files on the host: a relative one would be read from
// wherever the run happens to start (found by an attacker's read; preshared_key_file was
// already held to this).
TEST(Loader, FilesCertificatePathsMustBeAbsolute) {
  const std::string out = check(
      "[[certificate]]\nname = \"c\"\ndomains = [\"a.example.com\"]\nissuer = \"files\"\n"
      "cert_file = \"rel/c.pem\"\nkey_file = \"k.pem\"\n");
  EXPECT_NE(out.find("t.toml:5:13: error: 'cert_file' must be an absolute path"), std::string::npos)
      << out;
  EXPECT_NE(out.find("t.toml:6:12: error: 'key_file' must be an absolute path"), std::string::npos)
      << out;
}

TEST(Loader, MissingSiteKeys) {
  EXPECT_EQ(check(R"([[site]]
name = "web"
)"),
            "t.toml:1:1: error: [[site]] is missing required key 'backends'\n"
            "t.toml:1:1: error: [[site]] needs 'hostnames' (or 'subdomain')\n");
}

TEST(Loader, MissingPassthroughKeys) {
  EXPECT_EQ(check(R"([[passthrough]]
name = "secure"
)"),
            "t.toml:1:1: error: [[passthrough]] is missing required key 'backends'\n"
            "t.toml:1:1: error: [[passthrough]] is missing required key 'namespace'\n"
            "t.toml:1:1: error: [[passthrough]] needs 'hostnames' (or 'subdomain')\n");
}

TEST(Loader, MissingGatewayKeys) {
  EXPECT_EQ(check(R"([[gateway]]
name = "ping"
[[gateway.endpoint]]
backends = ["10.50.0.5:8080"]
)"),
            "t.toml:1:1: error: [[gateway]] is missing required key 'namespace'\n"
            "t.toml:1:1: error: [[gateway]] needs 'hostname' (or 'subdomain')\n"
            "t.toml:3:1: error: [[gateway.endpoint]] is missing required key 'method'\n"
            "t.toml:3:1: error: [[gateway.endpoint]] is missing required key 'path'\n");
}

TEST(Loader, MissingApiKeyKeys) {
  EXPECT_EQ(check(R"([[api_key]]
name = "worker"
)"),
            "t.toml:1:1: error: [[api_key]] is missing required key 'gateways' (only role = "
            "\"admin\" may omit it: every gateway)\n"
            "t.toml:1:1: error: [[api_key]] is missing required key 'id'\n"
            "t.toml:1:1: error: [[api_key]] is missing required key 'sha256'\n");
}

// ---------------------------------------------------------------------------------------------
// Malformed values.

TEST(Loader, InvalidAllowedIpsCidr) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.12"]
)"),
            "t.toml:9:16: error: invalid CIDR \"10.50.0.12\" in 'allowed_ips'\n");
}

TEST(Loader, AllowedIpsWithHostBits) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.12/24"]
)"),
            "t.toml:9:16: error: allowed_ips entry \"10.50.0.12/24\" has host bits set; did you "
            "mean \"10.50.0.0/24\"?\n");
}

TEST(Loader, ErrorsAfterARejectedElementPointAtTheirOwnElement) {
  // The second entry is reported where it is written, not where the first (dropped) one is.
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["bad", "10.50.0.12/24"]
)"),
            "t.toml:9:16: error: invalid CIDR \"bad\" in 'allowed_ips'\n"
            "t.toml:9:23: error: allowed_ips entry \"10.50.0.12/24\" has host bits set; did you "
            "mean \"10.50.0.0/24\"?\n");
}

TEST(Loader, InvalidInterfaceAddress) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1"]
listen_port = 51820
)"),
            "t.toml:4:12: error: invalid interface address \"10.50.0.1\" in 'address'\n");
}

TEST(Loader, EmptyInterfaceAddressList) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = []
listen_port = 51820
)"),
            "t.toml:4:11: error: 'address' must list at least one interface address\n");
}

TEST(Loader, InvalidRouteAddressDoesNotCascade) {
  EXPECT_EQ(check(withBase(R"([[namespace.route]]
destination = "10.50.0.0/28"
via = "10.50.0"
)")),
            "t.toml:13:7: error: invalid IP address \"10.50.0\" in 'via'\n");
}

TEST(Loader, InvalidRouteDestinationDoesNotCascade) {
  EXPECT_EQ(check(withBase(R"([[namespace.route]]
destination = "10.50.0.0"
via = "10.50.0.2"
)")),
            "t.toml:12:15: error: invalid CIDR \"10.50.0.0\" in 'destination'\n");
}

TEST(Loader, RouteDestinationWithHostBits) {
  EXPECT_EQ(check(withBase(R"([[namespace.route]]
destination = "10.50.0.2/28"
via = "10.50.0.2"
)")),
            "t.toml:12:15: error: destination \"10.50.0.2/28\" has host bits set; did you mean "
            "\"10.50.0.0/28\"?\n");
}

TEST(Loader, ListenPortOutOfRange) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 70000
)"),
            "t.toml:5:15: error: 'listen_port' must be between 1 and 65535, got 70000\n");
}

TEST(Loader, MtuOutOfRange) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
mtu = 576
)"),
            "t.toml:6:7: error: 'mtu' must be between 1280 and 9000, got 576\n");
}

TEST(Loader, PersistentKeepaliveOutOfRange) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
persistent_keepalive = 0
)"),
            "t.toml:10:24: error: 'persistent_keepalive' must be between 1 and 65535, got 0\n");
}

TEST(Loader, PublicPortOutOfRange) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 0
target = "10.50.0.12:22"
)")),
            "t.toml:15:15: error: 'public_port' must be between 1 and 65535, got 0\n");
}

TEST(Loader, InvalidPortRange) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "games"
namespace = "tenant-a"
protocol = "udp"
public_port = "30010-30000"
target = "10.50.0.12:30000"
)")),
            "t.toml:15:15: error: invalid port range \"30010-30000\" in 'public_port' (want "
            "1-65535 or \"first-last\")\n");
}

TEST(Loader, PortRangeTargetPastLastPort) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "games"
namespace = "tenant-a"
protocol = "udp"
public_port = "30000-30010"
target = "10.50.0.12:65530"
)")),
            "t.toml:16:10: error: target port 65530 plus the 11-port range exceeds 65535\n");
}

TEST(Loader, InvalidTargetDoesNotCascade) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
target = "10.50.0.12"
)")),
            "t.toml:16:10: error: invalid target (ip:port) \"10.50.0.12\" in 'target'\n");
}

TEST(Loader, InvalidProtocol) {
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "sctp"
public_port = 22
target = "10.50.0.12:22"
)")),
            "t.toml:14:12: error: 'protocol' must be one of tcp | udp, got \"sctp\"\n");
}

TEST(Loader, InvalidProtocolDoesNotClash) {
  // The bad protocol is not taken for tcp, so no port clash is reported on top of it.
  EXPECT_EQ(check(withBase(R"([[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
target = "10.50.0.12:22"
[[forward]]
name = "ssh2"
namespace = "tenant-a"
protocol = "TCP"
public_port = 22
target = "10.50.0.13:22"
)")),
            "t.toml:20:12: error: 'protocol' must be one of tcp | udp, got \"TCP\"\n");
}

TEST(Loader, InvalidDuration) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { interval = "10" }
)")),
            "t.toml:21:29: error: invalid duration \"10\" in 'interval' (like 5s, 1.5s, 500ms, 2m "
            "or 1h30m)\n");
}

TEST(Loader, InvalidTimeoutIsNotComparedWithInterval) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { interval = "1s", timeout = "2x" }
)")),
            "t.toml:21:45: error: invalid duration \"2x\" in 'timeout' (like 5s, 1.5s, 500ms, 2m "
            "or 1h30m)\n");
}

TEST(Loader, HealthCheckTimeoutNotShorterThanInterval) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { interval = "5s", timeout = "5000ms" }
)")),
            "t.toml:21:45: error: health check timeout 5s must be shorter than its interval 5s\n");
}

TEST(Loader, HealthCheckPathWithoutSlash) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "web"
domains = ["a.example.com"]
issuer = "self-signed"
[[site]]
name = "web"
hostnames = ["a.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "web"
health_check = { path = "healthz" }
)")),
            "t.toml:21:25: error: health check path \"healthz\" must start with '/'\n");
}

TEST(Loader, InvalidRateLimit) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
rate_limit = "100/min"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)")),
            "t.toml:20:14: error: invalid rate limit (want N/second, N/minute or N/hour) "
            "\"100/min\" in 'rate_limit'\n");
}

TEST(Loader, InvalidPeerEndpoint) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
endpoint = "198.51.100.7"
)"),
            "t.toml:10:12: error: invalid endpoint (host:port) \"198.51.100.7\" in 'endpoint'\n");
}

TEST(Loader, InvalidBackend) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "secure"
hostnames = ["secure.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:443", "10.50.0.13"]
)")),
            "t.toml:15:31: error: invalid backend (ip:port) \"10.50.0.13\" in 'backends'\n");
}

TEST(Loader, EmptyBackends) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "secure"
hostnames = ["secure.example.com"]
namespace = "tenant-a"
backends = []
)")),
            "t.toml:15:12: error: 'backends' must list at least one backend\n");
}

TEST(Loader, InvalidBalanceAndProxyProtocol) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "secure"
hostnames = ["secure.example.com"]
namespace = "tenant-a"
backends = ["10.50.0.12:443"]
balance = "least_conn"
proxy_protocol = "v3"
)")),
            "t.toml:16:11: error: 'balance' must be one of round_robin | random, got "
            "\"least_conn\"\n"
            "t.toml:17:18: error: 'proxy_protocol' must be one of none | v1 | v2, got \"v3\"\n");
}

TEST(Loader, WireGuardKeyWrongLength) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2="
allowed_ips = ["10.50.0.0/28"]
)"),
            "t.toml:8:14: error: invalid WireGuard public key (base64 of 32 bytes) "
            "\"hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2=\" in 'public_key'\n");
}

TEST(Loader, WireGuardKeyBadCharacters) {
  // URL-safe base64 ('-', '_') is not what wg(8) prints.
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "wFxEcLX_lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0="
allowed_ips = ["10.50.0.0/28"]
)"),
            "t.toml:8:14: error: invalid WireGuard public key (base64 of 32 bytes) "
            "\"wFxEcLX_lkRTNv1WYwDc7d2RK5LKQuKExFA7F1uGRl0=\" in 'public_key'\n");
}

TEST(Loader, WireGuardKeyNonCanonical) {
  // 'Z' sets one of the two padding bits that a 32-byte key leaves zero.
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Z="
allowed_ips = ["10.50.0.0/28"]
)"),
            "t.toml:8:14: error: invalid WireGuard public key (base64 of 32 bytes) "
            "\"hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Z=\" in 'public_key'\n");
}

TEST(Loader, NamespaceNameTooLong) {
  EXPECT_EQ(check("[[namespace]]\nname = \"tenant-abcde\"\n"),
            "t.toml:2:8: error: namespace name \"tenant-abcde\" must match [a-z0-9-]{1,11}\n");
}

TEST(Loader, NamespaceNameUpperCase) {
  EXPECT_EQ(check("[[namespace]]\nname = \"Tenant-a\"\n"),
            "t.toml:2:8: error: namespace name \"Tenant-a\" must match [a-z0-9-]{1,11}\n");
}

// An empty name is not "no name": it would make a network namespace called "ep-" (review).
TEST(Loader, NamespaceNameEmpty) {
  EXPECT_EQ(check("[[namespace]]\nname = \"\"\n"),
            "t.toml:2:8: error: namespace name \"\" must match [a-z0-9-]{1,11}\n");
}

TEST(Loader, NamespaceNameUnderscore) {
  EXPECT_EQ(check("[[namespace]]\nname = \"tenant_a\"\n"),
            "t.toml:2:8: error: namespace name \"tenant_a\" must match [a-z0-9-]{1,11}\n");
}

TEST(Loader, NamespaceNameElevenCharactersIsFine) {
  EXPECT_EQ(check("[[namespace]]\nname = \"tenant-abcd\"\n"), "");
}

TEST(Loader, InvalidHostName) {
  EXPECT_EQ(check("[[host]]\nname = \"Edge_1\"\n"),
            "t.toml:2:8: error: host name \"Edge_1\" must be lower-case letters, digits and "
            "inner hyphens (at most 64)\n");
}

std::string passthroughWithHostname(std::string_view hostname) {
  return withBase(R"([[passthrough]]
name = "p"
hostnames = [")" + std::string(hostname) +
                  R"("]
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)");
}

TEST(Loader, HostnameWildcardNotLeading) {
  EXPECT_EQ(check(passthroughWithHostname("a.*.example.com")),
            "t.toml:13:14: error: invalid hostname \"a.*.example.com\" in 'hostnames'\n");
}

TEST(Loader, HostnameDoubleWildcard) {
  EXPECT_EQ(check(passthroughWithHostname("*.*.example.com")),
            "t.toml:13:14: error: invalid hostname \"*.*.example.com\" in 'hostnames'\n");
}

TEST(Loader, HostnameTrailingDot) {
  EXPECT_EQ(check(passthroughWithHostname("a.example.com.")),
            "t.toml:13:14: error: invalid hostname \"a.example.com.\" in 'hostnames'\n");
}

TEST(Loader, HostnameUpperCase) {
  EXPECT_EQ(check(passthroughWithHostname("A.example.com")),
            "t.toml:13:14: error: invalid hostname \"A.example.com\" in 'hostnames'\n");
}

TEST(Loader, GatewayHostnameCannotBeWildcard) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["*.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "*.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)")),
            "t.toml:17:12: error: invalid hostname \"*.example.com\" in 'hostname'\n");
}

TEST(Loader, EmptyHostnames) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "p"
hostnames = []
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)")),
            "t.toml:13:13: error: 'hostnames' must list at least one hostname\n");
}

TEST(Loader, HostnamesAndSubdomainTogether) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "p"
hostnames = ["a.example.com"]
subdomain = "a"
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)")),
            "t.toml:14:13: error: set either 'hostnames' or 'subdomain', not both\n");
}

TEST(Loader, GatewayHostnameAndSubdomainTogether) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
subdomain = "manager"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)")),
            "t.toml:18:13: error: set either 'hostname' or 'subdomain', not both\n");
}

TEST(Loader, InvalidSubdomain) {
  EXPECT_EQ(check(withBase(R"([[passthrough]]
name = "p"
subdomain = "App"
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)")),
            "t.toml:13:13: error: invalid subdomain \"App\" in 'subdomain'\n");
}

TEST(Loader, CertificateDomainInvalid) {
  // The bad domain is reported once, not again as "domains must list at least one domain".
  EXPECT_EQ(check(R"([[certificate]]
name = "web"
domains = ["web.example.com."]
issuer = "self-signed"
)"),
            "t.toml:3:12: error: invalid domain name \"web.example.com.\" in 'domains'\n");
}

TEST(Loader, InvalidIssuerDoesNotCascade) {
  // Not taken for "acme" (which would want [fleet].acme_directory and refuse cert_file).
  EXPECT_EQ(check(R"([[certificate]]
name = "web"
domains = ["*.example.com"]
issuer = "file"
cert_file = "/etc/edgeplane/web.pem"
key_file = "/etc/edgeplane/web.key"
)"),
            "t.toml:4:10: error: 'issuer' must be one of acme | self-signed | files, got "
            "\"file\"\n");
}

TEST(Loader, CertFileOfWrongTypeDoesNotCascade) {
  EXPECT_EQ(check(R"([[certificate]]
name = "web"
domains = ["*.example.com"]
issuer = "files"
cert_file = 1
key_file = "/etc/edgeplane/web.key"
)"),
            "t.toml:5:13: error: 'cert_file' must be a string, not an integer\n");
}

TEST(Loader, MisspeltCertFileIsReportedOnce) {
  EXPECT_EQ(check(R"([[certificate]]
name = "web"
domains = ["*.example.com"]
issuer = "files"
cert_fle = "/etc/edgeplane/web.pem"
key_file = "/etc/edgeplane/web.key"
)"),
            "t.toml:5:1: error: unknown key 'cert_fle' in [[certificate]]; did you mean "
            "'cert_file'?\n");
}

TEST(Loader, WireGuardOfWrongTypeDoesNotCascade) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
wireguard = "wg0"
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
)"),
            "t.toml:3:13: error: 'wireguard' must be a table, not a string\n");
}

TEST(Loader, MisspeltWireGuardTableIsReportedOnce) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguar]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
)"),
            "t.toml:3:12: error: unknown key 'wireguar' in [[namespace]]; did you mean "
            "'wireguard'?\n");
}

TEST(Loader, RejectedAllowedIpsDoNotMakeBackendsUnreachable) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = "10.50.0.0/28"
[[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
target = "10.50.0.12:22"
)"),
            "t.toml:9:15: error: 'allowed_ips' must be an array, not a string\n");
}

TEST(Loader, RejectedInterfaceAddressDoesNotMakeRoutesOffSubnet) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
[[namespace.route]]
destination = "10.50.0.8/29"
via = "10.50.0.2"
)"),
            "t.toml:4:12: error: invalid interface address \"10.50.0.1\" in 'address'\n");
}

TEST(Loader, RejectedWireGuardDoesNotMakeRoutesOffSubnet) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
wireguard = "wg0"
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28", "10.60.0.0/16"]
[[namespace.route]]
destination = "10.60.0.0/16"
via = "10.50.0.2"
)"),
            "t.toml:3:13: error: 'wireguard' must be a table, not a string\n");
}

TEST(Loader, RejectedAllowedIpsEntryDoesNotLeaveRoutesUncovered) {
  // The route is probably what the malformed entry meant; it is not reported as well.
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28", "10.60.0.0"]
[[namespace.route]]
destination = "10.60.0.0/16"
via = "10.50.0.2"
)"),
            "t.toml:9:32: error: invalid CIDR \"10.60.0.0\" in 'allowed_ips'\n");
}

TEST(Loader, RejectedPeerListDoesNotMakeTargetsUnreachable) {
  EXPECT_EQ(check(R"([[namespace]]
name = "tenant-a"
peer = "vm-1"
[[forward]]
name = "ssh"
namespace = "tenant-a"
protocol = "tcp"
public_port = 22
target = "10.50.0.12:22"
)"),
            "t.toml:3:8: error: 'peer' must be an array of tables ([[namespace.peer]]), not a "
            "string\n");
}

TEST(Loader, RejectedHostsDoNotClash) {
  // Where tenant-b runs is unknown, so its listen_port is not said to clash with tenant-a's.
  EXPECT_EQ(check(withBase(R"([[host]]
name = "edge-1"
[[namespace]]
name = "tenant-b"
hosts = ["edge-1", 2]
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
)")),
            "t.toml:15:20: error: elements of 'hosts' must be strings, not an integer\n");
}

TEST(Loader, MisspeltEndpointTableIsReportedOnce) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoints]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)")),
            "t.toml:20:11: error: unknown key 'endpoints' in [[gateway]]; did you mean "
            "'endpoint'?\n");
}

TEST(Loader, GatewayWithoutEndpoints) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
)")),
            "t.toml:15:1: error: [[gateway]] \"ping\" has no [[gateway.endpoint]]; a gateway "
            "needs at least one\n");
}

TEST(Loader, GatewayWithEmptyEndpointList) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
endpoint = []
)")),
            "t.toml:15:1: error: [[gateway]] \"ping\" has no [[gateway.endpoint]]; a gateway "
            "needs at least one\n");
}

TEST(Loader, GatewayEndpointOfWrongTypeIsReportedOnce) {
  EXPECT_EQ(check(withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
endpoint = "/ping"
)")),
            "t.toml:20:12: error: 'endpoint' must be an array of tables ([[gateway.endpoint]]), "
            "not a string\n");
}

std::string gatewayEndpoint(std::string_view path, std::string_view method) {
  return withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = ")" + std::string(path) +
                  R"("
method = ")" + std::string(method) +
                  R"("
backends = ["10.50.0.5:8080"]
)");
}

TEST(Loader, EndpointBadMethod) {
  EXPECT_EQ(check(gatewayEndpoint("/ping", "FETCH")),
            "t.toml:22:10: error: 'method' must be one of GET | HEAD | POST | PUT | PATCH | "
            "DELETE | OPTIONS, got \"FETCH\"\n");
}

TEST(Loader, EndpointMethodIsCaseSensitive) {
  EXPECT_EQ(check(gatewayEndpoint("/ping", "get")),
            "t.toml:22:10: error: 'method' must be one of GET | HEAD | POST | PUT | PATCH | "
            "DELETE | OPTIONS, got \"get\"\n");
}

TEST(Loader, EndpointPathWithoutSlash) {
  EXPECT_EQ(check(gatewayEndpoint("api/ping", "GET")),
            "t.toml:21:8: error: endpoint path \"api/ping\" must start with '/'\n");
}

std::string apiKey(std::string_view id, std::string_view sha256) {
  return withBase(R"([[certificate]]
name = "manager"
domains = ["manager.example.com"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "manager.example.com"
namespace = "tenant-a"
certificate = "manager"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
[[api_key]]
name = "worker"
id = ")" + std::string(id) +
                  R"("
sha256 = ")" + std::string(sha256) +
                  R"("
gateways = ["ping"]
)");
}

constexpr std::string_view kSha =
    "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c";

TEST(Loader, ApiKeyValid) {
  EXPECT_EQ(check(apiKey("k7Hq2xPz", kSha)), "");
}

TEST(Loader, ApiKeyIdTooShort) {
  EXPECT_EQ(check(apiKey("k7H", kSha)),
            "t.toml:26:6: error: API key id \"k7H\" must be 4 to 64 characters of letters, "
            "digits, '_' or '-'\n");
}

TEST(Loader, ApiKeyIdWithSpace) {
  EXPECT_EQ(check(apiKey("k7Hq 2xPz", kSha)),
            "t.toml:26:6: error: API key id \"k7Hq 2xPz\" must be 4 to 64 characters of letters, "
            "digits, '_' or '-'\n");
}

TEST(Loader, Sha256TooShort) {
  std::string shortSha(kSha.substr(0, 63));
  EXPECT_EQ(check(apiKey("k7Hq2xPz", shortSha)),
            "t.toml:27:10: error: invalid digest (want 64 hex digits) \"" + shortSha +
                "\" in 'sha256'\n");
}

TEST(Loader, Sha256NotHex) {
  std::string bad = "g" + std::string(kSha.substr(1));
  EXPECT_EQ(
      check(apiKey("k7Hq2xPz", bad)),
      "t.toml:27:10: error: invalid digest (want 64 hex digits) \"" + bad + "\" in 'sha256'\n");
}

TEST(Loader, ApiKeyEmptyGateways) {
  EXPECT_EQ(check(R"([[api_key]]
name = "worker"
id = "k7Hq2xPz"
sha256 = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"
gateways = []
)"),
            "t.toml:5:12: error: 'gateways' must name at least one gateway\n");
}

TEST(Loader, InvalidRole) {
  EXPECT_EQ(check(R"([[api_key]]
name = "worker"
id = "k7Hq2xPz"
sha256 = "c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"
gateways = []
role = "root"
)"),
            "t.toml:5:12: error: 'gateways' must name at least one gateway\n"
            "t.toml:6:8: error: 'role' must be one of worker | admin, got \"root\"\n");
}

TEST(Loader, InvalidFleetValues) {
  EXPECT_EQ(
      check(R"([fleet]
base_domain = "Example.com"
acme_directory = "ftp://acme.example.com/dir"
acme_email = "ops"
uplink_pool = "100.64.0.0"
acme_ca_roots = "ca.pem"
acme_timeout = "500ms"
acme_eab_file = "eab.toml"
)"),
      "t.toml:2:15: error: invalid domain name \"Example.com\" in 'base_domain'\n"
      "t.toml:3:18: error: 'acme_directory' must be an http:// or https:// URL\n"
      "t.toml:4:14: error: invalid e-mail address \"ops\" in 'acme_email'\n"
      "t.toml:5:15: error: invalid CIDR \"100.64.0.0\" in 'uplink_pool'\n"
      "t.toml:6:17: error: 'acme_ca_roots' must be an absolute path (a PEM file on the host)\n"
      "t.toml:7:16: error: invalid duration (1s to 1h) \"500ms\" in 'acme_timeout'\n"
      "t.toml:8:17: error: 'acme_eab_file' must be an absolute path (a file on the host, never "
      "in Git)\n");
}

TEST(Loader, AcmeDirectoryOfWrongTypeDoesNotCascade) {
  EXPECT_EQ(check(R"([fleet]
acme_directory = 1
[[certificate]]
name = "web"
domains = ["a.example.com"]
)"),
            "t.toml:2:18: error: 'acme_directory' must be a string, not an integer\n");
}

TEST(Loader, EveryErrorIsReported) {
  // Three independent mistakes: three lines, in file order.
  EXPECT_EQ(check(R"([[host]]
name = "Edge"
[[namespace]]
name = "tenant_a"
suspended = 1
)"),
            "t.toml:2:8: error: host name \"Edge\" must be lower-case letters, digits and inner "
            "hyphens (at most 64)\n"
            "t.toml:4:8: error: namespace name \"tenant_a\" must match [a-z0-9-]{1,11}\n"
            "t.toml:5:13: error: 'suspended' must be a boolean, not an integer\n");
}

TEST(Loader, DocumentsAppendToOneDesired) {
  Desired d;
  Diagnostics diags;
  loadDocument("[[host]]\nname = \"edge-1\"\n", "a.toml", d, diags);
  loadDocument("[[host]]\nname = \"edge-2\"\n", "b.toml", d, diags);
  EXPECT_EQ(diags.format(), "");
  ASSERT_EQ(d.hosts.size(), 2u);
  EXPECT_EQ(d.hosts[0].origin.at("name").file, "a.toml");
  EXPECT_EQ(d.hosts[1].origin.at("name").file, "b.toml");
}

TEST(Loader, TheLocationsOfOneFileShareItsName) {
  Desired d;
  Diagnostics diags;
  loadDocument("[[host]]\nname = \"edge-1\"\n[[host]]\nname = \"edge-2\"\n",
               "/etc/edgeplane/config/hosts.toml", d, diags);
  EXPECT_EQ(diags.format(), "");
  ASSERT_EQ(d.hosts.size(), 2u);
  // One string, not a copy per location: 10k tables would otherwise hold 60k copies.
  EXPECT_EQ(&d.hosts[0].origin.table.file.str(), &d.hosts[1].origin.at("name").file.str());
  EXPECT_EQ(d.hosts[1].origin.at("name").file, "/etc/edgeplane/config/hosts.toml");
}

// ---------------------------------------------------------------------------------------------
// Directories.

TEST(LoaderDirectory, MergesFilesRecursivelyInSortedOrder) {
  TempDir dir;
  dir.write("b.toml", "[[host]]\nname = \"from-b\"\n");
  dir.write("a.toml", "[[host]]\nname = \"from-a\"\n");
  dir.write("sub/c.toml", "[[host]]\nname = \"from-sub-c\"\n");
  dir.write("sub/deeper/a.toml", "[[host]]\nname = \"from-deeper\"\n");
  dir.write("README.md", "not = toml at all [\n");
  dir.write("notes.toml.bak", "[[host]]\nname = \"from-backup\"\n");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  std::vector<std::string> names;
  for (const Host& h : d.hosts) {
    names.push_back(h.name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"from-a", "from-b", "from-sub-c", "from-deeper"}));
  EXPECT_EQ(d.hosts[3].origin.at("name").file, (dir.path() / "sub/deeper/a.toml").string());
}

TEST(LoaderDirectory, DiagnosticsNameFilesUnderTheRoot) {
  TempDir dir;
  dir.write("tenants/a.toml", "[[host]]\nnme = \"x\"\n");
  Diagnostics diags;
  loadAndValidate(dir.path() / "." / "tenants" / "..", diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/tenants/a.toml:2:1: error: unknown key 'nme' in [[host]]; did you mean "
            "'name'?\n");
}

TEST(LoaderDirectory, HiddenEntriesAreSkipped) {
  TempDir dir;
  dir.write("hosts.toml", "[[host]]\nname = \"edge-1\"\n");
  dir.write(".git/config.toml", "this is not toml [\n");
  dir.write(".hidden.toml", "this is not toml either [\n");
  dir.write("sub/.cache/x.toml", "nor this [\n");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  EXPECT_EQ(d.hosts.size(), 1u);
}

TEST(LoaderDirectory, DanglingHiddenSymlinkIsSkipped) {
  // Editors leave lock files such as `.#hosts.toml`, symlinks to nowhere, next to the config.
  TempDir dir;
  dir.write("hosts.toml", "[[host]]\nname = \"edge-1\"\n");
  fs::create_symlink("nobody@host.1234:1700000000", dir.path() / ".#hosts.toml");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  EXPECT_EQ(d.hosts.size(), 1u);
}

TEST(LoaderDirectory, DanglingConfigSymlinkIsAnErrorOfItsOwn) {
  TempDir dir;
  dir.write("hosts.toml", "[[host]]\nname = \"edge-1\"\n");
  fs::create_symlink("missing.toml", dir.path() / "linked.toml");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "cfg/linked.toml: error: cannot read file\n");
  EXPECT_EQ(d.hosts.size(), 1u);
}

TEST(LoaderDirectory, MissingRoot) {
  TempDir dir;
  Diagnostics diags;
  loadAndValidate(dir.path() / "nope", diags);
  EXPECT_EQ(dir.show(diags), "cfg/nope: error: config root is not a directory\n");
}

TEST(LoaderDirectory, RootThatIsAFile) {
  TempDir dir;
  dir.write("a.toml", "");
  Diagnostics diags;
  loadAndValidate(dir.path() / "a.toml", diags);
  EXPECT_EQ(dir.show(diags), "cfg/a.toml: error: config root is not a directory\n");
}

TEST(LoaderDirectory, EmptyRoot) {
  TempDir dir;
  dir.write("README.md", "no config here\n");
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "cfg: error: config root has no *.toml files\n");
}

TEST(LoaderDirectory, EmptyTomlFileIsFine) {
  TempDir dir;
  dir.write("empty.toml", "");
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
}

TEST(LoaderDirectory, SyntaxErrorInOneFileDoesNotHideTheOthers) {
  TempDir dir;
  dir.write("a.toml", "[[host]]\nname = \"edge-1\"\nname = \"edge-2\"\n");
  dir.write("b.toml", "[[host]]\nname = \"Edge\"\n");
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/a.toml:3:8: error: Error while parsing key-value pair: cannot redefine existing "
            "string 'name'\n"
            "cfg/b.toml:2:8: error: host name \"Edge\" must be lower-case letters, digits and "
            "inner hyphens (at most 64)\n");
}

constexpr std::string_view kTenant = R"([[namespace]]
name = "tenant-a"
[namespace.wireguard]
address = ["10.50.0.1/24"]
listen_port = 51820
[[namespace.peer]]
name = "vm-1"
public_key = "hxNcKbMd5XGTKrhhfFOCMyjhv1Q71Tno37EzayvVS2Y="
allowed_ips = ["10.50.0.0/28"]
[[certificate]]
name = "app"
domains = ["*.gw.example.com"]
issuer = "self-signed"
[[site]]
name = "app"
subdomain = "app"
namespace = "tenant-a"
backends = ["10.50.0.12:8080"]
certificate = "app"
[[passthrough]]
name = "secure"
subdomain = "secure"
namespace = "tenant-a"
backends = ["10.50.0.12:443"]
[[gateway]]
name = "ping"
subdomain = "manager"
namespace = "tenant-a"
certificate = "app"
[[gateway.endpoint]]
path = "/ping"
method = "GET"
backends = ["10.50.0.5:8080"]
)";

TEST(LoaderDirectory, SubdomainUsesBaseDomainFromAnotherFile) {
  TempDir dir;
  dir.write("tenant-a.toml", kTenant);
  dir.write("z-fleet.toml", "[fleet]\nbase_domain = \"gw.example.com\"\n");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  ASSERT_EQ(d.sites.size(), 1u);
  EXPECT_EQ(d.sites[0].hostnames, std::vector<std::string>{"app.gw.example.com"});
  EXPECT_EQ(d.sites[0].subdomain, "app");
  EXPECT_EQ(d.passthroughs.at(0).hostnames, std::vector<std::string>{"secure.gw.example.com"});
  EXPECT_EQ(d.gateways.at(0).hostname, "manager.gw.example.com");
  EXPECT_EQ(d.gateways[0].subdomain, "manager");
}

TEST(LoaderDirectory, SubdomainWithoutBaseDomain) {
  TempDir dir;
  dir.write("tenant-a.toml", kTenant);
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/tenant-a.toml:16:13: error: site \"app\" uses 'subdomain' but [fleet] sets no "
            "base_domain\n"
            "cfg/tenant-a.toml:22:13: error: passthrough \"secure\" uses 'subdomain' but [fleet] "
            "sets no base_domain\n"
            "cfg/tenant-a.toml:27:13: error: gateway \"ping\" uses 'subdomain' but [fleet] sets no "
            "base_domain\n");
}

TEST(LoaderDirectory, SubdomainTooLongForBaseDomain) {
  TempDir dir;
  std::string label(63, 'a');
  std::string longBase = label + "." + label + "." + label + ".com";  // 195 characters
  dir.write("fleet.toml", "[fleet]\nbase_domain = \"" + longBase + "\"\n");
  dir.write("site.toml", withBase(R"([[passthrough]]
name = "p"
subdomain = ")" + label + "." + label +
                                  R"("
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)"));
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "cfg/site.toml:13:13: error: subdomain \"" + label + "." + label +
                                 "\" with base_domain \"" + longBase +
                                 "\" is not a valid hostname\n");
}

TEST(LoaderDirectory, InvalidSubdomainIsNotExpanded) {
  TempDir dir;
  dir.write("fleet.toml", "[fleet]\nbase_domain = \"gw.example.com\"\n");
  dir.write("site.toml", withBase(R"([[passthrough]]
name = "p"
subdomain = "-app"
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)"));
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/site.toml:13:13: error: invalid subdomain \"-app\" in 'subdomain'\n");
  EXPECT_TRUE(d.passthroughs.at(0).hostnames.empty());
}

TEST(LoaderDirectory, InvalidBaseDomainDoesNotCascade) {
  TempDir dir;
  dir.write("fleet.toml", "[fleet]\nbase_domain = \"gw.example.com.\"\n");
  dir.write("site.toml", withBase(R"([[passthrough]]
name = "p"
subdomain = "app"
namespace = "tenant-a"
backends = ["10.50.0.2:443"]
)"));
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/fleet.toml:2:15: error: invalid domain name \"gw.example.com.\" in "
            "'base_domain'\n");
}

TEST(LoaderDirectory, DuplicateFleetAcrossFiles) {
  TempDir dir;
  dir.write("a.toml", "[fleet]\nbase_domain = \"a.example.com\"\n");
  dir.write("b.toml", "# the second one\n[fleet]\nbase_domain = \"b.example.com\"\n");
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/b.toml:2:1: error: duplicate [fleet] table (first defined at cfg/a.toml:1:1)\n");
  ASSERT_TRUE(d.fleet.has_value());
  EXPECT_EQ(d.fleet->base_domain, "a.example.com");  // the first one wins
}

TEST(LoaderDirectory, SameInputSameOutput) {
  TempDir dir;
  dir.write("b.toml", "[[host]]\nname = \"B\"\nbogus = 1\n");
  dir.write("a.toml", "[[host]]\nname = \"A\"\n[[namespace]]\nname = \"x_y\"\n");
  Diagnostics first;
  loadAndValidate(dir.path(), first);
  Diagnostics second;
  loadAndValidate(dir.path(), second);
  EXPECT_EQ(first.format(), second.format());
  EXPECT_EQ(dir.show(first),
            "cfg/a.toml:2:8: error: host name \"A\" must be lower-case letters, digits and inner "
            "hyphens (at most 64)\n"
            "cfg/a.toml:4:8: error: namespace name \"x_y\" must match [a-z0-9-]{1,11}\n"
            "cfg/b.toml:2:8: error: host name \"B\" must be lower-case letters, digits and inner "
            "hyphens (at most 64)\n"
            "cfg/b.toml:3:1: error: unknown key 'bogus' in [[host]]\n");
}

}  // namespace
}  // namespace edgeplane

namespace edgeplane {
namespace {

// toml++ 3.3.0 has undefined behaviour on some non-ASCII code points outside strings; the
// loader screens them first (regression inputs in tests/fuzz/regressions/loader/).
TEST(LoaderScreen, NonAsciiOutsideStringsIsReportedBeforeParsing) {
  EXPECT_EQ(check("a = 1\xcc\xaa\n"),
            "t.toml:1:6: error: non-ASCII character outside a string or comment\n");
  EXPECT_EQ(check("\n\n  \xcc\xaa = 1\n"),
            "t.toml:3:3: error: non-ASCII character outside a string or comment\n");
}

TEST(LoaderScreen, NonAsciiInStringsAndCommentsIsFine) {
  EXPECT_EQ(check("# caf\xc3\xa9\n[[api_key]]\nname = \"caf\xc3\xa9 \\\" \xc3\xbc\"  # \xc3\xa9\n"
                  "id = 'abcd'\nsha256 = '" +
                  std::string(64, 'a') + "'\nrole = 'admin'\n"),
            "");
  EXPECT_EQ(check("[[api_key]]\nname = \"\"\"multi \"\" \xc3\xa9\nline\"\"\"\nid = 'abcd'\n"
                  "sha256 = '" +
                  std::string(64, 'a') + "'\ngateways = ['g']\n"),
            "t.toml:6:13: error: gateway \"g\" is not defined\n");
  EXPECT_EQ(check("x = '''lit \xc3\xa9 ''''\n"),
            "t.toml:1:1: error: unknown key 'x' in the top level\n");
}

// The screen's idea of a string is not the parser's: to toml++ `1'` is a bad number, so the
// code point after it reached the unreachable in toml++'s whitespace table anyway (fuzz_loader,
// regression tomlpp-unreachable-nonascii-after-quote). Under UBSan this aborted.
TEST(LoaderScreen, NonAsciiAfterAQuoteTheParserDoesNotTakeAsAStringIsAnError) {
  EXPECT_EQ(check("a =1'\xcc\xaa\n"),
            "t.toml:1:5: error: Error while parsing decimal integer: expected digit, saw '''\n");
}

// toml++ recurses once per part of a dotted key or table header, without a bound: 150,000
// parts (a 300 KB file) overflowed the stack and killed the run with no message (found by an
// attacker's read). More than 128 dots on one line outside strings and comments is an error
// before parsing; dots inside strings do not count.
TEST(LoaderScreen, DeeplyDottedKeysAreAnErrorNotAStackOverflow) {
  std::string parts = "a";
  for (int i = 0; i < 200000; ++i) {
    parts += ".a";
  }
  EXPECT_EQ(check("x = 1\n[" + parts + "]\n"),
            "t.toml:2:1: error: more than 128 dots outside strings on one line: keys nested "
            "deeper than this config allows\n");
  EXPECT_EQ(check(parts + " = 1\n"),
            "t.toml:1:1: error: more than 128 dots outside strings on one line: keys nested "
            "deeper than this config allows\n");
  const std::string dots(5000, '.');
  EXPECT_EQ(check("# " + dots + "\n[[api_key]]\nname = \"" + dots + "\"\nid = 'abcd'\nsha256 = '" +
                  std::string(64, 'a') + "'\nrole = 'admin'\n"),
            "");  // dots in a comment and a string: a valid config
}

TEST(LoaderScreen, HugeSubdomainIsAnErrorNotAStackOverflow) {
  // A regex over repeated labels recursed per label and overflowed the stack at ~15k labels.
  std::string sub;
  for (int i = 0; i < 16000; ++i) {
    sub += i == 0 ? "a" : ".a";
  }
  std::string out =
      check("[[site]]\nname = \"s\"\nsubdomain = \"" + sub +
            "\"\nnamespace = \"x\"\nbackends = [\"10.0.0.1:80\"]\ncertificate = \"c\"\n");
  EXPECT_NE(out.find("t.toml:3:13: error: invalid subdomain \"a.a.a."), std::string::npos) << out;
  EXPECT_NE(out.find("…\" (31999 bytes) in 'subdomain'"), std::string::npos) << out;
}

TEST(DiagnosticQuote, LongValuesAreCutButDnsNamesAreNot) {
  EXPECT_EQ(quote("abc"), "\"abc\"");
  std::string name(253, 'a');
  EXPECT_EQ(quote(name), "\"" + name + "\"");
  std::string huge(1000, 'x');
  EXPECT_EQ(quote(huge), "\"" + std::string(256, 'x') + "…\" (1000 bytes)");
}

// ---------------------------------------------------------------------------------------------
// Automatic HTTPS: routes without `certificate` get a managed ACME certificate.

TEST(LoaderDirectory, RoutesWithoutCertificateGetManagedAcmeCertificates) {
  TempDir dir;
  dir.write("fleet.toml", "[fleet]\nbase_domain = \"gw.example.com\"\n");
  dir.write("routes.toml", withBase(R"([[site]]
name = "shop"
hostnames = ["shop.example.net", "www.shop.example.net"]
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
[[site]]
name = "app"
subdomain = "app"
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
[[site]]
name = "named"
hostnames = ["named.example.net"]
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
certificate = "named"
[[certificate]]
name = "named"
domains = ["named.example.net"]
issuer = "self-signed"
[[gateway]]
name = "ping"
hostname = "ping.example.net"
namespace = "tenant-a"
[[gateway.endpoint]]
path = "/p"
method = "GET"
backends = ["10.50.0.5:8080"]
)"));
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  ASSERT_EQ(d.sites.size(), 3u);
  EXPECT_EQ(d.sites[0].certificate, "auto.site.shop");
  EXPECT_EQ(d.sites[1].certificate, "auto.site.app");
  EXPECT_EQ(d.sites[2].certificate, "named");
  EXPECT_EQ(d.gateways[0].certificate, "auto.gateway.ping");

  const Certificate* shop = d.findCertificate("auto.site.shop");
  ASSERT_NE(shop, nullptr);
  EXPECT_EQ(shop->domains, (std::vector<std::string>{"shop.example.net", "www.shop.example.net"}));
  EXPECT_EQ(shop->issuer, Issuer::Acme);
  EXPECT_FALSE(shop->challenge.has_value());  // chosen when ordering
  EXPECT_EQ(shop->managed_for, "site shop");
  const Certificate* app = d.findCertificate("auto.site.app");
  ASSERT_NE(app, nullptr);
  EXPECT_EQ(app->domains, std::vector<std::string>{"app.gw.example.com"});
  const Certificate* ping = d.findCertificate("auto.gateway.ping");
  ASSERT_NE(ping, nullptr);
  EXPECT_EQ(ping->domains, std::vector<std::string>{"ping.example.net"});
  EXPECT_EQ(d.certificates.size(), 4u);  // "named" and three managed ones
}

TEST(LoaderDirectory, ManagedCertificateOfAWildcardHostnameIsValidatedByDns01) {
  TempDir dir;
  dir.write("routes.toml", withBase(R"([[site]]
name = "apps"
hostnames = ["*.apps.example.net"]
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
)"));
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  const Certificate* c = d.findCertificate("auto.site.apps");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->domains, std::vector<std::string>{"*.apps.example.net"});
  EXPECT_EQ(c->challenge, AcmeChallengeType::Dns01);
}

// [fleet].wildcard: the routes that use `subdomain` and name no certificate share one
// *.<base_domain> certificate by DNS-01; the others keep their own.
TEST(LoaderDirectory, FleetWildcardSharesOneCertificateAmongSubdomainRoutes) {
  TempDir dir;
  dir.write("fleet.toml", "[fleet]\nbase_domain = \"gw.example.com\"\nwildcard = true\n");
  dir.write("routes.toml", withBase(R"([[site]]
name = "shop"
subdomain = "shop"
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
[[site]]
name = "blog"
subdomain = "blog"
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
[[site]]
name = "own"
hostnames = ["own.example.net"]
namespace = "tenant-a"
backends = ["10.50.0.5:8080"]
[[gateway]]
name = "ping"
subdomain = "ping"
namespace = "tenant-a"
[[gateway.endpoint]]
path = "/p"
method = "GET"
backends = ["10.50.0.5:8080"]
)"));
  Diagnostics diags;
  Desired d = loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags), "");
  EXPECT_EQ(d.sites[0].certificate, "auto.wildcard");
  EXPECT_EQ(d.sites[1].certificate, "auto.wildcard");
  EXPECT_EQ(d.sites[2].certificate, "auto.site.own");
  EXPECT_EQ(d.gateways[0].certificate, "auto.wildcard");
  const Certificate* w = d.findCertificate("auto.wildcard");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->domains, std::vector<std::string>{"*.gw.example.com"});
  EXPECT_EQ(w->challenge, AcmeChallengeType::Dns01);
  EXPECT_EQ(w->issuer, Issuer::Acme);
  EXPECT_EQ(d.certificates.size(), 2u);  // the shared one and auto.site.own
  EXPECT_FALSE(d.findCertificate("auto.site.own")->challenge.has_value());
}

TEST(LoaderDirectory, FleetWildcardNeedsABaseDomain) {
  TempDir dir;
  dir.write("fleet.toml", "[fleet]\nwildcard = true\n");
  Diagnostics diags;
  loadAndValidate(dir.path(), diags);
  EXPECT_EQ(dir.show(diags),
            "cfg/fleet.toml:2:12: error: 'wildcard = true' needs 'base_domain': the certificate "
            "is *.<base_domain>\n");
}

// A Git commit's tree is loaded from memory (configFilesOf), the same files in the same order
// as readConfigRoot lists once the tree is written out: *.toml only, hidden entries left out,
// ordered as paths are ("a/b.toml" before "a-b.toml", which a plain string sort would swap).
TEST(ConfigFilesOf, ListsWhatReadConfigRootWouldRead) {
  const std::map<std::string, std::string> tree = {{"a-b.toml", "# a-b\n"},
                                                   {"a/b.toml", "# a/b\n"},
                                                   {"a/.hidden.toml", "# hidden"},
                                                   {".git/x.toml", "# hidden dir"},
                                                   {"b/.d/c.toml", "# hidden dir"},
                                                   {"README.md", "# not config"},
                                                   {"z.toml", "# z\n"},
                                                   {"a/c/d.toml", "# deep\n"}};
  TempDir dir;
  for (const auto& [name, text] : tree) {
    dir.write(name, text);
  }
  Diagnostics diags;
  auto read = readConfigRoot(dir.path(), diags);
  ASSERT_TRUE(read.has_value()) << diags.format();
  const std::vector<ConfigFile> given = configFilesOf(tree, dir.path());
  ASSERT_EQ(given.size(), read->size());
  for (size_t i = 0; i < given.size(); ++i) {
    EXPECT_EQ(given[i].name, (*read)[i].name) << i;
    EXPECT_EQ(given[i].text, (*read)[i].text) << i;
  }
  ASSERT_EQ(given.size(), 4U);
  EXPECT_EQ(given[0].name, (dir.path() / "a/b.toml").string());
  EXPECT_TRUE(configFilesOf({{"README.md", "x"}}, dir.path()).empty());
}

}  // namespace
}  // namespace edgeplane
