// PROXY protocol v1/v2 encoders and the incremental, strict header decoder.
#include "proxy/proxy_protocol.h"

#include <array>
#include <charconv>

namespace edgeplane::proxy {
namespace {

constexpr uint8_t kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view kV1Prefix = "PROXY ";
constexpr uint8_t kV2VersionProxy = 0x21;
constexpr uint8_t kV2VersionLocal = 0x20;
constexpr uint8_t kV2TcpOverInet = 0x11;
constexpr uint8_t kV2TcpOverInet6 = 0x21;
constexpr size_t kInetAddressLength = 12;   // 2 * 4 + 2 * 2
constexpr size_t kInet6AddressLength = 36;  // 2 * 16 + 2 * 2
constexpr size_t kUnixAddressLength = 216;  // 2 * 108
constexpr size_t kTlvHeaderSize = 3;
constexpr size_t kCrcTlvSize = kTlvHeaderSize + 4;

constexpr std::array<uint32_t, 256> makeCrc32cTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) {
      c = (c & 1) != 0 ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli polynomial
    }
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = makeCrc32cTable();

uint32_t crc32cUpdate(uint32_t crc, std::span<const uint8_t> data) {
  for (uint8_t b : data) {
    crc = kCrc32cTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
  }
  return crc;
}

IpAddress toV6(const IpAddress& a) {
  if (a.family == IpAddress::Family::V6) {
    return a;
  }
  IpAddress out;
  out.family = IpAddress::Family::V6;
  out.bytes[10] = 0xFF;
  out.bytes[11] = 0xFF;
  for (size_t i = 0; i < 4; ++i) {
    out.bytes[12 + i] = a.bytes[i];
  }
  return out;
}

void appendU16(std::string& out, size_t value) {
  out.push_back(static_cast<char>((value >> 8) & 0xFF));
  out.push_back(static_cast<char>(value & 0xFF));
}

void appendAddress(std::string& out, const IpAddress& a) {
  size_t n = a.family == IpAddress::Family::V4 ? 4 : 16;
  out.append(reinterpret_cast<const char*>(a.bytes.data()), n);
}

uint16_t readU16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

// 0..65535, decimal, no sign, no leading zero (spec 2.1).
std::optional<uint16_t> parseV1Port(std::string_view text) {
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) {
    return std::nullopt;
  }
  uint32_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) {
    return std::nullopt;
  }
  return static_cast<uint16_t>(value);
}

std::optional<IpAddress> parseV1Address(std::string_view text, bool v6) {
  // The family dictates the format. IPv6 text may embed IPv4 ("::ffff:1.2.3.4"), as inet_ntop
  // prints mapped addresses and senders (HAProxy, ours) write them that way.
  std::optional<IpAddress> a = IpAddress::parse(text);
  if (!a || (a->family == IpAddress::Family::V6) != v6) {
    return std::nullopt;
  }
  return a;
}

// Whether `field` (the bytes after "PROXY " seen so far) can still become a valid protocol.
bool isV1ProtocolPrefix(std::string_view field) {
  for (std::string_view proto :
       {std::string_view("TCP4 "), std::string_view("TCP6 "), std::string_view("UNKNOWN")}) {
    size_t n = field.size() < proto.size() ? field.size() : proto.size();
    if (field.substr(0, n) == proto.substr(0, n)) {
      return true;
    }
  }
  return false;
}

bool isValidV2FamilyByte(uint8_t b) {
  switch (b) {
    case 0x00:
    case 0x11:
    case 0x12:
    case 0x21:
    case 0x22:
    case 0x31:
    case 0x32:
      return true;
    default:
      return false;
  }
}

// The addresses of a PROXY command's INET or INET6 block into `h`; returns where the TLVs
// start. (onV2HeaderByte has checked that the payload holds the block.)
size_t readV2Addresses(ProxyHeader& h, std::span<const uint8_t> payload) {
  if (h.family != ProxyHeader::Family::Inet && h.family != ProxyHeader::Family::Inet6) {
    return kUnixAddressLength;  // not represented; its TLVs still are
  }
  bool v6 = h.family == ProxyHeader::Family::Inet6;
  size_t n = v6 ? 16 : 4;
  IpAddress src;
  IpAddress dst;
  src.family = dst.family = v6 ? IpAddress::Family::V6 : IpAddress::Family::V4;
  for (size_t i = 0; i < n; ++i) {
    src.bytes[i] = payload[i];
    dst.bytes[i] = payload[n + i];
  }
  h.source = Endpoint{src, readU16(payload.data() + 2 * n)};
  h.destination = Endpoint{dst, readU16(payload.data() + 2 * n + 2)};
  return 2 * n + 4;
}

