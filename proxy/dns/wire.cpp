// The DNS wire codec of the DNS-01 responder (see wire.h).
#include "proxy/dns/wire.h"

#include <algorithm>

#include "proxy/byte_reader.h"

namespace edgeplane::proxy::dns {
namespace {

constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr size_t kMaxName = 255;  // wire octets, the root's zero included (RFC 1035 3.1)
constexpr uint16_t kAnswerNamePointer = 0xC000 | kHeaderSize;  // the question's name

using Reader = ByteReader;

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) {
    out_.push_back(static_cast<uint8_t>(v >> 8));
    out_.push_back(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void bytes(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void bytes(const std::string& s) { out_.insert(out_.end(), s.begin(), s.end()); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  std::vector<uint8_t> out_;
};

bool plainLabelByte(uint8_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '*';
}

// The question's name: its wire bytes, and its lower-case dotted form when plain.
bool readName(Reader& r, Query& q, std::string& why) {
  const size_t start = r.pos();
  for (;;) {
    uint8_t len = 0;
    if (!r.u8(len)) {
      why = "the question's name is truncated";
      return false;
    }
    if ((len & 0xC0) == 0xC0) {
      why = "a compression pointer in the question's name";
      return false;
    }
    if ((len & 0xC0) != 0) {
      // 0x40 and 0x80: extended label types (RFC 6891 section 5); what is left is <= 63.
      why = "an unknown label type in the question's name";
      return false;
    }
    if (r.pos() - start + len > kMaxName) {
      why = "the question's name is longer than 255 octets";
      return false;
    }
    if (len == 0) {
      break;
    }
    const size_t at = r.pos();
    if (!r.skip(len)) {
      why = "the question's name is truncated";
      return false;
    }
    if (!q.name.empty()) {
      q.name.push_back('.');
    }
    for (size_t i = at; i < at + len; ++i) {
      const uint8_t c = r.data()[i];
      q.plainName = q.plainName && plainLabelByte(c);
      q.name.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c));
    }
  }
  auto wire = r.data().subspan(start, r.pos() - start);
  q.qnameWire.assign(wire.begin(), wire.end());
  if (!q.plainName) {
    q.name.clear();
  }
  return true;
}

// The additional section's only record: an OPT RR (RFC 6891 section 6.1.2).
bool readOpt(Reader& r, Query& q, std::string& why) {
  uint8_t owner = 0;
  uint16_t type = 0;
  uint16_t payload = 0;
  uint32_t ttl = 0;
  uint16_t rdlen = 0;
  if (!r.u8(owner) || !r.u16(type) || !r.u16(payload) || !r.u32(ttl) || !r.u16(rdlen)) {
    why = "the additional record is truncated";
    return false;
  }
  if (owner != 0 || type != kTypeOpt) {
    why = "the additional record is not an OPT RR for the root";
    return false;
  }
  Reader options(r.data().subspan(r.pos(), std::min<size_t>(rdlen, r.remaining())));
  if (!r.skip(rdlen)) {
    why = "the OPT RR's data is truncated";
    return false;
  }
  while (options.remaining() > 0) {
    uint16_t code = 0;
    uint16_t len = 0;
    if (!options.u16(code) || !options.u16(len) || !options.skip(len)) {
      why = "an EDNS option overruns the OPT RR";
      return false;
    }
  }
  q.ednsPayload = payload;
  q.ednsVersion = static_cast<uint8_t>(ttl >> 16);
  return true;
}

void writeHeader(Writer& w, const Query& q, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ar) {
  w.u16(q.id);
  w.u16(static_cast<uint16_t>(kFlagQr | (q.opcode & 0x0F) << 11 |
                              (q.recursionDesired ? kFlagRd : 0) | flags));
  w.u16(qd);
  w.u16(an);
  w.u16(0);
  w.u16(ar);
}

void writeOpt(Writer& w, uint8_t extendedRcode) {
  w.u8(0);  // the root
  w.u16(kTypeOpt);
  w.u16(kOurUdpPayload);
  w.u32(uint32_t{extendedRcode} << 24);  // version 0, no DO bit
  w.u16(0);
}

void writeTxt(Writer& w, const std::string& value, uint32_t ttl) {
  w.u16(kAnswerNamePointer);
  w.u16(kTypeTxt);
  w.u16(kClassIn);
  w.u32(ttl);
  // RFC 1035 section 3.3.14: one or more <character-string>s of at most 255 octets each.
  const size_t strings = value.empty() ? 1 : (value.size() + 254) / 255;
  w.u16(static_cast<uint16_t>(value.size() + strings));
  size_t at = 0;
  do {
    const size_t n = std::min<size_t>(255, value.size() - at);
    w.u8(static_cast<uint8_t>(n));
    w.bytes(value.substr(at, n));
    at += n;
  } while (at < value.size());
}

std::vector<uint8_t> build(const Query& q, const Answer& a, bool withAnswers) {
  Writer w;
  const bool edns = q.ednsPayload.has_value();
  const auto an = static_cast<uint16_t>(withAnswers ? a.txt.size() : 0);
  // AA: the answer (or the absence of one) is ours; a REFUSED name is no zone of ours.
  const uint16_t aa = a.rcode == Rcode::Refused ? 0 : kFlagAa;
  writeHeader(
      w, q, static_cast<uint16_t>(aa | (withAnswers ? 0 : kFlagTc) | static_cast<uint8_t>(a.rcode)),
      1, an, edns ? 1 : 0);
  w.bytes(q.qnameWire);
  w.u16(q.qtype);
  w.u16(q.qclass);
  for (size_t i = 0; i < an; ++i) {
    writeTxt(w, a.txt[i], a.ttl);
  }
  if (edns) {
    writeOpt(w, 0);
  }
  return w.take();
}

}  // namespace

Parsed parseQuery(std::span<const uint8_t> message) {
  Parsed p;
  Reader r(message);
  uint16_t flags = 0;
  uint16_t qd = 0;
  uint16_t an = 0;
  uint16_t ns = 0;
  uint16_t ar = 0;
  if (!r.u16(p.query.id) || !r.u16(flags) || !r.u16(qd) || !r.u16(an) || !r.u16(ns) || !r.u16(ar)) {
    p.why = "shorter than a DNS header";
    return p;
  }
  if ((flags & kFlagQr) != 0) {
    p.why = "a response, not a query";
    return p;
  }
  p.query.opcode = static_cast<uint8_t>(flags >> 11 & 0x0F);
  p.query.recursionDesired = (flags & kFlagRd) != 0;
  if (p.query.opcode != 0) {
    p.verdict = Verdict::NotImp;
    p.why = "opcode " + std::to_string(p.query.opcode);
    return p;
  }
  p.verdict = Verdict::FormErr;
  if (qd != 1 || an != 0 || ns != 0 || ar > 1) {
    p.why = "not one question, no answers, no authority and at most an OPT RR";
    return p;
  }
  if (!readName(r, p.query, p.why)) {
    return p;
  }
  if (!r.u16(p.query.qtype) || !r.u16(p.query.qclass)) {
    p.why = "the question is truncated";
    return p;
  }
  if (ar == 1 && !readOpt(r, p.query, p.why)) {
    return p;
  }
  if (r.remaining() != 0) {
    p.why = "bytes after the last record";
    return p;
  }
  p.verdict = p.query.ednsVersion == 0 ? Verdict::Answer : Verdict::BadVers;
  return p;
}

std::vector<uint8_t> buildResponse(const Query& q, const Answer& answer, size_t limit) {
  std::vector<uint8_t> full = build(q, answer, true);
  if (full.size() <= limit || answer.txt.empty()) {
    return full;
  }
  return build(q, answer, false);
}

std::vector<uint8_t> buildTruncated(const Query& q) {
  return build(q, Answer{}, false);
}

std::vector<uint8_t> buildError(const Parsed& parsed) {
  Writer w;
  const Query& q = parsed.query;
  switch (parsed.verdict) {
    case Verdict::BadVers:
      // The low 4 bits of BADVERS (16) are 0 in the header; the high 8 go in the OPT RR.
      writeHeader(w, q, kRcodeBadVers & 0x0F, 0, 0, 1);
      writeOpt(w, static_cast<uint8_t>(kRcodeBadVers >> 4));
      break;
    case Verdict::NotImp:
      writeHeader(w, q, static_cast<uint8_t>(Rcode::NotImp), 0, 0, 0);
      break;
    default:
      writeHeader(w, q, static_cast<uint8_t>(Rcode::FormErr), 0, 0, 0);
      break;
  }
  return w.take();
}

size_t udpLimit(const Query& q) {
  if (!q.ednsPayload) {
    return kClassicUdpPayload;
  }
  return std::clamp<size_t>(*q.ednsPayload, kClassicUdpPayload, kOurUdpPayload);
}

Answer answerFor(const Query& q, const TxtLookup& lookup) {
  Answer a;
  std::optional<std::vector<std::string>> values;
  if (q.plainName && q.qclass == kClassIn) {
    values = lookup(q.name);
  }
  if (!values) {
    a.rcode = Rcode::Refused;
    return a;
  }
  if (q.qtype == kTypeTxt) {
    a.txt = std::move(*values);
  }
  return a;
}

Reply respond(std::span<const uint8_t> message, Transport transport, const TxtLookup& lookup) {
  Parsed p = parseQuery(message);
  Reply reply{p.verdict, {}};
  if (p.verdict == Verdict::Drop) {
    return reply;
  }
  if (p.verdict != Verdict::Answer) {
    reply.bytes = buildError(p);
    return reply;
  }
  const size_t limit = transport == Transport::Udp ? udpLimit(p.query) : kMaxTcpMessage;
  reply.bytes = buildResponse(p.query, answerFor(p.query, lookup), limit);
  return reply;
}

}  // namespace edgeplane::proxy::dns
