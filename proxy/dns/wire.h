// The DNS wire codec of the DNS-01 responder (RFC 1035, RFC 6891 EDNS0): parses one query,
// builds its response. Pure: no I/O, no exceptions, never reads past the buffer; fuzzed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace edgeplane::proxy::dns {

inline constexpr size_t kHeaderSize = 12;
inline constexpr uint16_t kTypeTxt = 16;
inline constexpr uint16_t kTypeOpt = 41;
inline constexpr uint16_t kClassIn = 1;
// The UDP payload size we advertise and send at most (the DNS flag day 2020 value, which
// avoids IP fragmentation on common paths).
inline constexpr uint16_t kOurUdpPayload = 1232;
// Without EDNS0 a UDP message is at most 512 bytes (RFC 1035 section 4.2.1).
inline constexpr size_t kClassicUdpPayload = 512;
// A TCP message's 2-byte length prefix bounds it (RFC 1035 section 4.2.2).
inline constexpr size_t kMaxTcpMessage = 65535;

enum class Rcode : uint8_t {
  NoError = 0,
  FormErr = 1,
  ServFail = 2,
  NxDomain = 3,
  NotImp = 4,
  Refused = 5,
};
// RFC 6891 section 6.1.3: an extended RCODE (16) for an EDNS version we do not speak.
inline constexpr uint16_t kRcodeBadVers = 16;

struct Query {
  uint16_t id = 0;
  uint8_t opcode = 0;
  bool recursionDesired = false;
  // The question's name exactly as sent (wire labels, case kept: RFC 1035 section 7.1 and the
  // 0x20 bit randomisation of resolvers require an exact echo).
  std::vector<uint8_t> qnameWire;
  // The name in lower case, labels joined by '.', no trailing dot ("" for the root); empty
  // with `plainName` false when a label holds a byte outside [A-Za-z0-9_*-] - no name we
  // serve, and a '.' inside a label must not pass for a label boundary.
  std::string name;
  bool plainName = true;
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  // The OPT RR's requestor payload size, when the query carried one (RFC 6891 section 6.1.2).
  std::optional<uint16_t> ednsPayload;
  uint8_t ednsVersion = 0;
};

// What to do with a received message.
enum class Verdict : uint8_t {
  Answer,   // a well-formed QUERY: `query` is complete
  Drop,     // no reply at all: shorter than a header, or itself a response (QR set)
  FormErr,  // reply FORMERR (header only): `query.id`, `.opcode`, `.recursionDesired` are set
  NotImp,   // reply NOTIMP (header only): an opcode other than QUERY
  BadVers,  // reply BADVERS with an OPT RR: an EDNS version other than 0
};

struct Parsed {
  Verdict verdict = Verdict::Drop;
  Query query;
  std::string why;  // for FormErr and Drop: what was wrong (tests and debug logs)
};

// Parses a query: the header, exactly one question (its name without compression pointers,
// labels <= 63 bytes, the name <= 255 bytes), no answer or authority records, and at most one
// additional record, which must be an OPT RR for the root. Trailing bytes are a FORMERR.
Parsed parseQuery(std::span<const uint8_t> message);

struct Answer {
  Rcode rcode = Rcode::NoError;
  std::vector<std::string> txt;  // one TXT RR per value, for the question's name
  // 0: an answer lives as long as one order; a cached one would hide the next order's value.
  uint32_t ttl = 0;
};

// The response to a parsed query: QR set, AA unless REFUSED, RD copied, the question echoed as
// sent, one TXT RR per value (each split into <= 255-byte character-strings), an OPT RR when the
// query had one. When the whole exceeds `limit` bytes, the answers are left out and TC is set so
// the client retries over TCP (RFC 1035 section 4.2.1, RFC 7766).
std::vector<uint8_t> buildResponse(const Query& q, const Answer& answer, size_t limit);

// TC set and no answer: the question (and an OPT RR when the query had one) only, so a reply
// is no larger than its query. The responder's answer to a UDP source over its rate: a resolver
// asks again over TCP, which no one can forge (RFC 7766).
std::vector<uint8_t> buildTruncated(const Query& q);

// A header-only error response (FORMERR, NOTIMP, or BADVERS with an OPT RR) to the parsed
// message, by its verdict.
std::vector<uint8_t> buildError(const Parsed& parsed);

// The size a UDP response to `q` may have: 512 without EDNS0, else the requestor's payload
// size (at least 512, RFC 6891 section 6.2.5) and at most ours.
size_t udpLimit(const Query& q);

enum class Transport : uint8_t { Udp, Tcp };

// The TXT values of a lower-case name, nullopt when we are not authoritative for it.
using TxtLookup = std::function<std::optional<std::vector<std::string>>(const std::string&)>;

// The answer to a parsed query. TXT of a served name is answered; another type of a served
// name is NOERROR with no answer (the name exists); any other name, or a class other than IN,
// is REFUSED.
Answer answerFor(const Query& q, const TxtLookup& lookup);

struct Reply {
  Verdict verdict = Verdict::Drop;
  std::vector<uint8_t> bytes;  // empty for Verdict::Drop
};

// The reply to one received message: parse, answer, build with the transport's size limit.
Reply respond(std::span<const uint8_t> message, Transport transport, const TxtLookup& lookup);

}  // namespace edgeplane::proxy::dns
