// Desired-state model helpers: lookups, enum names, host targeting.
#include "schema/model.h"

#include <algorithm>
#include <ostream>
#include <set>

namespace edgeplane {

SourceFile::SourceFile(std::string name)
    : name_(name.empty() ? nullptr : std::make_shared<const std::string>(std::move(name))) {}

const std::string& SourceFile::str() const {
  static const std::string kNone;
  return name_ ? *name_ : kNone;
}

std::ostream& operator<<(std::ostream& os, const SourceFile& file) {
  return os << file.str();
}

namespace {
// The first item of [begin, end) whose key is not less than `key`.
template <typename It>
It lowerBoundOf(It begin, It end, std::string_view key) {
  return std::lower_bound(begin, end, key,
                          [](const LocationMap::value_type& item, std::string_view k) {
                            return std::string_view(item.first) < k;
                          });
}
}  // namespace

SourceLoc& LocationMap::operator[](std::string_view key) {
  auto it = lowerBoundOf(items_.begin(), items_.end(), key);
  if (it == items_.end() || it->first != key) {
    it = items_.emplace(it, std::string(key), SourceLoc{});
  }
  return it->second;
}

LocationMap::const_iterator LocationMap::find(std::string_view key) const {
  auto it = lowerBoundOf(items_.begin(), items_.end(), key);
  return it != items_.end() && it->first == key ? it : items_.end();
}

size_t LocationMap::erase(std::string_view key) {
  auto it = lowerBoundOf(items_.begin(), items_.end(), key);
  if (it == items_.end() || it->first != key) {
    return 0;
  }
  items_.erase(it);
  return 1;
}

void LocationMap::insert_or_assign(std::string key, SourceLoc loc) {
  if (items_.empty() || items_.back().first < key) {
    items_.emplace_back(std::move(key), std::move(loc));
    return;
  }
  (*this)[key] = std::move(loc);
}

const SourceLoc& Origin::at(std::string_view key) const {
  auto it = fields.find(key);
  return it != fields.end() ? it->second : table;
}

const SourceLoc& Origin::at(std::string_view key, size_t index) const {
  auto it = fields.find(elementKey(key, index));
  return it != fields.end() ? it->second : at(key);
}

std::string Origin::elementKey(std::string_view key, size_t index) {
  return std::string(key) + "#" + std::to_string(index);
}

namespace {
template <typename T>
const T* findByName(const std::vector<T>& items, std::string_view name) {
  auto it = std::find_if(items.begin(), items.end(), [&](const T& x) { return x.name == name; });
  return it != items.end() ? &*it : nullptr;
}
}  // namespace

const Namespace* Desired::findNamespace(std::string_view name) const {
  return findByName(namespaces, name);
}
const Certificate* Desired::findCertificate(std::string_view name) const {
  return findByName(certificates, name);
}
const Gateway* Desired::findGateway(std::string_view name) const {
  return findByName(gateways, name);
}

std::string_view toString(Protocol p) {
  return p == Protocol::Tcp ? "tcp" : "udp";
}
std::string_view toString(Issuer i) {
  switch (i) {
    case Issuer::Acme:
      return "acme";
    case Issuer::SelfSigned:
      return "self-signed";
    case Issuer::Files:
      return "files";
  }
  return "?";
}
std::string_view toString(AcmeChallengeType t) {
  switch (t) {
    case AcmeChallengeType::Http01:
      return "http-01";
    case AcmeChallengeType::TlsAlpn01:
      return "tls-alpn-01";
    case AcmeChallengeType::Dns01:
      return "dns-01";
  }
  return "?";
}
std::optional<AcmeChallengeType> acmeChallengeTypeFrom(std::string_view text) {
  for (auto t :
       {AcmeChallengeType::Http01, AcmeChallengeType::TlsAlpn01, AcmeChallengeType::Dns01}) {
    if (text == toString(t)) {
      return t;
    }
  }
  return std::nullopt;
}
std::string_view toString(Balance b) {
  return b == Balance::RoundRobin ? "round_robin" : "random";
}
std::string_view toString(ProxyProtocol p) {
  switch (p) {
    case ProxyProtocol::None:
      return "none";
    case ProxyProtocol::V1:
      return "v1";
    case ProxyProtocol::V2:
      return "v2";
  }
  return "?";
}
std::string_view toString(ApiKeyRole r) {
  return r == ApiKeyRole::Worker ? "worker" : "admin";
}

bool isValidApiKeyId(std::string_view id) {
  return id.size() >= 4 && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
         });
}

