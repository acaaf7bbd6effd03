// rtnetlink codec: libnl-route builds the requests, a small decoder of our own reads them back.
//
// Why not libnl's object parsers (nl_msg_parse with the route cache ops)? libnl 3.7 crashes
// parsing an RTM_NEWLINK that carries VETH_INFO_PEER (veth_parse writes through a peer it
// never allocated). So requests go out through libnl's builders, and one decoder of our own
// serves kernel dumps and codec tests.
#include "reconciler/system/rtnl_codec.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>

#include <array>
#include <cstring>
#include <functional>

namespace edgeplane::sys {
namespace {

// From <linux/if.h>, which cannot be included together with <net/if.h>.
constexpr unsigned kIffLowerUp = 1U << 16;

// --- libnl object ownership ---

struct AddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using AddrPtr = std::unique_ptr<nl_addr, AddrPut>;
struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;
struct RtAddrPut {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
using RtAddrPtr = std::unique_ptr<rtnl_addr, RtAddrPut>;
struct RoutePut {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
using RoutePtr = std::unique_ptr<rtnl_route, RoutePut>;

size_t byteLength(IpAddress::Family family) {
  return family == IpAddress::Family::V4 ? 4 : 16;
}

AddrPtr toNlAddr(const IpAddress& address, int prefixLength) {
  AddrPtr a(nl_addr_build(addressFamily(address.family), address.bytes.data(),
                          byteLength(address.family)));
  if (a) {
    nl_addr_set_prefixlen(a.get(), prefixLength);
  }
  return a;
}

Error buildError(std::string_view what, int nlError) {
  return terminal("build " + std::string(what) + " request: " + nl_geterror(nlError));
}

bool validLinkName(std::string_view name) {
  return !name.empty() && name.size() < IFNAMSIZ && name.find('/') == std::string_view::npos &&
         name.find('\0') == std::string_view::npos;
}

Error invalidLinkName(std::string_view name) {
  return terminal("invalid link name '" + std::string(name) + "'");
}

// --- decoding helpers ---

// Decodes the attributes after an ifinfomsg (top level or inside VETH_INFO_PEER).
Result<void> decodeLinkAttrs(nlattr* const* tb, LinkInfo& link, std::optional<int>& netnsFd) {
  if (tb[IFLA_IFNAME] != nullptr) {
    link.name = attrString(tb[IFLA_IFNAME]);
  }
  if (tb[IFLA_MTU] != nullptr) {
    auto mtu = attrU32(tb[IFLA_MTU]);
    if (!mtu) {
      return terminal("link message: short IFLA_MTU");
    }
    link.mtu = *mtu;
  }
  if (tb[IFLA_NET_NS_FD] != nullptr) {
    auto fd = attrU32(tb[IFLA_NET_NS_FD]);
    if (!fd) {
      return terminal("link message: short IFLA_NET_NS_FD");
    }
    netnsFd = static_cast<int>(*fd);
  }
  return {};
}

}  // namespace

// --- RouteInfo ---

std::string RouteInfo::str() const {
  std::string s = destination.str();
  if (type == RTN_BLACKHOLE) {
    s = "blackhole " + s;
  } else if (type == RTN_UNREACHABLE) {
    s = "unreachable " + s;
  } else if (type == RTN_PROHIBIT) {
    s = "prohibit " + s;
  } else if (type != RTN_UNICAST) {
    s = "type " + std::to_string(type) + " " + s;
  }
  if (gateway) {
    s += " via " + gateway->str();
  }
  if (!device.empty()) {
    s += " dev " + device;
  }
  if (table != RT_TABLE_MAIN) {
    s += " table " + std::to_string(table);
  }
  if (metric != 0) {
    s += " metric " + std::to_string(metric);
  }
  if (protocol != kRouteProtocol) {
    s += " proto " + std::to_string(protocol);
  }
  return s;
}

// --- Codec: builders ---

Result<NlMsgPtr> buildVethCreate(std::string_view name, std::string_view peerName,
                                 int peerNetnsFd) {
  if (!validLinkName(name)) {
    return invalidLinkName(name);
  }
  if (!validLinkName(peerName)) {
    return invalidLinkName(peerName);
  }
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) {
    return terminal("build veth request: out of memory");
  }
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  // The peer is owned by its veth link; get_peer hands out an extra reference.
  LinkPtr peer(rtnl_link_veth_get_peer(link.get()));
  rtnl_link_set_name(peer.get(), std::string(peerName).c_str());
  if (peerNetnsFd >= 0) {
    rtnl_link_set_ns_fd(peer.get(), peerNetnsFd);
  }
  nl_msg* msg = nullptr;
  int rc = rtnl_link_build_add_request(link.get(), NLM_F_CREATE | NLM_F_EXCL, &msg);
  if (rc < 0) {
    return buildError("veth", rc);
  }
  return NlMsgPtr(msg);
}

Result<NlMsgPtr> buildLinkDelete(std::string_view name) {
  if (!validLinkName(name)) {
    return invalidLinkName(name);
  }
  LinkPtr link(rtnl_link_alloc());
  rtnl_link_set_name(link.get(), std::string(name).c_str());
  nl_msg* msg = nullptr;
  int rc = rtnl_link_build_delete_request(link.get(), &msg);
  if (rc < 0) {
    return buildError("link delete", rc);
  }
  return NlMsgPtr(msg);
}

Result<NlMsgPtr> buildLinkGet(std::string_view name) {
  if (!validLinkName(name)) {
    return invalidLinkName(name);
  }
  nl_msg* msg = nullptr;
  int rc = rtnl_link_build_get_request(0, std::string(name).c_str(), &msg);
  if (rc < 0) {
    return buildError("link get", rc);
  }
  return NlMsgPtr(msg);
}

namespace {

// RTM_NEWLINK without NLM_F_CREATE, ifi_index 0 and IFLA_IFNAME: changes the named link.
Result<NlMsgPtr> buildLinkChange(std::string_view name, const std::function<void(rtnl_link*)>& set,
                                 std::string_view what) {
  if (!validLinkName(name)) {
    return invalidLinkName(name);
  }
  LinkPtr orig(rtnl_link_alloc());
  LinkPtr changes(rtnl_link_alloc());
  if (!orig || !changes) {
    return terminal("build link request: out of memory");
  }
  rtnl_link_set_name(changes.get(), std::string(name).c_str());
  set(changes.get());
  nl_msg* msg = nullptr;
  int rc = rtnl_link_build_change_request(orig.get(), changes.get(), 0, &msg);
  if (rc < 0) {
    return buildError(what, rc);
  }
  return NlMsgPtr(msg);
}

Result<NlMsgPtr> buildAddress(int ifindex, const IpPrefix& prefix, bool add) {
  RtAddrPtr addr(rtnl_addr_alloc());
  AddrPtr local = toNlAddr(prefix.address, prefix.length);
  if (!addr || !local) {
    return terminal("build address request: out of memory");
  }
  rtnl_addr_set_ifindex(addr.get(), ifindex);
  rtnl_addr_set_family(addr.get(), addressFamily(prefix.address.family));
  int rc = rtnl_addr_set_local(addr.get(), local.get());
  if (rc >= 0) {
    rtnl_addr_set_prefixlen(addr.get(), prefix.length);
  }
  nl_msg* msg = nullptr;
  if (rc >= 0) {
    rc = add ? rtnl_addr_build_add_request(addr.get(), NLM_F_CREATE | NLM_F_REPLACE, &msg)
             : rtnl_addr_build_delete_request(addr.get(), 0, &msg);
  }
  if (rc < 0) {
    return buildError("address " + prefix.str(), rc);
  }
  return NlMsgPtr(msg);
}

Result<NlMsgPtr> buildRoute(const RouteInfo& route, int oifIndex, bool replace) {
  RoutePtr r(rtnl_route_alloc());
  AddrPtr dst = toNlAddr(route.destination.address, route.destination.length);
  if (!r || !dst) {
    return terminal("build route request: out of memory");
  }
  rtnl_route_set_family(r.get(), addressFamily(route.destination.address.family));
  int rc = rtnl_route_set_dst(r.get(), dst.get());
  rtnl_route_set_table(r.get(), route.table);
  rtnl_route_set_protocol(r.get(), route.protocol);
  rtnl_route_set_type(r.get(), route.type);
  if (route.metric != 0) {
    rtnl_route_set_priority(r.get(), route.metric);
  }
  if (replace) {
    // As `ip route` does: a route through a gateway is global, a device route is link scope.
    bool linkScope = route.type == RTN_UNICAST && !route.gateway && oifIndex > 0;
    rtnl_route_set_scope(r.get(), linkScope ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE);
  } else {
    rtnl_route_set_scope(r.get(), RT_SCOPE_NOWHERE);  // delete: match any scope
  }
  if (rc >= 0 && (route.gateway || oifIndex > 0)) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (nh == nullptr) {
      return terminal("build route request: out of memory");
    }
    if (oifIndex > 0) {
      rtnl_route_nh_set_ifindex(nh, oifIndex);
    }
    if (route.gateway) {
      AddrPtr gw = toNlAddr(*route.gateway, route.gateway->bits());
      if (!gw) {
        rtnl_route_nh_free(nh);
        return terminal("build route request: out of memory");
      }
      rtnl_route_nh_set_gateway(nh, gw.get());  // takes its own reference
    }
    rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here
  }
  nl_msg* msg = nullptr;
  if (rc >= 0) {
    rc = replace ? rtnl_route_build_add_request(r.get(), NLM_F_CREATE | NLM_F_REPLACE, &msg)
                 : rtnl_route_build_del_request(r.get(), 0, &msg);
  }
  if (rc < 0) {
    return buildError("route " + route.str(), rc);
  }
  return NlMsgPtr(msg);
}

}  // namespace

Result<NlMsgPtr> buildLinkSetUp(std::string_view name, bool up) {
  return buildLinkChange(
      name,
      [up](rtnl_link* l) {
        if (up) {
          rtnl_link_set_flags(l, IFF_UP);
        } else {
          rtnl_link_unset_flags(l, IFF_UP);
        }
      },
      "link set up");
}

Result<NlMsgPtr> buildLinkSetMtu(std::string_view name, uint32_t mtu) {
  return buildLinkChange(
      name, [mtu](rtnl_link* l) { rtnl_link_set_mtu(l, mtu); }, "link set mtu");
}

namespace {

// RTM_NEWLINK built by hand (ifi_index 0, IFLA_IFNAME): libnl's link builder would look for
// kind-specific code ("wireguard" has none) and states nothing we need.
Result<NlMsgPtr> namedLinkMessage(std::string_view name, int flags) {
  if (!validLinkName(name)) {
    return invalidLinkName(name);
  }
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, flags));
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  if (!msg || nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0 ||
      nla_put_string(msg.get(), IFLA_IFNAME, std::string(name).c_str()) < 0) {
    return terminal("build link request: out of memory");
  }
  return msg;
}

}  // namespace