// What a first pass over the TLVs found: how many, where the CRC32C value is, or what is wrong.
struct TlvScan {
  size_t count = 0;
  std::optional<size_t> crcAt;
  ProxyHeaderError error = ProxyHeaderError::None;
};

TlvScan scanV2Tlvs(std::span<const uint8_t> payload, size_t offset, size_t maxTlvs) {
  TlvScan scan;
  for (size_t at = offset; at < payload.size();) {
    if (payload.size() - at < kTlvHeaderSize) {
      scan.error = ProxyHeaderError::V2Tlv;
      return scan;
    }
    uint8_t type = payload[at];
    size_t len = readU16(payload.data() + at + 1);
    if (payload.size() - at - kTlvHeaderSize < len) {
      scan.error = ProxyHeaderError::V2Tlv;
      return scan;
    }
    if (type == kPp2TypeCrc32c) {
      if (len != 4 || scan.crcAt) {
        scan.error = ProxyHeaderError::V2Tlv;  // a second checksum would make "the" one ambiguous
        return scan;
      }
      scan.crcAt = at + kTlvHeaderSize;
    }
    if (++scan.count > maxTlvs) {
      scan.error = ProxyHeaderError::V2TooManyTlvs;
      return scan;
    }
    at += kTlvHeaderSize + len;
  }
  return scan;
}

// The CRC32C over the fixed header and the payload, its own value taken as zeros, against
// the value at `crcAt`.
bool v2ChecksumMatches(std::span<const uint8_t> header, std::span<const uint8_t> payload,
                       size_t crcAt) {
  uint32_t expected = (uint32_t{payload[crcAt]} << 24) | (uint32_t{payload[crcAt + 1]} << 16) |
                      (uint32_t{payload[crcAt + 2]} << 8) | payload[crcAt + 3];
  constexpr uint8_t kZeros[4] = {};
  uint32_t crc = crc32cUpdate(~0u, header);
  crc = crc32cUpdate(crc, payload.first(crcAt));
  crc = crc32cUpdate(crc, kZeros);
  crc = ~crc32cUpdate(crc, payload.subspan(crcAt + 4));
  return crc == expected;
}

}  // namespace

std::string_view toString(ProxyHeaderError error) {
  switch (error) {
    case ProxyHeaderError::None:
      return "none";
    case ProxyHeaderError::NotProxy:
      return "not_proxy";
    case ProxyHeaderError::V1Syntax:
      return "v1_syntax";
    case ProxyHeaderError::V1TooLong:
      return "v1_too_long";
    case ProxyHeaderError::V1Address:
      return "v1_address";
    case ProxyHeaderError::V1Port:
      return "v1_port";
    case ProxyHeaderError::V2Version:
      return "v2_version";
    case ProxyHeaderError::V2Command:
      return "v2_command";
    case ProxyHeaderError::V2Family:
      return "v2_family";
    case ProxyHeaderError::V2TooLarge:
      return "v2_too_large";
    case ProxyHeaderError::V2AddressLength:
      return "v2_address_length";
    case ProxyHeaderError::V2Tlv:
      return "v2_tlv";
    case ProxyHeaderError::V2TooManyTlvs:
      return "v2_too_many_tlvs";
    case ProxyHeaderError::V2Checksum:
      return "v2_checksum";
  }
  return "unknown";
}

uint32_t crc32c(std::span<const uint8_t> data) {
  return ~crc32cUpdate(~0u, data);
}

// Encoders

std::string encodeV1(const Endpoint& source, const Endpoint& destination) {
  bool v6 = source.address.family == IpAddress::Family::V6 ||
            destination.address.family == IpAddress::Family::V6;
  std::string out;
  out.reserve(kProxyV1MaxLength);
  out += v6 ? "PROXY TCP6 " : "PROXY TCP4 ";
  out += (v6 ? toV6(source.address) : source.address).str();
  out += ' ';
  out += (v6 ? toV6(destination.address) : destination.address).str();
  char ports[16];
  for (uint16_t port : {source.port, destination.port}) {
    auto [end, ec] = std::to_chars(ports, ports + sizeof(ports), port);
    (void)ec;  // cannot fail: 5 digits fit
    out += ' ';
    out.append(ports, end);
  }
  out += "\r\n";
  return out;
}

