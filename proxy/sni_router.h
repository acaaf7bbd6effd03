// Immutable SNI -> route table: exact host names, then "*." wildcards, case-insensitive.
//
// Built once per snapshot and shared read-only across worker threads: the engine holds a
// std::shared_ptr<const RoutingTable> and swaps it atomically (std::atomic<std::shared_ptr>);
// lookups are const, allocate nothing and take O(labels) hash probes.
//
// Wildcards follow RFC 6125 §6.4.3 by default: "*." stands for exactly one whole label.
// "*.apps.example.com" matches "x.apps.example.com" but neither "apps.example.com" nor
// "a.b.apps.example.com" - the same rule a TLS client applies to a wildcard certificate, so a
// route never catches a name its certificate could not serve. With one-label wildcards at
// most one wildcard can match a name, so "exact first, then the longest matching wildcard"
// reduces to two probes. WildcardDepth::AnyDepth (nginx "server_name *.example.com" style)
// lets a wildcard match one or more labels; then the longest matching suffix wins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeplane::proxy {

using RouteId = uint32_t;

// One route's host names as configured: exact ("example.com") or wildcard ("*.example.com").
struct RouteHosts {
  RouteId id = 0;
  std::vector<std::string> hostnames;
};

enum class WildcardDepth : uint8_t { OneLabel, AnyDepth };

// A host name left out of the table, and why.
struct RouteTableIssue {
  RouteId route = 0;
  std::string hostname;
  std::string reason;
};

class RoutingTable {
 public:
  // Every valid host name goes in; an invalid one (not an RFC 1123 name of >= 2 labels, at most
  // one leading "*." label) or one already claimed by another route is left out and reported
  // in `issues` (the first route listed keeps a contested name). The engine may refuse a
  // snapshot with issues; they should not occur since the config validator checks the same.
  static std::shared_ptr<const RoutingTable> build(std::span<const RouteHosts> routes,
                                                   std::vector<RouteTableIssue>& issues,
                                                   WildcardDepth depth = WildcardDepth::OneLabel);

  // The route for a server name: exact match first, then wildcard. Case-insensitive; one
  // trailing dot is ignored; anything that is not a plausible host name matches nothing.
  std::optional<RouteId> lookup(std::string_view sni) const;

  size_t exactCount() const { return exact_.size(); }
  size_t wildcardCount() const { return wildcard_.size(); }
  WildcardDepth depth() const { return depth_; }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  using Map = std::unordered_map<std::string, RouteId, Hash, std::equal_to<>>;

  explicit RoutingTable(WildcardDepth depth) : depth_(depth) {}

  WildcardDepth depth_;
  Map exact_;     // "www.example.com"
  Map wildcard_;  // "*.example.com" stored as its suffix "example.com"
};

}  // namespace edgeplane::proxy
