// rtnetlink codec round trips: every request the driver sends, built and decoded, no kernel.
#include <gtest/gtest.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <cstring>
#include <string>
#include <vector>

#include "reconciler/system/rtnl_codec.h"

namespace edgeplane::sys {
namespace {

IpPrefix prefix(std::string_view text) {
  auto p = IpPrefix::parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

IpAddress address(std::string_view text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

template <typename T>
T take(Result<T> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) {
    return T{};
  }
  return std::move(r).value();
}

// --- links ---

TEST(RtnlCodec, VethCreateCarriesPeerAndItsNamespaceFd) {
  NlMsgPtr msg = take(buildVethCreate("eph-t1", "epn-t1", 42));
  ASSERT_TRUE(msg);
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.type, RTM_NEWLINK);
  EXPECT_EQ(m.flags, NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_EQ(m.link.name, "eph-t1");
  EXPECT_EQ(m.link.ifindex, 0);
  EXPECT_EQ(m.link.kind, "veth");
  EXPECT_FALSE(m.link.up);
  EXPECT_EQ(m.link.mtu, 0u);
  EXPECT_EQ(m.changeMask, 0u);
  EXPECT_EQ(m.netnsFd, std::nullopt);  // this end stays where the socket is
  ASSERT_TRUE(m.peer.has_value());
  EXPECT_EQ(m.peer->name, "epn-t1");
  EXPECT_EQ(m.peer->netnsFd, std::optional<int>(42));
}

TEST(RtnlCodec, VethCreateInSameNamespaceHasNoFd) {
  NlMsgPtr msg = take(buildVethCreate("a", "b", -1));
  ASSERT_TRUE(msg);
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.link.name, "a");
  EXPECT_EQ(m.link.kind, "veth");
  ASSERT_TRUE(m.peer.has_value());
  EXPECT_EQ(m.peer->name, "b");
  EXPECT_EQ(m.peer->netnsFd, std::nullopt);
}

TEST(RtnlCodec, LinkNamesAreValidated) {
  EXPECT_FALSE(buildVethCreate("", "b", -1).ok());
  EXPECT_FALSE(buildVethCreate("a", "0123456789abcdef", -1).ok());  // 16 > IFNAMSIZ - 1
  EXPECT_TRUE(buildVethCreate("a", "0123456789abcde", -1).ok());    // 15 fits
  EXPECT_FALSE(buildLinkDelete("a/b").ok());
  EXPECT_FALSE(buildLinkSetUp(std::string_view("a\0b", 3), true).ok());
}

TEST(RtnlCodec, LinkSetUpAndDownChangeOnlyIffUp) {
  for (bool up : {true, false}) {
    NlMsgPtr msg = take(buildLinkSetUp("eph-t1", up));
    ASSERT_TRUE(msg);
    LinkMessage m = take(decodeLinkMessage(msg.get()));
    EXPECT_EQ(m.type, RTM_NEWLINK);
    EXPECT_EQ(m.flags, 0);  // no NLM_F_CREATE: change an existing link only
    EXPECT_EQ(m.link.name, "eph-t1");
    EXPECT_EQ(m.link.ifindex, 0);  // addressed by name
    EXPECT_EQ(m.link.up, up);
    EXPECT_EQ(m.changeMask, static_cast<uint32_t>(IFF_UP));
    EXPECT_EQ(m.link.mtu, 0u);
    EXPECT_EQ(m.link.kind, "");
    EXPECT_FALSE(m.peer.has_value());
  }
}

TEST(RtnlCodec, LinkSetMtu) {
  NlMsgPtr msg = take(buildLinkSetMtu("epn-t1", 1420));
  ASSERT_TRUE(msg);
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.type, RTM_NEWLINK);
  EXPECT_EQ(m.flags, 0);
  EXPECT_EQ(m.link.name, "epn-t1");
  EXPECT_EQ(m.link.mtu, 1420u);
  EXPECT_EQ(m.changeMask, 0u);  // flags untouched
  EXPECT_FALSE(m.link.up);
}

TEST(RtnlCodec, LinkDeleteAndGetByName) {
  NlMsgPtr del = take(buildLinkDelete("eph-t1"));
  ASSERT_TRUE(del);
  LinkMessage d = take(decodeLinkMessage(del.get()));
  EXPECT_EQ(d.type, RTM_DELLINK);
  EXPECT_EQ(d.link.name, "eph-t1");
  EXPECT_EQ(d.link.ifindex, 0);

  NlMsgPtr get = take(buildLinkGet("eph-t1"));
  ASSERT_TRUE(get);
  LinkMessage g = take(decodeLinkMessage(get.get()));
  EXPECT_EQ(g.type, RTM_GETLINK);
  EXPECT_EQ(g.link.name, "eph-t1");
}

TEST(RtnlCodec, LinkCreateByKindCarriesKindMtuAndExclusiveFlags) {
  NlMsgPtr msg = take(buildLinkCreate("wg-t1", "wireguard", 1420));
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.type, RTM_NEWLINK);
  EXPECT_EQ(m.flags, NLM_F_CREATE | NLM_F_EXCL);
  EXPECT_EQ(m.link.name, "wg-t1");
  EXPECT_EQ(m.link.ifindex, 0);
  EXPECT_EQ(m.link.kind, "wireguard");
  EXPECT_EQ(m.link.mtu, 1420u);
  EXPECT_EQ(m.netnsFd, std::nullopt);
  EXPECT_FALSE(m.peer.has_value());