std::string encodeV1Unknown() {
  return "PROXY UNKNOWN\r\n";
}

std::optional<std::string> encodeV2(const Endpoint& source, const Endpoint& destination,
                                    std::span<const ProxyTlvView> tlvs, bool withCrc32c) {
  bool v6 = source.address.family == IpAddress::Family::V6 ||
            destination.address.family == IpAddress::Family::V6;
  size_t length = v6 ? kInet6AddressLength : kInetAddressLength;
  for (const ProxyTlvView& tlv : tlvs) {
    if (tlv.type == kPp2TypeCrc32c) {
      return std::nullopt;
    }
    length += kTlvHeaderSize + tlv.value.size();
    if (length > kProxyV2MaxPayload) {
      return std::nullopt;  // checked in the loop so the sum cannot wrap
    }
  }
  if (withCrc32c) {
    length += kCrcTlvSize;
  }
  if (length > kProxyV2MaxPayload) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(kProxyV2HeaderSize + length);
  out.append(reinterpret_cast<const char*>(kV2Signature), sizeof(kV2Signature));
  out.push_back(static_cast<char>(kV2VersionProxy));
  out.push_back(static_cast<char>(v6 ? kV2TcpOverInet6 : kV2TcpOverInet));
  appendU16(out, length);
  appendAddress(out, v6 ? toV6(source.address) : source.address);
  appendAddress(out, v6 ? toV6(destination.address) : destination.address);
  appendU16(out, source.port);
  appendU16(out, destination.port);
  for (const ProxyTlvView& tlv : tlvs) {
    out.push_back(static_cast<char>(tlv.type));
    appendU16(out, tlv.value.size());
    out.append(tlv.value);
  }
  if (withCrc32c) {
    // The checksum covers the whole header with its own field zeroed (spec 2.2.3).
    out.push_back(static_cast<char>(kPp2TypeCrc32c));
    appendU16(out, 4);
    out.append(4, '\0');
    uint32_t crc =
        crc32c(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(out.data()), out.size()));
    for (size_t i = 0; i < 4; ++i) {
      out[out.size() - 4 + i] = static_cast<char>((crc >> (24 - 8 * i)) & 0xFF);
    }
  }
  return out;
}

std::string encodeV2Local() {
  std::string out(reinterpret_cast<const char*>(kV2Signature), sizeof(kV2Signature));
  out.push_back(static_cast<char>(kV2VersionLocal));
  out.push_back('\0');  // UNSPEC
  appendU16(out, 0);
  return out;
}

// Decoding

const ProxyTlv* ProxyHeader::findTlv(uint8_t type) const {
  for (const ProxyTlv& tlv : tlvs) {
    if (tlv.type == type) {
      return &tlv;
    }
  }
  return nullptr;
}

ProxyHeaderError parseProxyV1Line(std::string_view line, ProxyHeader& out) {
  out = ProxyHeader{};
  out.version = ProxyHeader::Version::V1;
  out.command = ProxyHeader::Command::Proxy;
  if (line.substr(0, kV1Prefix.size()) != kV1Prefix) {
    return ProxyHeaderError::NotProxy;
  }
  std::string_view rest = line.substr(kV1Prefix.size());
  if (rest.substr(0, 7) == "UNKNOWN") {
    // The receiver must ignore anything between UNKNOWN and the CRLF.
    if (rest.size() > 7 && rest[7] != ' ') {
      return ProxyHeaderError::V1Syntax;
    }
    return ProxyHeaderError::None;
  }
  bool v6 = false;
  if (rest.substr(0, 5) == "TCP6 ") {
    v6 = true;
  } else if (rest.substr(0, 5) != "TCP4 ") {
    return ProxyHeaderError::V1Syntax;
  }
  rest.remove_prefix(5);
  std::string_view fields[4];
  for (size_t i = 0; i < 4; ++i) {
    size_t space = rest.find(' ');
    if ((space == std::string_view::npos) != (i == 3)) {
      return ProxyHeaderError::V1Syntax;  // too few or too many fields
    }
    fields[i] = rest.substr(0, space);
    if (fields[i].empty()) {
      return ProxyHeaderError::V1Syntax;  // doubled or trailing space
    }
    rest = i == 3 ? std::string_view() : rest.substr(space + 1);
  }
  std::optional<IpAddress> src = parseV1Address(fields[0], v6);
  std::optional<IpAddress> dst = parseV1Address(fields[1], v6);
  if (!src || !dst) {
    return ProxyHeaderError::V1Address;
  }
  std::optional<uint16_t> sport = parseV1Port(fields[2]);
  std::optional<uint16_t> dport = parseV1Port(fields[3]);
  if (!sport || !dport) {
    return ProxyHeaderError::V1Port;
  }
  out.family = v6 ? ProxyHeader::Family::Inet6 : ProxyHeader::Family::Inet;
  out.transport = ProxyHeader::Transport::Stream;
  out.source = Endpoint{*src, *sport};
  out.destination = Endpoint{*dst, *dport};
  return ProxyHeaderError::None;
}

