// libFuzzer target for the :80 listener's request-head reader (proxy/http_redirect.h).
//
// Input: the bytes a client sends. Byte 0 is the read size used to find the end of the head
// incrementally (as the engine does across reads); the result must equal a one-shot search.
// An accepted head must yield a clean host and target: the 308 response built from them has
// exactly the header lines we write (no CR/LF smuggled in through Host or the target).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/http_redirect.h"

namespace {

[[noreturn]] void fail() {
  __builtin_trap();
}

size_t countLines(std::string_view s) {
  size_t n = 0;
  for (size_t at = s.find("\r\n"); at != std::string_view::npos; at = s.find("\r\n", at + 2)) {
    ++n;
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgeplane::proxy;
  if (size == 0) {
    return 0;
  }
  size_t chunk = data[0] == 0 ? size : data[0];
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (input.size() > kMaxHttpHead) {
    input = input.substr(0, kMaxHttpHead);
  }
  size_t oneShot = findHttpHeadEnd(input);
  size_t incremental = 0;
  for (size_t have = 0; have < input.size() && incremental == 0;) {
    size_t next = std::min(input.size(), have + chunk);
    incremental = findHttpHeadEnd(input.substr(0, next), have);
    have = next;
  }
  if (oneShot != incremental) {
    fail();
  }
  if (oneShot == 0) {
    return 0;
  }
  HttpHead head;
  if (!parseHttpHead(input.substr(0, oneShot), head)) {
    return 0;
  }
  if (head.host.empty() || head.target.empty() || head.target[0] != '/') {
    fail();
  }
  for (char c : head.host + head.target) {
    auto u = static_cast<uint8_t>(c);
    if (u <= 0x20 || u >= 0x7F) {
      fail();
    }
  }
  std::string response = httpRedirectResponse(head);
  if (countLines(response) != 5) {  // status, Location, Content-Length, Connection, blank
    fail();
  }
  return 0;
}
