// The proxy routing snapshot: built from the desired state (see snapshot.h); the JSON codec is
// snapshot_encode.cpp and snapshot_decode.cpp (with snapshot_decode_routes.cpp).
#include "schema/snapshot.h"
#include "schema/encoding.h"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <utility>

namespace edgeplane {

std::string_view toString(RouteKind k) {
  switch (k) {
    case RouteKind::Passthrough:
      return "passthrough";
    case RouteKind::Site:
      return "site";
    case RouteKind::Gateway:
      return "gateway";
  }
  return "?";
}

std::string SnapshotRoute::key() const {
  return std::string(toString(kind)) + " " + name;
}

// ---- building ----

namespace {

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::vector<std::string> lowerAll(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  out.reserve(names.size());
  for (const auto& n : names) {
    out.push_back(lowerAscii(n));
  }
  return out;
}

// The namespace a route hangs off, if it is on this host and serving; nullptr otherwise.
const Namespace* servingNamespace(const Desired& d, const std::string& name) {
  const Namespace* ns = d.findNamespace(name);
  return ns != nullptr && !ns->suspended ? ns : nullptr;
}

// `ns` empty (a site of the host itself): no namespace, and upstream sockets are the proxy's own.
SnapshotRoute baseRoute(RouteKind kind, const std::string& name, const std::string& ns) {
  SnapshotRoute r;
  r.kind = kind;
  r.name = name;
  r.namespace_name = ns;
  r.netns = ns.empty() ? std::string() : netnsName(ns);
  return r;
}

// The health_* fields of a site route or a gateway endpoint (the same names in both).
template <typename T>
void setHealth(T& out, const std::optional<HealthCheck>& check) {
  if (check) {
    out.health_interval = check->interval;
    out.health_timeout = check->timeout;
    out.health_path = check->path;
    out.health_healthy_threshold = check->healthy_threshold;
    out.health_unhealthy_threshold = check->unhealthy_threshold;
    out.health_expect_status = check->expect_status;
  }
}

}  // namespace

ProxySnapshot buildSnapshot(const Desired& resolved, const std::string& host,
                            std::optional<std::string> commit) {
  ProxySnapshot s;
  s.host = host;
  s.commit = std::move(commit);
  for (const Passthrough& p : resolved.passthroughs) {
    if (servingNamespace(resolved, p.namespace_name) == nullptr) {
      continue;
    }
    SnapshotRoute r = baseRoute(RouteKind::Passthrough, p.name, p.namespace_name);
    r.hostnames = lowerAll(p.hostnames);
    r.backends = p.backends;
    r.balance = p.balance;
    r.proxy_protocol = p.proxy_protocol;
    s.routes.push_back(std::move(r));
  }
  for (const Site& site : resolved.sites) {
    if (!site.namespace_name.empty() &&
        servingNamespace(resolved, site.namespace_name) == nullptr) {
      continue;
    }
    SnapshotRoute r = baseRoute(RouteKind::Site, site.name, site.namespace_name);
    r.hostnames = lowerAll(site.hostnames);
    r.backends = site.backends;
    r.balance = site.balance;
    r.certificate = site.certificate;
    r.redirect_http = site.redirect_http;
    setHealth(r, site.health_check);
    s.routes.push_back(std::move(r));
  }
  for (const Gateway& g : resolved.gateways) {
    if (servingNamespace(resolved, g.namespace_name) == nullptr) {
      continue;
    }
    SnapshotRoute r = baseRoute(RouteKind::Gateway, g.name, g.namespace_name);
    r.hostnames = {lowerAscii(g.hostname)};
    r.certificate = g.certificate;
    if (g.rate_limit) {
      r.rate_limit = g.rate_limit->str();
    }
    for (const GatewayEndpoint& e : g.endpoints) {
      SnapshotEndpoint ep{e.path, e.method, e.backends, e.balance};
      setHealth(ep, e.health_check);
      r.endpoints.push_back(std::move(ep));
    }
    s.routes.push_back(std::move(r));
  }
  std::sort(s.routes.begin(), s.routes.end(), [](const SnapshotRoute& a, const SnapshotRoute& b) {
    return std::tie(a.kind, a.name) < std::tie(b.kind, b.name);
  });
  std::set<std::string, std::less<>> served;
  for (const SnapshotRoute& r : s.routes) {
    if (r.kind == RouteKind::Gateway) {
      served.insert(r.name);
    }
  }
  for (const ApiKey& k : resolved.api_keys) {
    SnapshotApiKey key{k.id,   k.name,   toHex(k.sha256.data(), k.sha256.size()), {}, k.endpoints,
                       k.role, k.enabled};
    for (const std::string& g : k.gateways) {
      if (served.contains(g)) {
        key.gateways.push_back(g);
      }
    }
    if ((key.gateways.empty() && !k.gateways.empty()) || served.empty()) {
      continue;  // none of its gateways is served here
    }
    s.api_keys.push_back(std::move(key));
  }
  std::sort(s.api_keys.begin(), s.api_keys.end(),
            [](const SnapshotApiKey& a, const SnapshotApiKey& b) { return a.id < b.id; });
  return s;
}

}  // namespace edgeplane
