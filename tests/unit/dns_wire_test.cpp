// The DNS-01 responder's wire codec against hand-assembled RFC 1035 / RFC 6891 messages.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/acme_challenges.h"
#include "proxy/dns/wire.h"
#include "schema/encoding.h"

namespace edgeplane::proxy::dns {
namespace {

// Bytes from hex, spaces ignored: the vectors below are laid out field by field.
std::vector<uint8_t> hex(const std::string& text) {
  std::vector<uint8_t> out;
  int hi = -1;
  for (char c : text) {
    if (c == ' ' || c == '\n') {
      continue;
    }
    const int v = hexValue(c);
    EXPECT_GE(v, 0) << "bad hex in a test vector: " << c;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  EXPECT_LT(hi, 0) << "odd hex digits in a test vector";
  return out;
}

std::vector<uint8_t> operator+(std::vector<uint8_t> a, const std::vector<uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// _acme-challenge.Example.COM, as a resolver with 0x20 case randomisation might send it.
const std::string kQname = "0f 5f61636d652d6368616c6c656e6765 07 4578616d706c65 03 434f4d 00";
const std::string kTxtIn = "0010 0001";
// An OPT RR: root, type 41, payload 1232, version 0, a DNS cookie option (code 10, 8 bytes),
// as dig sends it.
const std::string kOptIn = "00 0029 04d0 00000000 000c 000a 0008 0102030405060708";
const std::string kOptOut = "00 0029 04d0 00000000 0000";

std::vector<uint8_t> query(const std::string& flags, const std::string& counts,
                           const std::string& rest) {
  return hex("beef" + flags + counts + rest);
}

TxtLookup served(std::vector<std::string> values) {
  return [values](const std::string& name) -> std::optional<std::vector<std::string>> {
    if (name == "_acme-challenge.example.com") {
      return values;
    }
    return std::nullopt;
  };
}

TEST(DnsWire, ParsesAQueryWithEdns) {
  const auto q = query("0120", "0001 0000 0000 0001", kQname + kTxtIn + kOptIn);
  Parsed p = parseQuery(q);
  ASSERT_EQ(p.verdict, Verdict::Answer) << p.why;
  EXPECT_EQ(p.query.id, 0xBEEF);
  EXPECT_TRUE(p.query.recursionDesired);
  EXPECT_EQ(p.query.name, "_acme-challenge.example.com");
  EXPECT_TRUE(p.query.plainName);
  EXPECT_EQ(p.query.qnameWire, hex(kQname));
  EXPECT_EQ(p.query.qtype, kTypeTxt);
  EXPECT_EQ(p.query.qclass, kClassIn);
  EXPECT_EQ(p.query.ednsPayload, 1232);
}

TEST(DnsWire, AnswersTxtWithTheQuestionAsSentAndAnOptRecord) {
  const auto q = query("0120", "0001 0000 0000 0001", kQname + kTxtIn + kOptIn);
  Reply r = respond(q, Transport::Udp, served({"abc", "xy"}));
  ASSERT_EQ(r.verdict, Verdict::Answer);
  // QR AA RD, NOERROR; 1 question, 2 answers (name: a pointer to the question), 1 OPT.
  const auto want = hex("beef 8500 0001 0002 0000 0001") + hex(kQname + kTxtIn) +
                    hex("c00c 0010 0001 00000000 0004 03616263") +
                    hex("c00c 0010 0001 00000000 0003 027879") + hex(kOptOut);
  EXPECT_EQ(r.bytes, want);
}

TEST(DnsWire, NoOptRecordWithoutEdns) {
  const auto q = query("0000", "0001 0000 0000 0000", kQname + kTxtIn);
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  const auto want = hex("beef 8400 0001 0001 0000 0000") + hex(kQname + kTxtIn) +
                    hex("c00c 0010 0001 00000000 0004 03616263");
  EXPECT_EQ(r.bytes, want);
}

// The reply to a query over its source's rate: TC, the question, the OPT RR, nothing else; no
// larger than the query (here, whose OPT RR carried a cookie, smaller).
TEST(DnsWire, ATruncatedReplyIsTheQuestionOnly) {
  const auto q = query("0120", "0001 0000 0000 0001", kQname + kTxtIn + kOptIn);
  Parsed p = parseQuery(q);
  ASSERT_EQ(p.verdict, Verdict::Answer) << p.why;
  const auto want = hex("beef 8700 0001 0000 0000 0001") + hex(kQname + kTxtIn) + hex(kOptOut);
  EXPECT_EQ(buildTruncated(p.query), want);
  EXPECT_LE(want.size(), q.size());
  const auto plain = query("0000", "0001 0000 0000 0000", kQname + kTxtIn);
  EXPECT_EQ(buildTruncated(parseQuery(plain).query),
            hex("beef 8600 0001 0000 0000 0000") + hex(kQname + kTxtIn));
}

TEST(DnsWire, RefusesNamesItDoesNotServe) {
  // www.example.com TXT
  const auto q =
      query("0100", "0001 0000 0000 0000", "03777777 076578616d706c65 03636f6d 00" + kTxtIn);
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  // QR RD, REFUSED, and no AA: the name is no zone of ours.
  EXPECT_EQ(r.bytes, hex("beef 8105 0001 0000 0000 0000 03777777 076578616d706c65 03636f6d 00") +
                         hex(kTxtIn));
}

TEST(DnsWire, RefusesAnotherClass) {
  const auto q = query("0000", "0001 0000 0000 0000", kQname + "0010 0003");  // CH
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  ASSERT_GE(r.bytes.size(), 4U);
  EXPECT_EQ(r.bytes[3] & 0x0F, static_cast<int>(Rcode::Refused));
}

TEST(DnsWire, AnotherTypeOfAServedNameIsNoData) {
  const auto q = query("0000", "0001 0000 0000 0000", kQname + "0001 0001");  // A
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  EXPECT_EQ(r.bytes, hex("beef 8400 0001 0000 0000 0000") + hex(kQname + "0001 0001"));
}

TEST(DnsWire, ALabelWithADotIsNoServedName) {
  // One label "_acme-challenge.example" then "com": not the two-label name it spells.
  const auto q = query("0000", "0001 0000 0000 0000",
                       "17 5f61636d652d6368616c6c656e67652e6578616d706c65 03636f6d 00" + kTxtIn);
  Parsed p = parseQuery(q);
  ASSERT_EQ(p.verdict, Verdict::Answer) << p.why;
  EXPECT_FALSE(p.query.plainName);
  EXPECT_EQ(respond(q, Transport::Udp, served({"abc"})).bytes[3] & 0x0F,
            static_cast<int>(Rcode::Refused));
}

TEST(DnsWire, OtherOpcodesAreNotImplemented) {
  // opcode 2 (STATUS), RD set
  const auto q = query("1100", "0001 0000 0000 0000", kQname + kTxtIn);
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  EXPECT_EQ(r.verdict, Verdict::NotImp);
  EXPECT_EQ(r.bytes, hex("beef 9104 0000 0000 0000 0000"));
}

TEST(DnsWire, AnUnknownEdnsVersionIsBadVers) {
  const auto q =
      query("0000", "0001 0000 0000 0001", kQname + kTxtIn + "00 0029 0200 00010000 0000");
  Reply r = respond(q, Transport::Udp, served({"abc"}));
  EXPECT_EQ(r.verdict, Verdict::BadVers);
  // RCODE 16: 0 in the header's 4 bits, 1 in the OPT RR's extended RCODE byte.
  EXPECT_EQ(r.bytes, hex("beef 8000 0000 0000 0000 0001 00 0029 04d0 01000000 0000"));
}

struct Malformed {
  const char* what;
  std::string counts;
  std::string rest;
};

TEST(DnsWire, MalformedQueriesAreFormErr) {
  const std::vector<Malformed> cases = {
      {"no question", "0000 0000 0000 0000", ""},
      {"two questions", "0002 0000 0000 0000", kQname + kTxtIn + kQname + kTxtIn},
      {"an answer record", "0001 0001 0000 0000", kQname + kTxtIn},
      {"an authority record", "0001 0000 0001 0000", kQname + kTxtIn},
      {"two additional records", "0001 0000 0000 0002", kQname + kTxtIn + kOptIn + kOptIn},
      {"a compression pointer in the question", "0001 0000 0000 0000",
       "0f 5f61636d652d6368616c6c656e6765 c00c" + kTxtIn},
      {"an extended label type", "0001 0000 0000 0000", "41 00" + kTxtIn},
      {"a name cut short", "0001 0000 0000 0000", "0f 5f61636d65"},
      {"no type and class", "0001 0000 0000 0000", kQname + "00"},
      {"a byte after the question", "0001 0000 0000 0000", kQname + kTxtIn + "00"},
      {"an additional record that is not OPT", "0001 0000 0000 0001",
       kQname + kTxtIn + "00 0001 0001 00000000 0004 7f000001"},
      {"an OPT RR not for the root", "0001 0000 0000 0001",
       kQname + kTxtIn + "01 61 00 0029 04d0 00000000 0000"},
      {"an EDNS option overrunning the OPT RR", "0001 0000 0000 0001",
       kQname + kTxtIn + "00 0029 04d0 00000000 0006 000a 0008 0102"},
      {"OPT data past the message", "0001 0000 0000 0001",
       kQname + kTxtIn + "00 0029 04d0 00000000 0010 000a"},
  };
  for (const Malformed& m : cases) {
    const auto q = query("0100", m.counts, m.rest);
    Reply r = respond(q, Transport::Udp, served({"abc"}));
    EXPECT_EQ(r.verdict, Verdict::FormErr) << m.what;
    // Header only: the ID, QR, the opcode and RD kept, FORMERR.
    EXPECT_EQ(r.bytes, hex("beef 8101 0000 0000 0000 0000")) << m.what;
  }
}

TEST(DnsWire, NamesAreBoundedTo255Octets) {
  // Four 63-byte labels (256 octets with the root) are one too many; 3 x 63 + 61 fit.
  std::string label63 = "3f" + std::string(126, '6');  // 63 x 'f'
  std::string label61 = "3d" + std::string(122, '6');
  const auto tooLong =
      query("0000", "0001 0000 0000 0000", label63 + label63 + label63 + label63 + "00" + kTxtIn);
  EXPECT_EQ(parseQuery(tooLong).verdict, Verdict::FormErr);
  const auto longest =
      query("0000", "0001 0000 0000 0000", label63 + label63 + label63 + label61 + "00" + kTxtIn);
  Parsed p = parseQuery(longest);
  EXPECT_EQ(p.verdict, Verdict::Answer) << p.why;
  EXPECT_EQ(p.query.qnameWire.size(), 255U);
}

TEST(DnsWire, ResponsesAndShortMessagesAreDropped) {
  EXPECT_EQ(parseQuery(hex("beef 0100 0001 0000 00")).verdict, Verdict::Drop);
  EXPECT_EQ(parseQuery({}).verdict, Verdict::Drop);
  const auto response = query("8400", "0001 0000 0000 0000", kQname + kTxtIn);
  EXPECT_EQ(respond(response, Transport::Udp, served({"abc"})).verdict, Verdict::Drop);
  EXPECT_TRUE(respond(response, Transport::Udp, served({"abc"})).bytes.empty());
}

TEST(DnsWire, LongValuesAreSplitInto255ByteStrings) {
  const std::string value(300, 'v');
  const auto q = query("0000", "0001 0000 0000 0000", kQname + kTxtIn);
  Reply r = respond(q, Transport::Udp, served({value}));
  const size_t rdata = 12 + 33 + 10;  // header, question, the RR's fixed part before RDLENGTH
  ASSERT_EQ(r.bytes.size(), rdata + 2 + 302);
  EXPECT_EQ(r.bytes[rdata], 0x01);
  EXPECT_EQ(r.bytes[rdata + 1], 0x2e);  // 302 = 1 + 255 + 1 + 45
  EXPECT_EQ(r.bytes[rdata + 2], 255);
  EXPECT_EQ(r.bytes[rdata + 2 + 1 + 255], 45);
}

TEST(DnsWire, TruncatesWhatExceedsTheClientsSize) {
  // 20 values of 43 bytes (SHA-256 in base64url): 1176 bytes with EDNS, 1165 without.
  std::vector<std::string> values(20, std::string(43, 'k'));
  const auto classic = query("0100", "0001 0000 0000 0000", kQname + kTxtIn);
  Reply r = respond(classic, Transport::Udp, served(values));
  EXPECT_EQ(r.bytes, hex("beef 8700 0001 0000 0000 0000") + hex(kQname + kTxtIn));  // TC
  EXPECT_EQ(respond(classic, Transport::Tcp, served(values)).bytes.size(), 1165U);

  const auto edns = query("0100", "0001 0000 0000 0001", kQname + kTxtIn + kOptIn);
  r = respond(edns, Transport::Udp, served(values));
  EXPECT_EQ(r.bytes.size(), 1176U);
  EXPECT_EQ(r.bytes[2] & 0x02, 0) << "TC set on a response that fits 1232 bytes";
}

TEST(DnsWire, UdpLimitFollowsRfc6891) {
  Query q;
  EXPECT_EQ(udpLimit(q), 512U);
  q.ednsPayload = 100;  // below 512 is treated as 512
  EXPECT_EQ(udpLimit(q), 512U);
  q.ednsPayload = 4096;  // we send at most our own
  EXPECT_EQ(udpLimit(q), 1232U);
}

TEST(AcmeChallengeBoard, Dns01ValuesByRecordName) {
  EXPECT_EQ(dns01RecordName("Example.COM"), "_acme-challenge.example.com");
  EXPECT_EQ(dns01RecordName("*.example.com"), "_acme-challenge.example.com");
  EXPECT_EQ(dns01RecordName("example.com."), "_acme-challenge.example.com");
  AcmeChallengeBoard board;
  AcmeChallengeBoard::TxtMap dns01{{"_acme-challenge.example.com", {"v1", "v2"}}};
  EXPECT_TRUE(board.replace({}, {}, dns01));
  EXPECT_FALSE(board.replace({}, {}, dns01));
  EXPECT_EQ(board.size(), 2U);
  EXPECT_EQ(board.lookupDns01("_acme-challenge.example.com"),
            (std::vector<std::string>{"v1", "v2"}));
  EXPECT_EQ(board.lookupDns01("_acme-challenge.other.com"), std::nullopt);
  EXPECT_EQ(board.lookup("_acme-challenge.example.com"), std::nullopt);  // not an HTTP-01 token
  EXPECT_TRUE(board.replace({}, {}, {}));
  EXPECT_EQ(board.lookupDns01("_acme-challenge.example.com"), std::nullopt);
}

}  // namespace
}  // namespace edgeplane::proxy::dns
