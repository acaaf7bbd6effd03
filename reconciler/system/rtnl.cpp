// rtnetlink driver: libnl-route builds the requests, a small decoder of our own reads them back.
//
// Why not libnl's object parsers (nl_msg_parse with the route cache ops)? libnl 3.7 crashes
// parsing an RTM_NEWLINK that carries VETH_INFO_PEER (veth_parse writes through a peer it
// never allocated), and its error path maps errno to coarse NLE_* codes ("Unspecific failure"
// for ENETUNREACH). So requests go out through libnl's builders, replies and ACKs are read
// with our own callbacks and decoders, and one decoder serves kernel dumps and codec tests.
#include "reconciler/system/rtnl.h"

#include <fcntl.h>
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
#include <netlink/socket.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "reconciler/system/netns.h"

namespace edgeplane::sys {
namespace {

constexpr int kReceiveTimeoutSeconds = 5;
constexpr int kDumpAttempts = 3;
// From <linux/if.h>, which cannot be included together with <net/if.h>.
constexpr unsigned kIffLowerUp = 1U << 16;

bool retryableErrno(int err) {
  return err == EAGAIN || err == EBUSY || err == EINTR || err == ENOBUFS || err == ENOMEM;
}

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
struct CbPut {
  void operator()(nl_cb* cb) const { nl_cb_put(cb); }
};
using CbPtr = std::unique_ptr<nl_cb, CbPut>;

int afOf(IpAddress::Family family) {
  return family == IpAddress::Family::V4 ? AF_INET : AF_INET6;
}

size_t byteLength(IpAddress::Family family) {
  return family == IpAddress::Family::V4 ? 4 : 16;
}

AddrPtr toNlAddr(const IpAddress& address, int prefixLength) {
  AddrPtr a(nl_addr_build(afOf(address.family), address.bytes.data(), byteLength(address.family)));
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

// --- decoding helpers (bounds-checked: a short attribute is an error, never a read past it) ---

std::optional<IpAddress> addressFromBytes(int family, const void* data, size_t len) {
  IpAddress a;
  if (family == AF_INET && len == 4) {
    a.family = IpAddress::Family::V4;
  } else if (family == AF_INET6 && len == 16) {
    a.family = IpAddress::Family::V6;
  } else {
    return std::nullopt;
  }
  std::memcpy(a.bytes.data(), data, len);
  return a;
}

std::optional<IpAddress> addressAttr(int family, const nlattr* attr) {
  return addressFromBytes(family, nla_data(attr), static_cast<size_t>(nla_len(attr)));
}

std::string stringAttr(const nlattr* attr) {
  const char* data = static_cast<const char*>(nla_data(attr));
  return std::string(data, strnlen(data, static_cast<size_t>(nla_len(attr))));
}

std::optional<uint32_t> u32Attr(const nlattr* attr) {
  if (attr == nullptr || nla_len(attr) < 4) {
    return std::nullopt;
  }
  return nla_get_u32(const_cast<nlattr*>(attr));
}

// Parses the attributes of `msg` after a fixed header of `headerLen` bytes.
template <size_t N>
Result<void> parseAttrs(nl_msg* msg, size_t headerLen, std::array<nlattr*, N>& tb,
                        std::string_view what) {
  nlmsghdr* hdr = nlmsg_hdr(msg);
  if (hdr->nlmsg_len < NLMSG_HDRLEN || !nlmsg_valid_hdr(hdr, static_cast<int>(headerLen))) {
    return terminal(std::string(what) + " message too short");
  }
  int rc =
      nlmsg_parse(hdr, static_cast<int>(headerLen), tb.data(), static_cast<int>(N - 1), nullptr);
  if (rc < 0) {
    return terminal(std::string(what) + " message: " + nl_geterror(rc));
  }
  return {};
}

// Decodes the attributes after an ifinfomsg (top level or inside VETH_INFO_PEER).
Result<void> decodeLinkAttrs(nlattr* const* tb, LinkInfo& link, std::optional<int>& netnsFd) {
  if (tb[IFLA_IFNAME] != nullptr) {
    link.name = stringAttr(tb[IFLA_IFNAME]);
  }
  if (tb[IFLA_MTU] != nullptr) {
    auto mtu = u32Attr(tb[IFLA_MTU]);
    if (!mtu) {
      return terminal("link message: short IFLA_MTU");
    }
    link.mtu = *mtu;
  }
  if (tb[IFLA_NET_NS_FD] != nullptr) {
    auto fd = u32Attr(tb[IFLA_NET_NS_FD]);
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

void NlMsgFree::operator()(nl_msg* msg) const {
  nlmsg_free(msg);
}

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
  rtnl_addr_set_family(addr.get(), afOf(prefix.address.family));
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
  rtnl_route_set_family(r.get(), afOf(route.destination.address.family));
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
  if (auto r = parseAttrs(msg, sizeof(ifinfomsg), tb, "link"); !r) {
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
    m.link.kind = stringAttr(info[IFLA_INFO_KIND]);
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
  if (auto r = parseAttrs(msg, sizeof(ifaddrmsg), tb, "address"); !r) {
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
  if (auto flags = u32Attr(tb[IFA_FLAGS])) {
    m.address.flags = *flags;  // the full 32 bits; ifa_flags holds only the low 8
  }
  // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point
  // links and the only one IPv6 sends.
  const nlattr* attr = tb[IFA_LOCAL] != nullptr ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (attr == nullptr) {
    return terminal("address message without an address");
  }
  auto address = addressAttr(ifa->ifa_family, attr);
  if (!address || ifa->ifa_prefixlen > address->bits()) {
    return terminal("address message: bad address for family " + std::to_string(ifa->ifa_family));
  }
  m.address.prefix = IpPrefix{*address, ifa->ifa_prefixlen};
  return m;
}

Result<RouteMessage> decodeRouteMessage(nl_msg* msg) {
  std::array<nlattr*, RTA_MAX + 1> tb{};
  if (auto r = parseAttrs(msg, sizeof(rtmsg), tb, "route"); !r) {
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
  r.table = u32Attr(tb[RTA_TABLE]).value_or(rtm->rtm_table);
  r.metric = u32Attr(tb[RTA_PRIORITY]).value_or(0);
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) {
    return terminal("route message: unsupported family " + std::to_string(rtm->rtm_family));
  }
  const IpAddress::Family family =
      rtm->rtm_family == AF_INET ? IpAddress::Family::V4 : IpAddress::Family::V6;
  r.destination.address.family = family;
  if (tb[RTA_DST] != nullptr) {
    auto dst = addressAttr(rtm->rtm_family, tb[RTA_DST]);
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
  m.oifIndex = static_cast<int>(u32Attr(tb[RTA_OIF]).value_or(0));
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
    r.gateway = addressAttr(rtm->rtm_family, gateway);
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

// --- The socket ---

namespace {

// One request and its replies. Replies are matched by sequence number, so a stray message
// left over from an abandoned exchange is skipped rather than taken for this one's answer.
struct Exchange {
  uint32_t seq = 0;
  bool done = false;
  bool interrupted = false;  // NLM_F_DUMP_INTR: the dump raced a change; retry it
  int kernelErrno = 0;       // from NLMSG_ERROR or NLMSG_DONE
  int nlError = 0;           // libnl's own failure (send, receive, timeout)
  std::string extack;        // NLMSGERR_ATTR_MSG, when the kernel explains itself
  const std::function<void(nl_msg*)>* onReply = nullptr;
};

// Extended ACK TLVs sit after the nlmsgerr (and after the echoed request unless capped).
std::string extackMessage(const nlmsghdr* hdr, const nlmsgerr* err) {
  if ((hdr->nlmsg_flags & NLM_F_ACK_TLVS) == 0) {
    return {};
  }
  size_t offset = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if ((hdr->nlmsg_flags & NLM_F_CAPPED) == 0) {
    offset += err->msg.nlmsg_len - NLMSG_HDRLEN;
  }
  offset = NLMSG_ALIGN(offset);
  if (offset >= hdr->nlmsg_len) {
    return {};
  }
  auto* head =
      reinterpret_cast<nlattr*>(const_cast<char*>(reinterpret_cast<const char*>(hdr)) + offset);
  nlattr* text = nla_find(head, static_cast<int>(hdr->nlmsg_len - offset), NLMSGERR_ATTR_MSG);
  return text != nullptr ? stringAttr(text) : std::string();
}

int onSeqCheck(nl_msg* msg, void* arg) {
  return nlmsg_hdr(msg)->nlmsg_seq == static_cast<Exchange*>(arg)->seq ? NL_OK : NL_SKIP;
}

int onValid(nl_msg* msg, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  if (x->onReply != nullptr) {
    (*x->onReply)(msg);
  }
  return NL_OK;
}

int onFinish(nl_msg* msg, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  const nlmsghdr* hdr = nlmsg_hdr(msg);
  if (nlmsg_datalen(hdr) >= static_cast<int>(sizeof(int))) {
    int status = 0;
    std::memcpy(&status, nlmsg_data(hdr), sizeof(status));
    if (status < 0) {
      x->kernelErrno = -status;
    }
  }
  x->done = true;
  return NL_STOP;
}

int onAck(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->done = true;
  return NL_STOP;
}

int onError(sockaddr_nl*, nlmsgerr* err, void* arg) {
  auto* x = static_cast<Exchange*>(arg);
  // libnl hands us the payload; the header sits right before it.
  const auto* hdr =
      reinterpret_cast<const nlmsghdr*>(reinterpret_cast<const char*>(err) - NLMSG_HDRLEN);
  x->kernelErrno = -err->error;
  x->extack = extackMessage(hdr, err);
  x->done = true;
  return NL_STOP;
}

int onDumpInterrupted(nl_msg*, void* arg) {
  static_cast<Exchange*>(arg)->interrupted = true;
  return NL_OK;
}

Exchange exchange(nl_sock* sock, nl_msg* msg, const std::function<void(nl_msg*)>* onReply) {
  Exchange x;
  x.onReply = onReply;
  CbPtr socketCb(nl_socket_get_cb(sock));  // a new reference, dropped on return
  CbPtr cb(nl_cb_clone(socketCb.get()));
  if (!cb) {
    x.nlError = -NLE_NOMEM;
    return x;
  }
  nl_cb_set(cb.get(), NL_CB_SEQ_CHECK, NL_CB_CUSTOM, onSeqCheck, &x);
  nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, onValid, &x);
  nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, onFinish, &x);
  nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, onAck, &x);
  nl_cb_set(cb.get(), NL_CB_DUMP_INTR, NL_CB_CUSTOM, onDumpInterrupted, &x);
  nl_cb_err(cb.get(), NL_CB_CUSTOM, onError, &x);

  int rc = nl_send_auto(sock, msg);  // adds port, sequence number, NLM_F_REQUEST|NLM_F_ACK
  if (rc < 0) {
    x.nlError = rc;
    return x;
  }
  x.seq = nlmsg_hdr(msg)->nlmsg_seq;
  while (!x.done) {
    // Returns the number of messages handled; 0 without `done` means the receive timed out.
    rc = nl_recvmsgs_report(sock, cb.get());
    if (x.done) {
      break;
    }
    if (rc < 0) {
      x.nlError = rc;
      break;
    }
    if (rc == 0) {
      x.nlError = -NLE_AGAIN;
      break;
    }
  }
  return x;
}

}  // namespace

void Rtnl::SocketFree::operator()(nl_sock* sock) const {
  nl_socket_free(sock);
}

Rtnl::Rtnl(nl_sock* sock, std::string netns) : sock_(sock), netns_(std::move(netns)) {}
Rtnl::Rtnl(Rtnl&&) noexcept = default;
Rtnl& Rtnl::operator=(Rtnl&&) noexcept = default;
Rtnl::~Rtnl() = default;

Result<Rtnl> Rtnl::open(std::string_view netns) {
  const std::string where = netns.empty() ? "" : " in namespace " + std::string(netns);
  std::unique_ptr<nl_sock, SocketFree> sock(nl_socket_alloc());
  if (!sock) {
    return terminal("open rtnetlink socket" + where + ": out of memory");
  }
  {
    // A socket belongs to the namespace it was created in, for its whole life.
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return scope.error();
    }
    if (int rc = nl_connect(sock.get(), NETLINK_ROUTE); rc < 0) {
      return terminal("open rtnetlink socket" + where + ": " + nl_geterror(rc));
    }
  }
  const int fd = nl_socket_get_fd(sock.get());
  const int on = 1;
  // Best effort: extended ACKs add the kernel's reason to errors; capped ACKs keep them small.
  ::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &on, sizeof(on));
  ::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &on, sizeof(on));
  // The kernel answers rtnetlink requests synchronously; the timeout only bounds a lost reply.
  timeval tv{kReceiveTimeoutSeconds, 0};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return terminal("open rtnetlink socket" + where + ": SO_RCVTIMEO: " + errnoText(errno));
  }
  return Rtnl(sock.release(), std::string(netns));
}

std::string Rtnl::where() const {
  return netns_.empty() ? std::string() : " in namespace " + netns_;
}

namespace {

Error exchangeError(const Exchange& x, const std::string& what) {
  if (x.kernelErrno != 0) {
    std::string message = what + ": " + errnoText(x.kernelErrno);
    if (!x.extack.empty()) {
      message += " (" + x.extack + ")";
    }
    return Error{message, retryableErrno(x.kernelErrno)};
  }
  if (x.nlError == -NLE_AGAIN) {
    return retryable(what + ": no reply from the kernel within " +
                     std::to_string(kReceiveTimeoutSeconds) + "s");
  }
  return retryable(what + ": " + nl_geterror(x.nlError));
}

bool failed(const Exchange& x) {
  return x.kernelErrno != 0 || x.nlError != 0;
}

}  // namespace

Result<void> Rtnl::execute(NlMsgPtr msg, const std::string& what) {
  Exchange x = exchange(sock_.get(), msg.get(), nullptr);
  if (failed(x)) {
    return exchangeError(x, what);
  }
  return {};
}

Result<Removal> Rtnl::executeRemoval(NlMsgPtr msg, const std::string& what, int absentErrno) {
  Exchange x = exchange(sock_.get(), msg.get(), nullptr);
  if (x.kernelErrno == absentErrno) {
    return Removal::AlreadyAbsent;
  }
  if (failed(x)) {
    return exchangeError(x, what);
  }
  return Removal::Removed;
}

namespace {

template <typename Header>
Result<NlMsgPtr> buildDump(int type, int family) {
  NlMsgPtr msg(nlmsg_alloc_simple(type, NLM_F_DUMP));
  Header header{};
  if constexpr (std::is_same_v<Header, ifinfomsg>) {
    header.ifi_family = static_cast<unsigned char>(family);
  } else if constexpr (std::is_same_v<Header, ifaddrmsg>) {
    header.ifa_family = static_cast<uint8_t>(family);
  } else {
    header.rtm_family = static_cast<unsigned char>(family);
  }
  if (!msg || nlmsg_append(msg.get(), &header, sizeof(header), NLMSG_ALIGNTO) < 0) {
    return terminal("build dump request: out of memory");
  }
  return msg;
}

// Runs a dump, decoding each reply; retries when the kernel flags it as interrupted.
template <typename Header, typename Decoded>
Result<std::vector<Decoded>> runDump(nl_sock* sock, int type, int family,
                                     Result<Decoded> (*decode)(nl_msg*), const std::string& what) {
  for (int attempt = 1;; ++attempt) {
    auto msg = buildDump<Header>(type, family);
    if (!msg) {
      return msg.error();
    }
    std::vector<Decoded> out;
    std::optional<Error> decodeError;
    const std::function<void(nl_msg*)> onReply = [&](nl_msg* reply) {
      if (nlmsg_hdr(reply)->nlmsg_type != type - 2) {  // RTM_GETx - 2 == RTM_NEWx
        return;
      }
      auto decoded = decode(reply);
      if (decoded) {
        out.push_back(std::move(decoded).value());
      } else if (!decodeError) {
        decodeError = decoded.error();
      }
    };
    Exchange x = exchange(sock, msg->get(), &onReply);
    if (failed(x)) {
      return exchangeError(x, what);
    }
    if (decodeError) {
      return terminal(what + ": " + decodeError->message);
    }
    if (!x.interrupted) {
      return out;
    }
    if (attempt == kDumpAttempts) {
      return retryable(what + ": dump interrupted by concurrent changes " +
                       std::to_string(kDumpAttempts) + " times");
    }
  }
}

}  // namespace

Result<std::vector<LinkMessage>> Rtnl::dumpLinks(const std::string& what) {
  return runDump<ifinfomsg, LinkMessage>(sock_.get(), RTM_GETLINK, AF_UNSPEC, decodeLinkMessage,
                                         what);
}

Result<std::vector<AddressMessage>> Rtnl::dumpAddresses(const std::string& what) {
  return runDump<ifaddrmsg, AddressMessage>(sock_.get(), RTM_GETADDR, AF_UNSPEC,
                                            decodeAddressMessage, what);
}

Result<std::optional<LinkMessage>> Rtnl::getLink(std::string_view name, const std::string& what) {
  auto msg = buildLinkGet(name);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  std::optional<LinkMessage> found;
  std::optional<Error> decodeError;
  const std::function<void(nl_msg*)> onReply = [&](nl_msg* reply) {
    auto decoded = decodeLinkMessage(reply);
    if (decoded) {
      found = std::move(decoded).value();
    } else {
      decodeError = decoded.error();
    }
  };
  Exchange x = exchange(sock_.get(), msg->get(), &onReply);
  if (x.kernelErrno == ENODEV) {
    return std::optional<LinkMessage>();
  }
  if (failed(x)) {
    return exchangeError(x, what);
  }
  if (decodeError) {
    return terminal(what + ": " + decodeError->message);
  }
  if (!found) {
    return terminal(what + ": the kernel sent no link");
  }
  return found;
}

Result<std::vector<LinkInfo>> Rtnl::links() {
  const std::string what = "list links" + where();
  auto links = dumpLinks(what);
  if (!links) {
    return links.error();
  }
  auto addresses = dumpAddresses("list addresses" + where());
  if (!addresses) {
    return addresses.error();
  }
  std::vector<LinkInfo> out;
  std::unordered_map<int, size_t> byIndex;
  for (auto& m : *links) {
    byIndex[m.link.ifindex] = out.size();
    out.push_back(std::move(m.link));
  }
  for (auto& a : *addresses) {
    if (auto it = byIndex.find(a.ifindex); it != byIndex.end()) {
      out[it->second].addresses.push_back(a.address);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const LinkInfo& a, const LinkInfo& b) { return a.ifindex < b.ifindex; });
  return out;
}

Result<std::optional<LinkInfo>> Rtnl::link(std::string_view name) {
  const std::string what = "get link " + std::string(name) + where();
  auto m = getLink(name, what);
  if (!m) {
    return m.error();
  }
  if (!m.value()) {
    return std::optional<LinkInfo>();
  }
  LinkInfo link = std::move(m.value()->link);
  auto addresses = dumpAddresses(what);
  if (!addresses) {
    return addresses.error();
  }
  for (const auto& a : *addresses) {
    if (a.ifindex == link.ifindex) {
      link.addresses.push_back(a.address);
    }
  }
  return std::optional<LinkInfo>(std::move(link));
}

Result<void> Rtnl::createVethPair(std::string_view name, std::string_view peerName,
                                  std::string_view peerNetns) {
  std::string what = "create veth " + std::string(name) + " (peer " + std::string(peerName);
  if (!peerNetns.empty()) {
    what += " in namespace " + std::string(peerNetns);
  }
  what += ")" + where();
  int fd = -1;
  if (!peerNetns.empty()) {
    fd = openNetnsFd(peerNetns);
    if (fd < 0) {
      return terminal(what + ": open namespace " + std::string(peerNetns) + ": " +
                      errnoText(errno));
    }
  }
  auto msg = buildVethCreate(name, peerName, fd);
  Result<void> result = msg ? execute(std::move(msg).value(), what)
                            : Result<void>(Error{what + ": " + msg.error().message, false});
  if (fd >= 0) {
    ::close(fd);  // the kernel resolved it while handling the request
  }
  return result;
}

Result<Removal> Rtnl::deleteLink(std::string_view name) {
  const std::string what = "delete link " + std::string(name) + where();
  auto msg = buildLinkDelete(name);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, ENODEV);
}

