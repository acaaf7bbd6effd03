// TLS ClientHello reader: record framing state machine plus a one-shot body parser.
#include "proxy/clienthello.h"

#include <algorithm>
#include <bitset>

#include "proxy/byte_reader.h"

namespace edgeplane::proxy {
namespace {

constexpr uint8_t kContentHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeaderSize = 5;
constexpr size_t kHandshakeHeaderSize = 4;
constexpr size_t kMaxRecordLength = 16384;  // 2^14, RFC 8446 §5.1
// legacy_version(2) random(32) session_id<0..32>(1) cipher_suites<2..>(2+2)
// compression_methods<1..>(1+1): a hello without extensions is at least this long.
constexpr size_t kMinBodyLength = 2 + 32 + 1 + 2 + 2 + 1 + 1;

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint16_t kExtPreSharedKey = 41;
constexpr uint8_t kNameTypeHostName = 0;
constexpr uint16_t kTls13 = 0x0304;

using Reader = ByteReader;

char lowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

ClientHelloError parseServerName(std::span<const uint8_t> data, ClientHello& out) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec(2, list) || !r.empty() || list.empty()) {
    return ClientHelloError::ServerName;
  }
  Reader entries(list);
  uint8_t type = 0;
  std::span<const uint8_t> name;
  // Exactly one host_name entry: a list with anything else is refused rather than guessed at.
  if (!entries.u8(type) || type != kNameTypeHostName || !entries.vec(2, name) || !entries.empty()) {
    return ClientHelloError::ServerName;
  }
  std::string host;
  if (!normalizeSniHostName(
          std::string_view(reinterpret_cast<const char*>(name.data()), name.size()), host)) {
    return ClientHelloError::ServerName;
  }
  out.sni = std::move(host);
  return ClientHelloError::None;
}

ClientHelloError parseAlpn(std::span<const uint8_t> data, ClientHello& out) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec(2, list) || !r.empty() || list.empty()) {
    return ClientHelloError::Alpn;
  }
  Reader names(list);
  while (!names.empty()) {
    std::span<const uint8_t> name;
    if (!names.vec(1, name) || name.empty()) {
      return ClientHelloError::Alpn;
    }
  }
  out.alpn = AlpnList(std::string(reinterpret_cast<const char*>(list.data()), list.size()));
  return ClientHelloError::None;
}

ClientHelloError parseSupportedVersions(std::span<const uint8_t> data, ClientHello& out) {
  Reader r(data);
  std::span<const uint8_t> list;
  if (!r.vec(1, list) || !r.empty() || list.empty() || list.size() % 2 != 0) {
    return ClientHelloError::SupportedVersions;
  }
  for (size_t i = 0; i < list.size(); i += 2) {
    if (((list[i] << 8) | list[i + 1]) == kTls13) {
      out.offersTls13 = true;
    }
  }
  return ClientHelloError::None;
}

bool isLdh(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

}  // namespace

std::string_view toString(ClientHelloError error) {
  switch (error) {
    case ClientHelloError::None:
      return "none";
    case ClientHelloError::NotTls:
      return "not_tls";
    case ClientHelloError::Sslv2Hello:
      return "sslv2_hello";
    case ClientHelloError::RecordType:
      return "record_type";
    case ClientHelloError::RecordVersion:
      return "record_version";
    case ClientHelloError::RecordLength:
      return "record_length";
    case ClientHelloError::RecordOverrun:
      return "record_overrun";
    case ClientHelloError::HandshakeType:
      return "handshake_type";
    case ClientHelloError::HandshakeLength:
      return "handshake_length";
    case ClientHelloError::TooLarge:
      return "too_large";
    case ClientHelloError::ClientVersion:
      return "client_version";
    case ClientHelloError::SessionId:
      return "session_id";
    case ClientHelloError::CipherSuites:
      return "cipher_suites";
    case ClientHelloError::Compression:
      return "compression";
    case ClientHelloError::Extensions:
      return "extensions";
    case ClientHelloError::DuplicateExtension:
      return "duplicate_extension";
    case ClientHelloError::ServerName:
      return "server_name";
    case ClientHelloError::Alpn:
      return "alpn";
    case ClientHelloError::SupportedVersions:
      return "supported_versions";
    case ClientHelloError::PreSharedKeyNotLast:
      return "psk_not_last";
  }
  return "unknown";
}

// AlpnList

std::string_view AlpnList::Iterator::operator*() const {
  size_t len = static_cast<uint8_t>((*wire_)[pos_]);
  return std::string_view(*wire_).substr(pos_ + 1, len);
}

AlpnList::Iterator& AlpnList::Iterator::operator++() {
  pos_ += 1 + static_cast<uint8_t>((*wire_)[pos_]);
  return *this;
}

size_t AlpnList::size() const {
  return static_cast<size_t>(std::distance(begin(), end()));
}

bool AlpnList::contains(std::string_view protocol) const {
  return std::find(begin(), end(), protocol) != end();
}

