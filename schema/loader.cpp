// A parsed TOML document -> Desired, keeping file:line:col (see table_loader.h).
#include "schema/table_loader.h"

#include <algorithm>
#include <array>
#include <regex>
#include <set>
#include <span>
#include <sstream>

#include "schema/encoding.h"
#include "schema/toml_reader.h"

namespace edgeplane {
namespace {

using detail::enumValue;
using detail::locOf;
using detail::parsed;
using detail::parsedList;
using detail::TableReader;
using detail::typeName;

// One or more DNS labels, checked label by label (a regex over repeated labels recurses per
// label in libstdc++ and overflows the stack on a long enough value).
bool validSubdomain(std::string_view s) {
  return s.size() <= 200 && isValidDnsName(std::string(s) + ".invalid", false);
}

std::optional<std::string> dnsName(std::string_view s, bool allowWildcard) {
  if (isValidDnsName(s, allowWildcard)) {
    return std::string(s);
  }
  return std::nullopt;
}

const std::regex& namespaceNamePattern() {
  static const std::regex re("[a-z0-9-]{1,11}");
  return re;
}

std::string requiredName(TableReader& r) {
  return r.str("name", true).value_or("");
}

// `namespace`: the [[namespace]] something hangs off. "" names none and is refused (for a site,
// leaving the key out is what makes it a site of the host itself).
std::string namespaceKey(TableReader& r, bool required) {
  auto ns = r.str("namespace", required);
  if (ns && ns->empty()) {
    r.error("namespace", std::string("'namespace' must name a [[namespace]]") +
                             (required ? "" : " (leave it out for a site of the host itself)"));
    r.reject("namespace");
  }
  return ns.value_or("");
}

class Loader {
 public:
  // `linesBefore`: the lines of the file before `root`'s text (a chunk of it, toml_chunks.h).
  Loader(Desired& out, Diagnostics& diags, const SourceFile& file, uint32_t linesBefore = 0)
      : out_(out), diags_(diags), file_(file), linesBefore_(linesBefore) {}

  void load(const toml::table& root) {
    TableReader r(root, "the top level", file_, diags_, linesBefore_);
    if (const toml::table* t = r.table("fleet")) {
      loadFleet(*t);
    }
    for (const auto& [key, loadOne] : arrays()) {
      for (const toml::table* t : r.tables(key)) {
        (this->*loadOne)(*t);
      }
    }
    r.finish();
  }

  // The top level's arrays of [[tables]], in the order they are loaded.
  static std::span<const std::string_view> arrayKeys() {
    static const auto keys = [] {
      std::array<std::string_view, std::tuple_size_v<Arrays>> k;
      std::transform(arrays().begin(), arrays().end(), k.begin(),
                     [](const auto& a) { return a.first; });
      return k;
    }();
    return keys;
  }

 private:
  using Arrays = std::array<std::pair<std::string_view, void (Loader::*)(const toml::table&)>, 8>;
  static const Arrays& arrays() {
    static const Arrays a{{{"host", &Loader::loadHost},
                           {"namespace", &Loader::loadNamespace},
                           {"forward", &Loader::loadForward},
                           {"certificate", &Loader::loadCertificate},
                           {"site", &Loader::loadSite},
                           {"passthrough", &Loader::loadPassthrough},
                           {"gateway", &Loader::loadGateway},
                           {"api_key", &Loader::loadApiKey}}};
    return a;
  }

 private:
  TableReader reader(const toml::table& t, std::string context) {
    return TableReader(t, std::move(context), file_, diags_, linesBefore_);
  }

  // A key naming a file on the host the config is applied on: only an absolute path means the
  // same file wherever the repository is checked out.
  static std::optional<std::string> hostPath(TableReader& r, std::string_view key,
                                             std::string_view what) {
    auto path = r.str(key);
    if (path && (path->empty() || path->front() != '/')) {
      r.error(key,
              "'" + std::string(key) + "' must be an absolute path (" + std::string(what) + ")");
    }
    return path;
  }