void ProxyHeaderDecoder::reset() {
  status_ = Status::NeedMore;
  error_ = ProxyHeaderError::None;
  consumed_ = 0;
  prefixLen_ = 0;
  payloadLength_ = 0;
  payload_.clear();
  header_ = ProxyHeader{};
}

void ProxyHeaderDecoder::fail(ProxyHeaderError error) {
  status_ = Status::Error;
  error_ = error;
  header_ = ProxyHeader{};
}

bool ProxyHeaderDecoder::onV1Byte(uint8_t byte) {
  size_t i = prefixLen_;
  prefix_[prefixLen_++] = byte;
  if (i < kV1Prefix.size()) {
    if (byte != static_cast<uint8_t>(kV1Prefix[i])) {
      fail(i < kV1Prefix.size() - 1 ? ProxyHeaderError::NotProxy : ProxyHeaderError::V1Syntax);
      return false;
    }
    return true;
  }
  bool afterCr = prefix_[i - 1] == '\r';
  if (byte == '\n') {
    if (!afterCr) {
      fail(ProxyHeaderError::V1Syntax);  // a bare LF must not end the line
      return false;
    }
    std::string_view line(reinterpret_cast<const char*>(prefix_), i - 1);
    ProxyHeaderError err = parseProxyV1Line(line, header_);
    if (err != ProxyHeaderError::None) {
      fail(err);
      return false;
    }
    status_ = Status::Done;
    return true;
  }
  if (afterCr || (byte != '\r' && (byte < 0x20 || byte > 0x7E))) {
    fail(ProxyHeaderError::V1Syntax);  // a bare CR, or a control / non-ASCII byte
    return false;
  }
  // Refuse an unknown protocol word as soon as it cannot become TCP4, TCP6 or UNKNOWN.
  if (i < kV1Prefix.size() + 7 &&
      !isV1ProtocolPrefix(std::string_view(reinterpret_cast<const char*>(prefix_) + 6, i - 5))) {
    fail(ProxyHeaderError::V1Syntax);
    return false;
  }
  if (prefixLen_ == kProxyV1MaxLength) {
    fail(ProxyHeaderError::V1TooLong);  // the 107th byte could only have been the LF
    return false;
  }
  return true;
}

bool ProxyHeaderDecoder::onV2HeaderByte(uint8_t byte) {
  size_t i = prefixLen_;
  prefix_[prefixLen_++] = byte;
  if (i < sizeof(kV2Signature)) {
    if (byte != kV2Signature[i]) {
      fail(ProxyHeaderError::NotProxy);
      return false;
    }
    return true;
  }
  if (i == 12) {
    if ((byte >> 4) != 2) {
      fail(ProxyHeaderError::V2Version);
      return false;
    }
    if ((byte & 0x0F) > 1) {
      fail(ProxyHeaderError::V2Command);
      return false;
    }
    return true;
  }
  if (i == 13) {
    if (!isValidV2FamilyByte(byte)) {
      fail(ProxyHeaderError::V2Family);
      return false;
    }
    return true;
  }
  if (i == 15) {
    payloadLength_ = readU16(prefix_ + 14);
    if (payloadLength_ > options_.maxV2Payload) {
      fail(ProxyHeaderError::V2TooLarge);
      return false;
    }
    if ((prefix_[12] & 0x0F) == 1) {
      size_t need = 0;
      switch (prefix_[13] >> 4) {
        case 1:
          need = kInetAddressLength;
          break;
        case 2:
          need = kInet6AddressLength;
          break;
        case 3:
          need = kUnixAddressLength;
          break;
        default:
          break;
      }
      if (payloadLength_ < need) {
        fail(ProxyHeaderError::V2AddressLength);
        return false;
      }
    }
  }
  return true;
}