Result<NlMsgPtr> buildLinkCreate(std::string_view name, std::string_view kind,
                                 std::optional<uint32_t> mtu) {
  auto msg = namedLinkMessage(name, NLM_F_CREATE | NLM_F_EXCL);
  if (!msg) {
    return msg;
  }
  if (mtu && nla_put_u32(msg->get(), IFLA_MTU, *mtu) < 0) {
    return terminal("build link request: out of memory");
  }
  nlattr* info = nla_nest_start(msg->get(), IFLA_LINKINFO);
  if (info == nullptr ||
      nla_put_string(msg->get(), IFLA_INFO_KIND, std::string(kind).c_str()) < 0) {
    return terminal("build link request: out of memory");
  }
  nla_nest_end(msg->get(), info);
  return msg;
}

Result<NlMsgPtr> buildLinkMove(std::string_view name, int netnsFd) {
  auto msg = namedLinkMessage(name, 0);
  if (msg && nla_put_u32(msg->get(), IFLA_NET_NS_FD, static_cast<uint32_t>(netnsFd)) < 0) {
    return terminal("build link request: out of memory");
  }
  return msg;
}

Result<NlMsgPtr> buildAddressAdd(int ifindex, const IpPrefix& prefix) {
  return buildAddress(ifindex, prefix, true);
}

