// rtnetlink codec: links, addresses and routes as the kernel keys them, the request messages
// Rtnl sends and the decoders it reads replies with. Pure: round-tripped without a kernel.
#pragma once

#include <linux/rtnetlink.h>

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconciler/system/netlink_attr.h"
#include "schema/net.h"
#include "schema/result.h"

struct nl_msg;

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

// --- Builders. They leave sequence number, port and NLM_F_REQUEST/NLM_F_ACK to the sending
// socket (NlSocket). ---

// RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL; the peer carries IFLA_NET_NS_FD unless peerNetnsFd < 0.
Result<NlMsgPtr> buildVethCreate(std::string_view name, std::string_view peerName, int peerNetnsFd);
// Links are addressed by name (ifi_index 0, IFLA_IFNAME).
Result<NlMsgPtr> buildLinkDelete(std::string_view name);
Result<NlMsgPtr> buildLinkGet(std::string_view name);
Result<NlMsgPtr> buildLinkSetUp(std::string_view name, bool up);
Result<NlMsgPtr> buildLinkSetMtu(std::string_view name, uint32_t mtu);
// RTM_NEWLINK, NLM_F_CREATE|NLM_F_EXCL, a link of `kind` (IFLA_INFO_KIND: "wireguard",
// "dummy", ...) without kind-specific data.
Result<NlMsgPtr> buildLinkCreate(std::string_view name, std::string_view kind,
                                 std::optional<uint32_t> mtu);
// RTM_NEWLINK naming the link and IFLA_NET_NS_FD: moves it into that namespace.
Result<NlMsgPtr> buildLinkMove(std::string_view name, int netnsFd);
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

}  // namespace edgeplane::sys
