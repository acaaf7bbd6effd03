// The checks behind validate() (validate.h), one class over two files: names, references,
// sites, passthroughs, gateways, certificates and API keys in validate.cpp; namespaces' peers and
// routes, the uplink pool, placement on hosts, WireGuard listen ports and forwards' public ports
// in validate_network.cpp. Internal to the schema library.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "schema/validate.h"

namespace edgeplane::detail {

inline bool rejected(const Origin& o, std::string_view key) {
  return o.isRejected(key);
}
inline bool loaded(const Origin& o, std::string_view key) {
  return o.isLoaded(key);
}

inline std::string where(const SourceLoc& loc) {
  return loc.file.str() + ":" + std::to_string(loc.line) + ":" + std::to_string(loc.column);
}

// Reports a second use of the same name within one kind.
template <typename T, typename NameOf>
void checkUnique(const std::vector<T>& items, std::string_view kind, std::string_view key,
                 NameOf nameOf, Diagnostics& diags) {
  // Views of the items' own names, hashed: at 10k forwards an ordered map of copies was a third
  // of validating.
  static_assert(std::is_lvalue_reference_v<std::invoke_result_t<NameOf, const T&>>,
                "the names are viewed in place: nameOf returns a reference into the item");
  std::unordered_map<std::string_view, const T*> seen;
  seen.reserve(items.size());
  for (const T& item : items) {
    const std::string& name = nameOf(item);
    if (name.empty()) {
      continue;  // a missing name was already reported by the loader
    }
    auto [it, inserted] = seen.emplace(name, &item);
    if (!inserted) {
      diags.error(item.origin.at(key), "duplicate " + std::string(kind) + " " + std::string(key) +
                                           " " + quote(name) + " (first defined at " +
                                           where(it->second->origin.at(key)) + ")");
    }
  }
}

class Validator {
 public:
  Validator(const Desired& d, Diagnostics& diags) : d_(d), diags_(diags) {}
  void run();

 private:
  // validate.cpp
  const Namespace* namespaceRef(const std::string& name, const Origin& origin);
  void checkApiKey(const ApiKey& k);
  void checkHostRefs(const std::optional<std::vector<std::string>>& hosts, const Origin& origin);
  void checkSite(const Site& s);
  void checkHostSiteBackends(const Site& s);
  void checkCertificate(const Certificate& c);
  static bool validCertificateName(const std::string& name);
  void checkManagedName(const Certificate& c);
  void checkCertificateName(const Certificate& c);
  static bool domainCovers(std::string_view domain, std::string_view host);
  void checkCovered(const std::string& certName, const std::vector<std::string>& hostnames,
                    const Origin& origin);
  void checkHostnames();

  // validate_network.cpp
  void checkNamespace(const Namespace& ns);
  bool peersKnown(const Namespace& ns);
  static bool coveredByPeer(const Namespace& ns, const IpPrefix& p);
  void checkReachable(const Namespace& ns, const Endpoint& e, const SourceLoc& loc,
                      std::string_view what);
  void checkBackends(const Namespace* ns, const std::vector<Endpoint>& backends,
                     const Origin& origin);
  // Defined in validate_network.cpp, beside its only callers.
  template <typename OnHost>
  std::vector<std::string> placedOn(const Origin& origin, OnHost onHost) const;
  const std::vector<std::string>& hostsOf(const Namespace& ns) const;
  std::vector<std::string> hostsOfNamespaceName(const std::string& name) const;
  std::vector<std::string> hostsOfSite(const Site& s) const;
  static std::optional<std::string> sharedHost(const std::vector<std::string>& a,
                                               const std::vector<std::string>& b);
  void checkListenPorts();
  void checkUplinkPool();
  void checkUplinkOverlap();
  void checkReservedPorts();
  void checkForwardPorts();

  const Desired& d_;
  Diagnostics& diags_;
  // Each gateway's endpoint paths, and all of them (for checkApiKey).
  std::map<std::string_view, std::set<std::string_view, std::less<>>, std::less<>> pathsOfGateway_;
  std::set<std::string_view, std::less<>> anyGatewayPaths_;
  std::map<const Namespace*, bool> peersKnown_;
  mutable std::optional<std::vector<std::string>> targets_;                         // targetHosts
  mutable std::unordered_map<const Namespace*, std::vector<std::string>> nsHosts_;  // hostsOf
};

}  // namespace edgeplane::detail
