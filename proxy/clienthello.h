// Incremental, bounded reader of a TLS ClientHello (record layer + handshake) for SNI and ALPN.
//
// Made for a non-blocking event loop: the engine feeds whatever a read() returned, in any
// chunking (one byte at a time works), and gets NeedMore / Done / Error back. No exceptions,
// no allocation per byte: the handshake message is reassembled into one buffer reserved once
// at its declared size, and not copied at all when the whole hello arrives in one record and
// one feed (the common case), which is parsed in place. The body is parsed once, when
// complete (duplicate extensions are found with an 8 KiB bitset on the stack).
//
// Raw bytes: the parser does NOT keep the bytes it was fed for replay. The caller must keep
// its own receive buffer (it needs one anyway to relay the hello to a passthrough backend);
// consumed() tells where the hello's last record ends in that stream. Bytes after it (early
// data, a compatibility ChangeCipherSpec) are never consumed and belong to the caller.
//
// Strictness (each violation is an Error with a short reason for counters and logs):
//  - every record is a handshake record (type 22) with legacy_record_version 0x0301..0x0304
//    (RFC 8446 §5.1 says to ignore it, but anything else is not TLS and is cut off early)
//    and a length of 1..2^14;
//  - a handshake message may be fragmented over any number of records (its 4-byte header
//    too), but the hello must end exactly at a record boundary: the client's first flight is
//    the hello alone, and in TLS 1.3 a key change follows it (RFC 8446 §5.1);
//  - at most maxBytes (default 16 KiB) in total, record headers included: that is what the
//    engine must buffer for replay (so one 2^14-byte record, 16389 bytes with its header,
//    already exceeds the default); a declared size that cannot fit fails at once;
//  - ClientHello body per RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2: legacy_version 0x03xx with
//    xx >= 1 (SSL 3.0 is refused; higher minors are tolerated for version negotiation),
//    session id <= 32, cipher suites even and >= 2 bytes, compression methods >= 1 and
//    including null, extensions (absent allowed for TLS 1.2) framed exactly to the end;
//  - no duplicate extension type (RFC 8446 §4.2); pre_shared_key, if present, last;
//  - server_name (RFC 6066 §3): exactly one entry, of type host_name (as OpenSSL and
//    BoringSSL require). The name must be a DNS host name: letters, digits, '-' and '.', 1..63
//    bytes per label, no label starting or ending with '-', at most 253 bytes, last label not
//    all-numeric (so IPv4 literals, which RFC 6066 forbids, are refused; IPv6 ones fail on
//    ':'). It is lower-cased. A single trailing dot, which RFC 6066 excludes but some clients
//    have sent, is removed ("Example.COM." -> "example.com"); an empty name or label is
//    refused. Underscores are refused: routes are RFC 1123 names, so none could match;
//  - ALPN (RFC 7301): a non-empty list of non-empty names, framed exactly;
//  - supported_versions (RFC 8446 §4.2.1): an even, non-empty list, framed exactly.
// Other extensions are skipped unread. With Encrypted Client Hello the SNI seen is the outer
// (public) name, which is what a passthrough router can route on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeplane::proxy {

// Why a ClientHello was refused; stable snake_case names via toString() for counters/logs.
enum class ClientHelloError : uint8_t {
  None,
  NotTls,               // first byte is not a handshake record (e.g. an HTTP request)
  Sslv2Hello,           // an SSL 2.0-compatible hello (RFC 5246 appendix E.2)
  RecordType,           // a later record is not a handshake record
  RecordVersion,        // legacy_record_version outside 0x0301..0x0304
  RecordLength,         // record length 0 or above 2^14
  RecordOverrun,        // a record carries bytes past the end of the hello
  HandshakeType,        // the first handshake message is not a ClientHello
  HandshakeLength,      // shorter than the smallest possible ClientHello
  TooLarge,             // more than maxBytes in total
  ClientVersion,        // legacy_version in the hello body
  SessionId,            // session id longer than 32 or truncated
  CipherSuites,         // odd, empty or truncated cipher suite list
  Compression,          // empty, truncated, or without the null method
  Extensions,           // extension block framing (lengths that do not add up)
  DuplicateExtension,   // the same extension type twice
  ServerName,           // malformed server_name extension or invalid host name
  Alpn,                 // malformed ALPN extension
  SupportedVersions,    // malformed supported_versions extension
  PreSharedKeyNotLast,  // pre_shared_key is not the last extension
};

std::string_view toString(ClientHelloError error);