Result<NlMsgPtr> buildAddressDelete(int ifindex, const IpPrefix& prefix) {
  return buildAddress(ifindex, prefix, false);
}

Result<NlMsgPtr> buildRouteReplace(const RouteInfo& route, int oifIndex) {
  return buildRoute(route, oifIndex, true);
}

Result<NlMsgPtr> buildRouteDelete(const RouteInfo& route, int oifIndex) {
  return buildRoute(route, oifIndex, false);
}

// --- Codec: decoders ---

Result<LinkMessage> decodeLinkMessage(nl_msg* msg) {
  std::array<nlattr*, IFLA_MAX + 1> tb{};
  if (auto r = parseAttrs(msg, sizeof(ifinfomsg), tb.data(), IFLA_MAX, "link"); !r) {
    return r.error();
  }
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(hdr));
  LinkMessage m;
  m.type = hdr->nlmsg_type;
  m.flags = hdr->nlmsg_flags;
  m.link.ifindex = ifi->ifi_index;
  m.link.up = (ifi->ifi_flags & IFF_UP) != 0;
  m.link.lowerUp = (ifi->ifi_flags & kIffLowerUp) != 0;
  m.changeMask = ifi->ifi_change;
  if (auto r = decodeLinkAttrs(tb.data(), m.link, m.netnsFd); !r) {
    return r.error();
  }
  if (tb[IFLA_LINKINFO] == nullptr) {
    return m;
  }
  std::array<nlattr*, IFLA_INFO_MAX + 1> info{};
  if (int rc = nla_parse_nested(info.data(), IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr); rc < 0) {
    return terminal(std::string("link message: IFLA_LINKINFO: ") + nl_geterror(rc));
  }
  if (info[IFLA_INFO_KIND] != nullptr) {
    m.link.kind = attrString(info[IFLA_INFO_KIND]);
  }
  if (m.link.kind != "veth" || info[IFLA_INFO_DATA] == nullptr) {
    return m;
  }
  std::array<nlattr*, VETH_INFO_MAX + 1> veth{};
  if (int rc = nla_parse_nested(veth.data(), VETH_INFO_MAX, info[IFLA_INFO_DATA], nullptr);
      rc < 0) {
    return terminal(std::string("link message: veth info: ") + nl_geterror(rc));
  }
  if (veth[VETH_INFO_PEER] == nullptr) {
    return m;
  }
  // VETH_INFO_PEER holds a whole ifinfomsg followed by the peer's own IFLA_* attributes.
  const nlattr* peerAttr = veth[VETH_INFO_PEER];
  const int headerLen = NLMSG_ALIGN(sizeof(ifinfomsg));
  if (nla_len(peerAttr) < headerLen) {
    return terminal("link message: short VETH_INFO_PEER");
  }
  std::array<nlattr*, IFLA_MAX + 1> peerTb{};
  auto* first = reinterpret_cast<nlattr*>(static_cast<char*>(nla_data(peerAttr)) + headerLen);
  if (int rc = nla_parse(peerTb.data(), IFLA_MAX, first, nla_len(peerAttr) - headerLen, nullptr);
      rc < 0) {
    return terminal(std::string("link message: veth peer: ") + nl_geterror(rc));
  }
  LinkInfo peerLink;
  LinkMessage::Peer peer;
  if (auto r = decodeLinkAttrs(peerTb.data(), peerLink, peer.netnsFd); !r) {
    return r.error();
  }
  peer.name = peerLink.name;
  m.peer = std::move(peer);
  return m;
}

