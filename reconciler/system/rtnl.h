// rtnetlink driver (libnl-route-3): links, veth pairs, addresses, routes and per-namespace sysctls.
#pragma once

#include <linux/rtnetlink.h>

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "schema/net.h"
#include "schema/result.h"

struct nl_msg;
struct nl_sock;

namespace edgeplane::sys {

// rtm_protocol that marks the routes edgeplane owns. Routes with any other protocol (kernel,
// boot, static, dhcp, ...) are foreign: observed, reported, never changed.
inline constexpr uint8_t kRouteProtocol = 237;

// An interface address. The prefix keeps its host bits (100.64.0.0/31, not a network).
struct AddressInfo {
  IpPrefix prefix;
  uint8_t scope = RT_SCOPE_UNIVERSE;  // RT_SCOPE_LINK: e.g. the fe80:: address the kernel adds
  uint32_t flags = 0;                 // IFA_F_* (permanent, tentative, dadfailed, ...)
  auto operator<=>(const AddressInfo&) const = default;
};

struct LinkInfo {
  std::string name;
  int ifindex = 0;
  std::string kind;      // IFLA_INFO_KIND: "veth", "wireguard", "dummy"; "" for lo and physical
  bool up = false;       // administratively up (IFF_UP)
  bool lowerUp = false;  // carrier (IFF_LOWER_UP); a veth has it only while its peer is up
  uint32_t mtu = 0;      // 0 = not stated (in a request message)
  std::vector<AddressInfo> addresses;  // every family and scope, in kernel order
  auto operator<=>(const LinkInfo&) const = default;
};

// A route as the kernel keys it. A route with a next hop has `device` and/or `gateway`;
// blackhole/unreachable/prohibit routes (type != RTN_UNICAST) have neither. Multipath routes
// are reported by their first next hop.
struct RouteInfo {
  IpPrefix destination;  // a network: 0.0.0.0/0 is the default route
  std::optional<IpAddress> gateway;
  std::string device;
  uint32_t table = RT_TABLE_MAIN;
  uint8_t protocol = kRouteProtocol;
  uint8_t type = RTN_UNICAST;
  uint32_t metric = 0;  // RTA_PRIORITY; 0 lets the kernel choose (IPv6 then stores 1024)

  bool owned() const { return protocol == kRouteProtocol; }
  std::string str() const;  // "10.60.0.0/16 via 10.50.0.12 dev wg0 table 100 proto 237"
  auto operator<=>(const RouteInfo&) const = default;
};

// --- Codec: the request messages Rtnl sends and the decoders it reads replies with. ---
// Exposed so they can be round-tripped without a kernel. Builders leave sequence number,
// port and NLM_F_REQUEST/NLM_F_ACK to the sending socket.

struct NlMsgFree {
  void operator()(nl_msg* msg) const;
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

// RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL; the peer carries IFLA_NET_NS_FD unless peerNetnsFd < 0.
Result<NlMsgPtr> buildVethCreate(std::string_view name, std::string_view peerName, int peerNetnsFd);
// Links are addressed by name (ifi_index 0, IFLA_IFNAME).
Result<NlMsgPtr> buildLinkDelete(std::string_view name);
Result<NlMsgPtr> buildLinkGet(std::string_view name);
Result<NlMsgPtr> buildLinkSetUp(std::string_view name, bool up);
Result<NlMsgPtr> buildLinkSetMtu(std::string_view name, uint32_t mtu);
// RTM_NEWADDR with NLM_F_CREATE|NLM_F_REPLACE / RTM_DELADDR.
Result<NlMsgPtr> buildAddressAdd(int ifindex, const IpPrefix& prefix);
Result<NlMsgPtr> buildAddressDelete(int ifindex, const IpPrefix& prefix);
// RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE / RTM_DELROUTE (scope RT_SCOPE_NOWHERE, which
// matches any scope). route.device is ignored: the message carries oifIndex (0 = none).
Result<NlMsgPtr> buildRouteReplace(const RouteInfo& route, int oifIndex);
Result<NlMsgPtr> buildRouteDelete(const RouteInfo& route, int oifIndex);

// The fields of an RTM_*LINK message. link.addresses stays empty.
struct LinkMessage {
  uint16_t type = 0;   // RTM_NEWLINK, RTM_DELLINK, ...
  uint16_t flags = 0;  // NLM_F_*
  LinkInfo link;
  uint32_t changeMask = 0;     // ifi_change: which IFF_* flags a request changes
  std::optional<int> netnsFd;  // IFLA_NET_NS_FD
  struct Peer {                // VETH_INFO_PEER of a veth create request
    std::string name;
    std::optional<int> netnsFd;
  };
  std::optional<Peer> peer;
};
struct AddressMessage {
  uint16_t type = 0;
  uint16_t flags = 0;
  int ifindex = 0;
  AddressInfo address;
};
// route.device is empty: messages name the device by index.
struct RouteMessage {
  uint16_t type = 0;
  uint16_t flags = 0;
  RouteInfo route;
  int oifIndex = 0;
  uint8_t scope = RT_SCOPE_UNIVERSE;
};

Result<LinkMessage> decodeLinkMessage(nl_msg* msg);
Result<AddressMessage> decodeAddressMessage(nl_msg* msg);
Result<RouteMessage> decodeRouteMessage(nl_msg* msg);

// What a delete found. Deleting something already absent is not an error: the caller wanted
// it gone, and it is. The distinction is kept for reporting.
enum class Removal : uint8_t { Removed, AlreadyAbsent };

// One NETLINK_ROUTE socket bound to one network namespace for its whole life (the namespace is
// entered only while the socket is created). Names given to its methods are looked up in that
// namespace. Not thread-safe: one Rtnl per thread, or external locking.
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

  // Creates `name` here and its peer `peerName` directly inside `peerNetns` ("" = here), so
  // the peer never appears in this namespace. Both ends start down. Fails (EEXIST) if either
  // name is taken.
  Result<void> createVethPair(std::string_view name, std::string_view peerName,
                              std::string_view peerNetns);
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
  struct SocketFree {
    void operator()(nl_sock* sock) const;
  };

  Rtnl(nl_sock* sock, std::string netns);
  std::string where() const;
  Result<void> execute(NlMsgPtr msg, const std::string& what);
  Result<Removal> executeRemoval(NlMsgPtr msg, const std::string& what, int absentErrno);
  Result<std::vector<LinkMessage>> dumpLinks(const std::string& what);
  Result<std::vector<AddressMessage>> dumpAddresses(const std::string& what);
  // std::nullopt when the link does not exist.
  Result<std::optional<LinkMessage>> getLink(std::string_view name, const std::string& what);

  std::unique_ptr<nl_sock, SocketFree> sock_;
  std::string netns_;
};

// Per-namespace sysctls under /proc/sys, written and read from inside `netns` ("" = the
// current one): key "net/ipv4/ip_forward", "net/ipv6/conf/eph-t1/accept_dad".
Result<void> setSysctl(std::string_view netns, std::string_view key, std::string_view value);
// The value without its trailing newline.
Result<std::string> getSysctl(std::string_view netns, std::string_view key);

}  // namespace edgeplane::sys
