// Unit tests for the strict network value parsers in schema/net.h.
#include "schema/net.h"
#include "schema/encoding.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace edgeplane {
namespace {

using namespace std::chrono_literals;

IpAddress ip(std::string_view text) {
  auto a = IpAddress::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

IpPrefix prefix(std::string_view text) {
  auto p = IpPrefix::parse(text);
  EXPECT_TRUE(p.has_value()) << text;
  return p.value_or(IpPrefix{});
}

// IpAddress

TEST(NetIpAddress, ParsesDottedQuad) {
  auto a = IpAddress::parse("10.50.0.12");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, IpAddress::Family::V4);
  EXPECT_EQ(a->bits(), 32);
  EXPECT_EQ(a->v4HostOrder(), 0x0A32000Cu);
  EXPECT_EQ(a->str(), "10.50.0.12");
  // Bytes past the first four stay zero, so defaulted comparison is meaningful.
  for (size_t i = 4; i < 16; ++i) {
    EXPECT_EQ(a->bytes[i], 0) << i;
  }
  EXPECT_EQ(ip("0.0.0.0").str(), "0.0.0.0");
  EXPECT_EQ(ip("255.255.255.255").v4HostOrder(), 0xFFFFFFFFu);
  EXPECT_EQ(ip("192.168.100.1").str(), "192.168.100.1");
}

TEST(NetIpAddress, Ipv4TextIsWhatInetNtopWrites) {
  for (unsigned v = 0; v < 256; ++v) {
    for (size_t at = 0; at < 4; ++at) {
      IpAddress a = ip("10.200.3.40");
      a.bytes[at] = static_cast<uint8_t>(v);
      char want[INET_ADDRSTRLEN] = {};
      ASSERT_NE(inet_ntop(AF_INET, a.bytes.data(), want, sizeof(want)), nullptr);
      EXPECT_EQ(a.str(), want);
    }
  }
}

TEST(NetIpAddress, RejectsMalformedIpv4) {
  for (const char* bad : {
           "",
           "010.1.1.1",         // leading zero (octal in some libcs)
           "10.01.1.1",         // leading zero
           "10.1.1.00",         // leading zero
           "256.1.1.1",         // octet out of range
           "1.2.3.1000",        // too many digits
           "1.2.3",             // truncated
           "1.2.3.",            // trailing dot
           ".1.2.3",            // leading dot
           "1..2.3",            // empty octet
           "1.2.3.4.5",         // too many octets
           "1.2.3.4.",          // trailing dot after a full quad
           " 1.2.3.4",          // whitespace
           "1.2.3.4 ",          // whitespace
           "1.2.3.4\n",         // newline
           "+1.2.3.4",          // sign
           "1.2.-3.4",          // sign
           "0x0a.1.1.1",        // hex
           "10",                // inet_aton shorthand
           "10.1",              // inet_aton shorthand
           "a.b.c.d",           // letters
           "1.2.3.4/32",        // a prefix is not an address
           "1.2.3.4:22",        // an endpoint is not an address
           "localhost",         // a name is not an address
           "99999999999.1.1.1"  // would overflow a naive parser
       }) {
    EXPECT_FALSE(IpAddress::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetIpAddress, ParsesIpv6Canonically) {
  auto a = IpAddress::parse("fd00::1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->family, IpAddress::Family::V6);
  EXPECT_EQ(a->bits(), 128);
  EXPECT_EQ(a->bytes[0], 0xFD);
  EXPECT_EQ(a->bytes[15], 0x01);
  EXPECT_EQ(a->str(), "fd00::1");

  EXPECT_EQ(ip("::").str(), "::");
  EXPECT_EQ(ip("::1").str(), "::1");
  EXPECT_EQ(ip("FD00:0:0:0:0:0:0:1").str(), "fd00::1");
  EXPECT_EQ(ip("2001:0db8:0000:0000:0000:0000:0000:0001").str(), "2001:db8::1");
  EXPECT_EQ(ip("2001:db8:0:1:0:0:0:1").str(), "2001:db8:0:1::1");
  EXPECT_EQ(ip("::ffff:10.1.2.3").str(), "::ffff:10.1.2.3");
  EXPECT_EQ(ip("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").str(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
}

TEST(NetIpAddress, RejectsMalformedIpv6) {
  for (const char* bad : {
           ":", ":::",
           "fd00::1::2",         // two "::"
           "fd00:1",             // too few groups
           "1:2:3:4:5:6:7:8:9",  // too many groups
           "fd00::12345",        // group too long
           "fd00::g",            // not hex
           "fd00::1%eth0",       // zone id
           "fe80::1%1",          // numeric zone id
           "[fd00::1]",          // brackets belong to endpoints
           " fd00::1",           // whitespace
           "fd00::1 ",           // whitespace
           "fd00::1/64",         // a prefix
           "::ffff:010.1.2.3",   // leading zero in embedded IPv4
           "::ffff:256.1.2.3",   // out of range embedded IPv4
           "::ffff:1.2.3",       // truncated embedded IPv4
           "-::1",               // sign
           "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb",  // longer than any address
       }) {
    EXPECT_FALSE(IpAddress::parse(bad)) << "'" << bad << "'";
  }
  // An embedded NUL must not truncate the text that inet_pton sees.
  EXPECT_FALSE(IpAddress::parse(std::string_view("::1\0garbage", 11)));
  EXPECT_FALSE(IpAddress::parse(std::string_view("1.2.3.4\0", 8)));
  // Very long input is rejected without overrunning any buffer.
  EXPECT_FALSE(IpAddress::parse(std::string(1000, ':')));
  EXPECT_FALSE(IpAddress::parse(std::string(1000, '1')));
}

TEST(NetIpAddress, V4HostOrderRoundTrip) {
  for (uint32_t v : {0u, 1u, 0x0A320001u, 0x7F000001u, 0xC0A80101u, 0xFFFFFFFFu}) {
    IpAddress a = IpAddress::v4(v);
    EXPECT_EQ(a.family, IpAddress::Family::V4);
    EXPECT_EQ(a.v4HostOrder(), v);
    EXPECT_EQ(IpAddress::parse(a.str()), a);
  }
  EXPECT_EQ(IpAddress::v4(0x0A320001u).str(), "10.50.0.1");
  EXPECT_EQ(IpAddress::v4(0x0A320001u), ip("10.50.0.1"));
}

TEST(NetIpAddress, RoundTripsAndOrders) {
  for (const char* text :
       {"1.2.3.4", "10.0.0.255", "fd00::1", "::", "2001:db8::8:800:200c:417a", "::ffff:1.2.3.4"}) {
    IpAddress a = ip(text);
    EXPECT_EQ(IpAddress::parse(a.str()), a) << text;
  }
  EXPECT_LT(ip("10.0.0.1"), ip("10.0.0.2"));
  EXPECT_NE(ip("10.0.0.1"), ip("::ffff:10.0.0.1"));  // different families never compare equal
}

// IpPrefix

TEST(NetIpPrefix, ParsesAndKeepsHostBits) {
  auto p = IpPrefix::parse("10.50.0.1/24");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->address, ip("10.50.0.1"));
  EXPECT_EQ(p->length, 24);
  EXPECT_EQ(p->str(), "10.50.0.1/24");
  EXPECT_EQ(p->network().str(), "10.50.0.0/24");
  EXPECT_EQ(p->network().length, 24);

  EXPECT_EQ(prefix("0.0.0.0/0").str(), "0.0.0.0/0");
  EXPECT_EQ(prefix("10.1.2.3/32").network().str(), "10.1.2.3/32");
  EXPECT_EQ(prefix("10.1.2.3/0").network().str(), "0.0.0.0/0");
  EXPECT_EQ(prefix("10.255.255.255/9").network().str(), "10.128.0.0/9");
  EXPECT_EQ(prefix("172.31.255.1/12").network().str(), "172.16.0.0/12");
  EXPECT_EQ(prefix("fd00:1:2:3::9/64").str(), "fd00:1:2:3::9/64");
  EXPECT_EQ(prefix("fd00:1:2:3::9/64").network().str(), "fd00:1:2:3::/64");
  EXPECT_EQ(prefix("fd00:1:2:3::9/63").network().str(), "fd00:1:2:2::/63");
  EXPECT_EQ(prefix("fd00:1:2:3::9/128").network().str(), "fd00:1:2:3::9/128");
  EXPECT_EQ(prefix("ffff::ffff/1").network().str(), "8000::/1");
  EXPECT_EQ(prefix("::/0").str(), "::/0");
}

TEST(NetIpPrefix, RejectsMalformed) {
  for (const char* bad : {
           "",
           "10.0.0.1",                       // length is required
           "10.0.0.1/",                      // empty length
           "/24",                            // empty address
           "10.0.0.1/33",                    // too long for v4
           "fd00::/129",                     // too long for v6
           "10.0.0.1/024",                   // leading zero
           "10.0.0.1/00",                    // leading zero
           "10.0.0.1/+24",                   // sign
           "10.0.0.1/-1",                    // negative
           "10.0.0.1/24 ",                   // whitespace
           "10.0.0.1 /24",                   // whitespace
           "10.0.0.1/ 24",                   // whitespace
           "10.0.0.1/24/8",                  // two slashes
           "10.0.0.1/2a",                    // not decimal
           "010.0.0.1/24",                   // bad address
           "10.0.0.1/99999999999999999999",  // would overflow
           "fd00::1%eth0/64",                // zone id
       }) {
    EXPECT_FALSE(IpPrefix::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetIpPrefix, RoundTrips) {
  for (const char* text : {"10.50.0.1/24", "0.0.0.0/0", "255.255.255.255/32", "fd00::1/64", "::/0",
                           "2001:db8::/32", "fd00::ffff/128"}) {
    IpPrefix p = prefix(text);
    EXPECT_EQ(p.str(), text);
    EXPECT_EQ(IpPrefix::parse(p.str()), p) << text;
    EXPECT_EQ(IpPrefix::parse(p.network().str()), p.network()) << text;
  }
}

TEST(NetIpPrefix, ContainsV4) {
  struct Case {
    const char* prefix;
    const char* address;
    bool contains;
  };
  for (const Case& c : std::vector<Case>{
           {"10.50.0.0/24", "10.50.0.0", true},
           {"10.50.0.0/24", "10.50.0.255", true},
           {"10.50.0.0/24", "10.50.1.0", false},
           {"10.50.0.0/24", "10.49.255.255", false},
           {"10.50.0.1/24", "10.50.0.77", true},  // host bits of the prefix do not matter
           {"10.0.0.0/8", "10.255.255.255", true},
           {"10.0.0.0/8", "11.0.0.0", false},
           {"0.0.0.0/0", "203.0.113.9", true},
           {"10.1.2.3/32", "10.1.2.3", true},
           {"10.1.2.3/32", "10.1.2.4", false},
           {"172.16.0.0/12", "172.31.255.255", true},
           {"172.16.0.0/12", "172.32.0.0", false},
           {"10.0.0.0/8", "::ffff:10.0.0.1", false},  // other family
           {"0.0.0.0/0", "::", false},                // other family, even at /0
       }) {
    EXPECT_EQ(prefix(c.prefix).contains(ip(c.address)), c.contains)
        << c.prefix << " contains " << c.address;
  }
}

TEST(NetIpPrefix, ContainsV6) {
  struct Case {
    const char* prefix;
    const char* address;
    bool contains;
  };
  for (const Case& c : std::vector<Case>{
           {"fd00::/64", "fd00::1", true},
           {"fd00::/64", "fd00::ffff:ffff:ffff:ffff", true},
           {"fd00::/64", "fd00:0:0:1::", false},
           {"fd00::/8", "fdff:ffff::1", true},
           {"fd00::/8", "fc00::1", false},
           {"fd00::/7", "fc00::1", true},
           {"::/0", "2001:db8::1", true},
           {"fd00::1/128", "fd00::1", true},
           {"fd00::1/128", "fd00::2", false},
           {"fd00:1:2:3::9/61", "fd00:1:2:7::", true},
           {"fd00:1:2:3::9/61", "fd00:1:2:8::", false},
           {"::/0", "10.0.0.1", false},  // other family
           {"::ffff:0.0.0.0/96", "10.0.0.1", false},
       }) {
    EXPECT_EQ(prefix(c.prefix).contains(ip(c.address)), c.contains)
        << c.prefix << " contains " << c.address;
  }
}

TEST(NetIpPrefix, OverlapsV4) {
  struct Case {
    const char* a;
    const char* b;
    bool overlaps;
  };
  for (const Case& c : std::vector<Case>{
           {"10.0.0.0/8", "10.50.0.0/24", true},
           {"10.50.0.0/24", "10.50.0.0/24", true},
           {"10.50.0.1/24", "10.50.0.200/24", true},  // same network, different host bits
           {"10.50.0.0/24", "10.50.1.0/24", false},
           {"10.50.0.0/23", "10.50.1.0/24", true},
           {"10.50.0.0/24", "10.50.0.128/25", true},
           {"10.50.0.0/25", "10.50.0.128/25", false},
           {"0.0.0.0/0", "192.0.2.1/32", true},
           {"192.0.2.1/32", "192.0.2.2/32", false},
           {"192.0.2.1/32", "192.0.2.1/32", true},
           {"10.0.0.0/8", "11.0.0.0/8", false},
           {"0.0.0.0/0", "::/0", false},  // other family
       }) {
    IpPrefix a = prefix(c.a);
    IpPrefix b = prefix(c.b);
    EXPECT_EQ(a.overlaps(b), c.overlaps) << c.a << " overlaps " << c.b;
    EXPECT_EQ(b.overlaps(a), c.overlaps) << c.b << " overlaps " << c.a << " (symmetry)";
  }
}

TEST(NetIpPrefix, OverlapsV6) {
  struct Case {
    const char* a;
    const char* b;
    bool overlaps;
  };
  for (const Case& c : std::vector<Case>{
           {"fd00::/8", "fd00:1::/32", true},
           {"fd00::/64", "fd00::/64", true},
           {"fd00::1/64", "fd00::2/64", true},
           {"fd00::/64", "fd00:0:0:1::/64", false},
           {"fd00::/63", "fd00:0:0:1::/64", true},
           {"::/0", "2001:db8::1/128", true},
           {"2001:db8::1/128", "2001:db8::2/128", false},
           {"fc00::/7", "fd00::/8", true},
           {"fc00::/8", "fd00::/8", false},
           {"::ffff:0.0.0.0/96", "10.0.0.0/8", false},  // other family
       }) {
    IpPrefix a = prefix(c.a);
    IpPrefix b = prefix(c.b);
    EXPECT_EQ(a.overlaps(b), c.overlaps) << c.a << " overlaps " << c.b;
    EXPECT_EQ(b.overlaps(a), c.overlaps) << c.b << " overlaps " << c.a << " (symmetry)";
  }
}

// Endpoint

TEST(NetEndpoint, Parses) {
  auto e = Endpoint::parse("10.50.0.12:22");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->address, ip("10.50.0.12"));
  EXPECT_EQ(e->port, 22);
  EXPECT_EQ(e->str(), "10.50.0.12:22");

  auto v6 = Endpoint::parse("[fd00::12]:22");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, ip("fd00::12"));
  EXPECT_EQ(v6->port, 22);
  EXPECT_EQ(v6->str(), "[fd00::12]:22");

  EXPECT_EQ(Endpoint::parse("1.2.3.4:1")->port, 1);
  EXPECT_EQ(Endpoint::parse("1.2.3.4:65535")->port, 65535);
  EXPECT_EQ(Endpoint::parse("[FD00:0::1]:443")->str(), "[fd00::1]:443");
  EXPECT_EQ(Endpoint::parse("[::]:8080")->str(), "[::]:8080");
}

TEST(NetEndpoint, RejectsMalformed) {
  for (const char* bad : {
           "",
           ":",
           "1.2.3.4",        // no port
           "1.2.3.4:",       // empty port
           ":22",            // no address
           "1.2.3.4:0",      // port 0
           "1.2.3.4:65536",  // out of range
           "1.2.3.4:99999999999999999999",
           "1.2.3.4:022",        // leading zero
           "1.2.3.4:+22",        // sign
           "1.2.3.4:-22",        // sign
           "1.2.3.4: 22",        // whitespace
           "1.2.3.4:22 ",        // whitespace
           " 1.2.3.4:22",        // whitespace
           "1.2.3.4:22:33",      // two ports
           "1.2.3.4:http",       // service name
           "fd00::1:22",         // unbracketed v6
           "fd00::1",            // unbracketed v6, no port
           "::1:22",             // unbracketed v6
           "[fd00::1]",          // no port
           "[fd00::1]:",         // empty port
           "[fd00::1]22",        // missing colon
           "[fd00::1:22",        // missing ]
           "fd00::1]:22",        // missing [
           "[fd00::1]]:22",      // extra ]
           "[[fd00::1]]:22",     // extra [
           "[1.2.3.4]:22",       // v4 in brackets
           "[]:22",              // empty brackets
           "[fd00::1%eth0]:22",  // zone id
           "010.1.1.1:22",       // bad address
           "example.com:22",     // names are not endpoints
           "[",                  // truncated
           "[fd00::1]:0",        // port 0
       }) {
    EXPECT_FALSE(Endpoint::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetEndpoint, RoundTrips) {
  for (const char* text : {"10.50.0.12:22", "0.0.0.0:1", "255.255.255.255:65535", "[fd00::12]:22",
                           "[::1]:443", "[::ffff:1.2.3.4]:80"}) {
    auto e = Endpoint::parse(text);
    ASSERT_TRUE(e) << text;
    EXPECT_EQ(e->str(), text);
    EXPECT_EQ(Endpoint::parse(e->str()), e) << text;
  }
}

// HostPort

TEST(NetHostPort, ParsesNamesAndLiterals) {
  auto name = HostPort::parse("vpn.example.com:51820");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "vpn.example.com");
  EXPECT_EQ(name->port, 51820);
  EXPECT_EQ(name->str(), "vpn.example.com:51820");

  auto v4 = HostPort::parse("203.0.113.7:51820");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "203.0.113.7");
  EXPECT_EQ(v4->str(), "203.0.113.7:51820");

  auto v6 = HostPort::parse("[2001:db8::7]:51820");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "2001:db8::7");  // stored without brackets
  EXPECT_EQ(v6->port, 51820);
  EXPECT_EQ(v6->str(), "[2001:db8::7]:51820");

  // IP literals are canonicalised so they compare with what the kernel reports.
  EXPECT_EQ(HostPort::parse("[2001:DB8:0::7]:1")->host, "2001:db8::7");
  EXPECT_EQ(HostPort::parse("a-1.b2.example:65535")->port, 65535);
}

TEST(NetHostPort, RejectsMalformed) {
  for (const char* bad : {
           "",
           "vpn.example.com",          // no port
           "vpn.example.com:",         // empty port
           ":51820",                   // no host
           "vpn.example.com:0",        // port 0
           "vpn.example.com:65536",    // out of range
           "vpn.example.com:051820",   // leading zero
           "vpn.example.com:+1",       // sign
           "VPN.example.com:51820",    // upper case
           "localhost:51820",          // single label
           "*.example.com:51820",      // wildcard
           "vpn..example.com:51820",   // empty label
           "vpn.example.com.:51820",   // trailing dot
           "-vpn.example.com:51820",   // leading hyphen
           "vpn_1.example.com:51820",  // underscore
           "vpn.example.com :51820",   // whitespace
           "vpn.example.123:51820",    // numeric TLD
           "256.1.1.1:51820",          // neither a valid IPv4 nor a valid name
           "010.1.1.1:51820",          // leading zero: neither a valid IPv4 nor a valid name
           "1.2.3:51820",              // truncated IPv4
           "2001:db8::7:51820",        // unbracketed v6
           "[2001:db8::7]",            // no port
           "[1.2.3.4]:51820",          // v4 in brackets
           "[vpn.example.com]:51820",  // name in brackets
           "[]:51820",                 // empty brackets
           "[fe80::1%wg0]:51820",      // zone id
           "vpn.example.com:51820:1",  // two ports
       }) {
    EXPECT_FALSE(HostPort::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetHostPort, RoundTrips) {
  for (const char* text :
       {"vpn.example.com:51820", "a.b:1", "203.0.113.7:51820", "[2001:db8::7]:51820", "[::]:80"}) {
    auto h = HostPort::parse(text);
    ASSERT_TRUE(h) << text;
    EXPECT_EQ(h->str(), text);
    EXPECT_EQ(HostPort::parse(h->str()), h) << text;
  }
}

// PortRange

TEST(NetPortRange, Parses) {
  EXPECT_EQ(PortRange::parse("22"), (PortRange{22, 22}));
  EXPECT_EQ(PortRange::parse("1"), (PortRange{1, 1}));
  EXPECT_EQ(PortRange::parse("65535"), (PortRange{65535, 65535}));
  EXPECT_EQ(PortRange::parse("30000-30010"), (PortRange{30000, 30010}));
  EXPECT_EQ(PortRange::parse("1-65535"), (PortRange{1, 65535}));
  EXPECT_EQ(PortRange::parse("80-80"), (PortRange{80, 80}));
  EXPECT_EQ(PortRange::parse("80-80")->str(), "80");
  EXPECT_EQ(PortRange::parse("30000-30010")->str(), "30000-30010");
}

TEST(NetPortRange, RejectsMalformed) {
  for (const char* bad : {
           "",
           "0",            // port 0
           "65536",        // out of range
           "022",          // leading zero
           "+22",          // sign
           "-22",          // sign / empty first
           "22-",          // empty last
           "-",            // both empty
           "30010-30000",  // reversed
           "0-10",         // port 0
           "1-65536",      // out of range
           "10-020",       // leading zero
           "10--20",       // double dash
           "10-20-30",     // three parts
           " 22",          // whitespace
           "22 ",          // whitespace
           "10 - 20",      // whitespace
           "10,20",        // list
           "ssh",          // name
           "22.0",         // fraction
           "99999999999999999999",
       }) {
    EXPECT_FALSE(PortRange::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetPortRange, RoundTripsAndOverlaps) {
  for (const char* text : {"22", "1", "65535", "30000-30010", "1-65535"}) {
    auto r = PortRange::parse(text);
    ASSERT_TRUE(r) << text;
    EXPECT_EQ(r->str(), text);
    EXPECT_EQ(PortRange::parse(r->str()), r);
  }
  EXPECT_TRUE((PortRange{10, 20}).overlaps(PortRange{20, 30}));
  EXPECT_TRUE((PortRange{10, 20}).overlaps(PortRange{15, 15}));
  EXPECT_FALSE((PortRange{10, 20}).overlaps(PortRange{21, 30}));
  EXPECT_FALSE((PortRange{22, 22}).overlaps(PortRange{23, 23}));
}

// Duration

TEST(NetDuration, Parses) {
  EXPECT_EQ(parseDuration("500ms"), Duration{500});
  EXPECT_EQ(parseDuration("1ms"), Duration{1});
  EXPECT_EQ(parseDuration("10s"), Duration{10'000});
  EXPECT_EQ(parseDuration("5m"), Duration{300'000});
  EXPECT_EQ(parseDuration("1h"), Duration{3'600'000});
  EXPECT_EQ(parseDuration("90s"), Duration{90'000});
  // The upper bound (7 days) is inclusive, in every unit.
  EXPECT_EQ(parseDuration("168h"), std::chrono::duration_cast<Duration>(168h));
  EXPECT_EQ(parseDuration("10080m"), std::chrono::duration_cast<Duration>(168h));
  EXPECT_EQ(parseDuration("604800s"), std::chrono::duration_cast<Duration>(168h));
  EXPECT_EQ(parseDuration("604800000ms"), std::chrono::duration_cast<Duration>(168h));
}

// Go's time.ParseDuration spelling, restricted to h, m, s and ms (issue 14): a decimal
// fraction, and components from the largest unit down, each unit once.
TEST(NetDuration, ParsesFractionsAndComposites) {
  EXPECT_EQ(parseDuration("1.5s"), Duration{1'500});
  EXPECT_EQ(parseDuration("0.5s"), Duration{500});
  EXPECT_EQ(parseDuration("0.25m"), Duration{15'000});
  EXPECT_EQ(parseDuration("1.5h"), Duration{5'400'000});
  EXPECT_EQ(parseDuration("2.500s"), Duration{2'500});  // trailing zeros are exact
  EXPECT_EQ(parseDuration("0.001s"), Duration{1});
  EXPECT_EQ(parseDuration("1h30m"), Duration{5'400'000});
  EXPECT_EQ(parseDuration("2m30s"), Duration{150'000});
  EXPECT_EQ(parseDuration("1m0.5s"), Duration{60'500});
  EXPECT_EQ(parseDuration("1h1m1s1ms"), Duration{3'661'001});
  EXPECT_EQ(parseDuration("1s500ms"), Duration{1'500});
  EXPECT_EQ(parseDuration("167h59m59s999ms"), Duration{7 * 24 * 3'600'000 - 1});
  EXPECT_EQ(parseDuration("167h60m"), std::chrono::duration_cast<Duration>(168h));
}

TEST(NetDuration, ZeroOnlyWhereAskedFor) {
  EXPECT_FALSE(parseDuration("0s"));
  EXPECT_EQ(parseDurationOrZero("0s"), Duration{0});
  EXPECT_EQ(parseDurationOrZero("0ms"), Duration{0});
  EXPECT_EQ(parseDurationOrZero("0.0s"), Duration{0});
  EXPECT_EQ(parseDurationOrZero("1.5s"), Duration{1'500});
  EXPECT_FALSE(parseDurationOrZero("0"));  // a bare number, zero included, has no unit
  EXPECT_FALSE(parseDurationOrZero("00s"));
  EXPECT_FALSE(parseDurationOrZero("-0s"));
}

// The message every flag and key shows for a bad duration names the expected form, and says
// "too long" when the spelling is right but the value is over the bound.
TEST(NetDuration, ProblemShowsTheExpectedForm) {
  EXPECT_EQ(durationProblem("1.5", Duration{60'000}),
            "'1.5' is not a duration (like 5s, 1.5s, 500ms, 2m or 1h30m)");
  EXPECT_EQ(durationProblem("5 minutes", Duration{60'000}),
            "'5 minutes' is not a duration (like 5s, 1.5s, 500ms, 2m or 1h30m)");
  EXPECT_EQ(durationProblem("2m", Duration{60'000}), "'2m' is longer than the maximum, 1m");
  EXPECT_EQ(durationProblem("0s", Duration{60'000}), "'0s' is not a positive duration");
}

TEST(NetDuration, RejectsMalformed) {
  for (const char* bad : {
           "",
           "10",                     // bare number: the unit is not guessable
           "0s",                     // zero
           "0ms",                    // zero
           "-5s",                    // negative
           "+5s",                    // sign
           ".5s",                    // a fraction needs its integer part
           "1.s",                    // and its digits
           "1.5",                    // bare number with a fraction
           "0.5",                    // bare number with a fraction
           "1.0005s",                // not a whole number of milliseconds
           "0.5ms",                  // not a whole number of milliseconds
           "1.2.3s",                 // two points
           "1.1234567890s",          // more fraction digits than any unit needs
           "00.5s",                  // leading zero
           "05s",                    // leading zero
           "10 s",                   // space
           " 10s",                   // space
           "10s ",                   // space
           "s",                      // no number
           "ms",                     // no number
           "10sec",                  // unknown unit
           "10S",                    // wrong case
           "10d",                    // unsupported unit
           "10us",                   // unsupported unit
           "10mss",                  // trailing garbage
           "30m1h",                  // components out of order
           "1m1m",                   // a unit twice
           "1s1s",                   // a unit twice
           "1ms1s",                  // components out of order
           "1h 30m",                 // space between components
           "1h30",                   // trailing bare number
           "1h-30m",                 // sign inside
           "0h0m",                   // zero
           "168h1ms",                // over 7 days
           "167h61m",                // over 7 days
           "10s10",                  // trailing digits
           "169h",                   // over 7 days
           "10081m",                 // over 7 days
           "604801s",                // over 7 days
           "604800001ms",            // over 7 days
           "99999999999999999999h",  // would overflow
           "9223372036854775807ms",  // would overflow a naive parser
           "18446744073709551617s",  // wraps a uint64
       }) {
    EXPECT_FALSE(parseDuration(bad)) << "'" << bad << "'";
  }
}

TEST(NetDuration, FormatsWithLargestExactUnit) {
  EXPECT_EQ(formatDuration(Duration{10'000}), "10s");
  EXPECT_EQ(formatDuration(Duration{1'500}), "1500ms");
  EXPECT_EQ(formatDuration(Duration{120'000}), "2m");
  EXPECT_EQ(formatDuration(Duration{90'000}), "90s");
  EXPECT_EQ(formatDuration(Duration{3'600'000}), "1h");
  EXPECT_EQ(formatDuration(Duration{5'400'000}), "90m");
  EXPECT_EQ(formatDuration(Duration{1}), "1ms");
  // Zero as "--lock-timeout 0s" and "jitter = 0s" are typed.
  EXPECT_EQ(formatDuration(Duration{0}), "0s");
  EXPECT_EQ(parseDurationOrZero(formatDuration(Duration{0})), Duration{0});
}

TEST(NetDuration, RoundTrips) {
  for (const char* text : {"500ms", "1500ms", "10s", "90s", "2m", "90m", "1h", "168h"}) {
    auto d = parseDuration(text);
    ASSERT_TRUE(d) << text;
    EXPECT_EQ(formatDuration(*d), text);
    EXPECT_EQ(parseDuration(formatDuration(*d)), d);
  }
  // Non-canonical spellings parse and normalise.
  EXPECT_EQ(formatDuration(*parseDuration("60s")), "1m");
  EXPECT_EQ(formatDuration(*parseDuration("1000ms")), "1s");
  EXPECT_EQ(formatDuration(*parseDuration("120m")), "2h");
}

// RateLimit

TEST(NetRateLimit, Parses) {
  auto r = RateLimit::parse("100/minute");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->count, 100u);
  EXPECT_EQ(r->period, std::chrono::seconds{60});
  EXPECT_EQ(r->str(), "100/minute");

  EXPECT_EQ(RateLimit::parse("1/second"), (RateLimit{1, std::chrono::seconds{1}}));
  EXPECT_EQ(RateLimit::parse("5000/hour"), (RateLimit{5000, std::chrono::seconds{3600}}));
  EXPECT_EQ(RateLimit::parse("1000000000/second"),
            (RateLimit{1'000'000'000, std::chrono::seconds{1}}));
}

TEST(NetRateLimit, RejectsMalformed) {
  for (const char* bad : {
           "",
           "100",                // no period
           "100/",               // empty period
           "/minute",            // no count
           "0/minute",           // zero
           "-1/minute",          // negative
           "+1/minute",          // sign
           "0100/minute",        // leading zero
           "1.5/minute",         // fraction
           "1000000001/second",  // over the limit
           "99999999999999999999/second",
           "4294967296/second",  // wraps a uint32
           "100/m",              // abbreviations are refused
           "100/s",
           "100/h",
           "100/min",
           "100/sec",
           "100/minutes",   // plural
           "100/Minute",    // case
           "100/day",       // unsupported
           "100 /minute",   // whitespace
           "100/ minute",   // whitespace
           "100/minute ",   // whitespace
           "100/minute/2",  // extra part
           "100per minute",
       }) {
    EXPECT_FALSE(RateLimit::parse(bad)) << "'" << bad << "'";
  }
}

TEST(NetRateLimit, RoundTrips) {
  for (const char* text : {"1/second", "100/minute", "5000/hour", "1000000000/hour"}) {
    auto r = RateLimit::parse(text);
    ASSERT_TRUE(r) << text;
    EXPECT_EQ(r->str(), text);
    EXPECT_EQ(RateLimit::parse(r->str()), r);
  }
}

// DNS names

TEST(NetDnsName, AcceptsValidNames) {
  for (const char* good :
       {"example.com", "a.b", "api.example.com", "a-b.example.com", "xn--bcher-kva.example",
        "1.example.com", "123.example.com4", "0a.b1", "edge-01.site-7.example.net"}) {
    EXPECT_TRUE(isValidDnsName(good, false)) << good;
    EXPECT_TRUE(isValidDnsName(good, true)) << good;
  }
}

TEST(NetDnsName, RejectsInvalidNames) {
  for (const char* bad : {
           "",
           "localhost",     // one label
           "com",           // one label
           "example.com.",  // trailing dot
           ".example.com",  // leading dot
           "example..com",  // empty label
           ".",
           "Example.com",      // upper case
           "example.COM",      // upper case
           "-a.example.com",   // leading hyphen
           "a-.example.com",   // trailing hyphen
           "a.example.com-",   // trailing hyphen on the last label
           "a_b.example.com",  // underscore
           "a b.example.com",  // space
           " example.com",     // whitespace
           "example.com ",     // whitespace
           "example.com\n",    // newline
           "1.2.3.4",          // numeric last label (an IP address)
           "example.123",      // numeric last label
           "256.1.1.1",        // numeric last label
           "*.example.com",    // wildcard not allowed here
           "ex*ample.com",     // '*' inside a label
           "exämple.com",      // non-ASCII
           "example.com:80",   // port
           "example.com/",     // path
       }) {
    EXPECT_FALSE(isValidDnsName(bad, false)) << "'" << bad << "'";
  }
  EXPECT_FALSE(isValidDnsName(std::string_view("a.com\0", 6), false));
}

TEST(NetDnsName, LengthLimits) {
  std::string label63(63, 'a');
  std::string label64(64, 'a');
  EXPECT_TRUE(isValidDnsName(label63 + ".com", false));
  EXPECT_FALSE(isValidDnsName(label64 + ".com", false));
  EXPECT_FALSE(isValidDnsName("com." + label64, false));

  // 4 labels of 61 + 3 dots = 247, plus ".abcde" = 253: the longest accepted name.
  std::string label61(61, 'b');
  std::string base = label61 + "." + label61 + "." + label61 + "." + label61;
  std::string longest = base + ".abcde";
  ASSERT_EQ(longest.size(), 253u);
  EXPECT_TRUE(isValidDnsName(longest, false));
  EXPECT_FALSE(isValidDnsName(base + ".abcdef", false));  // 254
  EXPECT_FALSE(isValidDnsName(longest + ".", false));     // trailing dot
  // The wildcard counts towards the total.
  EXPECT_FALSE(isValidDnsName("*." + longest, true));
  EXPECT_TRUE(isValidDnsName("*." + base.substr(2) + ".abcde", true));
  EXPECT_FALSE(isValidDnsName(std::string(10000, 'a'), false));
  EXPECT_FALSE(isValidDnsName(std::string(10000, '.'), false));
}

TEST(NetDnsName, Wildcards) {
  EXPECT_TRUE(isValidDnsName("*.example.com", true));
  EXPECT_TRUE(isValidDnsName("*.api.example.com", true));
  EXPECT_TRUE(isValidDnsName("*.a.b", true));
  for (const char* bad : {
           "*",                // nothing after it
           "*.",               // nothing after it
           "*.com",            // only one label after the wildcard
           "*.localhost",      // only one label after the wildcard
           "*.*.example.com",  // two wildcards
           "a.*.example.com",  // wildcard not first
           "example.*",        // wildcard last
           "*example.com",     // partial-label wildcard
           "*a.example.com",   // partial-label wildcard
           "a*.example.com",   // partial-label wildcard
           "**.example.com",   // not exactly "*"
           "*.example.com.",   // trailing dot
           "*.1.2.3",          // numeric last label
           "*..example.com",   // empty label
           "*.Example.com",    // upper case
       }) {
    EXPECT_FALSE(isValidDnsName(bad, true)) << "'" << bad << "'";
  }
}

// WgKey

TEST(NetBase64, RoundTripsEveryTailLengthAndRefusesNonCanonicalText) {
  // RFC 4648 section 10 test vectors, padded and not.
  const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(encodeBase64(plain), encoded);
    std::string unpadded = encoded.substr(0, encoded.find('='));
    EXPECT_EQ(encodeBase64(plain, false), unpadded);
    if (!encoded.empty()) {
      EXPECT_EQ(decodeBase64(encoded), plain) << encoded;
    }
  }
  EXPECT_EQ(decodeBase64(""), std::nullopt);          // nothing is not a value
  EXPECT_EQ(decodeBase64("Zg="), std::nullopt);       // not a multiple of 4
  EXPECT_EQ(decodeBase64("Zh=="), std::nullopt);      // unused bits set
  EXPECT_EQ(decodeBase64("Zm9=Yg=="), std::nullopt);  // padding inside
  EXPECT_EQ(decodeBase64("Zm9 Yg=="), std::nullopt);  // whitespace
  EXPECT_TRUE(isBase64Char('+'));
  EXPECT_FALSE(isBase64Char('='));
}

TEST(NetWgKey, ParsesAndReencodes) {
  const std::string text = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
  ASSERT_EQ(text.size(), 44u);
  auto key = WgKey::parseBase64(text);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->base64(), text);
  EXPECT_EQ(key->bytes[0], 0xC8);  // 'y' = 50, 'A' = 0 -> 110010 00|0000
  EXPECT_EQ(toHex(key->bytes.data(), key->bytes.size()),
            "c809f3e5317e9575c9b5ed78b638b7ce530dabe85ddab61422024180"
            "1ddf0669");
  EXPECT_EQ(WgKey::parseBase64(key->base64()), key);
}

TEST(NetWgKey, EncodesKnownValues) {
  WgKey zero;
  EXPECT_EQ(zero.base64(), "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
  EXPECT_EQ(WgKey::parseBase64(zero.base64()), zero);

  WgKey ones;
  ones.bytes.fill(0xFF);
  EXPECT_EQ(ones.base64(), "//////////////////////////////////////////8=");
  EXPECT_EQ(WgKey::parseBase64(ones.base64()), ones);

  WgKey counting;
  for (size_t i = 0; i < counting.bytes.size(); ++i) {
    counting.bytes[i] = static_cast<uint8_t>(i * 37 + 11);
  }
  EXPECT_EQ(counting.base64(), "CzBVep/E6Q4zWH2ix+wRNluApcrvFDleg6jN8hc8YYY=");
  auto back = WgKey::parseBase64(counting.base64());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, counting);
}

TEST(NetWgKey, RejectsMalformed) {
  const std::string good = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
  std::vector<std::string> bad = {
      "",
      good.substr(0, 43),                           // no padding
      good.substr(0, 40),                           // truncated
      good + "=",                                   // too long
      good.substr(0, 43) + "==",                    // two '=' (45 chars)
      good.substr(0, 42) + "==",                    // 31 bytes + "==" padding
      "=" + good.substr(0, 43),                     // padding first
      good.substr(0, 42) + "l=",                    // non-canonical: low bits set ('l' = 37)
      good.substr(0, 42) + "n=",                    // non-canonical ('n' = 39)
      good.substr(0, 42) + "j=",                    // non-canonical ('j' = 35)
      " " + good.substr(1),                         // whitespace
      good.substr(0, 43) + " ",                     // whitespace instead of padding
      good.substr(0, 10) + "-" + good.substr(11),   // URL-safe alphabet
      good.substr(0, 10) + "_" + good.substr(11),   // URL-safe alphabet
      good.substr(0, 10) + "=" + good.substr(11),   // padding in the middle
      good.substr(0, 10) + "\n" + good.substr(11),  // newline
      good.substr(0, 10) + "*" + good.substr(11),   // not base64
      std::string(44, '='),
      std::string(1000, 'A'),
  };
  bad.push_back(good.substr(0, 10) + std::string(1, '\0') + good.substr(11));  // NUL
  bad.push_back(good.substr(0, 10) + "\xC3" + good.substr(11));                // high byte
  for (const std::string& text : bad) {
    EXPECT_FALSE(WgKey::parseBase64(text)) << "'" << text << "'";
  }
}

// Hex

TEST(NetHex, AllHexAndFullCommitIds) {
  EXPECT_TRUE(allHex(""));
  EXPECT_TRUE(allHex("0123456789abcdefABCDEF"));
  for (std::string_view bad : {"g", "0x1f", " 1", "1 ", "-1", "\xC3\xA9"}) {
    EXPECT_FALSE(allHex(bad)) << bad;
  }
  EXPECT_TRUE(isFullCommitId("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"));
  EXPECT_TRUE(isFullCommitId("0D1A26E67D8F5EAF1F6BA5C57FC3C7D91AC0FD1C"));
  EXPECT_FALSE(isFullCommitId("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1"));    // 39
  EXPECT_FALSE(isFullCommitId("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1cc"));  // 41
  EXPECT_FALSE(isFullCommitId("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1g"));
  EXPECT_FALSE(isFullCommitId("main"));
}

TEST(NetHex, ParsesAndFormats) {
  const std::string lower = "c809f3e5317e9575c9b5ed78b638b7ce530dabe85ddab614220241801ddf0669";
  auto bytes = parseHex32(lower);
  ASSERT_TRUE(bytes);
  EXPECT_EQ((*bytes)[0], 0xC8);
  EXPECT_EQ((*bytes)[31], 0x69);
  EXPECT_EQ(toHex(bytes->data(), bytes->size()), lower);

  std::string upper = "C809F3E5317E9575C9B5ED78B638B7CE530DABE85DDAB614220241801DDF0669";
  EXPECT_EQ(parseHex32(upper), bytes);
  EXPECT_EQ(parseHex32("C809f3E5317e9575c9b5ed78b638b7ce530dabe85ddab614220241801ddf0669"), bytes);

  auto zeros = parseHex32(std::string(64, '0'));
  ASSERT_TRUE(zeros);
  EXPECT_EQ(*zeros, (std::array<uint8_t, 32>{}));
  auto ffs = parseHex32(std::string(64, 'F'));
  ASSERT_TRUE(ffs);
  EXPECT_EQ(toHex(ffs->data(), ffs->size()), std::string(64, 'f'));
}

TEST(NetHex, ToHexArbitraryLength) {
  EXPECT_EQ(toHex(nullptr, 0), "");
  const uint8_t data[] = {0x00, 0x01, 0x7F, 0x80, 0xAB, 0xFF};
  EXPECT_EQ(toHex(data, sizeof(data)), "00017f80abff");
  EXPECT_EQ(toHex(data, 1), "00");
}

TEST(NetDecimal, DigitsWithinTheBound) {
  EXPECT_EQ(parseDecimal("0", 0, LeadingZeros::Refused), 0U);
  EXPECT_EQ(parseDecimal("65535", 65535, LeadingZeros::Refused), 65535U);
  EXPECT_EQ(parseDecimal("65536", 65535, LeadingZeros::Refused), std::nullopt);
  EXPECT_EQ(parseDecimal("7", 6, LeadingZeros::Refused), std::nullopt);  // a digit past the bound
  EXPECT_EQ(parseDecimal("18446744073709551615", UINT64_MAX, LeadingZeros::Refused), UINT64_MAX);
  // 2^64 and more wrap in a naive parser; here they are past the bound.
  EXPECT_EQ(parseDecimal("18446744073709551616", UINT64_MAX, LeadingZeros::Refused), std::nullopt);
  EXPECT_EQ(parseDecimal("99999999999999999999", UINT64_MAX, LeadingZeros::Allowed), std::nullopt);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1.0", "0x1", "1e3", "\xd9\xa3"}) {
    EXPECT_EQ(parseDecimal(bad, UINT64_MAX, LeadingZeros::Allowed), std::nullopt) << bad;
  }
  EXPECT_EQ(parseDecimal(std::string(21, '0'), UINT64_MAX, LeadingZeros::Allowed), std::nullopt);
}

TEST(NetDecimal, LeadingZerosOnlyWhereAllowed) {
  EXPECT_EQ(parseDecimal("010", 100, LeadingZeros::Refused), std::nullopt);
  EXPECT_EQ(parseDecimal("00", 100, LeadingZeros::Refused), std::nullopt);
  EXPECT_EQ(parseDecimal("010", 100, LeadingZeros::Allowed), 10U);
  EXPECT_EQ(parseDecimal(std::string(19, '0') + "7", 100, LeadingZeros::Allowed), 7U);
  // The config's numbers: one spelling per value.
  EXPECT_FALSE(Endpoint::parse("10.0.0.1:080"));
  EXPECT_FALSE(IpAddress::parse("10.0.0.01"));
  EXPECT_TRUE(Endpoint::parse("10.0.0.1:80"));
}

TEST(NetHex, RejectsMalformed) {
  const std::string good(64, 'a');
  std::vector<std::string> bad = {
      "",
      good.substr(0, 63),        // odd length
      good.substr(0, 62),        // 31 bytes
      good + "a",                // too long
      good + "aa",               // 33 bytes
      "0x" + good.substr(2),     // prefix
      good.substr(0, 63) + "g",  // not hex
      " " + good.substr(1),      // whitespace
      good.substr(0, 63) + "\n",
      good.substr(0, 30) + "-" + good.substr(31),
      std::string(1000, 'a'),
  };
  bad.push_back(good.substr(0, 10) + std::string(1, '\0') + good.substr(11));  // NUL
  for (const std::string& text : bad) {
    EXPECT_FALSE(parseHex32(text)) << "'" << text << "'";
  }
}

}  // namespace
}  // namespace edgeplane
