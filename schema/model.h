// The desired-state model: plain C++ types for every kind in the TOML contract (DESIGN.md).
#pragma once

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "schema/net.h"

namespace edgeplane {

// A source file's name as diagnostics print it. Every location in one file shares the one
// string: a config of 10k tables holds ten times as many locations, and copying one copies a
// pointer. Compares, orders and converts as the name.
class SourceFile {
 public:
  SourceFile() = default;
  SourceFile(std::string name);  // NOLINT(google-explicit-constructor): a name is a file
  SourceFile(const char* name) : SourceFile(std::string(name)) {}  // NOLINT
  const std::string& str() const;
  operator const std::string&() const { return str(); }  // NOLINT
  bool empty() const { return str().empty(); }
  friend bool operator==(const SourceFile& a, const SourceFile& b) {
    return a.name_ == b.name_ || a.str() == b.str();
  }
  friend std::strong_ordering operator<=>(const SourceFile& a, const SourceFile& b) {
    return a.str() <=> b.str();
  }

 private:
  std::shared_ptr<const std::string> name_;  // null: no file
};

std::ostream& operator<<(std::ostream& os, const SourceFile& file);

// Where a value came from, for diagnostics. line/column are 1-based; 0 means unknown.
struct SourceLoc {
  SourceFile file;
  uint32_t line = 0;
  uint32_t column = 0;
  auto operator<=>(const SourceLoc&) const = default;
};

// The locations of a table's keys, by key, in key order: a sorted vector, since a table has a
// handful of keys (and 10k tables would otherwise be 50k tree nodes to build and free).
class LocationMap {
 public:
  using value_type = std::pair<std::string, SourceLoc>;
  using iterator = std::vector<value_type>::iterator;
  using const_iterator = std::vector<value_type>::const_iterator;

  // The key's location, inserted (unknown) at its place when absent.
  SourceLoc& operator[](std::string_view key);
  const_iterator find(std::string_view key) const;
  size_t count(std::string_view key) const { return find(key) != end() ? 1 : 0; }
  size_t erase(std::string_view key);
  // Sets the key's location; cheapest when keys come in order, as a map's own order gives them.
  void insert_or_assign(std::string key, SourceLoc loc);
  void reserve(size_t n) { items_.reserve(n); }
  void clear() { items_.clear(); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }

 private:
  std::vector<value_type> items_;
};

// Source locations of a table and of its keys, so later checks can point at the exact field.
struct Origin {
  SourceLoc table;
  LocationMap fields;
  // Keys that were present but whose value the loader rejected (and reported). Checks built
  // on such a value are skipped instead of repeating the error in other words.
  std::set<std::string, std::less<>> rejected;
  bool isRejected(std::string_view key) const { return rejected.count(key) != 0; }
  // Given, and its value loaded.
  bool isLoaded(std::string_view key) const { return fields.count(key) != 0 && !isRejected(key); }
  // The key's location if known, else the table's.
  const SourceLoc& at(std::string_view key) const;
  // The location of element `index` of an array-valued key, else the key's.
  const SourceLoc& at(std::string_view key, size_t index) const;
  static std::string elementKey(std::string_view key, size_t index);
};

// The pool host<->namespace /31 uplinks come from when [fleet] sets no uplink_pool.
inline constexpr std::string_view kDefaultUplinkPool = "100.64.0.0/16";

// [fleet] acme_directory when unset: Let's Encrypt's production directory.
inline constexpr std::string_view kDefaultAcmeDirectory =
    "https://acme-v02.api.letsencrypt.org/directory";
inline constexpr Duration kDefaultAcmeTimeout{90000};
inline constexpr Duration kMaxAcmeTimeout{int64_t{3600} * 1000};

struct Fleet {
  std::optional<std::string> base_domain;
  std::optional<std::string> acme_directory;
  std::optional<std::string> acme_email;
  // A PEM file on the host the ACME client trusts the CA's API with (a private CA, Pebble in
  // the tests); unset: the system's roots.
  std::optional<std::string> acme_ca_roots;
  // A host-local, owner-only file holding the CA's external account binding (RFC 8555
  // section 7.3.4: `kid` and `hmac_key`), for a CA that requires one; never in Git.
  std::optional<std::string> acme_eab_file;
  // The budget of one run's ACME orders (after its first snapshot); unset: kDefaultAcmeTimeout.
  std::optional<Duration> acme_timeout;
  // true: the routes that use `subdomain` and name no certificate share one managed
  // *.<base_domain> certificate, validated by DNS-01 (the proxy's --dns responder).
  bool wildcard = false;
  std::optional<IpPrefix> uplink_pool;
  Origin origin;
};

struct Host {
  std::string name;
  Origin origin;
};

struct Peer {
  std::string name;
  WgKey public_key;
  std::vector<IpPrefix> allowed_ips;
  std::optional<HostPort> endpoint;
  std::optional<uint16_t> persistent_keepalive;  // seconds
  // A host-local file holding the peer's preshared key (wg genpsk); the key never enters Git.
  std::optional<std::string> preshared_key_file;
  Origin origin;
};

struct NamespaceRoute {
  IpPrefix destination;
  IpAddress via;
  Origin origin;
};

struct WireGuardConfig {
  std::vector<IpPrefix> address;  // interface addresses, host bits kept
  uint16_t listen_port = 0;
  std::optional<uint16_t> mtu;
  Origin origin;
};

struct Namespace {
  std::string name;
  std::optional<std::vector<std::string>> hosts;  // unset: every host
  bool suspended = false;
  std::optional<WireGuardConfig> wireguard;
  std::vector<Peer> peers;
  std::vector<NamespaceRoute> routes;
  Origin origin;
};

enum class Protocol : uint8_t { Tcp, Udp };

struct Forward {
  std::string name;
  std::string namespace_name;
  Protocol protocol = Protocol::Tcp;
  PortRange public_port;
  Endpoint target;  // with a public port range, target.port is the first port of the range
  Origin origin;
};

enum class Issuer : uint8_t { Acme, SelfSigned, Files };

// How an ACME CA validates a domain (RFC 8555 sections 8.3 and 8.4, RFC 8737); the proxy
// answers all three (DNS-01 on its --dns responder). Only DNS-01 validates a wildcard.
enum class AcmeChallengeType : uint8_t { Http01, TlsAlpn01, Dns01 };

struct Certificate {
  std::string name;
  std::vector<std::string> domains;
  Issuer issuer = Issuer::Acme;
  std::optional<std::string> cert_file;
  std::optional<std::string> key_file;
  // Renew when this much validity is left; unset: when a third of the lifetime is left.
  std::optional<Duration> renew_before;
  // issuer "acme" only; unset: chosen when ordering (http-01, or tls-alpn-01 when the proxy's
  // :80 is off).
  std::optional<AcmeChallengeType> challenge;
  // A managed certificate (schema/managed_certs.h): the route it is for, "site shop"; empty
  // for a [[certificate]].
  std::string managed_for;
  Origin origin;
};

// The longest renew_before: generated certificates live 90 days, and one renewed with 60
// days left is renewed about monthly.
inline constexpr Duration kMaxRenewBefore{int64_t{60} * 24 * 3600 * 1000};

enum class Balance : uint8_t { RoundRobin, Random };

struct HealthCheck {
  std::string path = "/";
  Duration interval{10000};
  Duration timeout{2000};
  uint32_t healthy_threshold = 2;         // consecutive passes before a backend gets traffic again
  uint32_t unhealthy_threshold = 3;       // consecutive failures before it is taken out
  std::string expect_status = "200-399";  // a status ("204") or a range ("200-399")
};

// "200" or "200-399" within 100-599, first <= last: {first, last}, else nullopt.
std::optional<std::pair<int, int>> parseStatusRange(std::string_view s);
inline bool isValidStatusRange(std::string_view s) {
  return parseStatusRange(s).has_value();
}

struct Site {
  std::string name;
  std::vector<std::string> hostnames;    // resolved: `subdomain` is expanded by the loader
  std::optional<std::string> subdomain;  // as written, if it was used
  // Empty: a site of the host itself, whose backends are loopback services of the host's own
  // network namespace (e.g. the agent's webhook), served on `hosts` (none: every host).
  std::string namespace_name;
  std::optional<std::vector<std::string>> hosts;  // only without namespace_name
  std::vector<Endpoint> backends;
  Balance balance = Balance::RoundRobin;
  std::string certificate;
  bool redirect_http = false;
  std::optional<HealthCheck> health_check;
  Origin origin;
};

enum class ProxyProtocol : uint8_t { None, V1, V2 };

struct Passthrough {
  std::string name;
  std::vector<std::string> hostnames;
  std::optional<std::string> subdomain;
  std::string namespace_name;
  std::vector<Endpoint> backends;
  Balance balance = Balance::RoundRobin;
  ProxyProtocol proxy_protocol = ProxyProtocol::None;
  Origin origin;
};

struct GatewayEndpoint {
  std::string path;
  std::string method;
  std::vector<Endpoint> backends;
  Balance balance = Balance::RoundRobin;
  std::optional<HealthCheck> health_check;  // as a [[site]]'s, for this endpoint's backends
  Origin origin;
};

struct Gateway {
  std::string name;
  std::string hostname;  // resolved from `subdomain` if that was used
  std::optional<std::string> subdomain;
  std::string namespace_name;
  std::string certificate;
  std::optional<RateLimit> rate_limit;  // per client: an IPv4 address or an IPv6 /64
  std::vector<GatewayEndpoint> endpoints;
  Origin origin;
};

enum class ApiKeyRole : uint8_t { Worker, Admin };

struct ApiKey {
  std::string name;
  std::string id;                      // public part
  std::array<uint8_t, 32> sha256{};    // digest of the whole key; the key is never here
  std::vector<std::string> gateways;   // empty: every gateway (role admin only)
  std::vector<std::string> endpoints;  // empty: every endpoint of its gateways
  ApiKeyRole role = ApiKeyRole::Worker;
  bool enabled = true;
  Origin origin;
};

// The whole desired state, as merged from every file of a config root.
// (A member added here is also appended in load_finish.cpp's appendElements and encoded in
// desired_codec.cpp.)
struct Desired {
  std::optional<Fleet> fleet;
  std::vector<Host> hosts;
  std::vector<Namespace> namespaces;
  std::vector<Forward> forwards;
  std::vector<Certificate> certificates;
  std::vector<Site> sites;
  std::vector<Passthrough> passthroughs;
  std::vector<Gateway> gateways;
  std::vector<ApiKey> api_keys;