Result<void> Rtnl::setUp(std::string_view name, bool up) {
  const std::string what = "set link " + std::string(name) + (up ? " up" : " down") + where();
  auto msg = buildLinkSetUp(name, up);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<void> Rtnl::setMtu(std::string_view name, uint32_t mtu) {
  const std::string what =
      "set link " + std::string(name) + " mtu " + std::to_string(mtu) + where();
  auto msg = buildLinkSetMtu(name, mtu);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<void> Rtnl::addAddress(std::string_view link, const IpPrefix& prefix) {
  const std::string what = "add address " + prefix.str() + " to " + std::string(link) + where();
  auto found = getLink(link, what);
  if (!found) {
    return found.error();
  }
  if (!found.value()) {
    return terminal(what + ": " + errnoText(ENODEV));
  }
  auto msg = buildAddressAdd(found.value()->link.ifindex, prefix);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<Removal> Rtnl::removeAddress(std::string_view link, const IpPrefix& prefix) {
  const std::string what =
      "remove address " + prefix.str() + " from " + std::string(link) + where();
  auto found = getLink(link, what);
  if (!found) {
    return found.error();
  }
  if (!found.value()) {
    return Removal::AlreadyAbsent;  // its addresses went with it
  }
  auto msg = buildAddressDelete(found.value()->link.ifindex, prefix);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, EADDRNOTAVAIL);
}

Result<std::vector<RouteInfo>> Rtnl::routes(IpAddress::Family family, uint32_t table) {
  const std::string what = std::string("list ") +
                           (family == IpAddress::Family::V4 ? "IPv4" : "IPv6") +
                           " routes of table " + std::to_string(table) + where();
  auto links = dumpLinks(what);
  if (!links) {
    return links.error();
  }
  std::unordered_map<int, std::string> names;
  for (const auto& m : *links) {
    names[m.link.ifindex] = m.link.name;
  }
  auto messages = runDump<rtmsg, RouteMessage>(sock_.get(), RTM_GETROUTE, afOf(family),
                                               decodeRouteMessage, what);
  if (!messages) {
    return messages.error();
  }
  std::vector<RouteInfo> out;
  for (auto& m : *messages) {
    // Without strict checking the kernel dumps every table; keep the one asked for.
    if (m.route.table != table) {
      continue;
    }
    if (m.oifIndex > 0) {
      auto it = names.find(m.oifIndex);
      m.route.device = it != names.end() ? it->second : "if" + std::to_string(m.oifIndex);
    }
    out.push_back(std::move(m.route));
  }
  return out;
}

Result<void> Rtnl::replaceRoute(const RouteInfo& route) {
  const std::string what = "add route " + route.str() + where();
  int oif = 0;
  if (!route.device.empty()) {
    auto found = getLink(route.device, what);
    if (!found) {
      return found.error();
    }
    if (!found.value()) {
      return terminal(what + ": " + errnoText(ENODEV));
    }
    oif = found.value()->link.ifindex;
  }
  auto msg = buildRouteReplace(route, oif);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return execute(std::move(msg).value(), what);
}

Result<Removal> Rtnl::deleteRoute(const RouteInfo& route) {
  const std::string what = "delete route " + route.str() + where();
  int oif = 0;
  if (!route.device.empty()) {
    auto found = getLink(route.device, what);
    if (!found) {
      return found.error();
    }
    if (!found.value()) {
      return Removal::AlreadyAbsent;  // routes through a device go with it
    }
    oif = found.value()->link.ifindex;
  }
  auto msg = buildRouteDelete(route, oif);
  if (!msg) {
    return Error{what + ": " + msg.error().message, false};
  }
  return executeRemoval(std::move(msg).value(), what, ESRCH);
}

// --- sysctl ---

namespace {

bool validSysctlKey(std::string_view key) {
  if (key.empty() || key.front() == '/' || key.back() == '/') {
    return false;
  }
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) {
      return false;
    }
  }
  // No "." or ".." path component.
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    std::string_view part =
        key.substr(start, end == std::string_view::npos ? key.npos : end - start);
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
    if (end == std::string_view::npos) {
      break;
    }
    start = end + 1;
  }
  return true;
}