bool ProxyHeaderDecoder::finishV2(std::span<const uint8_t> payload) {
  ProxyHeader h;
  h.version = ProxyHeader::Version::V2;
  h.command = (prefix_[12] & 0x0F) == 1 ? ProxyHeader::Command::Proxy : ProxyHeader::Command::Local;
  h.family = static_cast<ProxyHeader::Family>(prefix_[13] >> 4);
  h.transport = static_cast<ProxyHeader::Transport>(prefix_[13] & 0x0F);
  // LOCAL and UNSPEC: the block, family included, is to be ignored (spec 2.2).
  if (h.command == ProxyHeader::Command::Local || h.family == ProxyHeader::Family::Unspec) {
    header_ = std::move(h);
    status_ = Status::Done;
    return true;
  }
  const size_t offset = readV2Addresses(h, payload);
  // First pass: validate and count, so the TLV vector is sized once.
  const TlvScan scan = scanV2Tlvs(payload, offset, options_.maxTlvs);
  if (scan.error != ProxyHeaderError::None) {
    fail(scan.error);
    return false;
  }
  if (scan.crcAt && !v2ChecksumMatches(std::span<const uint8_t>(prefix_, kProxyV2HeaderSize),
                                       payload, *scan.crcAt)) {
    fail(ProxyHeaderError::V2Checksum);
    return false;
  }
  h.tlvs.reserve(scan.count);
  for (size_t at = offset; at < payload.size();) {
    size_t len = readU16(payload.data() + at + 1);
    h.tlvs.push_back(ProxyTlv{
        payload[at],
        std::string(reinterpret_cast<const char*>(payload.data()) + at + kTlvHeaderSize, len)});
    at += kTlvHeaderSize + len;
  }
  header_ = std::move(h);
  status_ = Status::Done;
  return true;
}

ProxyHeaderDecoder::Result ProxyHeaderDecoder::feed(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (status_ == Status::NeedMore && pos < data.size()) {
    if (prefixLen_ == 0) {
      uint8_t first = data[pos];
      bool v1 = first == static_cast<uint8_t>(kV1Prefix[0]) && options_.acceptV1;
      bool v2 = first == kV2Signature[0] && options_.acceptV2;
      if (!v1 && !v2) {
        ++pos;
        ++consumed_;
        fail(ProxyHeaderError::NotProxy);
        break;
      }
    }
    uint8_t firstByte = prefixLen_ == 0 ? data[pos] : prefix_[0];
    bool isV1 = firstByte == static_cast<uint8_t>(kV1Prefix[0]);
    if (isV1) {
      ++consumed_;
      if (!onV1Byte(data[pos++])) {
        break;
      }
      continue;
    }
    if (prefixLen_ < kProxyV2HeaderSize) {
      ++consumed_;
      if (!onV2HeaderByte(data[pos++])) {
        break;
      }
      if (prefixLen_ == kProxyV2HeaderSize && payloadLength_ == 0) {
        finishV2({});
      }
      continue;
    }
    size_t want = payloadLength_ - payload_.size();
    size_t available = want < data.size() - pos ? want : data.size() - pos;
    std::span<const uint8_t> chunk = data.subspan(pos, available);
    pos += available;
    consumed_ += available;
    if (payload_.empty() && available == payloadLength_) {
      finishV2(chunk);  // the whole payload in this feed: no copy
      continue;
    }
    if (payload_.capacity() < payloadLength_) {
      payload_.reserve(payloadLength_);
    }
    payload_.insert(payload_.end(), chunk.begin(), chunk.end());
    if (payload_.size() == payloadLength_) {
      finishV2(payload_);
    }
  }
  return Result{status_, pos};
}

}  // namespace edgeplane::proxy