  NlMsgPtr plain = take(buildLinkCreate("d0", "dummy", std::nullopt));
  LinkMessage p = take(decodeLinkMessage(plain.get()));
  EXPECT_EQ(p.link.kind, "dummy");
  EXPECT_EQ(p.link.mtu, 0u);  // not stated: the kernel's default
  EXPECT_FALSE(buildLinkCreate("bad/name", "dummy", std::nullopt).ok());
  EXPECT_FALSE(buildLinkCreate("", "dummy", std::nullopt).ok());
}

TEST(RtnlCodec, LinkMoveNamesTheLinkAndTheNamespaceFd) {
  NlMsgPtr msg = take(buildLinkMove("wg-t1", 42));
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.type, RTM_NEWLINK);
  EXPECT_EQ(m.flags & (NLM_F_CREATE | NLM_F_EXCL), 0);
  EXPECT_EQ(m.link.name, "wg-t1");
  EXPECT_EQ(m.link.kind, "");
  EXPECT_EQ(m.netnsFd, std::optional<int>(42));
  EXPECT_FALSE(buildLinkMove("bad/name", 1).ok());
}

// --- addresses ---

TEST(RtnlCodec, AddressAddAndDeleteV4AndV6) {
  for (const char* text : {"100.64.0.0/31", "100.64.0.1/31", "10.50.0.1/24", "fd00:64::/127",
                           "fd00:64::1/127", "2001:db8::5/64"}) {
    SCOPED_TRACE(text);
    const IpPrefix p = prefix(text);
    for (bool add : {true, false}) {
      NlMsgPtr msg = take(add ? buildAddressAdd(7, p) : buildAddressDelete(7, p));
      ASSERT_TRUE(msg);
      AddressMessage m = take(decodeAddressMessage(msg.get()));
      EXPECT_EQ(m.type, add ? RTM_NEWADDR : RTM_DELADDR);
      EXPECT_EQ(m.flags, add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
      EXPECT_EQ(m.ifindex, 7);
      EXPECT_EQ(m.address.prefix, p);  // host bits kept
      EXPECT_EQ(m.address.prefix.str(), text);
      EXPECT_EQ(m.address.scope, RT_SCOPE_UNIVERSE);
      EXPECT_EQ(m.address.flags, 0u);
      const auto* ifa = static_cast<const ifaddrmsg*>(nlmsg_data(nlmsg_hdr(msg.get())));
      EXPECT_EQ(ifa->ifa_family, p.address.family == IpAddress::Family::V4 ? AF_INET : AF_INET6);
    }
  }
}

// --- routes ---

struct RouteCase {
  const char* name;
  RouteInfo route;
  int oif;
  uint8_t replaceScope;
};

std::vector<RouteCase> routeCases() {
  std::vector<RouteCase> cases;
  RouteInfo viaGateway;
  viaGateway.destination = prefix("10.60.0.0/16");
  viaGateway.gateway = address("10.50.0.12");
  cases.push_back({"v4 via gateway and device", viaGateway, 7, RT_SCOPE_UNIVERSE});

  RouteInfo gatewayOnly = viaGateway;
  cases.push_back({"v4 via gateway, no device", gatewayOnly, 0, RT_SCOPE_UNIVERSE});

  RouteInfo deviceRoute;
  deviceRoute.destination = prefix("10.70.0.0/24");
  cases.push_back({"v4 device route", deviceRoute, 9, RT_SCOPE_LINK});

  RouteInfo defaultRoute;
  defaultRoute.destination = prefix("0.0.0.0/0");
  defaultRoute.gateway = address("100.64.0.0");
  cases.push_back({"v4 default", defaultRoute, 3, RT_SCOPE_UNIVERSE});

  RouteInfo v6;
  v6.destination = prefix("fd00:99::/64");
  v6.gateway = address("fd00:64::");
  v6.table = 1000;  // > 255: only RTA_TABLE can carry it
  v6.metric = 50;
  cases.push_back({"v6 via gateway, table 1000, metric 50", v6, 4, RT_SCOPE_UNIVERSE});

  RouteInfo v6Default;
  v6Default.destination = prefix("::/0");
  v6Default.gateway = address("fe80::1");
  v6Default.table = 100;
  cases.push_back({"v6 default via link-local", v6Default, 4, RT_SCOPE_UNIVERSE});

  RouteInfo blackhole;
  blackhole.destination = prefix("192.0.2.0/24");
  blackhole.type = RTN_BLACKHOLE;
  cases.push_back({"v4 blackhole", blackhole, 0, RT_SCOPE_UNIVERSE});
  return cases;
}

TEST(RtnlCodec, RouteReplaceAndDelete) {
  for (const RouteCase& c : routeCases()) {
    SCOPED_TRACE(c.name);
    for (bool replace : {true, false}) {
      NlMsgPtr msg =
          take(replace ? buildRouteReplace(c.route, c.oif) : buildRouteDelete(c.route, c.oif));
      ASSERT_TRUE(msg);
      RouteMessage m = take(decodeRouteMessage(msg.get()));
      EXPECT_EQ(m.type, replace ? RTM_NEWROUTE : RTM_DELROUTE);
      EXPECT_EQ(m.flags, replace ? NLM_F_CREATE | NLM_F_REPLACE : 0);
      EXPECT_EQ(m.scope, replace ? c.replaceScope : static_cast<uint8_t>(RT_SCOPE_NOWHERE));
      EXPECT_EQ(m.oifIndex, c.oif);
      EXPECT_EQ(m.route.destination, c.route.destination);
      EXPECT_EQ(m.route.gateway, c.route.gateway);
      EXPECT_EQ(m.route.table, c.route.table);
      EXPECT_EQ(m.route.protocol, kRouteProtocol);
      EXPECT_EQ(m.route.type, c.route.type);
      EXPECT_EQ(m.route.metric, c.route.metric);
      EXPECT_EQ(m.route.device, "");  // messages carry the index
      RouteInfo expected = c.route;
      EXPECT_EQ(m.route, expected);
    }
  }
}

TEST(RtnlCodec, RouteTableAbove255TravelsInRtaTable) {
  RouteInfo r;
  r.destination = prefix("10.0.0.0/8");
  r.table = 1000;
  NlMsgPtr msg = take(buildRouteReplace(r, 2));
  ASSERT_TRUE(msg);
  nlattr* table = nlmsg_find_attr(nlmsg_hdr(msg.get()), sizeof(rtmsg), RTA_TABLE);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(nla_get_u32(table), 1000u);
}

TEST(RtnlCodec, ForeignProtocolIsKept) {
  RouteInfo r;
  r.destination = prefix("10.99.0.0/24");
  r.gateway = address("100.64.0.0");
  r.protocol = RTPROT_STATIC;
  NlMsgPtr msg = take(buildRouteDelete(r, 0));
  ASSERT_TRUE(msg);
  RouteMessage m = take(decodeRouteMessage(msg.get()));
  EXPECT_EQ(m.route.protocol, RTPROT_STATIC);
  EXPECT_FALSE(m.route.owned());
}

TEST(RtnlCodec, RouteStr) {
  RouteInfo r;
  r.destination = prefix("10.60.0.0/16");
  r.gateway = address("10.50.0.12");
  EXPECT_EQ(r.str(), "10.60.0.0/16 via 10.50.0.12");
  r.device = "wg0";
  r.table = 100;
  r.metric = 5;
  r.protocol = RTPROT_STATIC;
  EXPECT_EQ(r.str(), "10.60.0.0/16 via 10.50.0.12 dev wg0 table 100 metric 5 proto 4");
  RouteInfo b;
  b.destination = prefix("192.0.2.0/24");
  b.type = RTN_BLACKHOLE;
  EXPECT_EQ(b.str(), "blackhole 192.0.2.0/24");
}

// --- decoding what the kernel sends (hand-built messages) ---

TEST(RtnlCodec, DecodesKernelLinkWithFlagsAndKind) {
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, NLM_F_MULTI));
  ifinfomsg ifi{};
  ifi.ifi_index = 5;
  ifi.ifi_flags = IFF_UP | IFF_RUNNING | (1U << 16);  // IFF_LOWER_UP
  ASSERT_GE(nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO), 0);
  ASSERT_GE(nla_put_string(msg.get(), IFLA_IFNAME, "wg0"), 0);
  ASSERT_GE(nla_put_u32(msg.get(), IFLA_MTU, 1420), 0);
  nlattr* info = nla_nest_start(msg.get(), IFLA_LINKINFO);
  ASSERT_GE(nla_put_string(msg.get(), IFLA_INFO_KIND, "wireguard"), 0);
  nla_nest_end(msg.get(), info);
  LinkMessage m = take(decodeLinkMessage(msg.get()));
  EXPECT_EQ(m.link.name, "wg0");
  EXPECT_EQ(m.link.ifindex, 5);
  EXPECT_EQ(m.link.kind, "wireguard");
  EXPECT_TRUE(m.link.up);
  EXPECT_TRUE(m.link.lowerUp);
  EXPECT_EQ(m.link.mtu, 1420u);
  EXPECT_EQ(m.flags, NLM_F_MULTI);
}