Result<AddressMessage> decodeAddressMessage(nl_msg* msg) {
  std::array<nlattr*, IFA_MAX + 1> tb{};
  if (auto r = parseAttrs(msg, sizeof(ifaddrmsg), tb.data(), IFA_MAX, "address"); !r) {
    return r.error();
  }
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(hdr));
  AddressMessage m;
  m.type = hdr->nlmsg_type;
  m.flags = hdr->nlmsg_flags;
  m.ifindex = static_cast<int>(ifa->ifa_index);
  m.address.scope = ifa->ifa_scope;
  m.address.flags = ifa->ifa_flags;
  if (auto flags = attrU32(tb[IFA_FLAGS])) {
    m.address.flags = *flags;  // the full 32 bits; ifa_flags holds only the low 8
  }
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
  // links and the only one IPv6 sends.
  const nlattr* attr = tb[IFA_LOCAL] != nullptr ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (attr == nullptr) {
    return terminal("address message without an address");
  }
  auto address = attrAddress(ifa->ifa_family, attr);
  if (!address || ifa->ifa_prefixlen > address->bits()) {
    return terminal("address message: bad address for family " + std::to_string(ifa->ifa_family));
  }
  m.address.prefix = IpPrefix{*address, ifa->ifa_prefixlen};
  return m;
}