  void loadFleet(const toml::table& t) {
    TableReader r = reader(t, "[fleet]");
    if (out_.fleet) {
      const SourceLoc& first = out_.fleet->origin.table;
      r.errorAt(r.tableLoc(), "duplicate [fleet] table (first defined at " + first.file.str() +
                                  ":" + std::to_string(first.line) + ":" +
                                  std::to_string(first.column) + ")");
    }
    Fleet f;
    f.base_domain = parsed<std::string>(
        r, "base_domain", false, [](std::string_view s) { return dnsName(s, false); },
        "domain name");
    f.acme_directory = r.str("acme_directory");
    if (f.acme_directory && f.acme_directory->rfind("https://", 0) != 0 &&
        f.acme_directory->rfind("http://", 0) != 0) {
      r.error("acme_directory", "'acme_directory' must be an http:// or https:// URL");
    }
    f.acme_email = r.str("acme_email");
    if (f.acme_email) {
      auto at = f.acme_email->find('@');
      if (at == std::string::npos || at == 0 ||
          !isValidDnsName(std::string_view(*f.acme_email).substr(at + 1), false)) {
        r.error("acme_email",
                "invalid e-mail address " + quote(*f.acme_email) + " in 'acme_email'");
      }
    }
    f.acme_ca_roots = hostPath(r, "acme_ca_roots", "a PEM file on the host");
    f.acme_eab_file = hostPath(r, "acme_eab_file", "a file on the host, never in Git");
    f.acme_timeout = parsed<Duration>(
        r, "acme_timeout", false,
        [](std::string_view s) -> std::optional<Duration> {
          auto d = parseDurationUpTo(s, kMaxAcmeTimeout);
          return d && d->count() >= 1000 ? d : std::nullopt;
        },
        "duration (1s to 1h)");
    f.wildcard = r.boolean("wildcard").value_or(false);
    if (f.wildcard && !r.has("base_domain")) {
      r.error("wildcard",
              "'wildcard = true' needs 'base_domain': the certificate is *.<base_domain>");
    }
    f.uplink_pool = parsed<IpPrefix>(r, "uplink_pool", false, IpPrefix::parse, "CIDR");
    r.finish();
    f.origin = std::move(r.origin());
    if (!out_.fleet) {
      out_.fleet = std::move(f);
    }
  }

  void loadHost(const toml::table& t) {
    TableReader r = reader(t, "[[host]]");
    Host h;
    h.name = requiredName(r);
    if (!h.name.empty() &&
        !std::regex_match(h.name, std::regex("[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?"))) {
      r.error("name", "host name " + quote(h.name) +
                          " must be lower-case letters, digits and inner hyphens (at most 64)");
    }
    r.finish();
    h.origin = std::move(r.origin());
    out_.hosts.push_back(std::move(h));
  }

  void loadNamespace(const toml::table& t) {
    TableReader r = reader(t, "[[namespace]]");
    Namespace ns;
    ns.name = requiredName(r);
    if (r.origin().isLoaded("name") && !std::regex_match(ns.name, namespaceNamePattern())) {
      r.error("name", "namespace name " + quote(ns.name) + " must match [a-z0-9-]{1,11}");
    }
    ns.hosts = hostList(r);
    ns.suspended = r.boolean("suspended").value_or(false);
    if (const toml::table* wg = r.table("wireguard")) {
      ns.wireguard = loadWireGuard(*wg);
    }
    for (const toml::table* p : r.tables("peer")) {
      ns.peers.push_back(loadPeer(*p));
    }
    for (const toml::table* rt : r.tables("route")) {
      ns.routes.push_back(loadRoute(*rt));
    }
    if (!ns.peers.empty() && !r.has("wireguard")) {
      r.require("wireguard", ns.peers.front().origin.table,
                "namespace " + quote(ns.name) + " has peers but no [namespace.wireguard]");
    }
    r.finish();
    ns.origin = std::move(r.origin());
    out_.namespaces.push_back(std::move(ns));
  }

  WireGuardConfig loadWireGuard(const toml::table& t) {
    TableReader r = reader(t, "[namespace.wireguard]");
    WireGuardConfig wg;
    wg.address = parsedList<IpPrefix>(r, "address", true, IpPrefix::parse, "interface address");
    if (r.has("address") && wg.address.empty() && r.isEmptyArray("address")) {
      r.error("address", "'address' must list at least one interface address");
    }
    wg.listen_port = static_cast<uint16_t>(r.integer("listen_port", 1, 65535, true).value_or(0));
    if (auto mtu = r.integer("mtu", 1280, 9000)) {
      wg.mtu = static_cast<uint16_t>(*mtu);
    }
    r.finish();
    wg.origin = std::move(r.origin());
    return wg;
  }

