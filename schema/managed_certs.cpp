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

// The managed certificate for `hostnames`, its name now the route's `certificate`.
void manage(Desired& d, std::string_view kind, const std::string& route,
            const std::vector<std::string>& hostnames, const Origin& origin,
            std::string& certificate) {
  if (!certificate.empty() || route.empty() || hostnames.empty() ||
      origin.fields.count("certificate") != 0) {
    return;
  }
  Certificate c;
  c.name = managedCertName(kind, route);
  c.domains = hostnames;
  c.issuer = Issuer::Acme;
  c.managed_for = std::string(kind) + " " + route;
  c.origin.table = origin.table;
  certificate = c.name;
  d.certificates.push_back(std::move(c));
}

}  // namespace

void addManagedCertificates(Desired& d) {
  for (auto& s : d.sites) {
    manage(d, "site", s.name, s.hostnames, s.origin, s.certificate);
  }
  for (auto& g : d.gateways) {
    if (!g.hostname.empty()) {
      manage(d, "gateway", g.name, {g.hostname}, g.origin, g.certificate);
    }
  }
}

}  // namespace edgeplane
