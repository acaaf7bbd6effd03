// PROXY protocol v1 (text) and v2 (binary), HAProxy spec: encoders and strict decoders.
//
// Encoders build the header the proxy sends to a backend first, for TCP over IPv4/IPv6. A
// source and destination of different families cannot be written as TCP4 or TCP6 (nor as
// v2 INET or INET6), so the IPv4 one is written as its IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// and the header is TCP6 / INET6: the backend still learns the client's address, which
// "UNKNOWN" would lose.
//
// The decoder is for the tests' backends and for a future "accept PROXY from a load
// balancer" listener: fed incrementally (one byte at a time works), never consumes past the
// header, bounded (v1: 107 bytes; v2: 16 + a configurable cap up to 65535, plus a cap on the
// number of TLVs), refuses anything not exactly per the spec as early as it can tell, and
// verifies PP2_TYPE_CRC32C when present. No exceptions; one allocation per v2 header at most
// (none when the header arrives whole in one feed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "schema/net.h"

namespace edgeplane::proxy {

// Registered v2 TLV types (spec section 2.2).
inline constexpr uint8_t kPp2TypeAlpn = 0x01;
inline constexpr uint8_t kPp2TypeAuthority = 0x02;  // the client's SNI
inline constexpr uint8_t kPp2TypeCrc32c = 0x03;
inline constexpr uint8_t kPp2TypeNoop = 0x04;
inline constexpr uint8_t kPp2TypeUniqueId = 0x05;
inline constexpr uint8_t kPp2TypeSsl = 0x20;
inline constexpr uint8_t kPp2TypeNetns = 0x30;

inline constexpr size_t kProxyV1MaxLength = 107;  // CRLF included
inline constexpr size_t kProxyV2HeaderSize = 16;  // signature, ver_cmd, fam, len
inline constexpr size_t kProxyV2MaxPayload = 65535;

// A TLV to encode; the value is borrowed for the call.
struct ProxyTlvView {
  uint8_t type = 0;
  std::string_view value;
};

// A decoded TLV (PP2_TYPE_SSL's sub-TLVs are kept raw in its value).
struct ProxyTlv {
  uint8_t type = 0;
  std::string value;
  bool operator==(const ProxyTlv& other) const = default;
};

// "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" (TCP6 for IPv6 or mixed families).
std::string encodeV1(const Endpoint& source, const Endpoint& destination);
// "PROXY UNKNOWN\r\n": only when the addresses cannot be known (the spec discourages it).
std::string encodeV1Unknown();

// PROXY command, TCP (STREAM) over INET or INET6, then the TLVs in order, then a CRC32C TLV
// when asked for. nullopt if the TLVs do not fit in the 16-bit length or one of them is a
// CRC32C (ask for it with `withCrc32c` instead).
std::optional<std::string> encodeV2(const Endpoint& source, const Endpoint& destination,
                                    std::span<const ProxyTlvView> tlvs = {},
                                    bool withCrc32c = false);
// LOCAL command, UNSPEC family, no address: for the proxy's own health checks.
std::string encodeV2Local();

// CRC-32C (Castagnoli, RFC 4960 appendix B), as PP2_TYPE_CRC32C uses it.
uint32_t crc32c(std::span<const uint8_t> data);

struct ProxyHeader {
  enum class Version : uint8_t { V1, V2 };
  enum class Command : uint8_t { Local, Proxy };  // v1 is always Proxy
  enum class Family : uint8_t { Unspec, Inet, Inet6, Unix };
  enum class Transport : uint8_t { Unspec, Stream, Dgram };

  Version version = Version::V1;
  Command command = Command::Proxy;
  Family family = Family::Unspec;  // v1 UNKNOWN is Unspec
  Transport transport = Transport::Unspec;
  // Set for PROXY over INET/INET6 (v1 TCP4/TCP6); absent when the receiver must use the real
  // connection's endpoints (LOCAL, UNSPEC, UNKNOWN) or for AF_UNIX (not represented).
  std::optional<Endpoint> source;
  std::optional<Endpoint> destination;
  std::vector<ProxyTlv> tlvs;  // v2 PROXY only, in wire order (the CRC32C one included)

  const ProxyTlv* findTlv(uint8_t type) const;
  bool operator==(const ProxyHeader& other) const = default;
};

enum class ProxyHeaderError : uint8_t {
  None,
  NotProxy,         // neither "PROXY " nor the v2 signature (or a version not accepted)
  V1Syntax,         // anything not exactly per section 2.1
  V1TooLong,        // no CRLF within 107 bytes
  V1Address,        // an address that is not canonical for TCP4 / TCP6
  V1Port,           // a port outside 0..65535 or with a leading zero
  V2Version,        // version nibble other than 2
  V2Command,        // command other than LOCAL / PROXY
  V2Family,         // family/transport byte not one of the seven valid combinations
  V2TooLarge,       // length above the configured cap
  V2AddressLength,  // too short for the addresses of its family
  V2Tlv,            // a TLV that does not fit, or a malformed CRC32C TLV
  V2TooManyTlvs,    // more TLVs than the configured cap
  V2Checksum,       // CRC32C mismatch
};

std::string_view toString(ProxyHeaderError error);

struct ProxyDecoderOptions {
  bool acceptV1 = true;
  bool acceptV2 = true;
  size_t maxV2Payload = kProxyV2MaxPayload;  // bytes after the 16-byte v2 header
  size_t maxTlvs = 64;
};

class ProxyHeaderDecoder {
 public:
  enum class Status : uint8_t { NeedMore, Done, Error };
  struct Result {
    Status status;
    // Bytes of this feed() taken: the header's, or on Error up to the offending byte. What
    // follows a Done header is the proxied stream and is left to the caller.
    size_t consumed;
  };

  explicit ProxyHeaderDecoder(ProxyDecoderOptions options = {}) : options_(options) {}

  Result feed(std::span<const uint8_t> data);
  Result feed(std::string_view data) {
    return feed(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }

  Status status() const { return status_; }
  ProxyHeaderError error() const { return error_; }
  std::string_view errorReason() const { return toString(error_); }
  size_t consumed() const { return consumed_; }
  // Valid when Done.
  const ProxyHeader& header() const { return header_; }

  void reset();

 private:
  bool onV1Byte(uint8_t byte);
  bool onV2HeaderByte(uint8_t byte);
  bool finishV2(std::span<const uint8_t> payload);
  void fail(ProxyHeaderError error);

  ProxyDecoderOptions options_;
  Status status_ = Status::NeedMore;
  ProxyHeaderError error_ = ProxyHeaderError::None;
  size_t consumed_ = 0;
  uint8_t prefix_[kProxyV1MaxLength] = {};  // the v1 line, or the 16-byte v2 header
  size_t prefixLen_ = 0;
  size_t payloadLength_ = 0;  // v2: declared length after the fixed header
  std::vector<uint8_t> payload_;
  ProxyHeader header_;
};

// Parses a complete v1 line (without its CRLF, e.g. "PROXY TCP4 1.2.3.4 5.6.7.8 1 2").
ProxyHeaderError parseProxyV1Line(std::string_view line, ProxyHeader& out);

}  // namespace edgeplane::proxy
