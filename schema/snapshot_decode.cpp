// The proxy routing snapshot read back from JSON: strict (strict_json), every field checked,
// unknown keys refused, errors naming the JSON path (see snapshot.h).
#include "schema/encoding.h"
#include "schema/snapshot.h"

#include "schema/json_reader.h"
#include "schema/json_text.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

namespace edgeplane {

namespace {

using strict_json::Json;
using strict_json::typeName;

// Reads the members of one JSON object by key; whatever is left unread is an unknown key.
// Errors name the JSON path ("routes[2].backends[0]").
class Fields {
 public:
  Fields(const Json& obj, std::string where) : obj_(obj), where_(std::move(where)) {
    used_.assign(obj.keys.size(), false);
  }

  const std::string& where() const { return where_; }
  std::string at(std::string_view key) const {
    return where_.empty() ? std::string(key) : where_ + "." + std::string(key);
  }

  // The member, marked read; nullptr when absent.
  const Json* find(std::string_view key) {
    for (size_t i = 0; i < obj_.keys.size(); ++i) {
      if (obj_.keys[i] == key) {
        used_[i] = true;
        return &obj_.values[i];
      }
    }
    return nullptr;
  }

  // The first member nobody read, if any.
  std::optional<std::string> unknownKey() const {
    for (size_t i = 0; i < obj_.keys.size(); ++i) {
      if (!used_[i]) {
        return obj_.keys[i];
      }
    }
    return std::nullopt;
  }

 private:
  const Json& obj_;
  std::string where_;
  std::vector<bool> used_;
};

// Heterogeneous ordering for looking a route's certificate up in the sorted list.
struct CertificateByName {
  bool operator()(const SnapshotCertificate& a, const std::string& b) const { return a.name < b; }
  bool operator()(const std::string& a, const SnapshotCertificate& b) const { return a < b.name; }
};

class Decoder {
 public:
  Result<ProxySnapshot> snapshot(const Json& root) {
    if (root.type != Json::Type::Object) {
      return terminal("snapshot: the document must be a JSON object, not " +
                      std::string(typeName(root.type)));
    }
    ProxySnapshot s;
    Fields f(root, "");
    // The version first: a newer snapshot is refused as such, not for its unknown keys.
    int64_t version = 0;
    if (!integer(f, "version", version)) {
      return error();
    }
    // Version 2 (no API keys) is still read: the snapshot a host stored before an upgrade
    // keeps serving until the reconciler publishes the next one.
    if (version != kSnapshotVersion && version != 2) {
      return terminal("snapshot: version " + std::to_string(version) +
                      " is not supported (this build reads version " +
                      std::to_string(kSnapshotVersion) + ")");
    }
    version_ = version;
    if (!str(f, "host", s.host) || !checkText(f.at("host"), s.host, 253)) {
      return error();
    }
    if (!optStr(f, "commit", s.commit) ||
        (s.commit && !checkText(f.at("commit"), *s.commit, 128))) {
      return error();
    }
    const Json* routeList = nullptr;
    const Json* certList = nullptr;
    const Json* keyList = nullptr;
    if (!member(f, "routes", Json::Type::Array, routeList) ||
        !member(f, "certificates", Json::Type::Array, certList) ||
        (version >= 3 && !member(f, "api_keys", Json::Type::Array, keyList))) {
      return error();
    }
    if (!noUnknownKeys(f, "the snapshot")) {
      return error();
    }
    if (auto r = certificates(*certList, s); !r) {
      return r.error();
    }
    if (auto r = routes(*routeList, s); !r) {
      return r.error();
    }
    if (keyList != nullptr) {
      if (auto r = apiKeys(*keyList, s); !r) {
        return r.error();
      }
    }
    return s;
  }

 private:
  // "certificates": each one valid, in strictly ascending name order.
  Result<void> certificates(const Json& certs, ProxySnapshot& s) {
    for (size_t i = 0; i < certs.array.size(); ++i) {
      const std::string where = "certificates[" + std::to_string(i) + "]";
      SnapshotCertificate c;
      if (!certificate(certs.array[i], where, c)) {
        return error();
      }
      if (!s.certificates.empty() && s.certificates.back().name >= c.name) {
        return terminal(
            "snapshot: " + where + ": certificate " + quote(c.name) +
            (s.certificates.back().name == c.name ? " appears twice" : " is out of name order"));
      }
      s.certificates.push_back(std::move(c));
    }
    return {};
  }

