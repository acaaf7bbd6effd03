// libFuzzer target for the ClientHello reader: untrusted bytes fed in input-chosen chunks.
//
// Input layout: byte 0 = flags (bits 0-3: how many chunk-size bytes follow, 0 = one feed;
// bit 7: a 1 KiB limit instead of 16 KiB, to reach the size checks with small inputs), then
// that many chunk sizes (each byte + 1, cycled), then the stream. Whatever the chunking, the
// answer must be the one a single feed gives; a Done hello must hold a normalized SNI, and the
// bytes it consumed must parse alone to the same hello. The SNI and a slice of the raw input
// also go through the routing table's lookup.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/clienthello.h"
#include "proxy/sni_router.h"

namespace {

using edgeplane::proxy::ClientHelloParser;

const edgeplane::proxy::RoutingTable& table() {
  static const auto t = [] {
    std::vector<edgeplane::proxy::RouteHosts> routes = {
        {1, {"example.com", "www.example.com"}},
        {2, {"*.example.com"}},
        {3, {"*.apps.example.com", "a.apps.example.com"}},
    };
    std::vector<edgeplane::proxy::RouteTableIssue> issues;
    return edgeplane::proxy::RoutingTable::build(routes, issues);
  }();
  return *t;
}

[[noreturn]] void fail() {
  __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t flags = data[0];
  const size_t maxBytes = (flags & 0x80) != 0 ? 1024 : ClientHelloParser::kDefaultMaxBytes;
  size_t nSizes = flags & 0x0F;
  if (nSizes > size - 1) {
    nSizes = size - 1;
  }
  std::span<const uint8_t> sizes(data + 1, nSizes);
  std::span<const uint8_t> stream(data + 1 + nSizes, size - 1 - nSizes);

  ClientHelloParser whole(maxBytes);
  auto r = whole.feed(stream);
  if (r.consumed > stream.size() || r.consumed != whole.consumed()) {
    fail();
  }

  ClientHelloParser chunked(maxBytes);
  size_t at = 0;
  for (size_t i = 0; at < stream.size() && chunked.status() == ClientHelloParser::Status::NeedMore;
       ++i) {
    size_t n = sizes.empty() ? stream.size() : size_t{sizes[i % sizes.size()]} + 1;
    if (n > stream.size() - at) {
      n = stream.size() - at;
    }
    auto c = chunked.feed(stream.subspan(at, n));
    if (c.status == ClientHelloParser::Status::NeedMore && c.consumed != n) {
      fail();
    }
    at += n;
  }
  if (chunked.status() != whole.status() || chunked.error() != whole.error() ||
      chunked.consumed() != whole.consumed()) {
    fail();
  }

  switch (whole.status()) {
    case ClientHelloParser::Status::NeedMore:
      if (whole.consumed() != stream.size()) {
        fail();
      }
      break;
    case ClientHelloParser::Status::Error:
      if (whole.errorReason().empty() || whole.hello().sni) {
        fail();
      }
      break;
    case ClientHelloParser::Status::Done: {
      const auto& hello = whole.hello();
      if (!(chunked.hello() == hello)) {
        fail();
      }
      if (hello.sni) {
        std::string again;
        if (!edgeplane::proxy::normalizeSniHostName(*hello.sni, again) || again != *hello.sni) {
          fail();
        }
        (void)table().lookup(*hello.sni);
      }
      for (std::string_view name : hello.alpn) {
        if (name.empty()) {
          fail();
        }
      }
      ClientHelloParser replay(maxBytes);
      if (replay.feed(stream.first(whole.consumed())).status != ClientHelloParser::Status::Done ||
          !(replay.hello() == hello)) {
        fail();
      }
      break;
    }
  }

  // The router's lookup takes whatever the engine hands it.
  size_t n = stream.size() < 300 ? stream.size() : 300;
  (void)table().lookup(std::string_view(reinterpret_cast<const char*>(stream.data()), n));
  return 0;
}