// ALPN protocol names in client preference order, kept in wire form (one buffer, no
// allocation per name) and iterated as string_views into it.
class AlpnList {
 public:
  class Iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = std::string_view;
    using difference_type = std::ptrdiff_t;
    using pointer = const std::string_view*;
    using reference = std::string_view;

    Iterator() = default;
    Iterator(const std::string* wire, size_t pos) : wire_(wire), pos_(pos) {}
    std::string_view operator*() const;
    Iterator& operator++();
    Iterator operator++(int) {
      Iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const Iterator& other) const { return pos_ == other.pos_; }

   private:
    const std::string* wire_ = nullptr;
    size_t pos_ = 0;
  };

  AlpnList() = default;
  // `wire` must be a validated sequence of (uint8 length, name) entries.
  explicit AlpnList(std::string wire) : wire_(std::move(wire)) {}

  Iterator begin() const { return Iterator(&wire_, 0); }
  Iterator end() const { return Iterator(&wire_, wire_.size()); }
  bool empty() const { return wire_.empty(); }
  size_t size() const;
  bool contains(std::string_view protocol) const;
  std::vector<std::string_view> names() const;
  // The ProtocolNameList without its 2-byte length, e.g. for PP2_TYPE_ALPN.
  const std::string& wire() const { return wire_; }
  bool operator==(const AlpnList& other) const = default;

 private:
  std::string wire_;
};

// What the proxy needs from a hello to route it.
struct ClientHello {
  uint16_t legacyVersion = 0;      // the body's legacy_version (0x0303 for TLS 1.2 and 1.3)
  bool offersTls13 = false;        // supported_versions lists 0x0304
  std::optional<std::string> sni;  // normalized host name; absent without server_name
  AlpnList alpn;                   // empty without an ALPN extension
  uint16_t extensionCount = 0;

  bool operator==(const ClientHello& other) const = default;
};

inline constexpr std::string_view kAlpnAcmeTls = "acme-tls/1";  // RFC 8737 TLS-ALPN-01

class ClientHelloParser {
 public:
  enum class Status : uint8_t { NeedMore, Done, Error };
  struct Result {
    Status status;
    // Bytes of this feed() taken: the hello's, or on Error up to the offending byte.
    size_t consumed;
  };

  static constexpr size_t kDefaultMaxBytes = 16 * 1024;

  explicit ClientHelloParser(size_t maxBytes = kDefaultMaxBytes) : maxBytes_(maxBytes) {}

  // Feeds the next bytes of the stream. Stops consuming at the end of the hello's last record;
  // once Done or Error, further feeds consume nothing and return the same status.
  Result feed(std::span<const uint8_t> data);
  Result feed(std::string_view data) {
    return feed(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()), data.size()));
  }

  Status status() const { return status_; }
  ClientHelloError error() const { return error_; }
  std::string_view errorReason() const { return toString(error_); }
  // Total bytes consumed: when Done, the length of the hello's records in the stream.
  size_t consumed() const { return consumed_; }
  // Valid when Done.
  const ClientHello& hello() const { return hello_; }

  // Back to the initial state; keeps the reassembly buffer's capacity for reuse.
  void reset();

 private:
  enum class Phase : uint8_t { RecordHeader, RecordBody };

  bool onRecordHeaderByte(uint8_t byte);
  bool onRecordHeaderComplete();
  bool onHandshakeHeaderComplete();
  void fail(ClientHelloError error);

  size_t maxBytes_;
  Status status_ = Status::NeedMore;
  ClientHelloError error_ = ClientHelloError::None;
  Phase phase_ = Phase::RecordHeader;
  size_t consumed_ = 0;
  uint8_t recordHeader_[5] = {};
  uint8_t recordHeaderLen_ = 0;
  size_t recordRemaining_ = 0;
  uint8_t handshakeHeader_[4] = {};
  uint8_t handshakeHeaderLen_ = 0;
  size_t bodyLength_ = 0;         // declared ClientHello body length (after the 4-byte header)
  size_t bodyReceived_ = 0;       // body bytes seen so far (in message_ unless parsed in place)
  std::vector<uint8_t> message_;  // reassembled body when it does not arrive in one piece
  ClientHello hello_;
};

// Parses a complete ClientHello body (the handshake message without its 4-byte header).
// Exposed for tests and fuzzing; the parser above calls it once the body is complete.
ClientHelloError parseClientHelloBody(std::span<const uint8_t> body, ClientHello& out);

// Normalizes an SNI host name as described above into `out`; false if it is not valid.
bool normalizeSniHostName(std::string_view raw, std::string& out);

}  // namespace edgeplane::proxy