TEST(RtnlCodec, DecodesMultipathRouteByFirstNextHop) {
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWROUTE, NLM_F_MULTI));
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_dst_len = 24;
  rtm.rtm_table = RT_TABLE_MAIN;
  rtm.rtm_protocol = RTPROT_BOOT;
  rtm.rtm_type = RTN_UNICAST;
  ASSERT_GE(nlmsg_append(msg.get(), &rtm, sizeof(rtm), NLMSG_ALIGNTO), 0);
  ASSERT_GE(nla_put_u32(msg.get(), RTA_TABLE, RT_TABLE_MAIN), 0);
  const uint8_t dst[4] = {10, 1, 2, 0};
  ASSERT_GE(nla_put(msg.get(), RTA_DST, 4, dst), 0);
  // Two next hops, each an rtnexthop followed by its RTA_GATEWAY.
  uint8_t buf[2 * (sizeof(rtnexthop) + 8)] = {};
  for (int i = 0; i < 2; ++i) {
    auto* nh = reinterpret_cast<rtnexthop*>(buf + i * (sizeof(rtnexthop) + 8));
    nh->rtnh_len = sizeof(rtnexthop) + 8;
    nh->rtnh_ifindex = 3 + i;
    auto* gw = reinterpret_cast<rtattr*>(reinterpret_cast<uint8_t*>(nh) + sizeof(rtnexthop));
    gw->rta_len = 8;
    gw->rta_type = RTA_GATEWAY;
    const uint8_t g[4] = {10, 0, 0, static_cast<uint8_t>(1 + i)};
    std::memcpy(RTA_DATA(gw), g, 4);
  }
  ASSERT_GE(nla_put(msg.get(), RTA_MULTIPATH, sizeof(buf), buf), 0);
  RouteMessage m = take(decodeRouteMessage(msg.get()));
  EXPECT_EQ(m.route.destination.str(), "10.1.2.0/24");
  ASSERT_TRUE(m.route.gateway.has_value());
  EXPECT_EQ(m.route.gateway->str(), "10.0.0.1");
  EXPECT_EQ(m.oifIndex, 3);
  EXPECT_EQ(m.route.protocol, RTPROT_BOOT);
  EXPECT_FALSE(m.route.owned());
}

