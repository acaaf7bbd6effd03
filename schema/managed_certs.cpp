// Automatic HTTPS (see managed_certs.h).
#include "schema/managed_certs.h"

#include <algorithm>

namespace edgeplane {

std::string managedCertName(std::string_view kind, std::string_view route) {
  std::string out(kManagedCertPrefix);
  out += kind;
  out += '.';
  out += route;
  return out;
}

namespace {

bool isWildcard(const std::string& name) {
  return name.rfind("*.", 0) == 0;
}

class Manager {
 public:
  explicit Manager(Desired& d) : d_(d) {
    if (d.fleet && d.fleet->wildcard && d.fleet->base_domain) {
      base_ = *d.fleet->base_domain;
    }
  }

  // The route's managed certificate, its name now the route's `certificate`.
  void manage(std::string_view kind, const std::string& route, bool subdomain,
              const std::vector<std::string>& hostnames, const Origin& origin,
              std::string& certificate) {
    if (!certificate.empty() || route.empty() || hostnames.empty() ||
        origin.fields.count("certificate") != 0) {
      return;
    }
    if (subdomain && !base_.empty()) {
      certificate = sharedWildcard();
      return;
    }
    Certificate c;
    c.name = managedCertName(kind, route);
    c.domains = hostnames;
    c.issuer = Issuer::Acme;
    // RFC 8555 section 7.1.3: only DNS-01 validates a wildcard; otherwise chosen when ordering.
    if (std::any_of(hostnames.begin(), hostnames.end(), isWildcard)) {
      c.challenge = AcmeChallengeType::Dns01;
    }
    c.managed_for = std::string(kind) + " " + route;
    c.origin.table = origin.table;
    certificate = c.name;
    d_.certificates.push_back(std::move(c));
  }

 private:
  // [fleet].wildcard: one *.<base_domain> certificate for every subdomain route.
  std::string sharedWildcard() {
    const std::string name = std::string(kManagedCertPrefix) + "wildcard";
    if (!wildcardAdded_) {
      Certificate c;
      c.name = name;
      c.domains = {"*." + base_};
      c.issuer = Issuer::Acme;
      c.challenge = AcmeChallengeType::Dns01;
      c.managed_for = "[fleet] wildcard";
      if (d_.fleet) {
        c.origin.table = d_.fleet->origin.at("wildcard");
      }
      d_.certificates.push_back(std::move(c));
      wildcardAdded_ = true;
    }
    return name;
  }

  Desired& d_;
  std::string base_;  // set when [fleet].wildcard applies
  bool wildcardAdded_ = false;
};

}  // namespace

void addManagedCertificates(Desired& d) {
  Manager m(d);
  for (auto& s : d.sites) {
    m.manage("site", s.name, s.subdomain.has_value(), s.hostnames, s.origin, s.certificate);
  }
  for (auto& g : d.gateways) {
    if (!g.hostname.empty()) {
      m.manage("gateway", g.name, g.subdomain.has_value(), {g.hostname}, g.origin, g.certificate);
    }
  }
}

}  // namespace edgeplane