  Peer loadPeer(const toml::table& t) {
    TableReader r = reader(t, "[[namespace.peer]]");
    Peer p;
    p.name = requiredName(r);
    if (auto key = parsed<WgKey>(r, "public_key", true, WgKey::parseBase64,
                                 "WireGuard public key (base64 of 32 bytes)")) {
      p.public_key = *key;
    }
    p.allowed_ips = parsedList<IpPrefix>(r, "allowed_ips", true, IpPrefix::parse, "CIDR");
    for (size_t i = 0; i < p.allowed_ips.size(); ++i) {
      if (p.allowed_ips[i].network() != p.allowed_ips[i]) {
        r.errorAt(r.origin().at("allowed_ips", i),
                  "allowed_ips entry " + quote(p.allowed_ips[i].str()) +
                      " has host bits set; did you mean " +
                      quote(p.allowed_ips[i].network().str()) + "?");
      }
    }
    p.endpoint = parsed<HostPort>(r, "endpoint", false, HostPort::parse, "endpoint (host:port)");
    if (auto k = r.integer("persistent_keepalive", 1, 65535)) {
      p.persistent_keepalive = static_cast<uint16_t>(*k);
    }
    p.preshared_key_file = hostPath(r, "preshared_key_file", "a file on the host, never in Git");
    r.finish();
    p.origin = std::move(r.origin());
    return p;
  }

  NamespaceRoute loadRoute(const toml::table& t) {
    TableReader r = reader(t, "[[namespace.route]]");
    NamespaceRoute rt;
    if (auto d = parsed<IpPrefix>(r, "destination", true, IpPrefix::parse, "CIDR")) {
      rt.destination = *d;
      if (d->network() != *d) {
        r.error("destination", "destination " + quote(d->str()) +
                                   " has host bits set; did you mean " + quote(d->network().str()) +
                                   "?");
      }
    }
    if (auto v = parsed<IpAddress>(r, "via", true, IpAddress::parse, "IP address")) {
      rt.via = *v;
    }
    r.finish();
    rt.origin = std::move(r.origin());
    return rt;
  }

  void loadForward(const toml::table& t) {
    TableReader r = reader(t, "[[forward]]");
    Forward f;
    f.name = requiredName(r);
    f.namespace_name = namespaceKey(r, true);
    f.protocol =
        enumValue<Protocol>(r, "protocol", {{"tcp", Protocol::Tcp}, {"udp", Protocol::Udp}})
            .value_or(Protocol::Tcp);
    if (!r.has("protocol")) {
      r.missing("protocol");
    }
    if (!r.has("public_port")) {
      r.missing("public_port");
    }
    if (const toml::node* n = r.raw("public_port")) {
      if (n->is_integer()) {
        int64_t v = n->as_integer()->get();
        if (v < 1 || v > 65535) {
          r.error("public_port",
                  "'public_port' must be between 1 and 65535, got " + std::to_string(v));
          r.reject("public_port");
        } else {
          f.public_port = PortRange{static_cast<uint16_t>(v), static_cast<uint16_t>(v)};
        }
      } else if (n->is_string()) {
        std::string s(n->as_string()->get());
        if (auto pr = PortRange::parse(s)) {
          f.public_port = *pr;
        } else {
          r.error("public_port", "invalid port range " + quote(s) +
                                     " in 'public_port' (want 1-65535 or \"first-last\")");
          r.reject("public_port");
        }
      } else {
        r.error("public_port", "'public_port' must be an integer or a \"first-last\" string, not " +
                                   std::string(typeName(n->type())));
        r.reject("public_port");
      }
    }
    if (auto target = parsed<Endpoint>(r, "target", true, Endpoint::parse, "target (ip:port)")) {
      f.target = *target;
      if (target->address.family != IpAddress::Family::V4) {
        // The forwards' nftables tables are family ip: an IPv6 target could not be applied.
        r.error("target", "forward target " + target->str() + " must be an IPv4 address");
        r.reject("target");
      }
      uint32_t span = f.public_port.last - f.public_port.first;
      if (f.public_port.first != 0 && uint32_t{target->port} + span > 65535) {
        r.error("target", "target port " + std::to_string(target->port) + " plus the " +
                              std::to_string(span + 1) + "-port range exceeds 65535");
      }
    }
    r.finish();
    f.origin = std::move(r.origin());
    out_.forwards.push_back(std::move(f));
  }

