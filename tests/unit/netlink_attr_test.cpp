// The netlink attribute codec both netlink codecs share: bounds-checked readers, no kernel.
#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netlink/attr.h>
#include <netlink/msg.h>

#include <array>
#include <cerrno>
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

// An NLMSG_ERROR as the kernel sends it: the header, the nlmsgerr (echoing a request of
// `requestLen` bytes after it unless capped) and the extended-ACK attributes.
class ErrorMessage {
 public:
  ErrorMessage(uint16_t flags, size_t requestLen) {
    nlmsghdr hdr{};
    hdr.nlmsg_type = NLMSG_ERROR;
    hdr.nlmsg_flags = flags;
    append(&hdr, sizeof(hdr));
    nlmsgerr err{};
    err.error = -EINVAL;
    err.msg.nlmsg_len = static_cast<uint32_t>(NLMSG_HDRLEN + requestLen);
    append(&err, sizeof(err));
    bytes_.resize(bytes_.size() + ((flags & NLM_F_CAPPED) != 0 ? 0 : NLMSG_ALIGN(requestLen)), 'r');
  }
  ErrorMessage& attr(uint16_t type, const void* data, size_t len, uint16_t claimedLen = 0) {
    nlattr a{};
    a.nla_type = type;
    a.nla_len = claimedLen != 0 ? claimedLen : static_cast<uint16_t>(NLA_HDRLEN + len);
    append(&a, sizeof(a));
    append(data, len);
    bytes_.resize(NLMSG_ALIGN(bytes_.size()), 0);
    return *this;
  }
  ErrorMessage& text(const std::string& t) {
    return attr(NLMSGERR_ATTR_MSG, t.c_str(), t.size() + 1);
  }
  ErrorMessage& offset(uint32_t o) { return attr(NLMSGERR_ATTR_OFFS, &o, sizeof(o)); }
  const nlmsghdr* hdr() {
    auto* h = reinterpret_cast<nlmsghdr*>(bytes_.data());
    h->nlmsg_len = static_cast<uint32_t>(bytes_.size());
    return h;
  }

 private:
  void append(const void* data, size_t len) {
    const auto* p = static_cast<const char*>(data);
    bytes_.insert(bytes_.end(), p, p + len);
  }
  std::vector<char> bytes_;
};

TEST(NetlinkExtack, TheTextAndOffsetAfterACappedOrAWholeEcho) {
  ErrorMessage capped(NLM_F_ACK_TLVS | NLM_F_CAPPED, 64);
  Extack a = parseExtack(capped.text("Unknown device type").offset(36).hdr());
  EXPECT_EQ(a.message, "Unknown device type");
  EXPECT_EQ(a.offset, 36u);

  ErrorMessage whole(NLM_F_ACK_TLVS, 42);  // the echoed request is skipped, padding included
  Extack b = parseExtack(whole.offset(20).text("Invalid argument").hdr());
  EXPECT_EQ(b.message, "Invalid argument");
  EXPECT_EQ(b.offset, 20u);
}

TEST(NetlinkExtack, NoTlvsNoText) {
  ErrorMessage plain(0, 16);
  Extack e = parseExtack(plain.text("ignored").hdr());
  EXPECT_EQ(e.message, "");
  EXPECT_FALSE(e.offset);
}

TEST(NetlinkExtack, AMalformedAttributeEndsTheReadingWithinTheMessage) {
  // An attribute claiming more than the message holds: nothing past the message is read.
  ErrorMessage over(NLM_F_ACK_TLVS | NLM_F_CAPPED, 0);
  Extack a = parseExtack(over.text("first").attr(NLMSGERR_ATTR_MSG, "x", 1, 200).hdr());
  EXPECT_EQ(a.message, "first");
  // One shorter than an attribute header.
  ErrorMessage under(NLM_F_ACK_TLVS | NLM_F_CAPPED, 0);
  Extack b = parseExtack(under.attr(NLMSGERR_ATTR_MSG, "abc", 3, 2).text("after").hdr());
  EXPECT_EQ(b.message, "");
  // An offset of the wrong size is not an offset; a text without its NUL ends with the attribute.
  ErrorMessage odd(NLM_F_ACK_TLVS | NLM_F_CAPPED, 0);
  const uint16_t shortOffset = 7;
  Extack c = parseExtack(odd.attr(NLMSGERR_ATTR_OFFS, &shortOffset, sizeof(shortOffset))
                             .attr(NLMSGERR_ATTR_MSG, "abcd", 4)
                             .hdr());
  EXPECT_FALSE(c.offset);
  EXPECT_EQ(c.message, "abcd");
  // An echoed request longer than the whole message.
  ErrorMessage lying(NLM_F_ACK_TLVS, 0);
  nlmsghdr* h = const_cast<nlmsghdr*>(lying.text("t").hdr());
  reinterpret_cast<nlmsgerr*>(reinterpret_cast<char*>(h) + NLMSG_HDRLEN)->msg.nlmsg_len = 4096;
  EXPECT_EQ(parseExtack(h).message, "");
}

}  // namespace
}  // namespace edgeplane::sys
