// rtnetlink driver: links, veth pairs, addresses, routes and per-namespace sysctls.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/system/netlink.h"
#include "reconciler/system/rtnl_codec.h"
#include "schema/net.h"
#include "schema/result.h"

namespace edgeplane::sys {

// What a delete found. Deleting something already absent is not an error: the caller wanted
// it gone, and it is. The distinction is kept for reporting.
enum class Removal : uint8_t { Removed, AlreadyAbsent };

// One NETLINK_ROUTE socket (NlSocket) bound to one network namespace for its whole life (the
// namespace is entered only while the socket is created). Names given to its methods are looked up
// in that namespace. Not thread-safe: one Rtnl per thread, or external locking.
//
// Errors name the operation, the object and the namespace, then the kernel's errno text and,
// when the kernel sent one, its extended-ACK message: "add route 10.60.0.0/16 via 10.50.0.12
// in namespace ep-tenant-a: Network is unreachable (Nexthop has invalid gateway)".
class Rtnl {
 public:
  // "" = the calling thread's current namespace.
  static Result<Rtnl> open(std::string_view netns);

  Rtnl(Rtnl&&) noexcept;
  Rtnl& operator=(Rtnl&&) noexcept;
  ~Rtnl();

  const std::string& netns() const { return netns_; }

  // Every link with its addresses, in ifindex order.
  Result<std::vector<LinkInfo>> links();
  // std::nullopt when there is no such link (not an error).
  Result<std::optional<LinkInfo>> link(std::string_view name);
  // The same without its addresses: one request, no dump.
  Result<std::optional<LinkInfo>> findLink(std::string_view name);

  // Creates `name` here and its peer `peerName` directly inside `peerNetns` ("" = here), so
  // the peer never appears in this namespace. Both ends start down. Fails (EEXIST) if either
  // name is taken.
  Result<void> createVethPair(std::string_view name, std::string_view peerName,
                              std::string_view peerNetns);
  // Creates a link of `kind` (IFLA_INFO_KIND: "wireguard", "dummy", ...), down. Unsupported
  // when the kernel has no such link type (EOPNOTSUPP): an answer, not an error.
  enum class Creation : uint8_t { Created, Unsupported };
  Result<Creation> createLink(std::string_view name, std::string_view kind,
                              std::optional<uint32_t> mtu);
  // Moves a link of this namespace into `targetNetns`. A link of that name already there is a
  // retryable error (it may be one that is going away).
  Result<void> moveLink(std::string_view name, std::string_view targetNetns);
  // Deleting one end of a veth pair deletes both.
  Result<Removal> deleteLink(std::string_view name);
  Result<void> setUp(std::string_view name, bool up);
  Result<void> setMtu(std::string_view name, uint32_t mtu);

  // Idempotent: adding an address that is already there succeeds (NLM_F_REPLACE, as
  // `ip addr replace`). Removing an absent address, or from an absent link, is AlreadyAbsent.
  Result<void> addAddress(std::string_view link, const IpPrefix& prefix);
  Result<Removal> removeAddress(std::string_view link, const IpPrefix& prefix);

  // Every route of the family in `table`, whatever its protocol, so callers see foreign
  // routes (RouteInfo::owned() is false for them) and can leave them alone.
  Result<std::vector<RouteInfo>> routes(IpAddress::Family family, uint32_t table = RT_TABLE_MAIN);
  // Creates or replaces the route keyed by (table, destination, metric), protocol included.
  Result<void> replaceRoute(const RouteInfo& route);
  // Deletes only a route matching every given field, protocol included: deleting an owned
  // route never removes a foreign one with the same destination. No match, or an absent
  // device, is AlreadyAbsent.
  Result<Removal> deleteRoute(const RouteInfo& route);

 private:
  Rtnl(NlSocket sock, std::string netns);
  std::string where() const;
  Result<void> execute(NlMsgPtr msg, const std::string& what);
  Result<Removal> executeRemoval(NlMsgPtr msg, const std::string& what, int absentErrno);
  Result<std::vector<LinkMessage>> dumpLinks(const std::string& what);
  Result<std::vector<AddressMessage>> dumpAddresses(const std::string& what);
  // std::nullopt when the link does not exist.
  Result<std::optional<LinkMessage>> getLink(std::string_view name, const std::string& what);

  NlSocket sock_;
  std::string netns_;
};

// Per-namespace sysctls under /proc/sys, written and read from inside `netns` ("" = the
// current one): key "net/ipv4/ip_forward", "net/ipv6/conf/eph-t1/accept_dad".
Result<void> setSysctl(std::string_view netns, std::string_view key, std::string_view value);
// The value without its trailing newline.
Result<std::string> getSysctl(std::string_view netns, std::string_view key);

}  // namespace edgeplane::sys
