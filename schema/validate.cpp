// Semantic checks across the whole desired state; every problem reported with its location:
// names, references, routes, certificates and API keys (validator.h). Addresses, placement on
// hosts and ports are in validate_network.cpp.
#include "schema/validate.h"

#include <algorithm>
#include <regex>

#include "schema/managed_certs.h"
#include "schema/validator.h"

namespace edgeplane {
namespace detail {

void Validator::run() {
  auto byName = [](const auto& x) -> const std::string& { return x.name; };
  checkUnique(d_.hosts, "host", "name", byName, diags_);
  checkUnique(d_.namespaces, "namespace", "name", byName, diags_);
  checkUnique(d_.forwards, "forward", "name", byName, diags_);
  checkUnique(d_.certificates, "certificate", "name", byName, diags_);
  checkUnique(d_.sites, "site", "name", byName, diags_);
  checkUnique(d_.passthroughs, "passthrough", "name", byName, diags_);
  checkUnique(d_.gateways, "gateway", "name", byName, diags_);
  checkUnique(d_.api_keys, "api_key", "name", byName, diags_);
  checkUnique(
      d_.api_keys, "api_key", "id", [](const ApiKey& k) -> const std::string& { return k.id; },
      diags_);

  for (const auto& ns : d_.namespaces) {
    checkNamespace(ns);
  }
  checkListenPorts();
  checkUplinkPool();
  checkUplinkOverlap();
  for (const auto& f : d_.forwards) {
    const Namespace* ns = namespaceRef(f.namespace_name, f.origin);
    if (ns != nullptr && loaded(f.origin, "target")) {
      checkReachable(*ns, f.target, f.origin.at("target"), "target");
    }
  }
  checkForwardPorts();
  checkReservedPorts();
  for (const auto& c : d_.certificates) {
    checkCertificate(c);
  }
  for (const auto& s : d_.sites) {
    checkSite(s);
  }
  for (const auto& p : d_.passthroughs) {
    checkBackends(namespaceRef(p.namespace_name, p.origin), p.backends, p.origin);
  }
  for (const auto& g : d_.gateways) {
    const Namespace* ns = namespaceRef(g.namespace_name, g.origin);
    if (!g.hostname.empty()) {
      checkCovered(g.certificate, {g.hostname}, g.origin);
    }
    std::map<std::pair<std::string, std::string>, const GatewayEndpoint*> endpoints;
    for (const auto& e : g.endpoints) {
      checkBackends(ns, e.backends, e.origin);
      auto [it, inserted] = endpoints.emplace(std::make_pair(e.method, e.path), &e);
      if (!inserted && !e.path.empty()) {
        diags_.error(e.origin.at("path"), "duplicate endpoint " + e.method + " " + e.path +
                                              " in gateway " + quote(g.name) +
                                              " (first defined at " +
                                              where(it->second->origin.at("path")) + ")");
      }
    }
  }
  checkHostnames();
  for (const auto& g : d_.gateways) {
    auto& paths = pathsOfGateway_[g.name];  // also a gateway without endpoints
    for (const auto& ep : g.endpoints) {
      paths.insert(ep.path);
      anyGatewayPaths_.insert(ep.path);
    }
  }
  for (const auto& k : d_.api_keys) {
    checkApiKey(k);
  }
}

const Namespace* Validator::namespaceRef(const std::string& name, const Origin& origin) {
  if (name.empty()) {
    return nullptr;
  }
  const Namespace* ns = d_.findNamespace(name);
  if (ns == nullptr) {
    diags_.error(origin.at("namespace"), "namespace " + quote(name) + " is not defined");
  }
  return ns;
}

// Its gateways exist; each scoped endpoint is a path of one of them (of any gateway for an
// admin key without `gateways`), looked up in the paths run() gathered once for all keys:
// there may be tens of thousands of keys.
void Validator::checkApiKey(const ApiKey& k) {
  for (size_t i = 0; i < k.gateways.size(); ++i) {
    if (pathsOfGateway_.count(k.gateways[i]) == 0) {
      diags_.error(k.origin.at("gateways", i),
                   "gateway " + quote(k.gateways[i]) + " is not defined");
    }
  }
  for (size_t i = 0; i < k.endpoints.size(); ++i) {
    const std::string& path = k.endpoints[i];
    const bool found =
        k.gateways.empty()
            ? anyGatewayPaths_.count(path) != 0
            : std::any_of(k.gateways.begin(), k.gateways.end(), [&](const std::string& g) {
                auto it = pathsOfGateway_.find(g);
                return it != pathsOfGateway_.end() && it->second.count(path) != 0;
              });
    if (!found) {
      diags_.error(k.origin.at("endpoints", i),
                   "endpoint " + quote(path) + " is not a path of " +
                       (k.gateways.empty() ? std::string("any gateway")
                                           : std::string("the key's gateways")));
    }
  }
}

// Each of `hosts` is a [[host]].
void Validator::checkHostRefs(const std::optional<std::vector<std::string>>& hosts,
                              const Origin& origin) {
  if (!hosts) {
    return;
  }
  for (size_t i = 0; i < hosts->size(); ++i) {
    const std::string& h = (*hosts)[i];
    bool known =
        std::any_of(d_.hosts.begin(), d_.hosts.end(), [&](const Host& x) { return x.name == h; });
    if (!known) {
      diags_.error(origin.at("hosts", i), "host " + quote(h) + " is not defined");
    }
  }
}

// A site without namespace fronts services of the host itself: its backends are loopback
// addresses of the host's own network namespace, never an address of a tenant's range.
// (`namespace` given but refused by the loader is a namespace site that failed: no more
// errors for it here.)
void Validator::checkSite(const Site& s) {
  const bool ofTheHost = s.origin.fields.count("namespace") == 0;
  if (ofTheHost) {
    checkHostRefs(s.hosts, s.origin);
    checkHostSiteBackends(s);
  } else {
    checkBackends(namespaceRef(s.namespace_name, s.origin), s.backends, s.origin);
    if (s.hosts) {
      diags_.error(s.origin.at("hosts"), "site " + quote(s.name) + " is served where namespace " +
                                             quote(s.namespace_name) +
                                             " is: 'hosts' is only for a site without namespace");
    }
  }
  checkCovered(s.certificate, s.hostnames, s.origin);
}

// Loopback only; and not a TCP forward's public port on a host both are on: the host's
// nftables output chain sends local connections to that port into the forward (IPv4 only).
void Validator::checkHostSiteBackends(const Site& s) {
  const auto siteHosts = hostsOfSite(s);
  for (size_t i = 0; i < s.backends.size(); ++i) {
    const Endpoint& b = s.backends[i];
    if (!b.address.isLoopback()) {
      diags_.error(s.origin.at("backends", i),
                   "backend " + b.str() + " of site " + quote(s.name) +
                       " is not a loopback address: a site without namespace reaches only "
                       "this host's own services (127.0.0.0/8, ::1)");
      continue;
    }
    if (b.address.family != IpAddress::Family::V4) {
      continue;
    }
    for (const Forward& f : d_.forwards) {
      if (f.protocol != Protocol::Tcp || !f.public_port.overlaps(PortRange{b.port, b.port})) {
        continue;
      }
      if (auto host = sharedHost(hostsOfNamespaceName(f.namespace_name), siteHosts)) {
        diags_.error(s.origin.at("backends", i),
                     "backend " + b.str() + " of site " + quote(s.name) +
                         " is on the public port of forward " + quote(f.name) + " on host " +
                         quote(*host) +
                         ": the host sends local connections to that port into the forward");
        break;
      }
    }
  }
}

// (That issuer "files" needs cert_file and key_file is checked by the loader, which can tell
// a missing key from a misspelt one.)
void Validator::checkCertificate(const Certificate& c) {
  if (c.managed_for.empty() && !c.name.empty()) {
    checkCertificateName(c);
  } else if (!c.managed_for.empty() && !validCertificateName(c.name)) {
    checkManagedName(c);
  }
  if (c.domains.empty() && loaded(c.origin, "domains")) {
    diags_.error(c.origin.at("domains"), "'domains' must list at least one domain");
  }
  if (rejected(c.origin, "issuer")) {
    return;  // whatever was meant, the rules of some other issuer would only add noise
  }
  const bool files = c.issuer == Issuer::Files;
  for (const char* key : {"cert_file", "key_file"}) {
    if (!files && c.origin.fields.count(key) != 0) {
      diags_.error(c.origin.at(key), "'" + std::string(key) + "' is only for issuer \"files\"");
    }
  }
  // RFC 8555 section 7.1.3: a CA validates a wildcard's base domain by DNS-01 only.
  if (c.issuer == Issuer::Acme && !rejected(c.origin, "challenge") &&
      c.challenge != AcmeChallengeType::Dns01) {
    const std::string challenge(toString(c.challenge.value_or(AcmeChallengeType::Http01)));
    for (size_t i = 0; i < c.domains.size(); ++i) {
      if (c.domains[i].rfind("*.", 0) == 0) {
        diags_.error(c.origin.at("domains", i), "wildcard domain " + quote(c.domains[i]) +
                                                    " needs challenge = \"dns-01\" (" + challenge +
                                                    " cannot validate a wildcard)");
      }
    }
  }
}

bool Validator::validCertificateName(const std::string& name) {
  static const std::regex re("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  return name.size() <= 128 && std::regex_match(name, re);
}

// A route without 'certificate' gets one named after it (auto.site.<name>), a directory under
// <state-dir>/certs/: a route name that cannot make one is an error at the route, not a
// refusal at apply after a real ACME order on every retry.
void Validator::checkManagedName(const Certificate& c) {
  const size_t space = c.managed_for.find(' ');
  const std::string kind = c.managed_for.substr(0, space);
  const std::string route = c.managed_for.substr(space + 1);
  auto nameOf = [&](const auto& routes) -> std::optional<SourceLoc> {
    auto it =
        std::find_if(routes.begin(), routes.end(), [&](const auto& r) { return r.name == route; });
    return it != routes.end() ? std::optional(it->origin.at("name")) : std::nullopt;
  };
  const std::optional<SourceLoc> at = kind == "site" ? nameOf(d_.sites) : nameOf(d_.gateways);
  diags_.error(at.value_or(c.origin.table),
               kind + " name " + quote(route) + " cannot name its certificate " + quote(c.name) +
                   ", which must match [A-Za-z0-9][A-Za-z0-9._-]{0,127} (a directory): "
                   "rename it, or give it a 'certificate'");
}

// The name is a directory under <state-dir>/certs/ and must not take a managed one's.
void Validator::checkCertificateName(const Certificate& c) {
  if (!validCertificateName(c.name)) {
    diags_.error(c.origin.at("name"), "certificate name " + quote(c.name) +
                                          " must match [A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  } else if (c.name.rfind(kManagedCertPrefix, 0) == 0) {
    diags_.error(c.origin.at("name"),
                 "certificate name " + quote(c.name) + " is reserved: names starting with " +
                     quote(std::string(kManagedCertPrefix)) +
                     " are edgeplane's managed certificates of routes without 'certificate'");
  }
}

bool Validator::domainCovers(std::string_view domain, std::string_view host) {
  if (domain == host) {
    return true;
  }
  if (domain.rfind("*.", 0) == 0 && host.rfind("*.", 0) != 0) {
    auto dot = host.find('.');
    return dot != std::string_view::npos && host.substr(dot) == domain.substr(1);
  }
  return false;
}

void Validator::checkCovered(const std::string& certName, const std::vector<std::string>& hostnames,
                             const Origin& origin) {
  if (certName.empty()) {
    return;
  }
  const Certificate* cert = d_.findCertificate(certName);
  if (cert == nullptr) {
    diags_.error(origin.at("certificate"), "certificate " + quote(certName) + " is not defined");
    return;
  }
  for (const auto& h : hostnames) {
    bool covered = std::any_of(cert->domains.begin(), cert->domains.end(),
                               [&](const std::string& dom) { return domainCovers(dom, h); });
    if (!covered) {
      diags_.error(origin.at("certificate"),
                   "hostname " + quote(h) + " is not covered by certificate " + quote(certName));
    }
  }
}

// One hostname may be claimed by one route (site, passthrough or gateway) per host.
void Validator::checkHostnames() {
  struct Claim {
    std::string route;  // `site "x"`
    std::vector<std::string> hosts;
  };
  std::map<std::string, std::vector<Claim>> claims;
  auto claim = [&](const std::string& hostname, const SourceLoc& loc, std::string route,
                   std::vector<std::string> hosts) {
    auto& list = claims[hostname];
    for (const Claim& c : list) {
      if (c.route == route) {
        diags_.error(loc, "hostname " + quote(hostname) + " is listed twice in " + route);
        return;
      }
      if (sharedHost(c.hosts, hosts)) {
        diags_.error(loc, "hostname " + quote(hostname) + " of " + route +
                              " is already claimed by " + c.route);
        return;
      }
    }
    list.push_back(Claim{std::move(route), std::move(hosts)});
  };
  for (const auto& s : d_.sites) {
    for (size_t i = 0; i < s.hostnames.size(); ++i) {
      claim(s.hostnames[i], s.subdomain ? s.origin.at("subdomain") : s.origin.at("hostnames", i),
            "site " + quote(s.name), hostsOfSite(s));
    }
  }
  for (const auto& p : d_.passthroughs) {
    for (size_t i = 0; i < p.hostnames.size(); ++i) {
      claim(p.hostnames[i], p.subdomain ? p.origin.at("subdomain") : p.origin.at("hostnames", i),
            "passthrough " + quote(p.name), hostsOfNamespaceName(p.namespace_name));
    }
  }
  for (const auto& g : d_.gateways) {
    if (!g.hostname.empty()) {
      claim(g.hostname, g.subdomain ? g.origin.at("subdomain") : g.origin.at("hostname"),
            "gateway " + quote(g.name), hostsOfNamespaceName(g.namespace_name));
    }
  }
}

}  // namespace detail

std::vector<std::string> targetHosts(const Desired& d) {
  if (d.hosts.empty()) {
    return {"default"};
  }
  std::vector<std::string> out;
  for (const auto& h : d.hosts) {
    out.push_back(h.name);
  }
  return out;
}

void validate(const Desired& d, Diagnostics& diags) {
  detail::Validator(d, diags).run();
}

}  // namespace edgeplane