  void loadCertificate(const toml::table& t) {
    TableReader r = reader(t, "[[certificate]]");
    Certificate c;
    c.name = requiredName(r);
    c.domains = parsedList<std::string>(
        r, "domains", true, [](std::string_view s) { return dnsName(s, true); }, "domain name");
    c.issuer =
        enumValue<Issuer>(
            r, "issuer",
            {{"acme", Issuer::Acme}, {"self-signed", Issuer::SelfSigned}, {"files", Issuer::Files}})
            .value_or(Issuer::Acme);
    c.cert_file = hostPath(r, "cert_file", "a PEM file on the host");
    c.key_file = hostPath(r, "key_file", "a PEM file on the host, never in Git");
    c.renew_before = parsed<Duration>(
        r, "renew_before", false,
        [](std::string_view s) { return parseDurationUpTo(s, kMaxRenewBefore); },
        "duration (at most 1440h)");
    c.challenge = enumValue<AcmeChallengeType>(r, "challenge",
                                               {{"http-01", AcmeChallengeType::Http01},
                                                {"tls-alpn-01", AcmeChallengeType::TlsAlpn01},
                                                {"dns-01", AcmeChallengeType::Dns01}});
    if (c.challenge && c.issuer != Issuer::Acme) {
      r.error("challenge", "'challenge' is only for issuer \"acme\"");
    }
    if (c.renew_before && c.issuer == Issuer::Files) {
      r.error("renew_before",
              "'renew_before' is not for issuer \"files\": edgeplane does not renew those");
    }
    if (c.issuer == Issuer::Files) {
      for (const char* key : {"cert_file", "key_file"}) {
        if (!r.has(key)) {
          r.require(key, r.tableLoc(),
                    "certificate " + quote(c.name) + " with issuer \"files\" needs '" + key + "'");
        }
      }
    }
    r.finish();
    c.origin = std::move(r.origin());
    out_.certificates.push_back(std::move(c));
  }

  // hostnames = [...] or subdomain = "x" (expanded after every file is read).
  void loadHostnames(TableReader& r, std::vector<std::string>& hostnames,
                     std::optional<std::string>& subdomain) {
    hostnames = parsedList<std::string>(
        r, "hostnames", false, [](std::string_view s) { return dnsName(s, true); }, "hostname");
    subdomain = r.str("subdomain");
    if (subdomain && !validSubdomain(*subdomain)) {
      r.error("subdomain", "invalid subdomain " + quote(*subdomain) + " in 'subdomain'");
      r.reject("subdomain");
      subdomain.reset();
    }
    if (r.has("hostnames") && r.has("subdomain")) {
      r.error("subdomain", "set either 'hostnames' or 'subdomain', not both");
    } else if (!r.has("hostnames") && !r.has("subdomain")) {
      r.require("hostnames", r.tableLoc(), r.context() + " needs 'hostnames' (or 'subdomain')");
    } else if (r.isEmptyArray("hostnames")) {
      r.error("hostnames", "'hostnames' must list at least one hostname");
    }
  }

  std::vector<Endpoint> backends(TableReader& r) {
    auto b = parsedList<Endpoint>(r, "backends", true, Endpoint::parse, "backend (ip:port)");
    if (r.has("backends") && b.empty() && r.isEmptyArray("backends")) {
      r.error("backends", "'backends' must list at least one backend");
    }
    return b;
  }

  Balance balance(TableReader& r) {
    return enumValue<Balance>(r, "balance",
                              {{"round_robin", Balance::RoundRobin}, {"random", Balance::Random}})
        .value_or(Balance::RoundRobin);
  }

