// SNI routing table: build-time validation and allocation-free lookups.
#include "proxy/sni_router.h"

#include "schema/net.h"

namespace edgeplane::proxy {
namespace {

constexpr size_t kMaxNameLength = 253;

char lowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string toLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = lowerAscii(c);
  }
  return out;
}

}  // namespace

std::shared_ptr<const RoutingTable> RoutingTable::build(std::span<const RouteHosts> routes,
                                                        std::vector<RouteTableIssue>& issues,
                                                        WildcardDepth depth) {
  std::shared_ptr<RoutingTable> table(new RoutingTable(depth));
  for (const RouteHosts& route : routes) {
    for (const std::string& raw : route.hostnames) {
      std::string name = toLower(raw);
      if (!isValidDnsName(name, /*allowWildcard=*/true)) {
        issues.push_back({route.id, raw, "not a valid host name or wildcard"});
        continue;
      }
      bool wildcard = name.starts_with("*.");
      Map& map = wildcard ? table->wildcard_ : table->exact_;
      std::string key = wildcard ? name.substr(2) : name;
      auto [it, inserted] = map.try_emplace(std::move(key), route.id);
      if (!inserted && it->second != route.id) {
        issues.push_back({route.id, raw, "already routed to route " + std::to_string(it->second)});
      }
    }
  }
  return table;
}

std::optional<RouteId> RoutingTable::lookup(std::string_view sni) const {
  if (!sni.empty() && sni.back() == '.') {
    sni.remove_suffix(1);
  }
  if (sni.empty() || sni.size() > kMaxNameLength) {
    return std::nullopt;
  }
  // Lower-cased on the stack: lookups stay allocation-free.
  char buf[kMaxNameLength];
  for (size_t i = 0; i < sni.size(); ++i) {
    char c = lowerAscii(sni[i]);
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) {
      return std::nullopt;  // '*' included: a literal wildcard is not a server name
    }
    buf[i] = c;
  }
  std::string_view name(buf, sni.size());
  if (auto it = exact_.find(name); it != exact_.end()) {
    return it->second;
  }
  // Strip one non-empty leading label at a time; the first suffix found is the longest.
  std::string_view rest = name;
  while (true) {
    size_t dot = rest.find('.');
    if (dot == 0 || dot == std::string_view::npos || dot + 1 == rest.size()) {
      return std::nullopt;
    }
    rest.remove_prefix(dot + 1);
    if (auto it = wildcard_.find(rest); it != wildcard_.end()) {
      return it->second;
    }
    if (depth_ == WildcardDepth::OneLabel) {
      return std::nullopt;
    }
  }
}

}  // namespace edgeplane::proxy
