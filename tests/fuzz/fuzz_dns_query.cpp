// libFuzzer target for the DNS-01 responder's codec: parseQuery, answerFor and the response
// builders over UDP and TCP. Every name is served with values sized from the input, so the
// TXT splitting and TC paths run too. Checks: a dropped message gets no bytes; a reply keeps
// the query's ID, sets QR and echoes the question byte for byte; a UDP reply fits the
// client's size; the parsed name is lower case and parsing is deterministic.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/dns/wire.h"

namespace {

using namespace edgeplane::proxy::dns;

[[noreturn]] void fail() {
  __builtin_trap();
}

void checkReply(std::span<const uint8_t> in, const Parsed& p, const Reply& r, Transport t) {
  if (r.verdict != p.verdict) {
    fail();
  }
  if (p.verdict == Verdict::Drop) {
    if (!r.bytes.empty()) {
      fail();
    }
    return;
  }
  if (r.bytes.size() < kHeaderSize || r.bytes[0] != in[0] || r.bytes[1] != in[1] ||
      (r.bytes[2] & 0x80) == 0) {
    fail();
  }
  if (p.verdict != Verdict::Answer) {
    return;
  }
  const size_t question = p.query.qnameWire.size() + 4;
  if (r.bytes.size() < kHeaderSize + question ||
      !std::equal(in.begin() + kHeaderSize, in.begin() + kHeaderSize + question,
                  r.bytes.begin() + kHeaderSize)) {
    fail();
  }
  const size_t limit = t == Transport::Udp ? udpLimit(p.query) : kMaxTcpMessage;
  if (t == Transport::Udp && r.bytes.size() > limit) {
    fail();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  const Parsed p = parseQuery(in);
  const Parsed again = parseQuery(in);
  if (p.verdict != again.verdict || p.query.name != again.query.name ||
      p.query.qnameWire != again.query.qnameWire) {
    fail();
  }
  for (char c : p.query.name) {
    if (c >= 'A' && c <= 'Z') {
      fail();
    }
  }
  if (p.query.qnameWire.size() > 255) {
    fail();
  }
  const size_t count = size == 0 ? 0 : data[size - 1] % 24;
  const std::string value(size % 600, 'v');
  TxtLookup lookup = [&](const std::string&) -> std::optional<std::vector<std::string>> {
    return std::vector<std::string>(count, value);
  };
  checkReply(in, p, respond(in, Transport::Udp, lookup), Transport::Udp);
  checkReply(in, p, respond(in, Transport::Tcp, lookup), Transport::Tcp);
  return 0;
}