  // health_check = { ... } of a [[site]] or a [[gateway.endpoint]]: unset keys take the
  // HealthCheck defaults.
  std::optional<HealthCheck> healthCheck(TableReader& r) {
    if (const toml::table* hc = r.table("health_check")) {
      TableReader h = reader(*hc, "'health_check'");
      HealthCheck check;
      check.path = h.str("path").value_or("/");
      if (check.path.empty() || check.path[0] != '/') {
        h.error("path", "health check path " + quote(check.path) + " must start with '/'");
      }
      check.interval =
          parsed<Duration>(h, "interval", false, parseDuration, "duration", kDurationExamples)
              .value_or(check.interval);
      check.timeout =
          parsed<Duration>(h, "timeout", false, parseDuration, "duration", kDurationExamples)
              .value_or(check.timeout);
      if (!h.rejected("interval") && !h.rejected("timeout") && check.timeout >= check.interval) {
        h.error("timeout", "health check timeout " + formatDuration(check.timeout) +
                               " must be shorter than its interval " +
                               formatDuration(check.interval));
      }
      if (auto n = h.integer("healthy_threshold", 1, 100)) {
        check.healthy_threshold = static_cast<uint32_t>(*n);
      }
      if (auto n = h.integer("unhealthy_threshold", 1, 100)) {
        check.unhealthy_threshold = static_cast<uint32_t>(*n);
      }
      if (auto status = h.str("expect_status")) {
        if (isValidStatusRange(*status)) {
          check.expect_status = *status;
        } else {
          h.error("expect_status", "invalid status " + quote(*status) +
                                       " in 'expect_status' (want a status or a range like "
                                       "\"200-399\", within 100-599)");
          h.reject("expect_status");
        }
      }
      h.finish();
      return check;
    }
    return std::nullopt;
  }

  // A route's `certificate`: the name of a [[certificate]]; unset, the route gets a managed one
  // (schema/managed_certs.h).
  static std::string certificateRef(TableReader& r) {
    auto name = r.str("certificate");
    if (name && name->empty()) {
      r.error("certificate",
              "'certificate' must name a [[certificate]]; leave it out for a managed ACME "
              "certificate");
    }
    return name.value_or("");
  }

  // `hosts`: the [[host]]s something is placed on; absent: every host.
  static std::optional<std::vector<std::string>> hostList(TableReader& r) {
    auto hosts = r.strings("hosts");
    if (hosts && hosts->empty() && r.isEmptyArray("hosts")) {
      r.error("hosts", "'hosts' must name at least one host (leave it out for every host)");
      r.reject("hosts");
    }
    return hosts;
  }

  void loadSite(const toml::table& t) {
    TableReader r = reader(t, "[[site]]");
    Site s;
    s.name = requiredName(r);
    loadHostnames(r, s.hostnames, s.subdomain);
    // Without a namespace, a site of the host itself (validate checks its backends).
    s.namespace_name = namespaceKey(r, false);
    s.hosts = hostList(r);
    s.backends = backends(r);
    s.balance = balance(r);
    s.certificate = certificateRef(r);
    s.redirect_http = r.boolean("redirect_http").value_or(false);
    s.health_check = healthCheck(r);
    r.finish();
    s.origin = std::move(r.origin());
    out_.sites.push_back(std::move(s));
  }

  void loadPassthrough(const toml::table& t) {
    TableReader r = reader(t, "[[passthrough]]");
    Passthrough p;
    p.name = requiredName(r);
    loadHostnames(r, p.hostnames, p.subdomain);
    p.namespace_name = namespaceKey(r, true);
    p.backends = backends(r);
    p.balance = balance(r);
    p.proxy_protocol =
        enumValue<ProxyProtocol>(
            r, "proxy_protocol",
            {{"none", ProxyProtocol::None}, {"v1", ProxyProtocol::V1}, {"v2", ProxyProtocol::V2}})
            .value_or(ProxyProtocol::None);
    r.finish();
    p.origin = std::move(r.origin());
    out_.passthroughs.push_back(std::move(p));
  }