  // "routes": each one valid, in (kind, name) order, naming certificates the snapshot has, no
  // hostname claimed twice.
  Result<void> routes(const Json& list, ProxySnapshot& s) {
    std::set<std::string, std::less<>> hostnames;
    for (size_t i = 0; i < list.array.size(); ++i) {
      const std::string where = "routes[" + std::to_string(i) + "]";
      SnapshotRoute r;
      if (!route(list.array[i], where, r)) {
        return error();
      }
      if (!s.routes.empty() &&
          std::tie(s.routes.back().kind, s.routes.back().name) >= std::tie(r.kind, r.name)) {
        return terminal("snapshot: " + where + ": route " + quote(r.key()) +
                        (s.routes.back().key() == r.key() ? " appears twice"
                                                          : " is out of (kind, name) order"));
      }
      if (r.certificate && !std::binary_search(s.certificates.begin(), s.certificates.end(),
                                               *r.certificate, CertificateByName{})) {
        return terminal("snapshot: " + where + ".certificate: " + quote(*r.certificate) +
                        " is not in \"certificates\"");
      }
      for (const auto& h : r.hostnames) {
        if (!hostnames.insert(h).second) {
          return terminal("snapshot: " + where + ": hostname " + quote(h) +
                          " is claimed by another route");
        }
      }
      s.routes.push_back(std::move(r));
    }
    return {};
  }

  // "api_keys": each one valid, for the snapshot's gateways, in strictly ascending id order.
  Result<void> apiKeys(const Json& keys, ProxySnapshot& s) {
    std::set<std::string, std::less<>> gateways;
    for (const SnapshotRoute& r : s.routes) {
      if (r.kind == RouteKind::Gateway) {
        gateways.insert(r.name);
      }
    }
    for (size_t i = 0; i < keys.array.size(); ++i) {
      const std::string where = "api_keys[" + std::to_string(i) + "]";
      SnapshotApiKey k;
      if (!apiKey(keys.array[i], where, gateways, k)) {
        return error();
      }
      if (!s.api_keys.empty() && s.api_keys.back().id >= k.id) {
        return terminal("snapshot: " + where + ": key " + quote(k.id) +
                        (s.api_keys.back().id == k.id ? " appears twice" : " is out of id order"));
      }
      s.api_keys.push_back(std::move(k));
    }
    return {};
  }

 private:
  static std::string quote(std::string_view s) {
    std::string out;
    appendJsonString(out, s);
    return out;
  }
  Error error() const { return terminal("snapshot: " + error_); }
  // `where` is a JSON path; empty for the top-level object.
  bool fail(const std::string& where, const std::string& what) {
    error_ = where.empty() ? what : where + ": " + what;
    return false;
  }

  // Required member of a given type.
  bool member(Fields& f, std::string_view key, Json::Type type, const Json*& out) {
    out = f.find(key);
    if (out == nullptr) {
      return fail(f.where(), "missing key \"" + std::string(key) + "\"");
    }
    if (out->type != type) {
      return fail(f.at(key), "must be " + std::string(typeName(type)) + ", not " +
                                 std::string(typeName(out->type)));
    }
    return true;
  }
  bool str(Fields& f, std::string_view key, std::string& out) {
    const Json* v = nullptr;
    if (!member(f, key, Json::Type::String, v)) {
      return false;
    }
    out = v->string;
    return true;
  }
  bool optStr(Fields& f, std::string_view key, std::optional<std::string>& out) {
    if (f.find(key) == nullptr) {
      return true;
    }
    std::string v;
    if (!str(f, key, v)) {
      return false;
    }
    out = std::move(v);
    return true;
  }
  bool integer(Fields& f, std::string_view key, int64_t& out) {
    const Json* v = nullptr;
    if (!member(f, key, Json::Type::Int, v)) {
      return false;
    }
    out = v->integer;
    return true;
  }
  bool boolean(Fields& f, std::string_view key, bool& out) {
    const Json* v = nullptr;
    if (!member(f, key, Json::Type::Bool, v)) {
      return false;
    }
    out = v->boolean;
    return true;
  }
  bool noUnknownKeys(const Fields& f, std::string_view what) {
    if (auto k = f.unknownKey()) {
      return fail(f.where(), "unknown key " + quote(*k) + " in " + std::string(what));
    }
    return true;
  }

