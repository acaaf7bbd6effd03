// The netlink attribute codec both netlink codecs share: bounds-checked readers, no kernel.
#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <array>
#include <string>
#include <vector>

#include "reconciler/system/netlink_attr.h"

namespace edgeplane::sys {
namespace {

// An RTM_NEWLINK whose attributes 1..N carry `payloads`, parsed back into tb.
struct Built {
  NlMsgPtr msg;
  std::array<nlattr*, 8> tb{};
};

Built build(const std::vector<std::string>& payloads) {
  Built b;
  b.msg.reset(nlmsg_alloc_simple(RTM_NEWLINK, 0));
  ifinfomsg ifi{};
  EXPECT_GE(nlmsg_append(b.msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO), 0);
  for (size_t i = 0; i < payloads.size(); ++i) {
    EXPECT_GE(nla_put(b.msg.get(), static_cast<int>(i + 1), static_cast<int>(payloads[i].size()),
                      payloads[i].data()),
              0);
  }
  auto r = parseAttrs(b.msg.get(), sizeof(ifinfomsg), b.tb.data(), 7, "test");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return b;
}

template <typename T>
std::string bytesOf(const T& value) {
  return std::string(reinterpret_cast<const char*>(&value), sizeof(value));
}

TEST(NetlinkAttr, ScalarsAreReadOnlyFromAttributesLongEnough) {
  const uint32_t word = 0x01020304;
  const uint16_t half = 0x0506;
  Built b = build({bytesOf(word), bytesOf(half), std::string(8, 'x')});
  EXPECT_EQ(attrU32(b.tb[1]), std::optional<uint32_t>(0x01020304));
  EXPECT_EQ(attrU32(b.tb[2]), std::nullopt);  // 2 bytes
  EXPECT_EQ(attrU32(nullptr), std::nullopt);
  EXPECT_EQ(attrExact<uint16_t>(b.tb[2]), std::optional<uint16_t>(0x0506));
  EXPECT_EQ(attrExact<uint16_t>(b.tb[1]), std::nullopt);  // 4 bytes, not 2
  EXPECT_EQ(attrExact<uint32_t>(b.tb[3]), std::nullopt);  // 8 bytes, not 4
  EXPECT_TRUE(attrExact<uint64_t>(b.tb[3]).has_value());
  EXPECT_EQ(attrExact<uint32_t>(nullptr), std::nullopt);
}

TEST(NetlinkAttr, StringsEndAtTheFirstNulOrTheAttribute) {
  Built b = build({std::string("eth0\0junk", 9), "abc"});
  EXPECT_EQ(attrString(b.tb[1]), "eth0");
  EXPECT_EQ(attrString(b.tb[2]), "abc");
}

TEST(NetlinkAttr, AddressesNeedTheirFamilysExactLength) {
  const std::array<uint8_t, 4> v4{192, 0, 2, 1};
  std::array<uint8_t, 16> v6{0x20, 0x01, 0x0d, 0xb8};
  v6[15] = 1;
  Built b = build({bytesOf(v4), bytesOf(v6), std::string(3, '\1')});
  auto a4 = attrAddress(AF_INET, b.tb[1]);
  ASSERT_TRUE(a4.has_value());
  EXPECT_EQ(a4->str(), "192.0.2.1");
  auto a6 = attrAddress(AF_INET6, b.tb[2]);
  ASSERT_TRUE(a6.has_value());
  EXPECT_EQ(a6->str(), "2001:db8::1");
  EXPECT_FALSE(attrAddress(AF_INET6, b.tb[1]).has_value());
  EXPECT_FALSE(attrAddress(AF_INET, b.tb[2]).has_value());
  EXPECT_FALSE(attrAddress(AF_INET, b.tb[3]).has_value());
  EXPECT_FALSE(addressFromBytes(AF_UNIX, v4.data(), v4.size()).has_value());
  EXPECT_EQ(addressFamily(a4->family), AF_INET);
  EXPECT_EQ(addressFamily(a6->family), AF_INET6);
}

TEST(NetlinkAttr, AMessageShorterThanItsHeaderIsAnError) {
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWLINK, 0));  // no ifinfomsg after the nlmsghdr
  std::array<nlattr*, 8> tb{};
  auto r = parseAttrs(msg.get(), sizeof(ifinfomsg), tb.data(), 7, "link");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "link message too short");
}

}  // namespace
}  // namespace edgeplane::sys