std::string netnsName(std::string_view ns) {
  return std::string(kNetnsPrefix) + std::string(ns);
}

bool namespaceOnHost(const Namespace& ns, std::string_view host) {
  if (!ns.hosts) {
    return true;
  }
  return std::find(ns.hosts->begin(), ns.hosts->end(), host) != ns.hosts->end();
}

bool hostSiteOnHost(const Site& s, std::string_view host) {
  return !s.hosts || std::find(s.hosts->begin(), s.hosts->end(), host) != s.hosts->end();
}

Desired resolveFor(const Desired& all, std::string_view host, Resolve what) {
  Desired out;
  out.fleet = all.fleet;
  for (const auto& h : all.hosts) {
    if (h.name == host) {
      out.hosts.push_back(h);
    }
  }
  std::set<std::string, std::less<>> namespaces;
  for (const auto& ns : all.namespaces) {
    if (namespaceOnHost(ns, host)) {
      out.namespaces.push_back(ns);
      namespaces.insert(ns.name);
    }
  }
  auto here = [&](const std::string& ns) { return namespaces.count(ns) != 0; };
  std::set<std::string, std::less<>> certificates;
  std::set<std::string, std::less<>> gateways;
  for (const auto& f : all.forwards) {
    if (what == Resolve::All && here(f.namespace_name)) {
      out.forwards.push_back(f);
    }
  }
  for (const auto& s : all.sites) {
    if (s.namespace_name.empty() ? hostSiteOnHost(s, host) : here(s.namespace_name)) {
      out.sites.push_back(s);
      certificates.insert(s.certificate);
    }
  }
  for (const auto& p : all.passthroughs) {
    if (here(p.namespace_name)) {
      out.passthroughs.push_back(p);
    }
  }
  for (const auto& g : all.gateways) {
    if (here(g.namespace_name)) {
      out.gateways.push_back(g);
      certificates.insert(g.certificate);
      gateways.insert(g.name);
    }
  }
  for (const auto& c : all.certificates) {
    if (certificates.count(c.name) != 0) {
      out.certificates.push_back(c);
    }
  }
  for (const auto& k : all.api_keys) {
    // An admin key without `gateways` serves every gateway: it goes wherever one is.
    bool used = (k.gateways.empty() && !gateways.empty()) ||
                std::any_of(k.gateways.begin(), k.gateways.end(),
                            [&](const std::string& g) { return gateways.count(g) != 0; });
    if (used) {
      out.api_keys.push_back(k);
    }
  }
  return out;
}

std::optional<std::pair<int, int>> parseStatusRange(std::string_view s) {
  auto status = [](std::string_view t) -> std::optional<int> {
    if (t.size() != 3 ||
        !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    const int v = (t[0] - '0') * 100 + (t[1] - '0') * 10 + (t[2] - '0');
    return v >= 100 && v <= 599 ? std::optional(v) : std::nullopt;
  };
  const size_t dash = s.find('-');
  if (dash == std::string_view::npos) {
    auto only = status(s);
    return only ? std::optional(std::pair(*only, *only)) : std::nullopt;
  }
  auto first = status(s.substr(0, dash));
  auto last = status(s.substr(dash + 1));
  if (!first || !last || *first > *last) {
    return std::nullopt;
  }
  return std::pair(*first, *last);
}

}  // namespace edgeplane