std::vector<std::string_view> AlpnList::names() const {
  return std::vector<std::string_view>(begin(), end());
}

// Host names

bool normalizeSniHostName(std::string_view raw, std::string& out) {
  if (!raw.empty() && raw.back() == '.') {
    raw.remove_suffix(1);  // one trailing dot tolerated; "a.." still fails on the empty label
  }
  if (raw.empty() || raw.size() > 253) {
    return false;
  }
  out.resize(raw.size());
  size_t labelStart = 0;
  bool lastLabelNumeric = true;
  for (size_t i = 0; i <= raw.size(); ++i) {
    if (i == raw.size() || raw[i] == '.') {
      size_t len = i - labelStart;
      if (len == 0 || len > 63 || out[labelStart] == '-' || out[i - 1] == '-') {
        return false;
      }
      if (i < raw.size()) {
        out[i] = '.';
        labelStart = i + 1;
        lastLabelNumeric = true;
      }
      continue;
    }
    char c = lowerAscii(raw[i]);
    if (!isLdh(c)) {
      return false;
    }
    if (c < '0' || c > '9') {
      lastLabelNumeric = false;
    }
    out[i] = c;
  }
  return !lastLabelNumeric;
}

// Body

ClientHelloError parseClientHelloBody(std::span<const uint8_t> body, ClientHello& out) {
  out = ClientHello{};
  Reader r(body);
  uint16_t version = 0;
  std::span<const uint8_t> skip;
  if (!r.u16(version) || (version >> 8) != 3 || (version & 0xff) < 1) {
    return ClientHelloError::ClientVersion;
  }
  out.legacyVersion = version;
  if (!r.bytes(32, skip)) {
    return ClientHelloError::HandshakeLength;
  }
  std::span<const uint8_t> sessionId;
  if (!r.vec(1, sessionId) || sessionId.size() > 32) {
    return ClientHelloError::SessionId;
  }
  std::span<const uint8_t> suites;
  if (!r.vec(2, suites) || suites.size() < 2 || suites.size() % 2 != 0) {
    return ClientHelloError::CipherSuites;
  }
  std::span<const uint8_t> compression;
  if (!r.vec(1, compression) || compression.empty() ||
      std::find(compression.begin(), compression.end(), uint8_t{0}) == compression.end()) {
    return ClientHelloError::Compression;
  }
  if (r.empty()) {
    return ClientHelloError::None;  // TLS 1.2 and below may omit the extensions block
  }
  std::span<const uint8_t> extensions;
  if (!r.vec(2, extensions) || !r.empty()) {
    return ClientHelloError::Extensions;
  }
  // One bit per extension type: O(n) duplicate detection in 8 KiB of stack, no allocation.
  std::bitset<65536> seen;
  Reader ext(extensions);
  bool sawPsk = false;
  while (!ext.empty()) {
    uint16_t type = 0;
    std::span<const uint8_t> data;
    if (!ext.u16(type) || !ext.vec(2, data)) {
      return ClientHelloError::Extensions;
    }
    if (seen.test(type)) {
      return ClientHelloError::DuplicateExtension;
    }
    if (sawPsk) {
      return ClientHelloError::PreSharedKeyNotLast;  // RFC 8446 §4.2.11
    }
    seen.set(type);
    ++out.extensionCount;
    ClientHelloError err = ClientHelloError::None;
    switch (type) {
      case kExtServerName:
        err = parseServerName(data, out);
        break;
      case kExtAlpn:
        err = parseAlpn(data, out);
        break;
      case kExtSupportedVersions:
        err = parseSupportedVersions(data, out);
        break;
      case kExtPreSharedKey:
        sawPsk = true;
        break;
      default:
        break;
    }
    if (err != ClientHelloError::None) {
      return err;
    }
  }
  return ClientHelloError::None;
}

// Parser

void ClientHelloParser::reset() {
  status_ = Status::NeedMore;
  error_ = ClientHelloError::None;
  phase_ = Phase::RecordHeader;
  consumed_ = 0;
  recordHeaderLen_ = 0;
  recordRemaining_ = 0;
  handshakeHeaderLen_ = 0;
  bodyLength_ = 0;
  bodyReceived_ = 0;
  message_.clear();
  hello_ = ClientHello{};
}

void ClientHelloParser::fail(ClientHelloError error) {
  status_ = Status::Error;
  error_ = error;
  hello_ = ClientHello{};  // nothing half-parsed is left visible
}

