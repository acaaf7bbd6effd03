// libFuzzer target for proxy/http parseRequestHead and writeUpstreamRequest.
//
// Input: byte 0 is the read size (0: the whole input at once); the rest is what a client sends.
// Invariants: every prefix at read-size steps parses to NeedMore or to the whole input's
// result (NeedMore only before the head's end); an accepted head's views lie in the buffer and
// hold no CR/LF/NUL; the upstream head serialized from it parses back to the same method,
// target, host and framing, with exactly its own length.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/http/message.h"
#include "proxy/http/serialize.h"

namespace {

using namespace edgeplane::proxy::http;

[[noreturn]] void fail() {
  __builtin_trap();
}

void check(bool ok) {
  if (!ok) {
    fail();
  }
}

bool inside(std::string_view part, std::string_view buf) {
  return part.empty() ||
         (part.data() >= buf.data() && part.data() + part.size() <= buf.data() + buf.size());
}

bool clean(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

void checkAccepted(std::string_view input, const RequestHead& head, size_t length) {
  std::string_view buf = input.substr(0, length);
  check(inside(head.method, buf) && inside(head.target, buf) && inside(head.host, buf));
  check(clean(head.target) && clean(head.host) && !head.method.empty());
  for (const HeaderField& f : head.headers) {
    check(inside(f.name, buf) && inside(f.value, buf) && clean(f.name) && clean(f.value));
    check(isValidFieldName(f.name) && isValidFieldValue(f.value));
  }
  if (head.host.empty()) {
    return;  // an HTTP/1.0 request without Host: nothing to forward as HTTP/1.1 as is
  }
  UpstreamRequestOptions options;
  options.clientIp = "2001:db8::1";
  std::string out;
  writeUpstreamRequest(head, options, out);
  RequestHead back;
  Limits roomy{.maxRequestLine = 1 << 20, .maxHeaderBytes = 1 << 20, .maxFields = 1000};
  ParseResult r = parseRequestHead(std::span<const char>(out.data(), out.size()), back, roomy);
  check(r.status == ParseStatus::Done && r.length == out.size());
  check(back.method == head.method && back.originTarget == head.originTarget);
  check(back.host == head.host && back.framing == head.framing);
  check(back.contentLength == head.contentLength);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  size_t step = data[0] == 0 ? size : data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  Limits limits;
  if (data[0] & 1) {
    limits = Limits{.maxRequestLine = 64, .maxHeaderBytes = 256, .maxFields = 4};
  }
  RequestHead whole;
  ParseResult expected = parseRequestHead(input, whole, limits);
  for (size_t n = 0; n < input.size(); n += step) {
    RequestHead head;
    ParseResult r = parseRequestHead(input.substr(0, n), head, limits);
    if (r.status == ParseStatus::NeedMore) {
      check(expected.status != ParseStatus::Done || n < expected.length);
    } else {
      check(r == expected);
    }
  }
  if (expected.status == ParseStatus::Error) {
    check(expected.code >= 400 && expected.code <= 505 && expected.close);
    check(!expected.reason.empty());
  }
  if (expected.status == ParseStatus::Done) {
    check(expected.length > 0 && expected.length <= input.size());
    checkAccepted(input, whole, expected.length);
  }
  return 0;
}