Result<RouteMessage> decodeRouteMessage(nl_msg* msg) {
  std::array<nlattr*, RTA_MAX + 1> tb{};
  if (auto r = parseAttrs(msg, sizeof(rtmsg), tb.data(), RTA_MAX, "route"); !r) {
    return r.error();
  }
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  const auto* rtm = static_cast<const rtmsg*>(nlmsg_data(hdr));
  RouteMessage m;
  m.type = hdr->nlmsg_type;
  m.flags = hdr->nlmsg_flags;
  m.scope = rtm->rtm_scope;
  RouteInfo& r = m.route;
  r.protocol = rtm->rtm_protocol;
  r.type = rtm->rtm_type;
  // RTA_TABLE is authoritative: rtm_table is 8 bits (and libnl fills it with table & 0xff).
  r.table = attrU32(tb[RTA_TABLE]).value_or(rtm->rtm_table);
  r.metric = attrU32(tb[RTA_PRIORITY]).value_or(0);
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) {
    return terminal("route message: unsupported family " + std::to_string(rtm->rtm_family));
  }
  const IpAddress::Family family =
      rtm->rtm_family == AF_INET ? IpAddress::Family::V4 : IpAddress::Family::V6;
  r.destination.address.family = family;
  if (tb[RTA_DST] != nullptr) {
    auto dst = attrAddress(rtm->rtm_family, tb[RTA_DST]);
    if (!dst) {
      return terminal("route message: bad RTA_DST");
    }
    r.destination.address = *dst;
  }
  if (rtm->rtm_dst_len > r.destination.address.bits()) {
    return terminal("route message: bad destination length");
  }
  r.destination.length = rtm->rtm_dst_len;

  const nlattr* gateway = tb[RTA_GATEWAY];
  const nlattr* via = tb[RTA_VIA];
  m.oifIndex = static_cast<int>(attrU32(tb[RTA_OIF]).value_or(0));
  if (tb[RTA_MULTIPATH] != nullptr &&
      nla_len(tb[RTA_MULTIPATH]) >= static_cast<int>(sizeof(rtnexthop))) {
    // Report the first next hop (see RouteInfo).
    const auto* nh = static_cast<const rtnexthop*>(nla_data(tb[RTA_MULTIPATH]));
    if (nh->rtnh_len >= sizeof(rtnexthop) &&
        static_cast<int>(nh->rtnh_len) <= nla_len(tb[RTA_MULTIPATH])) {
      m.oifIndex = nh->rtnh_ifindex;
      std::array<nlattr*, RTA_MAX + 1> nhTb{};
      auto* first = reinterpret_cast<nlattr*>(const_cast<char*>(reinterpret_cast<const char*>(nh)) +
                                              RTNH_LENGTH(0));
      if (nla_parse(nhTb.data(), RTA_MAX, first, nh->rtnh_len - RTNH_LENGTH(0), nullptr) >= 0) {
        gateway = nhTb[RTA_GATEWAY];
        via = nhTb[RTA_VIA];
      }
    }
  }
  if (gateway != nullptr) {
    r.gateway = attrAddress(rtm->rtm_family, gateway);
    if (!r.gateway) {
      return terminal("route message: bad RTA_GATEWAY");
    }
  } else if (via != nullptr) {
    // RTA_VIA: a gateway of another family (an IPv4 route via an IPv6 next hop).
    if (nla_len(via) < static_cast<int>(sizeof(rtvia))) {
      return terminal("route message: short RTA_VIA");
    }
    const auto* v = static_cast<const rtvia*>(nla_data(via));
    r.gateway = addressFromBytes(v->rtvia_family, v->rtvia_addr,
                                 static_cast<size_t>(nla_len(via)) - sizeof(rtvia));
    if (!r.gateway) {
      return terminal("route message: bad RTA_VIA");
    }
  }
  return m;
}

}  // namespace edgeplane::sys
