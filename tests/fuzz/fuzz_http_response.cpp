// libFuzzer target for proxy/http parseResponseHead and writeClientResponse.
//
// Input: byte 0 is the read size (0: all at once; bit 7 set: the request was HEAD); the rest is
// what an upstream sends. Invariants: incremental == whole (as for requests); errors are 502;
// an accepted head's fields are clean; the client head serialized from it parses back to the
// same status and framing, with exactly its own length.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "proxy/http/message.h"
#include "proxy/http/serialize.h"

namespace {

using namespace edgeplane::proxy::http;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

void checkAccepted(const ResponseHead& head, std::string_view method) {
  check(head.status >= 100 && head.status <= 599);
  for (const HeaderField& f : head.headers) {
    check(isValidFieldName(f.name) && isValidFieldValue(f.value));
  }
  check(head.framing != BodyFraming::UntilClose || !head.keepAlive);
  std::string out;
  writeClientResponse(head, {}, out);
  ResponseHead back;
  Limits roomy{.maxRequestLine = 1 << 20, .maxHeaderBytes = 1 << 20, .maxFields = 1000};
  ParseResult r =
      parseResponseHead(std::span<const char>(out.data(), out.size()), back, roomy, method);
  check(r.status == ParseStatus::Done && r.length == out.size());
  check(back.status == head.status && back.framing == head.framing);
  check(back.contentLength == head.contentLength && back.reason == head.reason);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  size_t step = (data[0] & 0x7F) == 0 ? size : (data[0] & 0x7F);
  std::string_view method = (data[0] & 0x80) != 0 ? "HEAD" : "GET";
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  Limits limits;
  ResponseHead whole;
  ParseResult expected = parseResponseHead(input, whole, limits, method);
  for (size_t n = 0; n < input.size(); n += step) {
    ResponseHead head;
    ParseResult r = parseResponseHead(input.substr(0, n), head, limits, method);
    if (r.status == ParseStatus::NeedMore) {
      check(expected.status != ParseStatus::Done || n < expected.length);
    } else {
      check(r == expected);
    }
  }
  if (expected.status == ParseStatus::Error) {
    check(expected.code == 502 && expected.close);
  }
  if (expected.status == ParseStatus::Done) {
    check(expected.length > 0 && expected.length <= input.size());
    checkAccepted(whole, method);
  }
  return 0;
}