  // Non-empty, bounded, no control characters: names that end up in logs and metric labels.
  bool checkText(const std::string& where, const std::string& v, size_t maxLen) {
    if (v.empty()) {
      return fail(where, "must not be empty");
    }
    if (v.size() > maxLen) {
      return fail(where, "longer than " + std::to_string(maxLen) + " bytes");
    }
    for (char c : v) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        return fail(where, "contains a control character");
      }
    }
    return true;
  }

  bool stringArray(Fields& f, std::string_view key, std::vector<std::string>& out,
                   bool mayBeEmpty = false) {
    const Json* a = nullptr;
    if (!member(f, key, Json::Type::Array, a)) {
      return false;
    }
    if (a->array.empty() && !mayBeEmpty) {
      return fail(f.at(key), "must not be empty");
    }
    for (size_t i = 0; i < a->array.size(); ++i) {
      const Json& e = a->array[i];
      if (e.type != Json::Type::String) {
        return fail(f.at(key) + "[" + std::to_string(i) + "]",
                    "must be a string, not " + std::string(typeName(e.type)));
      }
      out.push_back(e.string);
    }
    return true;
  }

  bool backends(Fields& f, std::vector<Endpoint>& out) {
    std::vector<std::string> text;
    if (!stringArray(f, "backends", text)) {
      return false;
    }
    for (size_t i = 0; i < text.size(); ++i) {
      auto e = Endpoint::parse(text[i]);
      if (!e || e->port == 0) {
        return fail(f.at("backends") + "[" + std::to_string(i) + "]",
                    quote(text[i]) + " is not an address:port");
      }
      out.push_back(*e);
    }
    return true;
  }

  // A site without a namespace reaches only the host's loopback services, as validate says.
  bool hostSiteBackends(Fields& f, const SnapshotRoute& r) {
    if (!r.netns.empty()) {
      return true;
    }
    for (size_t i = 0; i < r.backends.size(); ++i) {
      if (!r.backends[i].address.isLoopback()) {
        return fail(
            f.at("backends") + "[" + std::to_string(i) + "]",
            quote(r.backends[i].str()) + " is not a loopback address (a site without namespace)");
      }
    }
    return true;
  }

  bool hostnames(Fields& f, std::vector<std::string>& out) {
    if (!stringArray(f, "hostnames", out)) {
      return false;
    }
    std::set<std::string_view> seen;
    for (size_t i = 0; i < out.size(); ++i) {
      const std::string where = f.at("hostnames") + "[" + std::to_string(i) + "]";
      const std::string& h = out[i];
      // isValidDnsName takes lower-case labels only, which is what the proxy matches SNI in.
      if (!isValidDnsName(h, true)) {
        return fail(where, quote(h) + " is not a lower-case DNS name");
      }
      if (!seen.insert(h).second) {
        return fail(where, quote(h) + " appears twice");
      }
    }
    return true;
  }

  bool balance(Fields& f, Balance& out) {
    std::string v;
    if (!str(f, "balance", v)) {
      return false;
    }
    if (v == toString(Balance::RoundRobin)) {
      out = Balance::RoundRobin;
    } else if (v == toString(Balance::Random)) {
      out = Balance::Random;
    } else {
      return fail(f.at("balance"), quote(v) + " is not round_robin or random");
    }
    return true;
  }

  bool durationMs(Fields& f, std::string_view key, std::optional<Duration>& out) {
    if (f.find(key) == nullptr) {
      return true;
    }
    int64_t ms = 0;
    if (!integer(f, key, ms)) {
      return false;
    }
    // The loader's bounds: a positive duration of at most 7 days.
    constexpr int64_t kMaxMs = int64_t{7} * 24 * 3600 * 1000;
    if (ms < 1 || ms > kMaxMs) {
      return fail(f.at(key), std::to_string(ms) + " is not between 1 and " +
                                 std::to_string(kMaxMs) + " milliseconds");
    }
    out = Duration{ms};
    return true;
  }

