// libFuzzer target for proxy/http ChunkedDecoder.
//
// Input: byte 0 is the piece size the body arrives in (0: all at once); the rest is a chunked
// body. Invariants: any piece size gives the same verdict, data and consumed count as one feed;
// data ranges lie inside the fed bytes; dataBytes() counts them; a completed body re-encoded
// as one chunk decodes to the same data.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <string_view>

#include "proxy/http/chunked.h"

namespace {

using namespace edgeplane::proxy::http;

void check(bool ok) {
  if (!ok) {
    __builtin_trap();
  }
}

struct Outcome {
  ChunkedDecoder::Status status = ChunkedDecoder::Status::Ok;
  std::string data;
  size_t consumed = 0;
};

Outcome decode(std::string_view input, size_t piece, const ChunkedLimits& limits) {
  ChunkedDecoder decoder(limits);
  Outcome out;
  for (size_t at = 0; at < input.size() && out.status == ChunkedDecoder::Status::Ok;) {
    size_t n = std::min(piece, input.size() - at);
    std::string_view in = input.substr(at, n);
    while (!in.empty()) {
      ChunkedDecoder::Step s = decoder.feed(std::span<const char>(in.data(), in.size()));
      check(s.consumed <= in.size() && s.dataOffset + s.dataLength <= s.consumed);
      check(s.dataLength == 0 || s.dataOffset + s.dataLength == s.consumed);
      out.data.append(in.substr(s.dataOffset, s.dataLength));
      out.consumed += s.consumed;
      out.status = s.status;
      if (s.status != ChunkedDecoder::Status::Ok) {
        check(s.status == ChunkedDecoder::Status::Done || !s.error.empty());
        break;
      }
      check(s.consumed > 0);
      in.remove_prefix(s.consumed);
    }
    at += n;
  }
  check(decoder.dataBytes() == out.data.size());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  ChunkedLimits limits;
  limits.maxChunkSize = 1 << 20;
  limits.maxExtensionBytes = 64;
  limits.maxTotalExtensionBytes = 256;
  limits.maxTrailerBytes = 128;
  limits.maxTrailerFields = 4;
  Outcome whole = decode(input, input.size() + 1, limits);
  Outcome split = decode(input, data[0] == 0 ? 1 : data[0], limits);
  check(whole.status == split.status && whole.data == split.data);
  check(whole.consumed == split.consumed && whole.consumed <= input.size());
  if (whole.status == ChunkedDecoder::Status::Done) {
    std::string again = "0\r\n\r\n";
    if (!whole.data.empty()) {
      char hex[32];
      int n = snprintf(hex, sizeof(hex), "%zx", whole.data.size());
      again = std::string(hex, static_cast<size_t>(n)) + "\r\n" + whole.data + "\r\n" + again;
    }
    Outcome re = decode(again, again.size() + 1, limits);
    check(re.status == ChunkedDecoder::Status::Done && re.data == whole.data);
    check(re.consumed == again.size());
  }
  return 0;
}
