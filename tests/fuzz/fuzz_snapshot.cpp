// libFuzzer target: the proxy routing snapshot decoder (the store's JSON -> ProxySnapshot).
//
// The proxy reads this text from a database other programs write, so every byte string must
// come back as a snapshot or an error, never a crash, a hang or a leak; and whatever decodes
// must survive our own encoder unchanged (the codec agrees with itself on every value the
// decoder can produce, and re-encoding is canonical).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "schema/snapshot.h"
#include "tests/fuzz/fuzz_check.h"

using edgeplane::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto decoded = edgeplane::snapshotFromJson(text);
  if (!decoded.ok()) {
    check(!decoded.error().message.empty());
    return 0;
  }
  const std::string canonical = edgeplane::snapshotToJson(*decoded);
  auto again = edgeplane::snapshotFromJson(canonical);
  check(again.ok());
  check(*again == *decoded);
  check(edgeplane::snapshotToJson(*again) == canonical);
  for (const auto& route : decoded->routes) {
    check(!route.key().empty());
  }
  return 0;
}
