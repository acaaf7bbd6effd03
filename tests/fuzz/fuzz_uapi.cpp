// libFuzzer target: wireguard-go's UAPI replies (get and set) through our strict parsers.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "reconciler/system/wg_uapi_codec.h"
#include "tests/fuzz/fuzz_check.h"

using edgeplane::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeplane::sys;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  UapiLimits limits;
  limits.maxReplyBytes = 1 << 20;
  limits.maxPeers = 1000;
  limits.maxAllowedIps = 10000;

  (void)parseUapiSetReply(text);
  auto device = parseUapiGetReply(text, limits);
  if (device.ok()) {
    // Whatever parses must survive our own encoding unchanged: the encoder and the parser
    // agree on every value the parser can produce.
    const std::string again = encodeUapiGetReply(*device);
    auto reparsed = parseUapiGetReply(again, limits);
    check(reparsed.ok());
    check(encodeUapiGetReply(*reparsed) == again);
  }
  auto set = parseUapiSet(text, limits);
  if (set.ok()) {
    auto reparsed = parseUapiSet(encodeUapiSet(*set), limits);
    check(reparsed.ok());
    check(encodeUapiSet(*reparsed) == encodeUapiSet(*set));
  }
  return 0;
}
