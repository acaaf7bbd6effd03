// Desired state -> concrete target: names, /31 allocations, routes, nftables contents.
#include "reconciler/core/target.h"

#include <algorithm>
#include <set>

#include "reconciler/core/acme_lifecycle.h"

namespace edgeplane::core {

std::string hostLinkName(std::string_view ns) {
  return std::string(kHostLinkPrefix) + std::string(ns);
}
std::string nsLinkName(std::string_view ns) {
  return std::string(kNsLinkPrefix) + std::string(ns);
}
std::string wgLinkName(std::string_view ns) {
  return std::string(kWgLinkPrefix) + std::string(ns);
}

const LinkView* NetnsView::link(std::string_view name) const {
  auto it =
      std::find_if(links.begin(), links.end(), [&](const LinkView& l) { return l.name == name; });
  return it != links.end() ? &*it : nullptr;
}

std::string ForwardTarget::key() const {
  return std::string(toString(protocol)) + "/" + publicPort.str();
}

std::string ForwardTarget::describe() const {
  return key() + " -> " + target.str() + " in " + ns;
}

NftTableView Target::hostTable() const {
  NftTableView t;
  for (const auto& f : forwards) {
    auto up = uplinks.find(f.ns);
    if (up == uplinks.end()) {
      continue;
    }
    t.mappings.push_back(PortMapping{f.protocol, f.publicPort, up->second.nsAddress.address, {}});
  }
  std::sort(t.mappings.begin(), t.mappings.end());
  return t;
}

NftTableView Target::namespaceTable(std::string_view ns) const {
  NftTableView t;
  for (const auto& f : forwards) {
    if (f.ns != ns) {
      continue;
    }
    for (uint32_t p = f.publicPort.first; p <= f.publicPort.last; ++p) {
      auto port = static_cast<uint16_t>(p);
      auto targetPort = static_cast<uint16_t>(f.target.port + (p - f.publicPort.first));
      t.mappings.push_back(
          PortMapping{f.protocol, PortRange{port, port}, f.target.address, targetPort});
    }
  }
  std::sort(t.mappings.begin(), t.mappings.end());
  return t;
}

Result<std::map<std::string, uint32_t, std::less<>>> allocateUplinks(
    const std::vector<std::string>& namespaces,
    const std::map<std::string, uint32_t, std::less<>>& existing, const IpPrefix& pool) {
  const uint64_t capacity = (uint64_t{1} << (32 - pool.length)) / 2;
  std::map<std::string, uint32_t, std::less<>> out;
  std::set<uint32_t> used;
  for (const auto& ns : namespaces) {
    auto it = existing.find(ns);
    if (it != existing.end() && it->second < capacity && used.count(it->second) == 0) {
      out[ns] = it->second;
      used.insert(it->second);
    }
  }
  // Indices of namespaces still being pruned stay reserved until the store forgets them.
  for (const auto& [ns, index] : existing) {
    used.insert(index);
  }
  uint32_t next = 0;
  for (const auto& ns : namespaces) {
    if (out.count(ns) != 0) {
      continue;
    }
    while (used.count(next) != 0) {
      ++next;
    }
    if (next >= capacity) {
      return terminal("uplink pool " + pool.str() + " is exhausted (" + std::to_string(capacity) +
                      " /31 links)");
    }
    out[ns] = next;
    used.insert(next);
  }
  return out;
}

std::string PeerTarget::describe() const {
  std::string out = publicKey.base64() + " allowed_ips=";
  for (size_t i = 0; i < allowedIps.size(); ++i) {
    out += (i == 0 ? "" : ",") + allowedIps[i].str();
  }
  if (endpoint) {
    out += " endpoint=" + endpoint->str();
  }
  if (keepalive) {
    out += " keepalive=" + std::to_string(*keepalive);
  }
  if (pskFile) {
    out += " psk_file=" + *pskFile;
  }
  return out;
}

std::string WireGuardTarget::describe() const {
  std::string out = ifname + " port=" + std::to_string(listenPort) + " address=";
  for (size_t i = 0; i < addresses.size(); ++i) {
    out += (i == 0 ? "" : ",") + addresses[i].str();
  }
  if (mtu) {
    out += " mtu=" + std::to_string(*mtu);
  }
  return out;
}

std::string_view toString(CertSource s) {
  switch (s) {
    case CertSource::SelfSigned:
      return "self-signed";
    case CertSource::Files:
      return "files";
    case CertSource::Acme:
      return "acme";
  }
  return "?";
}

std::string CertTarget::describe() const {
  std::string out(toString(source));
  out += " ";
  for (size_t i = 0; i < domains.size(); ++i) {
    out += (i == 0 ? "" : ",") + domains[i];
  }
  if (source == CertSource::Files) {
    out += " cert=" + certFile + " key=" + keyFile;
  }
  return out;
}

AcmeChallengeType acmeDefaultChallenge(bool proxyHttpOff) {
  return proxyHttpOff ? AcmeChallengeType::TlsAlpn01 : AcmeChallengeType::Http01;
}

int64_t ariLatest(const CertView& v) {
  const int64_t lead = std::min<int64_t>(86400, (v.notAfter - v.notBefore) / 10);
  return v.notAfter - std::max<int64_t>(lead, 0);
}

std::optional<std::string> acmeOrderDue(const CertTarget& c, const CertView* v, int64_t now,
                                        std::optional<int64_t> ariRenewAt) {
  if (v == nullptr) {
    return "no certificate yet";
  }
  if (!v->error.empty()) {
    return "the certificate on disk cannot be used: " + v->error;
  }
  if (v->selfIssued) {
    return "the placeholder is served until the first certificate";
  }
  if (v->domains != c.domains) {
    return "its domains changed";
  }
  const int64_t left = v->notAfter - now;
  const bool ari = ariRenewAt && !c.renewBefore && *ariRenewAt < ariLatest(*v);
  if (now >= (ari ? *ariRenewAt : acmeRenewAt(c, *v))) {
    return left <= 0 ? std::string("renew: expired")
                     : "renew: " + std::to_string(left / 3600) + "h left" +
                           (ari             ? " (the CA's renewal window, RFC 9773)"
                            : c.renewBefore ? " (renew_before)"
                                            : " (a third of its lifetime)");
  }
  return std::nullopt;
}

bool certCovers(const std::vector<std::string>& sans, std::string_view domain) {
  for (const auto& san : sans) {
    if (san == domain) {
      return true;
    }
    // "*.example.com" covers "a.example.com", not "example.com" nor "a.b.example.com".
    if (san.rfind("*.", 0) == 0) {
      const size_t dot = domain.find('.');
      if (dot != std::string_view::npos && dot != 0 && domain.substr(dot) == san.substr(1)) {
        return true;
      }
    }
  }
  return false;
}

const CertTarget* Target::certificate(std::string_view name) const {
  for (const auto& c : certificates) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

namespace {

// How a certificate is materialised on this host.
CertSource certSourceOf(const Certificate& c) {
  switch (c.issuer) {
    case Issuer::SelfSigned:
      return CertSource::SelfSigned;
    case Issuer::Files:
      return CertSource::Files;
    case Issuer::Acme:
      return CertSource::Acme;
  }
  return CertSource::Acme;
}

std::string lowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return s;
}

// The certificates the served routes name, as targets.
std::vector<CertTarget> certTargets(const Desired& d, const ProxySnapshot& proxy) {
  std::set<std::string, std::less<>> used;
  for (const auto& r : proxy.routes) {
    if (r.certificate) {
      used.insert(*r.certificate);
    }
  }
  std::vector<CertTarget> out;
  for (const auto& name : used) {
    const Certificate* c = d.findCertificate(name);
    if (c == nullptr) {
      continue;  // the validator refuses a dangling name; nothing to materialise
    }
    CertTarget ct;
    ct.name = c->name;
    ct.source = certSourceOf(*c);
    for (const auto& dom : c->domains) {
      ct.domains.push_back(lowerAscii(dom));
    }
    std::sort(ct.domains.begin(), ct.domains.end());
    ct.domains.erase(std::unique(ct.domains.begin(), ct.domains.end()), ct.domains.end());
    if (c->renew_before) {
      ct.renewBefore = c->renew_before->count() / 1000;
    }
    ct.challenge = c->challenge;
    if (ct.source == CertSource::Files) {
      ct.certFile = c->cert_file.value_or("");
      ct.keyFile = c->key_file.value_or("");
    }
    out.push_back(std::move(ct));
  }
  return out;
}

}  // namespace

Result<Target> buildTarget(const Desired& d, std::string_view host, const StoreView& store,
                           const std::set<std::string>& rotateKeys,
                           const std::vector<Forward>* forwards) {
  Target t;
  t.host = std::string(host);
  IpPrefix pool = *IpPrefix::parse(kDefaultUplinkPool);
  if (d.fleet && d.fleet->uplink_pool) {
    pool = d.fleet->uplink_pool->network();
  }
  for (const auto& ns : d.namespaces) {
    t.namespaces.push_back(ns.name);
  }
  std::sort(t.namespaces.begin(), t.namespaces.end());
  auto alloc = allocateUplinks(t.namespaces, store.uplinkIndex, pool);
  if (!alloc) {
    return alloc.error();
  }
  for (const auto& [ns, index] : *alloc) {
    uint32_t base = pool.address.v4HostOrder() + index * 2;
    t.uplinks[ns] = UplinkTarget{ns, index, IpPrefix{IpAddress::v4(base), 31},
                                 IpPrefix{IpAddress::v4(base + 1), 31}};
  }
  std::set<std::string, std::less<>> suspended;
  for (const auto& ns : d.namespaces) {
    if (ns.suspended) {
      suspended.insert(ns.name);
    }
    if (ns.wireguard) {
      WireGuardTarget wg;
      wg.ns = ns.name;
      wg.ifname = wgLinkName(ns.name);
      wg.listenPort = ns.wireguard->listen_port;
      wg.addresses = ns.wireguard->address;
      std::sort(wg.addresses.begin(), wg.addresses.end());
      wg.mtu = ns.wireguard->mtu;
      for (const auto& p : ns.peers) {
        PeerTarget pt{p.name,      p.public_key,           {},
                      p.endpoint,  p.persistent_keepalive, p.preshared_key_file,
                      std::nullopt};
        for (const auto& a : p.allowed_ips) {
          pt.allowedIps.push_back(a.network());
        }
        std::sort(pt.allowedIps.begin(), pt.allowedIps.end());
        wg.peers.push_back(std::move(pt));
      }
      wg.rotateKey = rotateKeys.count(ns.name) != 0;
      wg.allowNewKey = wg.rotateKey || !store.owns("wireguard", ns.name);
      t.wireguard[ns.name] = std::move(wg);
    }
    for (const auto& r : ns.routes) {
      t.routes.push_back(RouteTarget{ns.name, r.destination.network(), r.via});
    }
  }
  for (const auto& f : forwards != nullptr ? *forwards : d.forwards) {
    if (suspended.count(f.namespace_name) != 0 ||
        !std::binary_search(t.namespaces.begin(), t.namespaces.end(), f.namespace_name)) {
      continue;
    }
    t.forwards.push_back(
        ForwardTarget{f.name, f.namespace_name, f.protocol, f.public_port, f.target});
  }
  std::sort(t.forwards.begin(), t.forwards.end(),
            [](const ForwardTarget& a, const ForwardTarget& b) { return a.name < b.name; });
  t.proxy = buildSnapshot(d, t.host, std::nullopt);
  t.certificates = certTargets(d, t.proxy);
  return t;
}

}  // namespace edgeplane::core
