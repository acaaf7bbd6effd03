// What follows loading the tables (table_loader.h): the chunks' elements appended in order,
// `subdomain`s expanded under [fleet]'s base_domain, the managed certificates added.
#include <algorithm>

#include "schema/encoding.h"
#include "schema/managed_certs.h"
#include "schema/table_loader.h"

namespace edgeplane {

namespace {

// `subdomain = "x"` becomes x.<base_domain>; needs every file read first.
void expandSubdomains(Desired& d, Diagnostics& diags) {
  const std::optional<std::string>& base =
      d.fleet ? d.fleet->base_domain : std::optional<std::string>{};
  // A base_domain that was given but rejected has been reported already.
  const bool baseRejected = d.fleet && d.fleet->origin.isRejected("base_domain");
  auto expand = [&](const std::optional<std::string>& sub, const Origin& origin,
                    std::string_view kind, const std::string& name) -> std::optional<std::string> {
    if (!sub) {
      return std::nullopt;
    }
    if (!base) {
      if (!baseRejected) {
        diags.error(origin.at("subdomain"),
                    std::string(kind) + " " + quote(name) +
                        " uses 'subdomain' but [fleet] sets no base_domain");
      }
      return std::nullopt;
    }
    std::string full = *sub + "." + *base;
    if (!isValidDnsName(full, false)) {
      diags.error(origin.at("subdomain"), "subdomain " + quote(*sub) + " with base_domain " +
                                              quote(*base) + " is not a valid hostname");
      return std::nullopt;
    }
    return full;
  };
  for (auto& s : d.sites) {
    if (auto h = expand(s.subdomain, s.origin, "site", s.name)) {
      s.hostnames = {*h};
    }
  }
  for (auto& p : d.passthroughs) {
    if (auto h = expand(p.subdomain, p.origin, "passthrough", p.name)) {
      p.hostnames = {*h};
    }
  }
  for (auto& g : d.gateways) {
    if (auto h = expand(g.subdomain, g.origin, "gateway", g.name)) {
      g.hostname = *h;
    }
  }
}

}  // namespace

namespace detail {

void appendElements(Desired& to, std::vector<Desired>&& from) {
  // Each member is reserved for the whole once: growing it part by part would copy the
  // elements already there at every step (10k forwards in about 60 parts).
  auto append = [&](auto member) {
    auto& into = to.*member;
    size_t total = into.size();
    for (const Desired& part : from) {
      total += (part.*member).size();
    }
    if (total > into.capacity()) {  // growing geometrically still: out gathers every file
      into.reserve(std::max(total, 2 * into.capacity()));
    }
    for (Desired& part : from) {
      auto& more = part.*member;
      into.insert(into.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
    }
  };
  append(&Desired::hosts);
  append(&Desired::namespaces);
  append(&Desired::forwards);
  append(&Desired::certificates);
  append(&Desired::sites);
  append(&Desired::passthroughs);
  append(&Desired::gateways);
  append(&Desired::api_keys);
}

void finishLoading(Desired& d, Diagnostics& diags) {
  expandSubdomains(d, diags);
  addManagedCertificates(d);
}

}  // namespace detail

}  // namespace edgeplane