  const Namespace* findNamespace(std::string_view name) const;
  const Certificate* findCertificate(std::string_view name) const;
  const Gateway* findGateway(std::string_view name) const;
};

std::string_view toString(Protocol p);
std::string_view toString(Issuer i);
std::string_view toString(AcmeChallengeType t);
std::optional<AcmeChallengeType> acmeChallengeTypeFrom(std::string_view text);
std::string_view toString(Balance b);
std::string_view toString(ProxyProtocol p);
std::string_view toString(ApiKeyRole r);

// An API key's public id: 4 to 64 of [A-Za-z0-9_-] (see schema/api_key.h).
bool isValidApiKeyId(std::string_view id);

// The network namespace edgeplane creates for a tenant namespace: "ep-" + name
// (/run/netns/ep-tenant-a). The one definition of the rule; the reconciler's drivers and
// the proxy both name namespaces through it.
inline constexpr std::string_view kNetnsPrefix = "ep-";
std::string netnsName(std::string_view ns);

// Whether a namespace is placed on `host` (no `hosts` list: every host).
bool namespaceOnHost(const Namespace& ns, std::string_view host);
// Whether a site of the host itself (no namespace) is served on `host` (no `hosts`: every host).
bool hostSiteOnHost(const Site& s, std::string_view host);

// What resolveFor copies: all of the host's part, or all of it but the forwards (for
// buildTarget, which can take them from the whole config: they are many, each with its origin).
enum class Resolve : uint8_t { All, AllButForwards };

// The part of `all` that host `host` must converge: its namespaces and what hangs off them,
// the certificates their routes use, and the API keys of their gateways.
Desired resolveFor(const Desired& all, std::string_view host, Resolve what = Resolve::All);

}  // namespace edgeplane