  bool namespaceName(Fields& f, SnapshotRoute& r) {
    if (!str(f, "namespace", r.namespace_name) || !str(f, "netns", r.netns)) {
      return false;
    }
    // The proxy opens /run/netns/<netns>: only the loader's namespace names, and only the
    // netns name edgeplane derives from them, so a snapshot cannot point anywhere else. A site
    // of the host itself has neither (its backends are the proxy's own loopback services).
    const std::string& ns = r.namespace_name;
    if (ns.empty() && r.netns.empty() && r.kind == RouteKind::Site) {
      return true;  // its backends must be loopback addresses: see hostSiteBackends
    }
    if (ns.empty() || ns.size() > 64 || !std::all_of(ns.begin(), ns.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
        })) {
      return fail(f.at("namespace"), quote(ns) + " is not a namespace name ([a-z0-9-]{1,64})");
    }
    if (r.netns != netnsName(ns)) {
      return fail(f.at("netns"), quote(r.netns) + " is not the network namespace of " + quote(ns) +
                                     " (" + quote(netnsName(ns)) + ")");
    }
    return true;
  }

  bool httpPath(const std::string& where, const std::string& path) {
    if (path.empty() || path[0] != '/') {
      return fail(where, quote(path) + " must start with '/'");
    }
    if (path.size() > 4096) {
      return fail(where, "longer than 4096 bytes");
    }
    for (char c : path) {
      const auto u = static_cast<unsigned char>(c);
      if (u <= 0x20 || u == 0x7f) {
        return fail(where, "contains a space or control character");
      }
    }
    return true;
  }

  bool endpoint(const Json& v, const std::string& where, SnapshotEndpoint& e) {
    if (v.type != Json::Type::Object) {
      return fail(where, "must be an object, not " + std::string(typeName(v.type)));
    }
    Fields f(v, where);
    if (!str(f, "path", e.path) || !httpPath(f.at("path"), e.path)) {
      return false;
    }
    static const std::set<std::string, std::less<>> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                                "PATCH", "DELETE", "OPTIONS"};
    if (!str(f, "method", e.method)) {
      return false;
    }
    if (kMethods.count(e.method) == 0) {
      return fail(f.at("method"), quote(e.method) + " is not an HTTP method");
    }
    // Version 2 had no endpoint health checks: there they are unknown keys.
    return backends(f, e.backends) && balance(f, e.balance) && (version_ < 3 || health(f, e)) &&
           noUnknownKeys(f, "an endpoint");
  }

  // An absolute path without control characters: the proxy opens it as is.
  bool filePath(Fields& f, std::string_view key, std::string& out) {
    if (!str(f, key, out) || !checkText(f.at(key), out, 4096)) {
      return false;
    }
    if (out[0] != '/') {
      return fail(f.at(key), quote(out) + " is not an absolute path");
    }
    return true;
  }

  bool certificate(const Json& v, const std::string& where, SnapshotCertificate& c) {
    if (v.type != Json::Type::Object) {
      return fail(where, "must be an object, not " + std::string(typeName(v.type)));
    }
    Fields f(v, where);
    if (!str(f, "name", c.name) || !checkText(f.at("name"), c.name, 256) ||
        !str(f, "fingerprint", c.fingerprint)) {
      return false;
    }
    const bool hex = c.fingerprint.size() == 64 &&
                     std::all_of(c.fingerprint.begin(), c.fingerprint.end(), [](char ch) {
                       return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
                     });
    if (!hex) {
      return fail(f.at("fingerprint"), "must be 64 lower-case hex digits (SHA-256)");
    }
    if (!filePath(f, "cert_file", c.cert_file) || !filePath(f, "key_file", c.key_file) ||
        !stringArray(f, "domains", c.domains) || !integer(f, "not_after", c.not_after)) {
      return false;
    }
    std::set<std::string_view> seen;
    for (size_t i = 0; i < c.domains.size(); ++i) {
      const std::string at = f.at("domains") + "[" + std::to_string(i) + "]";
      if (!isValidDnsName(c.domains[i], true)) {
        return fail(at, quote(c.domains[i]) + " is not a lower-case DNS name");
      }
      if (!seen.insert(c.domains[i]).second) {
        return fail(at, quote(c.domains[i]) + " appears twice");
      }
    }
    if (c.not_after <= 0) {
      return fail(f.at("not_after"), "must be a positive unix time");
    }
    return noUnknownKeys(f, "a certificate");
  }

  bool apiKey(const Json& v, const std::string& where,
              const std::set<std::string, std::less<>>& gateways, SnapshotApiKey& k) {
    if (v.type != Json::Type::Object) {
      return fail(where, "must be an object, not " + std::string(typeName(v.type)));
    }
    Fields f(v, where);
    if (!str(f, "id", k.id) || !str(f, "name", k.name) || !checkText(f.at("name"), k.name, 256) ||
        !str(f, "sha256", k.sha256)) {
      return false;
    }
    if (!isValidApiKeyId(k.id)) {
      return fail(f.at("id"), quote(k.id) + " is not 4 to 64 of [A-Za-z0-9_-]");
    }
    if (!parseHex32(k.sha256) || k.sha256.size() != 64 ||
        !std::all_of(k.sha256.begin(), k.sha256.end(),
                     [](char ch) { return !(ch >= 'A' && ch <= 'F'); })) {
      return fail(f.at("sha256"), "must be 64 lower-case hex digits (SHA-256)");
    }
    if (!stringArray(f, "gateways", k.gateways, true) ||
        !stringArray(f, "endpoints", k.endpoints, true)) {
      return false;
    }
    for (size_t i = 0; i < k.gateways.size(); ++i) {
      if (!gateways.contains(k.gateways[i])) {
        return fail(f.at("gateways") + "[" + std::to_string(i) + "]",
                    quote(k.gateways[i]) + " is not a gateway route");
      }
    }
    for (size_t i = 0; i < k.endpoints.size(); ++i) {
      if (!httpPath(f.at("endpoints") + "[" + std::to_string(i) + "]", k.endpoints[i])) {
        return false;
      }
    }
    std::string role;
    if (!str(f, "role", role)) {
      return false;
    }
    if (role == "worker") {
      k.role = ApiKeyRole::Worker;
    } else if (role == "admin") {
      k.role = ApiKeyRole::Admin;
    } else {
      return fail(f.at("role"), quote(role) + " is not \"worker\" or \"admin\"");
    }
    if (k.role == ApiKeyRole::Worker && k.gateways.empty()) {
      return fail(f.at("gateways"), "a worker key must name its gateways");
    }
    return boolean(f, "enabled", k.enabled) && noUnknownKeys(f, "an API key");
  }

  bool threshold(Fields& f, std::string_view key, std::optional<uint32_t>& out) {
    if (f.find(key) == nullptr) {
      return true;
    }
    int64_t v = 0;
    if (!integer(f, key, v)) {
      return false;
    }
    if (v < 1 || v > 100) {
      return fail(f.at(key), std::to_string(v) + " is not between 1 and 100");
    }
    out = static_cast<uint32_t>(v);
    return true;
  }

  // The optional health_* members of a site route or a gateway endpoint.
  template <typename T>
  bool health(Fields& f, T& r) {
    if (!optStr(f, "health_path", r.health_path) ||
        (r.health_path && !httpPath(f.at("health_path"), *r.health_path)) ||
        !durationMs(f, "health_interval_ms", r.health_interval) ||
        !durationMs(f, "health_timeout_ms", r.health_timeout) ||
        !threshold(f, "health_healthy_threshold", r.health_healthy_threshold) ||
        !threshold(f, "health_unhealthy_threshold", r.health_unhealthy_threshold) ||
        !optStr(f, "health_expect_status", r.health_expect_status)) {
      return false;
    }
    if (r.health_expect_status && !isValidStatusRange(*r.health_expect_status)) {
      return fail(f.at("health_expect_status"),
                  quote(*r.health_expect_status) + " is not a status or range in 100-599");
    }
    return true;
  }

  bool route(const Json& v, const std::string& where, SnapshotRoute& r) {
    if (v.type != Json::Type::Object) {
      return fail(where, "must be an object, not " + std::string(typeName(v.type)));
    }
    Fields f(v, where);
    std::string kind;
    if (!str(f, "kind", kind)) {
      return false;
    }
    if (kind == toString(RouteKind::Passthrough)) {
      r.kind = RouteKind::Passthrough;
    } else if (kind == toString(RouteKind::Site)) {
      r.kind = RouteKind::Site;
    } else if (kind == toString(RouteKind::Gateway)) {
      r.kind = RouteKind::Gateway;
    } else {
      return fail(f.at("kind"), quote(kind) + " is not passthrough, site or gateway");
    }
    if (!str(f, "name", r.name) || !checkText(f.at("name"), r.name, 256) ||
        !hostnames(f, r.hostnames) || !namespaceName(f, r)) {
      return false;
    }
    switch (r.kind) {
      case RouteKind::Passthrough:
        return passthroughRoute(f, r);
      case RouteKind::Site: {
        std::string cert;
        if (!backends(f, r.backends) || !hostSiteBackends(f, r) || !balance(f, r.balance) ||
            !str(f, "certificate", cert) || !checkText(f.at("certificate"), cert, 256) ||
            !boolean(f, "redirect_http", r.redirect_http) || !health(f, r)) {
          return false;
        }
        r.certificate = std::move(cert);
        return noUnknownKeys(f, "a site route");
      }
      case RouteKind::Gateway:
        return gatewayRoute(f, r);
    }
    return fail(where, "unknown kind");
  }

  // The members of a passthrough route after its kind, name, hostnames and namespace.
  bool passthroughRoute(Fields& f, SnapshotRoute& r) {
    if (!backends(f, r.backends) || !balance(f, r.balance)) {
      return false;
    }
    std::string pp;
    if (!str(f, "proxy_protocol", pp)) {
      return false;
    }
    if (pp == toString(ProxyProtocol::None)) {
      r.proxy_protocol = ProxyProtocol::None;
    } else if (pp == toString(ProxyProtocol::V1)) {
      r.proxy_protocol = ProxyProtocol::V1;
    } else if (pp == toString(ProxyProtocol::V2)) {
      r.proxy_protocol = ProxyProtocol::V2;
    } else {
      return fail(f.at("proxy_protocol"), quote(pp) + " is not none, v1 or v2");
    }
    return noUnknownKeys(f, "a passthrough route");
  }

  // The members of a gateway route after its kind, name, hostnames and namespace.
  bool gatewayRoute(Fields& f, SnapshotRoute& r) {
    std::string cert;
    if (!str(f, "certificate", cert) || !checkText(f.at("certificate"), cert, 256) ||
        !optStr(f, "rate_limit", r.rate_limit)) {
      return false;
    }
    r.certificate = std::move(cert);
    if (r.rate_limit && !RateLimit::parse(*r.rate_limit)) {
      return fail(f.at("rate_limit"), quote(*r.rate_limit) + " is not N/second|minute|hour");
    }
    const Json* eps = nullptr;
    if (!member(f, "endpoints", Json::Type::Array, eps)) {
      return false;
    }
    if (eps->array.empty()) {
      return fail(f.at("endpoints"), "must not be empty");
    }
    std::set<std::pair<std::string, std::string>> seen;
    for (size_t i = 0; i < eps->array.size(); ++i) {
      const std::string at = f.at("endpoints") + "[" + std::to_string(i) + "]";
      SnapshotEndpoint e;
      if (!endpoint(eps->array[i], at, e)) {
        return false;
      }
      if (!seen.emplace(e.method, e.path).second) {
        return fail(at, e.method + " " + quote(e.path) + " appears twice");
      }
      r.endpoints.push_back(std::move(e));
    }
    return noUnknownKeys(f, "a gateway route");
  }

  std::string error_;
  int64_t version_ = kSnapshotVersion;  // of the document being read
};

}  // namespace

Result<ProxySnapshot> snapshotFromJson(std::string_view json) {
  if (json.size() > kMaxSnapshotBytes) {
    return terminal("snapshot: " + std::to_string(json.size()) + " bytes is over the limit of " +
                    std::to_string(kMaxSnapshotBytes));
  }
  Json root;
  std::string error;
  if (!strict_json::parse(json, root, error)) {
    return terminal("snapshot " + error);
  }
  return Decoder().snapshot(root);
}

}  // namespace edgeplane
