// PROXY protocol: spec and real-sender vectors, round trips, decoder strictness and bounds.
#include "proxy/proxy_protocol.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace edgeplane::proxy {
namespace {

using Status = ProxyHeaderDecoder::Status;

Endpoint ep(std::string_view text) {
  std::optional<Endpoint> e = Endpoint::parse(text);
  EXPECT_TRUE(e) << text;
  return e.value_or(Endpoint{});
}

Endpoint ep(std::string_view address, uint16_t port) {
  std::optional<IpAddress> a = IpAddress::parse(address);
  EXPECT_TRUE(a) << address;
  return Endpoint{a.value_or(IpAddress{}), port};
}

std::string bytes(std::initializer_list<int> list) {
  std::string out;
  for (int b : list) {
    out.push_back(static_cast<char>(b));
  }
  return out;
}

const std::string kSig =
    bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

struct Decoded {
  Status status;
  ProxyHeaderError error;
  size_t consumed;
  ProxyHeader header;
};

Decoded decode(std::string_view input, ProxyDecoderOptions options = {}) {
  ProxyHeaderDecoder d(options);
  auto r = d.feed(input);
  EXPECT_EQ(r.consumed, d.consumed());
  return {d.status(), d.error(), d.consumed(), d.header()};
}

Decoded decodeBytewise(std::string_view input, ProxyDecoderOptions options = {}) {
  ProxyHeaderDecoder d(options);
  for (size_t i = 0; i < input.size() && d.status() == Status::NeedMore; ++i) {
    auto r = d.feed(input.substr(i, 1));
    EXPECT_EQ(r.consumed, 1u);
  }
  return {d.status(), d.error(), d.consumed(), d.header()};
}

// Whole, byte by byte and in every two-way split: the same answer.
Decoded decodeAllWays(std::string_view input, ProxyDecoderOptions options = {}) {
  Decoded whole = decode(input, options);
  Decoded bytewise = decodeBytewise(input, options);
  EXPECT_EQ(whole.status, bytewise.status);
  EXPECT_EQ(whole.error, bytewise.error);
  EXPECT_EQ(whole.consumed, bytewise.consumed);
  EXPECT_EQ(whole.header, bytewise.header);
  for (size_t k = 1; k < input.size(); ++k) {
    ProxyHeaderDecoder d(options);
    auto r1 = d.feed(input.substr(0, k));
    if (r1.status == Status::NeedMore) {
      d.feed(input.substr(k));
    }
    EXPECT_EQ(d.status(), whole.status) << "split at " << k;
    EXPECT_EQ(d.header(), whole.header) << "split at " << k;
  }
  return whole;
}

// ---------------------------------------------------------------------------------------------
// CRC32C

TEST(Crc32c, KnownVectors) {
  auto crc = [](std::string_view s) {
    return crc32c(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  };
  EXPECT_EQ(crc("123456789"), 0xE3069283u);  // the CRC-32C check value
  EXPECT_EQ(crc(""), 0u);
  EXPECT_EQ(crc(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
  EXPECT_EQ(crc(std::string(32, '\xFF')), 0x62A8AB43u);
}

// ---------------------------------------------------------------------------------------------
// v1 encoding: the spec's lines, byte for byte.

TEST(ProxyV1Encode, SpecExampleTcp4) {
  EXPECT_EQ(encodeV1(ep("192.168.0.1:56324"), ep("192.168.0.11:443")),
            "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST(ProxyV1Encode, SpecLongestTcp4AndTcp6) {
  std::string tcp4 = encodeV1(ep("255.255.255.255:65535"), ep("255.255.255.255:65535"));
  EXPECT_EQ(tcp4, "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
  EXPECT_EQ(tcp4.size(), 56u);
  std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::string tcp6 = encodeV1(ep(ffff, 65535), ep(ffff, 65535));
  EXPECT_EQ(tcp6, "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n");
  EXPECT_EQ(tcp6.size(), 104u);
}

TEST(ProxyV1Encode, Unknown) {
  EXPECT_EQ(encodeV1Unknown(), "PROXY UNKNOWN\r\n");
  EXPECT_EQ(encodeV1Unknown().size(), 15u);
}

TEST(ProxyV1Encode, Ipv6IsCanonicalAndPortZeroAllowed) {
  EXPECT_EQ(encodeV1(ep("2001:DB8:0:0:0:0:0:1", 0), ep("[::1]:8443")),
            "PROXY TCP6 2001:db8::1 ::1 0 8443\r\n");
}

TEST(ProxyV1Encode, MixedFamiliesUseMappedIpv6) {
  std::string line = encodeV1(ep("203.0.113.7:40000"), ep("[2001:db8::10]:443"));
  EXPECT_EQ(line, "PROXY TCP6 ::ffff:203.0.113.7 2001:db8::10 40000 443\r\n");
  Decoded d = decode(line);
  ASSERT_EQ(d.status, Status::Done) << toString(d.error);
  EXPECT_EQ(d.header.source->str(), "[::ffff:203.0.113.7]:40000");
}

// ---------------------------------------------------------------------------------------------
// v2 encoding: byte-exact per section 2.2.

TEST(ProxyV2Encode, Tcp4SpecExampleAddresses) {
  std::optional<std::string> h = encodeV2(ep("192.168.0.1:56324"), ep("192.168.0.11:443"));
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, kSig + bytes({0x21, 0x11, 0x00, 0x0C, 192, 168, 0, 1, 192, 168, 0, 11, 0xDC, 0x04,
                              0x01, 0xBB}));
}

TEST(ProxyV2Encode, MatchesWhatHaproxySends) {
  // HAProxy's send-proxy-v2 for 172.19.0.1:42578 -> 172.19.0.3:80, captured on the wire.
  std::string haproxy = kSig + bytes({0x21, 0x11, 0x00, 0x0C, 0xAC, 0x13, 0x00, 0x01, 0xAC, 0x13,
                                      0x00, 0x03, 0xA6, 0x52, 0x00, 0x50});
  EXPECT_EQ(encodeV2(ep("172.19.0.1:42578"), ep("172.19.0.3:80")), haproxy);
  Decoded d = decodeAllWays(haproxy);
  ASSERT_EQ(d.status, Status::Done);
  EXPECT_EQ(d.header.source, ep("172.19.0.1:42578"));
  EXPECT_EQ(d.header.destination, ep("172.19.0.3:80"));
}

TEST(ProxyV2Encode, Tcp6) {
  std::optional<std::string> h = encodeV2(ep("[2001:db8::1]:1"), ep("[2001:db8::2]:65535"));
  ASSERT_TRUE(h);
  std::string want = kSig + bytes({0x21, 0x21, 0x00, 0x24});
  want += bytes({0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
  want += bytes({0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2});
  want += bytes({0x00, 0x01, 0xFF, 0xFF});
  EXPECT_EQ(*h, want);
}

TEST(ProxyV2Encode, MixedFamiliesUseMappedIpv6) {
  std::optional<std::string> h = encodeV2(ep("[2001:db8::1]:1000"), ep("10.0.0.1:443"));
  ASSERT_TRUE(h);
  Decoded d = decode(*h);
  ASSERT_EQ(d.status, Status::Done);
  EXPECT_EQ(d.header.family, ProxyHeader::Family::Inet6);
  EXPECT_EQ(d.header.destination, ep("[::ffff:10.0.0.1]:443"));
}

TEST(ProxyV2Encode, AuthorityTlvCarriesTheSni) {
  ProxyTlvView tlvs[] = {{kPp2TypeAuthority, "www.example.com"}};
  std::optional<std::string> h = encodeV2(ep("192.0.2.1:5000"), ep("198.51.100.2:443"), tlvs);
  ASSERT_TRUE(h);
  std::string want = kSig + bytes({0x21, 0x11, 0x00, 12 + 3 + 15, 192, 0, 2, 1, 198, 51, 100, 2,
                                   0x13, 0x88, 0x01, 0xBB, 0x02, 0x00, 0x0F});
  want += "www.example.com";
  EXPECT_EQ(*h, want);
  Decoded d = decodeAllWays(*h);
  ASSERT_EQ(d.status, Status::Done);
  ASSERT_NE(d.header.findTlv(kPp2TypeAuthority), nullptr);
  EXPECT_EQ(d.header.findTlv(kPp2TypeAuthority)->value, "www.example.com");
  EXPECT_EQ(d.header.findTlv(kPp2TypeAlpn), nullptr);
}

TEST(ProxyV2Encode, Local) {
  EXPECT_EQ(encodeV2Local(), kSig + bytes({0x20, 0x00, 0x00, 0x00}));
  Decoded d = decodeAllWays(encodeV2Local());
  ASSERT_EQ(d.status, Status::Done);
  EXPECT_EQ(d.header.command, ProxyHeader::Command::Local);
  EXPECT_FALSE(d.header.source);
}

TEST(ProxyV2Encode, Crc32cIsVerifiedAndTamperingDetected) {
  ProxyTlvView tlvs[] = {{kPp2TypeAuthority, "a.example.com"}, {kPp2TypeAlpn, "h2"}};
  std::optional<std::string> h =
      encodeV2(ep("192.0.2.1:5000"), ep("198.51.100.2:443"), tlvs, /*withCrc32c=*/true);
  ASSERT_TRUE(h);
  Decoded d = decodeAllWays(*h);
  ASSERT_EQ(d.status, Status::Done) << toString(d.error);
  ASSERT_EQ(d.header.tlvs.size(), 3u);
  EXPECT_EQ(d.header.tlvs[2].type, kPp2TypeCrc32c);
  for (size_t i = 0; i < h->size(); ++i) {
    if ((i >= 12 && i < 16) || i == h->size() - 7) {
      // The fixed header has its own checks; and a CRC TLV whose type is changed is no longer
      // a checksum at all, which no checksum can detect.
      continue;
    }
    std::string bad = *h;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Decoded b = decode(bad);
    EXPECT_EQ(b.status, Status::Error) << "byte " << i;
  }
}

TEST(ProxyV2Encode, SizeLimits) {
  std::string big(65535 - 12 - 3, 'x');
  ProxyTlvView fits[] = {{0xE0, big}};
  std::optional<std::string> h = encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"), fits);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->size(), 16u + 65535u);
  Decoded d = decode(*h);
  ASSERT_EQ(d.status, Status::Done);
  EXPECT_EQ(d.header.tlvs[0].value.size(), big.size());
  big.push_back('x');
  ProxyTlvView tooBig[] = {{0xE0, big}};
  EXPECT_FALSE(encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"), tooBig));
  ProxyTlvView withCrc[] = {{0xE0, std::string_view(big).substr(1)}};
  EXPECT_FALSE(encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"), withCrc, true));
  ProxyTlvView callerCrc[] = {{kPp2TypeCrc32c, "abcd"}};
  EXPECT_FALSE(encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"), callerCrc));
}

// ---------------------------------------------------------------------------------------------
// Round trips.

TEST(ProxyRoundTrip, V1AndV2ForManyAddressPairs) {
  std::vector<std::pair<Endpoint, Endpoint>> pairs = {
      {ep("127.0.0.1:1"), ep("127.0.0.1:443")},
      {ep("0.0.0.0", 0), ep("255.255.255.255:65535")},
      {ep("[::1]:12345"), ep("[::1]:443")},
      {ep("[fe80::1:2:3:4]:9"), ep("[2001:db8:ffff::]:80")},
      {ep("::", 0), ep("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")},
      {ep("[::ffff:1.2.3.4]:5"), ep("[::ffff:5.6.7.8]:6")},
  };
  for (const auto& [src, dst] : pairs) {
    SCOPED_TRACE(src.str() + " -> " + dst.str());
    std::string v1 = encodeV1(src, dst);
    Decoded d1 = decodeAllWays(v1);
    ASSERT_EQ(d1.status, Status::Done) << toString(d1.error);
    EXPECT_EQ(d1.consumed, v1.size());
    EXPECT_EQ(d1.header.version, ProxyHeader::Version::V1);
    EXPECT_EQ(d1.header.transport, ProxyHeader::Transport::Stream);
    EXPECT_EQ(d1.header.source, src);
    EXPECT_EQ(d1.header.destination, dst);

    ProxyTlvView tlvs[] = {{kPp2TypeAuthority, "x.example.com"}, {kPp2TypeNoop, ""}};
    std::optional<std::string> v2 = encodeV2(src, dst, tlvs, true);
    ASSERT_TRUE(v2);
    Decoded d2 = decodeAllWays(*v2);
    ASSERT_EQ(d2.status, Status::Done) << toString(d2.error);
    EXPECT_EQ(d2.consumed, v2->size());
    EXPECT_EQ(d2.header.version, ProxyHeader::Version::V2);
    EXPECT_EQ(d2.header.command, ProxyHeader::Command::Proxy);
    EXPECT_EQ(d2.header.source, src);
    EXPECT_EQ(d2.header.destination, dst);
    ASSERT_EQ(d2.header.tlvs.size(), 3u);
    EXPECT_EQ(d2.header.tlvs[0], (ProxyTlv{kPp2TypeAuthority, "x.example.com"}));
    EXPECT_EQ(d2.header.tlvs[1], (ProxyTlv{kPp2TypeNoop, ""}));
  }
}

TEST(ProxyRoundTrip, PayloadAfterTheHeaderIsLeftAlone) {
  std::string tls = bytes({0x16, 0x03, 0x01, 0x00, 0x05});
  for (std::string header :
       {encodeV1(ep("1.2.3.4:1"), ep("5.6.7.8:2")), *encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2")),
        encodeV2Local(), encodeV1Unknown()}) {
    ProxyHeaderDecoder d;
    auto r = d.feed(header + tls);
    EXPECT_EQ(r.status, Status::Done);
    EXPECT_EQ(r.consumed, header.size());
    auto again = d.feed(tls);
    EXPECT_EQ(again.status, Status::Done);
    EXPECT_EQ(again.consumed, 0u);
  }
}

TEST(ProxyRoundTrip, ResetAllowsReuse) {
  ProxyHeaderDecoder d;
  ASSERT_EQ(d.feed(std::string_view("GET /")).status, Status::Error);
  d.reset();
  ASSERT_EQ(d.feed(encodeV1(ep("1.2.3.4:1"), ep("5.6.7.8:2"))).status, Status::Done);
  d.reset();
  EXPECT_EQ(d.consumed(), 0u);
  std::string v2 = *encodeV2(ep("[::1]:1"), ep("[::2]:2"));
  for (char c : v2) {
    d.feed(std::string_view(&c, 1));
  }
  EXPECT_EQ(d.status(), Status::Done);
  EXPECT_EQ(d.header().source, ep("[::1]:1"));
}

// ---------------------------------------------------------------------------------------------
// v1 decoding.

TEST(ProxyV1Decode, SpecLines) {
  Decoded d = decodeAllWays("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n");
  ASSERT_EQ(d.status, Status::Done);
  EXPECT_EQ(d.consumed, 47u);
  EXPECT_EQ(d.header.source, ep("192.168.0.1:56324"));
  EXPECT_EQ(d.header.destination, ep("192.168.0.11:443"));
  EXPECT_EQ(d.header.family, ProxyHeader::Family::Inet);

  Decoded unknown = decodeAllWays("PROXY UNKNOWN\r\n");
  ASSERT_EQ(unknown.status, Status::Done);
  EXPECT_EQ(unknown.header.family, ProxyHeader::Family::Unspec);
  EXPECT_FALSE(unknown.header.source);

  // The worst case of section 2.1: exactly 107 bytes, the rest ignored after UNKNOWN.
  std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::string worst = "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n";
  ASSERT_EQ(worst.size(), 107u);
  Decoded w = decodeAllWays(worst);
  ASSERT_EQ(w.status, Status::Done);
  EXPECT_EQ(w.consumed, 107u);
  EXPECT_FALSE(w.header.source);

  std::string tcp6 = "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n";
  Decoded t6 = decodeAllWays(tcp6);
  ASSERT_EQ(t6.status, Status::Done);
  EXPECT_EQ(t6.header.family, ProxyHeader::Family::Inet6);
  EXPECT_EQ(t6.header.source->port, 65535);
}

TEST(ProxyV1Decode, StrictnessTable) {
  struct Case {
    std::string input;
    ProxyHeaderError want;
  };
  std::vector<Case> cases = {
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY UNKNOWNX\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY UNKNOWN\tx\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x80\r\n", ProxyHeaderError::V1Syntax},
      {std::string("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33), ProxyHeaderError::V1Syntax},
      {"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP4 ::1 ::1 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP6 [::1] ::1 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP6 1::2::3 ::1 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP4 example.com 5.6.7.8 1 2\r\n", ProxyHeaderError::V1Address},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", ProxyHeaderError::V1Port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", ProxyHeaderError::V1Port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", ProxyHeaderError::V1Port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", ProxyHeaderError::V1Port},
      {"PROXY TCP4 1.2.3.4 5.6.7.8 1 999999\r\n", ProxyHeaderError::V1Port},
      {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", ProxyHeaderError::NotProxy},
      {"PROXZ", ProxyHeaderError::NotProxy},
      {"GET / HTTP/1.1\r\n", ProxyHeaderError::NotProxy},
      {"\x16\x03\x01", ProxyHeaderError::NotProxy},
  };
  for (const Case& c : cases) {
    Decoded d = decodeAllWays(c.input);
    EXPECT_EQ(d.status, Status::Error) << c.input;
    EXPECT_EQ(d.error, c.want) << c.input << ": got " << toString(d.error);
  }
}

TEST(ProxyV1Decode, AcceptedEdgeCases) {
  for (std::string line :
       {"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", "PROXY TCP6 ::ffff:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 2001:DB8::1 ::1 1 2\r\n", "PROXY UNKNOWN \r\n",
        "PROXY UNKNOWN anything at all, 1 2 3\r\n"}) {
    EXPECT_EQ(decodeAllWays(line).status, Status::Done) << line;
  }
}

TEST(ProxyV1Decode, LineParserDirectly) {
  ProxyHeader h;
  EXPECT_EQ(parseProxyV1Line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", h), ProxyHeaderError::None);
  EXPECT_EQ(h.source, ep("1.2.3.4:1"));
  EXPECT_EQ(parseProxyV1Line("PROXX TCP4 1.2.3.4 5.6.7.8 1 2", h), ProxyHeaderError::NotProxy);
  EXPECT_FALSE(h.source);
  EXPECT_EQ(parseProxyV1Line("PROXY TCP", h), ProxyHeaderError::V1Syntax);
  EXPECT_EQ(parseProxyV1Line("PROXY UNKNOWN", h), ProxyHeaderError::None);
  EXPECT_EQ(parseProxyV1Line("PROXY UNKNOWN!", h), ProxyHeaderError::V1Syntax);
}

TEST(ProxyV1Decode, NoCrlfWithin107Bytes) {
  std::string line = "PROXY UNKNOWN " + std::string(92, 'x') + "\r";  // 107 bytes, no LF
  ASSERT_EQ(line.size(), 107u);
  Decoded d = decodeAllWays(line + "\n");
  EXPECT_EQ(d.status, Status::Error);
  EXPECT_EQ(d.error, ProxyHeaderError::V1TooLong);
  EXPECT_EQ(d.consumed, 107u);
  // Endless garbage is cut off at 107 bytes whatever follows.
  Decoded endless = decode("PROXY UNKNOWN " + std::string(5000, 'y'));
  EXPECT_EQ(endless.error, ProxyHeaderError::V1TooLong);
  EXPECT_EQ(endless.consumed, 107u);
}

TEST(ProxyV1Decode, RefusedAsEarlyAsPossible) {
  EXPECT_EQ(decode("GET / HTTP/1.1").consumed, 1u);
  EXPECT_EQ(decode("PROXY TCP9 1.2.3.4").consumed, 10u);
  EXPECT_EQ(decode("PROXY X").consumed, 7u);
}

TEST(ProxyV1Decode, EveryPrefixNeedsMore) {
  std::string ffff = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  for (std::string line : {encodeV1(ep("192.168.0.1:56324"), ep("192.168.0.11:443")),
                           "PROXY TCP6 " + ffff + " " + ffff + " 65535 65535\r\n",
                           "PROXY UNKNOWN " + ffff + " " + ffff + " 65535 65535\r\n"}) {
    for (size_t n = 0; n < line.size(); ++n) {
      Decoded d = decode(std::string_view(line).substr(0, n));
      ASSERT_EQ(d.status, Status::NeedMore) << n << ": " << toString(d.error);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// v2 decoding.

std::string v2(int verCmd, int fam, const std::string& payload) {
  return kSig +
         bytes({verCmd, fam, static_cast<int>(payload.size() >> 8),
                static_cast<int>(payload.size() & 0xFF)}) +
         payload;
}

const std::string kInetAddrs = bytes({10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x01, 0xBB});

TEST(ProxyV2Decode, AwsNlbHeaderWithCrc32cAndVendorTlvs) {
  // As an AWS Network Load Balancer sends it: CRC32C, the VPC endpoint id (type 0xEA,
  // subtype 0x01), then NOOP padding.
  std::string nlb = kSig + bytes({0x21, 0x11, 0x00, 0x54, 0xAC, 0x1F, 0x07, 0x71, 0xAC,
                                  0x1F, 0x0A, 0x1F, 0xC8, 0xF2, 0x00, 0x50, 0x03, 0x00,
                                  0x04, 0xE8, 0xD6, 0x89, 0x2D, 0xEA, 0x00, 0x17, 0x01});
  nlb += "vpce-08d2bf15fac5001c9";
  nlb += bytes({0x04, 0x00, 0x24});
  nlb += std::string(36, '\0');
  Decoded d = decodeAllWays(nlb);
  ASSERT_EQ(d.status, Status::Done) << toString(d.error);
  EXPECT_EQ(d.consumed, nlb.size());
  EXPECT_EQ(d.header.source, ep("172.31.7.113:51442"));
  EXPECT_EQ(d.header.destination, ep("172.31.10.31:80"));
  ASSERT_EQ(d.header.tlvs.size(), 3u);
  EXPECT_EQ(d.header.tlvs[0].type, kPp2TypeCrc32c);
  EXPECT_EQ(d.header.tlvs[1].type, 0xEA);
  EXPECT_EQ(d.header.tlvs[1].value, "\x01vpce-08d2bf15fac5001c9");
  EXPECT_EQ(d.header.tlvs[2].type, kPp2TypeNoop);
  std::string tampered = nlb;
  tampered[45] = 'W';  // inside the VPC endpoint id
  EXPECT_EQ(decode(tampered).error, ProxyHeaderError::V2Checksum);
}

TEST(ProxyV2Decode, FamiliesAndTransports) {
  Decoded udp = decodeAllWays(v2(0x21, 0x12, kInetAddrs));
  ASSERT_EQ(udp.status, Status::Done);
  EXPECT_EQ(udp.header.transport, ProxyHeader::Transport::Dgram);
  EXPECT_EQ(udp.header.source, ep("10.0.0.1:12345"));

  std::string unixAddrs(216, 'u');
  Decoded unix = decodeAllWays(v2(0x21, 0x31, unixAddrs + bytes({0x02, 0x00, 0x01, 'a'})));
  ASSERT_EQ(unix.status, Status::Done);
  EXPECT_EQ(unix.header.family, ProxyHeader::Family::Unix);
  EXPECT_FALSE(unix.header.source);
  ASSERT_EQ(unix.header.tlvs.size(), 1u);
  EXPECT_EQ(unix.header.tlvs[0].value, "a");

  // PROXY over UNSPEC: accepted, block ignored (whatever it holds).
  Decoded unspec = decodeAllWays(v2(0x21, 0x00, "junk"));
  ASSERT_EQ(unspec.status, Status::Done);
  EXPECT_EQ(unspec.header.family, ProxyHeader::Family::Unspec);
  EXPECT_FALSE(unspec.header.source);
  EXPECT_TRUE(unspec.header.tlvs.empty());

  // LOCAL: the block is skipped by its length even when it is not empty or not valid.
  Decoded local = decodeAllWays(v2(0x20, 0x11, kInetAddrs + bytes({0xFF})));
  ASSERT_EQ(local.status, Status::Done);
  EXPECT_EQ(local.header.command, ProxyHeader::Command::Local);
  EXPECT_FALSE(local.header.source);
  EXPECT_EQ(local.consumed, 16u + 13u);
  EXPECT_EQ(decodeAllWays(v2(0x20, 0x11, "short")).status, Status::Done);
}

TEST(ProxyV2Decode, StrictnessTable) {
  struct Case {
    std::string name;
    std::string input;
    ProxyHeaderError want;
  };
  std::vector<Case> cases = {
      {"signature", kSig.substr(0, 5) + "X", ProxyHeaderError::NotProxy},
      {"version 1", v2(0x11, 0x11, kInetAddrs), ProxyHeaderError::V2Version},
      {"version 3", v2(0x31, 0x11, kInetAddrs), ProxyHeaderError::V2Version},
      {"command 2", v2(0x22, 0x11, kInetAddrs), ProxyHeaderError::V2Command},
      {"command 15", v2(0x2F, 0x11, kInetAddrs), ProxyHeaderError::V2Command},
      {"family 4", v2(0x21, 0x41, kInetAddrs), ProxyHeaderError::V2Family},
      {"transport 3", v2(0x21, 0x13, kInetAddrs), ProxyHeaderError::V2Family},
      {"inet unspec transport", v2(0x21, 0x10, kInetAddrs), ProxyHeaderError::V2Family},
      {"unspec with transport", v2(0x21, 0x01, kInetAddrs), ProxyHeaderError::V2Family},
      {"inet too short", v2(0x21, 0x11, kInetAddrs.substr(0, 11)),
       ProxyHeaderError::V2AddressLength},
      {"inet6 too short", v2(0x21, 0x21, std::string(35, '\0')), ProxyHeaderError::V2AddressLength},
      {"unix too short", v2(0x21, 0x31, std::string(215, '\0')), ProxyHeaderError::V2AddressLength},
      {"tlv header cut", v2(0x21, 0x11, kInetAddrs + bytes({0x02, 0x00})), ProxyHeaderError::V2Tlv},
      {"tlv value past end", v2(0x21, 0x11, kInetAddrs + bytes({0x02, 0x00, 0x02, 'a'})),
       ProxyHeaderError::V2Tlv},
      {"crc32c of 3 bytes", v2(0x21, 0x11, kInetAddrs + bytes({0x03, 0x00, 0x03, 1, 2, 3})),
       ProxyHeaderError::V2Tlv},
      {"wrong crc32c", v2(0x21, 0x11, kInetAddrs + bytes({0x03, 0x00, 0x04, 1, 2, 3, 4})),
       ProxyHeaderError::V2Checksum},
  };
  for (const Case& c : cases) {
    Decoded d = decodeAllWays(c.input);
    EXPECT_EQ(d.status, Status::Error) << c.name;
    EXPECT_EQ(d.error, c.want) << c.name << ": got " << toString(d.error);
  }
}

TEST(ProxyV2Decode, TwoChecksumsAreRefused) {
  std::string once = *encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"), {}, true);
  // Append a second (zero) CRC TLV and fix up the length: ambiguous, refused.
  std::string twice = once + bytes({0x03, 0x00, 0x04, 0, 0, 0, 0});
  twice[15] = static_cast<char>(twice[15] + 7);
  EXPECT_EQ(decode(twice).error, ProxyHeaderError::V2Tlv);
}

TEST(ProxyV2Decode, Caps) {
  std::string three = kInetAddrs + bytes({0x04, 0, 0, 0x04, 0, 0, 0x04, 0, 0});
  EXPECT_EQ(decode(v2(0x21, 0x11, three), {.maxTlvs = 3}).status, Status::Done);
  EXPECT_EQ(decode(v2(0x21, 0x11, three), {.maxTlvs = 2}).error, ProxyHeaderError::V2TooManyTlvs);
  // The length cap is enforced from the 16-byte header, before any payload is buffered.
  std::string big = v2(0x21, 0x11, kInetAddrs + bytes({0x04, 0x03, 0xE8}) + std::string(1000, 0));
  Decoded capped = decode(big.substr(0, 16), {.maxV2Payload = 512});
  EXPECT_EQ(capped.error, ProxyHeaderError::V2TooLarge);
  EXPECT_EQ(capped.consumed, 16u);
  EXPECT_EQ(decode(big, {.maxV2Payload = 1015}).status, Status::Done);
}

TEST(ProxyV2Decode, EveryPrefixNeedsMore) {
  ProxyTlvView tlvs[] = {{kPp2TypeAuthority, "x.example.com"}};
  std::string h = *encodeV2(ep("[2001:db8::1]:1"), ep("[2001:db8::2]:2"), tlvs, true);
  for (size_t n = 0; n < h.size(); ++n) {
    ASSERT_EQ(decode(std::string_view(h).substr(0, n)).status, Status::NeedMore) << n;
  }
}

TEST(ProxyDecoderOptions, VersionsCanBeRestricted) {
  std::string v1line = encodeV1(ep("1.2.3.4:1"), ep("5.6.7.8:2"));
  std::string v2hdr = *encodeV2(ep("1.2.3.4:1"), ep("5.6.7.8:2"));
  EXPECT_EQ(decode(v1line, {.acceptV1 = false}).error, ProxyHeaderError::NotProxy);
  EXPECT_EQ(decode(v1line, {.acceptV1 = false}).consumed, 1u);
  EXPECT_EQ(decode(v2hdr, {.acceptV1 = false}).status, Status::Done);
  EXPECT_EQ(decode(v2hdr, {.acceptV2 = false}).error, ProxyHeaderError::NotProxy);
  EXPECT_EQ(decode(v1line, {.acceptV2 = false}).status, Status::Done);
}

TEST(ProxyDecoder, RandomBytesNeverCrash) {
  std::mt19937 rng(11);
  for (int i = 0; i < 5000; ++i) {
    std::string junk(rng() % 128, '\0');
    for (char& c : junk) {
      c = static_cast<char>(rng());
    }
    if (!junk.empty()) {
      if (i % 3 == 0) {
        junk = kSig + junk;
      } else if (i % 3 == 1) {
        junk = "PROXY " + junk;
      }
    }
    decodeBytewise(junk);
  }
}

TEST(ProxyHeaderErrors, EveryReasonHasADistinctName) {
  std::vector<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(ProxyHeaderError::V2Checksum); ++i) {
    std::string_view name = toString(static_cast<ProxyHeaderError>(i));
    EXPECT_NE(name, "unknown");
    EXPECT_EQ(std::find(seen.begin(), seen.end(), name), seen.end()) << name;
    seen.push_back(name);
  }
}

}  // namespace
}  // namespace edgeplane::proxy