std::string sysctlWhere(std::string_view netns) {
  return netns.empty() ? std::string() : " in namespace " + std::string(netns);
}

}  // namespace

// /proc/sys/net resolves against the opening thread's network namespace, so the file is opened
// inside the namespace; the open descriptor keeps pointing there afterwards.
Result<void> setSysctl(std::string_view netns, std::string_view key, std::string_view value) {
  const std::string what =
      "set sysctl " + std::string(key) + "=" + std::string(value) + sysctlWhere(netns);
  if (!validSysctlKey(key)) {
    return terminal(what + ": invalid key");
  }
  int fd = -1;
  {
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return Error{what + ": " + scope.error().message, false};
    }
    fd = ::open(("/proc/sys/" + std::string(key)).c_str(), O_WRONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    return terminal(what + ": " + errnoText(errno));
  }
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n < 0) {
    return terminal(what + ": " + errnoText(err));
  }
  if (static_cast<size_t>(n) != value.size()) {
    return terminal(what + ": short write");
  }
  return {};
}

Result<std::string> getSysctl(std::string_view netns, std::string_view key) {
  const std::string what = "read sysctl " + std::string(key) + sysctlWhere(netns);
  if (!validSysctlKey(key)) {
    return terminal(what + ": invalid key");
  }
  int fd = -1;
  {
    auto scope = NetnsScope::enter(netns);
    if (!scope) {
      return Error{what + ": " + scope.error().message, false};
    }
    fd = ::open(("/proc/sys/" + std::string(key)).c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    return terminal(what + ": " + errnoText(errno));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return terminal(what + ": " + errnoText(err));
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  while (!out.empty() && out.back() == '\n') {
    out.pop_back();
  }
  return out;
}

}  // namespace edgeplane::sys