// Checks each header byte as it arrives, so that an HTTP request or garbage is refused at its
// first byte rather than after five.
bool ClientHelloParser::onRecordHeaderByte(uint8_t byte) {
  size_t index = recordHeaderLen_;
  recordHeader_[recordHeaderLen_++] = byte;
  // Every record carries at least one payload byte, so before the first handshake header byte
  // this can only be the first record.
  bool first = handshakeHeaderLen_ == 0;
  switch (index) {
    case 0:
      if (byte == kContentHandshake) {
        return true;
      }
      if (first && (byte & 0x80) != 0) {
        return true;  // maybe SSLv2 (2-byte length with the high bit set); byte 2 decides
      }
      fail(first ? ClientHelloError::NotTls : ClientHelloError::RecordType);
      return false;
    case 1:
      if (recordHeader_[0] != kContentHandshake) {
        return true;  // the SSLv2 length's low byte
      }
      if (byte != 3) {
        fail(ClientHelloError::RecordVersion);
        return false;
      }
      return true;
    case 2:
      if (recordHeader_[0] != kContentHandshake) {
        fail(byte == 1 ? ClientHelloError::Sslv2Hello : ClientHelloError::NotTls);
        return false;
      }
      if (byte < 1 || byte > 4) {
        fail(ClientHelloError::RecordVersion);
        return false;
      }
      return true;
    default:
      return true;
  }
}

bool ClientHelloParser::onRecordHeaderComplete() {
  size_t length = (size_t{recordHeader_[3]} << 8) | recordHeader_[4];
  if (length == 0 || length > kMaxRecordLength) {
    fail(ClientHelloError::RecordLength);
    return false;
  }
  // consumed_ already counts this header.
  if (consumed_ + length > maxBytes_) {
    fail(ClientHelloError::TooLarge);
    return false;
  }
  if (handshakeHeaderLen_ == kHandshakeHeaderSize && length > bodyLength_ - bodyReceived_) {
    fail(ClientHelloError::RecordOverrun);
    return false;
  }
  recordRemaining_ = length;
  recordHeaderLen_ = 0;
  phase_ = Phase::RecordBody;
  return true;
}

bool ClientHelloParser::onHandshakeHeaderComplete() {
  if (handshakeHeader_[0] != kHandshakeClientHello) {
    fail(ClientHelloError::HandshakeType);
    return false;
  }
  bodyLength_ = (size_t{handshakeHeader_[1]} << 16) | (size_t{handshakeHeader_[2]} << 8) |
                handshakeHeader_[3];
  // The smallest framing that could carry it: one record header plus the message.
  if (kRecordHeaderSize + kHandshakeHeaderSize + bodyLength_ > maxBytes_) {
    fail(ClientHelloError::TooLarge);
    return false;
  }
  if (bodyLength_ < kMinBodyLength) {
    fail(ClientHelloError::HandshakeLength);
    return false;
  }
  if (recordRemaining_ > bodyLength_) {
    fail(ClientHelloError::RecordOverrun);
    return false;
  }
  return true;
}

ClientHelloParser::Result ClientHelloParser::feed(std::span<const uint8_t> data) {
  size_t pos = 0;
  while (status_ == Status::NeedMore && pos < data.size()) {
    if (phase_ == Phase::RecordHeader) {
      if (consumed_ + 1 > maxBytes_) {
        fail(ClientHelloError::TooLarge);
        break;
      }
      uint8_t byte = data[pos++];
      ++consumed_;
      if (!onRecordHeaderByte(byte)) {
        break;
      }
      if (recordHeaderLen_ == kRecordHeaderSize && !onRecordHeaderComplete()) {
        break;
      }
      continue;
    }

    // Record payload: first the handshake header (possibly split across records), then body.
    if (handshakeHeaderLen_ < kHandshakeHeaderSize) {
      handshakeHeader_[handshakeHeaderLen_++] = data[pos++];
      ++consumed_;
      --recordRemaining_;
      if (handshakeHeaderLen_ == kHandshakeHeaderSize && !onHandshakeHeaderComplete()) {
        break;
      }
    } else {
      size_t available = std::min(recordRemaining_, data.size() - pos);
      std::span<const uint8_t> chunk = data.subspan(pos, available);
      bool complete = bodyReceived_ + available == bodyLength_;
      if (bodyReceived_ == 0 && complete) {
        // The whole body is in this feed: parse in place, no copy.
        pos += available;
        consumed_ += available;
        recordRemaining_ -= available;
        bodyReceived_ = bodyLength_;
        ClientHelloError err = parseClientHelloBody(chunk, hello_);
        if (err != ClientHelloError::None) {
          fail(err);
          break;
        }
      } else {
        if (message_.capacity() < bodyLength_) {
          message_.reserve(bodyLength_);  // once per hello: the size is declared up front
        }
        message_.insert(message_.end(), chunk.begin(), chunk.end());
        pos += available;
        consumed_ += available;
        recordRemaining_ -= available;
        bodyReceived_ += available;
        if (complete) {
          ClientHelloError err = parseClientHelloBody(message_, hello_);
          if (err != ClientHelloError::None) {
            fail(err);
            break;
          }
        }
      }
    }

    if (recordRemaining_ == 0) {
      phase_ = Phase::RecordHeader;
      if (handshakeHeaderLen_ == kHandshakeHeaderSize && bodyReceived_ == bodyLength_) {
        status_ = Status::Done;  // records never overrun the body, so this is a boundary
      }
    }
  }
  return Result{status_, pos};
}

}  // namespace edgeplane::proxy
