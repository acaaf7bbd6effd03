// libFuzzer target for the PROXY protocol v1/v2 decoder, and the encoders through round trips.
//
// Input layout: byte 0 = flags (bits 0-1: 0 both versions, 1 v1 only, 2 v2 only, 3 both with
// small caps; bits 2-7: chunk size, 0 = one feed), then the stream. The answer must not
// depend on the chunking; a decoded header with addresses must survive encodeV1 / encodeV2 and
// decode again to the same addresses (and, for v2, the same TLVs).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/proxy_protocol.h"

namespace {

using edgeplane::proxy::ProxyDecoderOptions;
using edgeplane::proxy::ProxyHeader;
using edgeplane::proxy::ProxyHeaderDecoder;

[[noreturn]] void fail() {
  __builtin_trap();
}

ProxyHeaderDecoder decodeIn(std::span<const uint8_t> stream, ProxyDecoderOptions options,
                            size_t chunk) {
  ProxyHeaderDecoder d(options);
  size_t at = 0;
  while (at < stream.size() && d.status() == ProxyHeaderDecoder::Status::NeedMore) {
    size_t n = chunk == 0 || chunk > stream.size() - at ? stream.size() - at : chunk;
    auto r = d.feed(stream.subspan(at, n));
    if (r.status == ProxyHeaderDecoder::Status::NeedMore && r.consumed != n) {
      fail();
    }
    at += n;
  }
  return d;
}

void checkRoundTrip(const ProxyHeader& h) {
  if (!h.source || !h.destination) {
    return;
  }
  std::string v1 = edgeplane::proxy::encodeV1(*h.source, *h.destination);
  if (v1.size() > edgeplane::proxy::kProxyV1MaxLength) {
    fail();
  }
  ProxyHeaderDecoder d1;
  if (d1.feed(v1).status != ProxyHeaderDecoder::Status::Done || d1.consumed() != v1.size() ||
      d1.header().source != h.source || d1.header().destination != h.destination) {
    fail();
  }
  std::vector<edgeplane::proxy::ProxyTlvView> tlvs;
  bool hadCrc = false;
  for (const auto& tlv : h.tlvs) {
    if (tlv.type == edgeplane::proxy::kPp2TypeCrc32c) {
      hadCrc = true;
    } else {
      tlvs.push_back({tlv.type, tlv.value});
    }
  }
  std::optional<std::string> v2 =
      edgeplane::proxy::encodeV2(*h.source, *h.destination, tlvs, hadCrc);
  if (!v2) {
    fail();  // the same family and TLVs fitted once, so they fit again
  }
  ProxyHeaderDecoder d2;
  if (d2.feed(*v2).status != ProxyHeaderDecoder::Status::Done || d2.consumed() != v2->size()) {
    fail();
  }
  const ProxyHeader& again = d2.header();
  if (again.source != h.source || again.destination != h.destination ||
      again.tlvs.size() != h.tlvs.size()) {
    fail();
  }
  // Against an endpoint of the other family, both encoders map IPv4 into IPv6.
  const bool v4 = h.source->address.family == edgeplane::IpAddress::Family::V4;
  const edgeplane::Endpoint other =
      *edgeplane::Endpoint::parse(v4 ? "[2001:db8::1]:443" : "192.0.2.1:443");
  std::string mixed1 = edgeplane::proxy::encodeV1(*h.source, other);
  std::optional<std::string> mixed2 = edgeplane::proxy::encodeV2(*h.source, other);
  for (const std::string* m : {&mixed1, &*mixed2}) {
    ProxyHeaderDecoder dm;
    if (dm.feed(*m).status != ProxyHeaderDecoder::Status::Done ||
        dm.header().family != ProxyHeader::Family::Inet6 ||
        dm.header().source->port != h.source->port) {
      fail();
    }
    const auto& got = dm.header().source->address.bytes;
    const auto& want = h.source->address.bytes;
    for (size_t i = 0; i < (v4 ? 4u : 16u); ++i) {
      if (got[v4 ? 12 + i : i] != want[i]) {
        fail();
      }
    }
  }
  size_t j = 0;
  for (const auto& tlv : again.tlvs) {
    if (tlv.type != edgeplane::proxy::kPp2TypeCrc32c) {
      if (j >= tlvs.size() || tlv.type != tlvs[j].type || tlv.value != tlvs[j].value) {
        fail();
      }
      ++j;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) {
    return 0;
  }
  const uint8_t flags = data[0];
  ProxyDecoderOptions options;
  switch (flags & 3) {
    case 1:
      options.acceptV2 = false;
      break;
    case 2:
      options.acceptV1 = false;
      break;
    case 3:
      options.maxTlvs = 2;
      options.maxV2Payload = 64;
      break;
    default:
      break;
  }
  const size_t chunk = flags >> 2;
  std::span<const uint8_t> stream(data + 1, size - 1);

  ProxyHeaderDecoder whole = decodeIn(stream, options, 0);
  ProxyHeaderDecoder chunked = decodeIn(stream, options, chunk);
  ProxyHeaderDecoder bytewise = decodeIn(stream, options, 1);
  for (const ProxyHeaderDecoder* d : {&chunked, &bytewise}) {
    if (d->status() != whole.status() || d->error() != whole.error() ||
        d->consumed() != whole.consumed() || !(d->header() == whole.header())) {
      fail();
    }
  }
  if (whole.consumed() > stream.size()) {
    fail();
  }
  if (whole.status() == ProxyHeaderDecoder::Status::NeedMore && whole.consumed() != stream.size()) {
    fail();
  }
  if (whole.status() == ProxyHeaderDecoder::Status::Done) {
    checkRoundTrip(whole.header());
  }
  return 0;
}