TEST(RtnlCodec, RejectsMalformedMessages) {
  // Too short for its fixed header.
  NlMsgPtr shortMsg(nlmsg_alloc_simple(RTM_NEWROUTE, 0));
  uint8_t two[2] = {AF_INET, 8};
  ASSERT_GE(nlmsg_append(shortMsg.get(), two, sizeof(two), NLMSG_ALIGNTO), 0);
  EXPECT_FALSE(decodeRouteMessage(shortMsg.get()).ok());
  EXPECT_FALSE(decodeAddressMessage(shortMsg.get()).ok());

  // An IPv4 route whose RTA_DST has 16 bytes.
  NlMsgPtr badDst(nlmsg_alloc_simple(RTM_NEWROUTE, 0));
  rtmsg rtm{};
  rtm.rtm_family = AF_INET;
  rtm.rtm_dst_len = 8;
  ASSERT_GE(nlmsg_append(badDst.get(), &rtm, sizeof(rtm), NLMSG_ALIGNTO), 0);
  const uint8_t sixteen[16] = {};
  ASSERT_GE(nla_put(badDst.get(), RTA_DST, 16, sixteen), 0);
  EXPECT_FALSE(decodeRouteMessage(badDst.get()).ok());

  // A prefix length beyond the family's bits.
  NlMsgPtr badLen(nlmsg_alloc_simple(RTM_NEWADDR, 0));
  ifaddrmsg ifa{};
  ifa.ifa_family = AF_INET;
  ifa.ifa_prefixlen = 33;
  ASSERT_GE(nlmsg_append(badLen.get(), &ifa, sizeof(ifa), NLMSG_ALIGNTO), 0);
  const uint8_t four[4] = {10, 0, 0, 1};
  ASSERT_GE(nla_put(badLen.get(), IFA_LOCAL, 4, four), 0);
  EXPECT_FALSE(decodeAddressMessage(badLen.get()).ok());

  // A veth peer attribute shorter than its ifinfomsg.
  NlMsgPtr badPeer(nlmsg_alloc_simple(RTM_NEWLINK, 0));
  ifinfomsg ifi{};
  ASSERT_GE(nlmsg_append(badPeer.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO), 0);
  nlattr* info = nla_nest_start(badPeer.get(), IFLA_LINKINFO);
  ASSERT_GE(nla_put_string(badPeer.get(), IFLA_INFO_KIND, "veth"), 0);
  nlattr* data = nla_nest_start(badPeer.get(), IFLA_INFO_DATA);
  ASSERT_GE(nla_put(badPeer.get(), VETH_INFO_PEER, 4, four), 0);
  nla_nest_end(badPeer.get(), data);
  nla_nest_end(badPeer.get(), info);
  EXPECT_FALSE(decodeLinkMessage(badPeer.get()).ok());
}

}  // namespace
}  // namespace edgeplane::sys