  void loadGateway(const toml::table& t) {
    TableReader r = reader(t, "[[gateway]]");
    Gateway g;
    g.name = requiredName(r);
    auto hostname = parsed<std::string>(
        r, "hostname", false, [](std::string_view s) { return dnsName(s, false); }, "hostname");
    g.subdomain = r.str("subdomain");
    if (r.has("hostname") && r.has("subdomain")) {
      r.error("subdomain", "set either 'hostname' or 'subdomain', not both");
    } else if (!r.has("hostname") && !r.has("subdomain")) {
      r.require("hostname", r.tableLoc(), "[[gateway]] needs 'hostname' (or 'subdomain')");
    }
    g.hostname = hostname.value_or("");
    g.namespace_name = namespaceKey(r, true);
    g.certificate = certificateRef(r);
    g.rate_limit = parsed<RateLimit>(r, "rate_limit", false, RateLimit::parse,
                                     "rate limit (want N/second, N/minute or N/hour)");
    for (const toml::table* e : r.tables("endpoint")) {
      TableReader er = reader(*e, "[[gateway.endpoint]]");
      GatewayEndpoint ep;
      ep.path = er.str("path", true).value_or("");
      if (er.has("path") && (ep.path.empty() || ep.path[0] != '/')) {
        er.error("path", "endpoint path " + quote(ep.path) + " must start with '/'");
      }
      ep.method = er.str("method", true).value_or("");
      static const std::set<std::string, std::less<>> methods = {"GET",   "HEAD",   "POST",   "PUT",
                                                                 "PATCH", "DELETE", "OPTIONS"};
      if (er.has("method") && !ep.method.empty() && methods.count(ep.method) == 0) {
        er.error("method",
                 "'method' must be one of GET | HEAD | POST | PUT | PATCH | DELETE | "
                 "OPTIONS, got " +
                     quote(ep.method));
      }
      ep.backends = backends(er);
      ep.balance = balance(er);
      ep.health_check = healthCheck(er);
      er.finish();
      ep.origin = std::move(er.origin());
      g.endpoints.push_back(std::move(ep));
    }
    if (g.endpoints.empty() && !r.rejected("endpoint")) {
      r.require("endpoint", r.tableLoc(),
                "[[gateway]] " + quote(g.name) +
                    " has no [[gateway.endpoint]]; a gateway needs at least one");
    }
    r.finish();
    g.origin = std::move(r.origin());
    out_.gateways.push_back(std::move(g));
  }

  void loadApiKey(const toml::table& t) {
    TableReader r = reader(t, "[[api_key]]");
    ApiKey k;
    k.name = requiredName(r);
    k.id = r.str("id", true).value_or("");
    if (r.has("id") && !isValidApiKeyId(k.id)) {
      r.error("id", "API key id " + quote(k.id) +
                        " must be 4 to 64 characters of letters, digits, '_' or '-'");
    }
    if (auto d = parsed<std::array<uint8_t, 32>>(r, "sha256", true, parseHex32,
                                                 "digest (want 64 hex digits)")) {
      k.sha256 = *d;
    }
    k.gateways = r.strings("gateways", false).value_or(std::vector<std::string>{});
    if (r.has("gateways") && k.gateways.empty() && r.isEmptyArray("gateways")) {
      r.error("gateways", "'gateways' must name at least one gateway");
    }
    k.endpoints = r.strings("endpoints", false).value_or(std::vector<std::string>{});
    if (r.has("endpoints") && k.endpoints.empty() && r.isEmptyArray("endpoints")) {
      r.error("endpoints", "'endpoints' must name at least one endpoint path (omit it for all)");
    }
    k.role = enumValue<ApiKeyRole>(r, "role",
                                   {{"worker", ApiKeyRole::Worker}, {"admin", ApiKeyRole::Admin}})
                 .value_or(ApiKeyRole::Worker);
    k.enabled = r.boolean("enabled").value_or(true);
    if (!r.has("gateways") && k.role != ApiKeyRole::Admin) {
      r.require("gateways", r.tableLoc(),
                "[[api_key]] is missing required key 'gateways' (only role = \"admin\" may omit "
                "it: every gateway)");
    }
    r.finish();
    k.origin = std::move(r.origin());
    out_.api_keys.push_back(std::move(k));
  }

  Desired& out_;
  Diagnostics& diags_;
  const SourceFile& file_;
  uint32_t linesBefore_;
};

}  // namespace

namespace detail {

void loadTopLevel(const toml::table& root, Desired& out, Diagnostics& diags, const SourceFile& file,
                  uint32_t linesBefore) {
  Loader(out, diags, file, linesBefore).load(root);
}

std::span<const std::string_view> topLevelArrays() {
  return Loader::arrayKeys();
}

}  // namespace detail

}  // namespace edgeplane
