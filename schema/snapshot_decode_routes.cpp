// The proxy snapshot's routes read back (snapshot_decoder.h): sites, passthroughs and gateways,
// their hostnames, namespace, backends, balancing and health checks, and gateway endpoints.
#include <algorithm>
#include <set>
#include <string>
#include <utility>

#include "schema/snapshot_decoder.h"

namespace edgeplane::snapshot_detail {

bool Decoder::backends(Fields& f, std::vector<Endpoint>& out) {
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
bool Decoder::hostSiteBackends(Fields& f, const SnapshotRoute& r) {
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

bool Decoder::hostnames(Fields& f, std::vector<std::string>& out) {
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

bool Decoder::balance(Fields& f, Balance& out) {
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

bool Decoder::durationMs(Fields& f, std::string_view key, std::optional<Duration>& out) {
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
    return fail(f.at(key), std::to_string(ms) + " is not between 1 and " + std::to_string(kMaxMs) +
                               " milliseconds");
  }
  out = Duration{ms};
  return true;
}

bool Decoder::namespaceName(Fields& f, SnapshotRoute& r) {
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

bool Decoder::endpoint(const Json& v, const std::string& where, SnapshotEndpoint& e) {
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

bool Decoder::threshold(Fields& f, std::string_view key, std::optional<uint32_t>& out) {
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
bool Decoder::health(Fields& f, T& r) {
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

bool Decoder::route(const Json& v, const std::string& where, SnapshotRoute& r) {
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
bool Decoder::passthroughRoute(Fields& f, SnapshotRoute& r) {
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
bool Decoder::gatewayRoute(Fields& f, SnapshotRoute& r) {
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

}  // namespace edgeplane::snapshot_detail
