// ClientHelloParser: real OpenSSL hellos in every chunking and framing, and hand-built bad ones.
#include "proxy/clienthello.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace edgeplane::proxy {
namespace {

using Bytes = std::vector<uint8_t>;
using Status = ClientHelloParser::Status;

// ---------------------------------------------------------------------------------------------
// Real hellos: an OpenSSL client writing into a memory BIO, no socket.

struct ClientOptions {
  int minVersion = TLS1_2_VERSION;
  int maxVersion = TLS1_3_VERSION;
  std::optional<std::string> sni = std::nullopt;
  std::vector<std::string> alpn = {};
  size_t maxFragment = 0;     // SSL_set_max_send_fragment: OpenSSL splits the hello itself
  size_t paddingExtSize = 0;  // a custom extension of this many bytes, to make it large
};

constexpr unsigned int kCustomExtType = 0xFFA5;

int addCustomExt(SSL*, unsigned int, unsigned int, const unsigned char** out, size_t* outlen, X509*,
                 size_t, int*, void* arg) {
  static const std::vector<unsigned char> kFill(65535, 0x5A);
  *out = kFill.data();
  *outlen = *static_cast<size_t*>(arg);
  return 1;
}

Bytes opensslClientHello(const ClientOptions& o) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  EXPECT_NE(ctx, nullptr);
  EXPECT_EQ(SSL_CTX_set_min_proto_version(ctx.get(), o.minVersion), 1);
  EXPECT_EQ(SSL_CTX_set_max_proto_version(ctx.get(), o.maxVersion), 1);
  size_t padding = o.paddingExtSize;
  if (padding > 0) {
    EXPECT_EQ(SSL_CTX_add_custom_ext(ctx.get(), kCustomExtType, SSL_EXT_CLIENT_HELLO, addCustomExt,
                                     nullptr, &padding, nullptr, nullptr),
              1);
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  if (o.sni) {
    EXPECT_EQ(SSL_set_tlsext_host_name(ssl.get(), o.sni->c_str()), 1);
  }
  if (!o.alpn.empty()) {
    std::string wire;
    for (const std::string& p : o.alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    EXPECT_EQ(SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                                  static_cast<unsigned int>(wire.size())),
              0);  // 0 is success for this one
  }
  if (o.maxFragment > 0) {
    EXPECT_EQ(SSL_set_max_send_fragment(ssl.get(), static_cast<long>(o.maxFragment)), 1);
  }
  BIO* rbio = BIO_new(BIO_s_mem());
  BIO* wbio = BIO_new(BIO_s_mem());
  SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns both
  SSL_set_connect_state(ssl.get());
  int rc = SSL_do_handshake(ssl.get());
  EXPECT_EQ(rc, -1);
  EXPECT_EQ(SSL_get_error(ssl.get(), rc), SSL_ERROR_WANT_READ);
  char* data = nullptr;
  long n = BIO_get_mem_data(wbio, &data);
  return Bytes(reinterpret_cast<uint8_t*>(data), reinterpret_cast<uint8_t*>(data) + n);
}

// Splits a record stream into (header, payload) pairs; asserts it is well framed.
std::vector<Bytes> recordPayloads(const Bytes& stream) {
  std::vector<Bytes> out;
  size_t at = 0;
  while (at < stream.size()) {
    EXPECT_GE(stream.size() - at, 5u);
    size_t len = (size_t{stream[at + 3]} << 8) | stream[at + 4];
    EXPECT_GE(stream.size() - at - 5, len);
    out.emplace_back(stream.begin() + static_cast<long>(at + 5),
                     stream.begin() + static_cast<long>(at + 5 + len));
    at += 5 + len;
  }
  return out;
}

// The handshake message carried by a record stream.
Bytes handshakeMessage(const Bytes& stream) {
  Bytes out;
  for (const Bytes& p : recordPayloads(stream)) {
    out.insert(out.end(), p.begin(), p.end());
  }
  return out;
}

// Re-frames a handshake message into records of the given payload sizes (cycled).
Bytes reframe(const Bytes& message, const std::vector<size_t>& sizes, uint16_t version = 0x0301) {
  Bytes out;
  size_t at = 0;
  for (size_t i = 0; at < message.size(); ++i) {
    size_t n = std::min(sizes[i % sizes.size()], message.size() - at);
    out.push_back(22);
    out.push_back(static_cast<uint8_t>(version >> 8));
    out.push_back(static_cast<uint8_t>(version));
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(n));
    out.insert(out.end(), message.begin() + static_cast<long>(at),
               message.begin() + static_cast<long>(at + n));
    at += n;
  }
  return out;
}

struct Outcome {
  Status status;
  ClientHelloError error;
  size_t consumed;
  ClientHello hello;
};

Outcome feedWhole(const Bytes& bytes, size_t maxBytes = ClientHelloParser::kDefaultMaxBytes) {
  ClientHelloParser p(maxBytes);
  auto r = p.feed(bytes);
  EXPECT_EQ(r.status, p.status());
  EXPECT_EQ(r.consumed, p.consumed());
  return {p.status(), p.error(), p.consumed(), p.hello()};
}

// Feeds in chunks of the given sizes (cycled); checks per-call accounting on the way.
Outcome feedChunks(const Bytes& bytes, const std::vector<size_t>& sizes) {
  ClientHelloParser p;
  size_t at = 0;
  for (size_t i = 0; at < bytes.size() && p.status() == Status::NeedMore; ++i) {
    size_t n = std::min(sizes[i % sizes.size()], bytes.size() - at);
    size_t before = p.consumed();
    auto r = p.feed(std::span<const uint8_t>(bytes).subspan(at, n));
    EXPECT_EQ(r.consumed, p.consumed() - before);
    EXPECT_LE(r.consumed, n);
    if (r.status == Status::NeedMore) {
      EXPECT_EQ(r.consumed, n);  // nothing is left over while more is needed
    }
    at += n;
  }
  return {p.status(), p.error(), p.consumed(), p.hello()};
}

std::vector<std::string> alpnNames(const ClientHello& h) {
  std::vector<std::string> out;
  for (std::string_view n : h.alpn) {
    out.emplace_back(n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Real hellos, whole.

TEST(ClientHelloOpenSsl, Tls13WithSniAndAlpn) {
  Bytes hello = opensslClientHello({.sni = "www.example.com", .alpn = {"h2", "http/1.1"}});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_EQ(o.consumed, hello.size());
  EXPECT_EQ(o.hello.sni, "www.example.com");
  EXPECT_EQ(alpnNames(o.hello), (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(o.hello.alpn.size(), 2u);
  EXPECT_TRUE(o.hello.alpn.contains("h2"));
  EXPECT_FALSE(o.hello.alpn.contains(kAlpnAcmeTls));
  EXPECT_TRUE(o.hello.offersTls13);
  EXPECT_EQ(o.hello.legacyVersion, 0x0303);
  EXPECT_GT(o.hello.extensionCount, 5);
}

TEST(ClientHelloOpenSsl, Tls12Only) {
  Bytes hello = opensslClientHello(
      {.maxVersion = TLS1_2_VERSION, .sni = "api.example.org", .alpn = {"http/1.1"}});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_EQ(o.hello.sni, "api.example.org");
  EXPECT_EQ(alpnNames(o.hello), (std::vector<std::string>{"http/1.1"}));
  EXPECT_FALSE(o.hello.offersTls13);
  EXPECT_EQ(o.hello.legacyVersion, 0x0303);
}

TEST(ClientHelloOpenSsl, Tls13OnlyWithoutSniOrAlpn) {
  Bytes hello = opensslClientHello({.minVersion = TLS1_3_VERSION});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_FALSE(o.hello.sni.has_value());
  EXPECT_TRUE(o.hello.alpn.empty());
  EXPECT_TRUE(o.hello.offersTls13);
}

TEST(ClientHelloOpenSsl, Tls12WithoutSniOrAlpn) {
  Bytes hello = opensslClientHello({.maxVersion = TLS1_2_VERSION});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_FALSE(o.hello.sni.has_value());
  EXPECT_TRUE(o.hello.alpn.empty());
}

TEST(ClientHelloOpenSsl, AcmeTlsAlpnDetected) {
  Bytes hello = opensslClientHello({.sni = "host.example.net", .alpn = {"acme-tls/1"}});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done);
  EXPECT_TRUE(o.hello.alpn.contains(kAlpnAcmeTls));
  EXPECT_EQ(o.hello.alpn.names(), (std::vector<std::string_view>{"acme-tls/1"}));
}

TEST(ClientHelloOpenSsl, SniIsLowerCased) {
  Bytes hello = opensslClientHello({.sni = "WWW.Example.COM"});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done);
  EXPECT_EQ(o.hello.sni, "www.example.com");
}

TEST(ClientHelloOpenSsl, TrailingDotInSniIsRemoved) {
  Bytes hello = opensslClientHello({.sni = "www.example.com."});
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done);
  EXPECT_EQ(o.hello.sni, "www.example.com");
}

TEST(ClientHelloOpenSsl, IpLiteralSniIsRefused) {
  Bytes hello = opensslClientHello({.sni = "192.0.2.1"});
  Outcome o = feedWhole(hello);
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::ServerName);
}

// ---------------------------------------------------------------------------------------------
// Chunking and framing: every way of delivering the same hello gives the same answer.

std::vector<ClientOptions> variants() {
  return {
      {.sni = "www.example.com", .alpn = {"h2", "http/1.1"}},
      {.maxVersion = TLS1_2_VERSION, .sni = "a.example.com", .alpn = {"acme-tls/1"}},
      {.minVersion = TLS1_3_VERSION},
      {.maxVersion = TLS1_2_VERSION},
  };
}

TEST(ClientHelloChunking, ByteByByte) {
  for (const ClientOptions& v : variants()) {
    Bytes hello = opensslClientHello(v);
    Outcome whole = feedWhole(hello);
    ASSERT_EQ(whole.status, Status::Done);
    ClientHelloParser p;
    for (size_t i = 0; i < hello.size(); ++i) {
      auto r = p.feed(std::span<const uint8_t>(&hello[i], 1));
      ASSERT_EQ(r.consumed, 1u) << "at byte " << i;
      ASSERT_EQ(r.status, i + 1 == hello.size() ? Status::Done : Status::NeedMore)
          << "at byte " << i << ": " << p.errorReason();
    }
    EXPECT_EQ(p.hello(), whole.hello);
    EXPECT_EQ(p.consumed(), hello.size());
  }
}

TEST(ClientHelloChunking, EveryTwoWaySplitOfTheStream) {
  Bytes hello = opensslClientHello({.sni = "www.example.com", .alpn = {"h2"}});
  Outcome whole = feedWhole(hello);
  for (size_t k = 1; k < hello.size(); ++k) {
    ClientHelloParser p;
    auto r1 = p.feed(std::span<const uint8_t>(hello).first(k));
    ASSERT_EQ(r1.status, Status::NeedMore) << k;
    auto r2 = p.feed(std::span<const uint8_t>(hello).subspan(k));
    ASSERT_EQ(r2.status, Status::Done) << k;
    EXPECT_EQ(p.hello(), whole.hello);
  }
}

TEST(ClientHelloChunking, FragmentedAcrossRecordsOfFixedSizes) {
  for (const ClientOptions& v : variants()) {
    Bytes hello = opensslClientHello(v);
    Outcome whole = feedWhole(hello);
    Bytes message = handshakeMessage(hello);
    // 1-byte records split even the 4-byte handshake header across four records.
    for (size_t size : {1, 2, 3, 4, 5, 7, 64, 100, 255}) {
      Bytes framed = reframe(message, {size});
      Outcome o = feedWhole(framed);
      ASSERT_EQ(o.status, Status::Done) << "records of " << size << ": " << toString(o.error);
      EXPECT_EQ(o.hello, whole.hello);
      EXPECT_EQ(o.consumed, framed.size());
      Outcome bytewise = feedChunks(framed, {1});
      ASSERT_EQ(bytewise.status, Status::Done);
      EXPECT_EQ(bytewise.hello, whole.hello);
    }
  }
}

TEST(ClientHelloChunking, EveryTwoRecordSplitOfTheMessage) {
  Bytes hello = opensslClientHello({.sni = "www.example.com", .alpn = {"h2", "http/1.1"}});
  Outcome whole = feedWhole(hello);
  Bytes message = handshakeMessage(hello);
  for (size_t k = 1; k < message.size(); ++k) {
    Bytes framed = reframe(message, {k, message.size()});
    Outcome o = feedWhole(framed);
    ASSERT_EQ(o.status, Status::Done) << "split at " << k << ": " << toString(o.error);
    EXPECT_EQ(o.hello, whole.hello);
  }
}

TEST(ClientHelloChunking, RandomRecordAndReadSizes) {
  std::mt19937 rng(20240611);
  for (const ClientOptions& v : variants()) {
    Bytes hello = opensslClientHello(v);
    Outcome whole = feedWhole(hello);
    Bytes message = handshakeMessage(hello);
    for (int round = 0; round < 200; ++round) {
      std::vector<size_t> records(1 + rng() % 6);
      for (size_t& s : records) {
        s = 1 + rng() % 300;
      }
      std::vector<size_t> reads(1 + rng() % 6);
      for (size_t& s : reads) {
        s = 1 + rng() % 500;
      }
      Bytes framed = reframe(message, records, round % 2 == 0 ? 0x0301 : 0x0303);
      Outcome o = feedChunks(framed, reads);
      ASSERT_EQ(o.status, Status::Done) << "round " << round << ": " << toString(o.error);
      EXPECT_EQ(o.hello, whole.hello);
      EXPECT_EQ(o.consumed, framed.size());
    }
  }
}

TEST(ClientHelloChunking, OpenSslFragmentsALargeHelloItself) {
  Bytes hello = opensslClientHello(
      {.sni = "big.example.com", .alpn = {"h2"}, .maxFragment = 512, .paddingExtSize = 3000});
  ASSERT_GT(recordPayloads(hello).size(), 6u);  // real multi-record hello
  Outcome o = feedWhole(hello);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_EQ(o.hello.sni, "big.example.com");
  Outcome segments = feedChunks(hello, {1448});  // larger than one TCP segment
  ASSERT_EQ(segments.status, Status::Done);
  EXPECT_EQ(segments.hello, o.hello);
}

TEST(ClientHelloChunking, LargerThanATcpSegmentInOneRecord) {
  Bytes hello = opensslClientHello({.sni = "big.example.com", .paddingExtSize = 6000});
  ASSERT_EQ(recordPayloads(hello).size(), 1u);
  Outcome o = feedChunks(hello, {1448, 1, 536});
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_EQ(o.hello.sni, "big.example.com");
}

TEST(ClientHelloChunking, BytesAfterTheHelloAreNotConsumed) {
  Bytes hello = opensslClientHello({.sni = "www.example.com"});
  Bytes stream = hello;
  // A TLS 1.3 middlebox-compatibility ChangeCipherSpec and some early data.
  for (uint8_t b : {20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xAA, 0xBB}) {
    stream.push_back(b);
  }
  ClientHelloParser p;
  auto r = p.feed(stream);
  EXPECT_EQ(r.status, Status::Done);
  EXPECT_EQ(r.consumed, hello.size());
  auto again = p.feed(stream);
  EXPECT_EQ(again.status, Status::Done);
  EXPECT_EQ(again.consumed, 0u);
}

TEST(ClientHelloChunking, EmptyFeedChangesNothing) {
  ClientHelloParser p;
  auto r = p.feed(std::span<const uint8_t>());
  EXPECT_EQ(r.status, Status::NeedMore);
  EXPECT_EQ(r.consumed, 0u);
}

TEST(ClientHelloChunking, ResetAllowsReuse) {
  Bytes a = opensslClientHello({.sni = "a.example.com"});
  Bytes b =
      opensslClientHello({.sni = "b.example.com", .maxFragment = 512, .paddingExtSize = 2000});
  ClientHelloParser p;
  ASSERT_EQ(p.feed(b).status, Status::Done);
  p.reset();
  EXPECT_EQ(p.status(), Status::NeedMore);
  EXPECT_EQ(p.consumed(), 0u);
  ASSERT_EQ(p.feed(a).status, Status::Done);
  EXPECT_EQ(p.hello().sni, "a.example.com");
  p.reset();
  ASSERT_EQ(p.feed(std::string_view("GET /")).status, Status::Error);
  p.reset();
  ASSERT_EQ(feedChunks(b, {7}).status, Status::Done);
}

// ---------------------------------------------------------------------------------------------
// Truncation: every prefix of a valid hello needs more, and is never done nor an error.

TEST(ClientHelloTruncation, EveryPrefixNeedsMore) {
  for (const ClientOptions& v : variants()) {
    Bytes hello = opensslClientHello(v);
    Bytes fragmented = reframe(handshakeMessage(hello), {3, 50});
    for (const Bytes* stream : {&hello, &fragmented}) {
      for (size_t n = 0; n < stream->size(); ++n) {
        ClientHelloParser p;
        auto r = p.feed(std::span<const uint8_t>(*stream).first(n));
        ASSERT_EQ(r.status, Status::NeedMore) << "prefix " << n << ": " << p.errorReason();
        ASSERT_EQ(r.consumed, n);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Hand-built hellos: a writer that remembers where every length field is.

struct LengthField {
  std::string name;
  size_t offset;
  size_t width;
};

class Writer {
 public:
  Bytes bytes;
  std::vector<LengthField> fields;

  void u8(uint8_t v) { bytes.push_back(v); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void raw(std::string_view s) { bytes.insert(bytes.end(), s.begin(), s.end()); }
  void raw(const Bytes& b) { bytes.insert(bytes.end(), b.begin(), b.end()); }
  // Opens a length field; close() patches it with the bytes written since.
  size_t open(size_t width, std::string name) {
    fields.push_back({std::move(name), bytes.size(), width});
    bytes.insert(bytes.end(), width, 0);
    return fields.size() - 1;
  }
  void close(size_t field) {
    const LengthField& f = fields[field];
    size_t value = bytes.size() - f.offset - f.width;
    for (size_t i = 0; i < f.width; ++i) {
      bytes[f.offset + i] = static_cast<uint8_t>(value >> (8 * (f.width - 1 - i)));
    }
  }
};

using ExtWriter = std::function<void(Writer&)>;
struct Ext {
  uint16_t type;
  ExtWriter body;
};

Ext sniExt(std::string_view name) {
  return {0, [name = std::string(name)](Writer& w) {
            size_t list = w.open(2, "server_name list");
            w.u8(0);
            size_t n = w.open(2, "host_name");
            w.raw(name);
            w.close(n);
            w.close(list);
          }};
}

Ext alpnExt(std::vector<std::string> names) {
  return {16, [names](Writer& w) {
            size_t list = w.open(2, "alpn list");
            for (const std::string& name : names) {
              size_t n = w.open(1, "alpn name " + name);
              w.raw(name);
              w.close(n);
            }
            w.close(list);
          }};
}

Ext versionsExt(std::vector<uint16_t> versions) {
  return {43, [versions](Writer& w) {
            size_t list = w.open(1, "supported_versions list");
            for (uint16_t v : versions) {
              w.u16(v);
            }
            w.close(list);
          }};
}

Ext opaqueExt(uint16_t type, Bytes data) {
  return {type, [data](Writer& w) { w.raw(data); }};
}

Ext rawExt(uint16_t type, Bytes data) {
  return opaqueExt(type, std::move(data));
}

struct HelloSpec {
  uint8_t recordType = 22;
  uint16_t recordVersion = 0x0301;
  uint8_t handshakeType = 1;
  uint16_t legacyVersion = 0x0303;
  Bytes sessionId = Bytes(32, 0xAB);
  Bytes suites = {0x13, 0x01, 0x13, 0x02, 0xC0, 0x2F};
  Bytes compression = {0};
  bool hasExtensions = true;
  std::vector<Ext> extensions = {
      sniExt("www.example.com"), opaqueExt(10, {0, 4, 0, 0x1D, 0, 0x17}),  // supported_groups
      versionsExt({0x0304, 0x0303}),
      alpnExt({"h2", "http/1.1"}),  // last, so the hello ends in '1', not in 22
  };
};

Writer build(const HelloSpec& s) {
  Writer w;
  w.u8(s.recordType);
  w.u16(s.recordVersion);
  size_t record = w.open(2, "record");
  w.u8(s.handshakeType);
  size_t handshake = w.open(3, "handshake");
  w.u16(s.legacyVersion);
  w.raw(Bytes(32, 0x11));
  size_t sid = w.open(1, "session_id");
  w.raw(s.sessionId);
  w.close(sid);
  size_t suites = w.open(2, "cipher_suites");
  w.raw(s.suites);
  w.close(suites);
  size_t comp = w.open(1, "compression_methods");
  w.raw(s.compression);
  w.close(comp);
  if (s.hasExtensions) {
    size_t exts = w.open(2, "extensions");
    for (const Ext& e : s.extensions) {
      w.u16(e.type);
      size_t len = w.open(2, "extension " + std::to_string(e.type));
      e.body(w);
      w.close(len);
    }
    w.close(exts);
  }
  w.close(handshake);
  w.close(record);
  return w;
}

Outcome parse(const HelloSpec& s) {
  return feedWhole(build(s).bytes);
}

TEST(ClientHelloBuilt, DefaultSpecParses) {
  Outcome o = parse(HelloSpec{});
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_EQ(o.hello.sni, "www.example.com");
  EXPECT_EQ(alpnNames(o.hello), (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_TRUE(o.hello.offersTls13);
  EXPECT_EQ(o.hello.extensionCount, 4);
}

TEST(ClientHelloBuilt, EveryLengthFieldOffByOneInBothDirections) {
  Writer good = build(HelloSpec{});
  ASSERT_GT(good.fields.size(), 10u);
  for (const LengthField& f : good.fields) {
    for (int delta : {-1, +1}) {
      Bytes bad = good.bytes;
      uint64_t value = 0;
      for (size_t i = 0; i < f.width; ++i) {
        value = (value << 8) | bad[f.offset + i];
      }
      uint64_t max = (uint64_t{1} << (8 * f.width)) - 1;
      if ((delta < 0 && value == 0) || (delta > 0 && value == max)) {
        continue;
      }
      value = static_cast<uint64_t>(static_cast<int64_t>(value) + delta);
      for (size_t i = 0; i < f.width; ++i) {
        bad[f.offset + i] = static_cast<uint8_t>(value >> (8 * (f.width - 1 - i)));
      }
      SCOPED_TRACE(f.name + (delta < 0 ? " - 1" : " + 1"));
      Outcome whole = feedWhole(bad);
      Outcome bytewise = feedChunks(bad, {1});
      EXPECT_EQ(whole.status, bytewise.status);
      EXPECT_EQ(whole.error, bytewise.error);
      if (f.name == "handshake" && delta > 0) {
        // A longer message is a legitimate wait for a further record; one more byte of it
        // breaks the extensions' framing.
        ASSERT_EQ(whole.status, Status::NeedMore);
        Bytes more = bad;
        for (uint8_t b : {22, 3, 1, 0, 1, 0}) {
          more.push_back(b);
        }
        Outcome o = feedWhole(more);
        EXPECT_EQ(o.status, Status::Error);
        EXPECT_EQ(o.error, ClientHelloError::Extensions);
        continue;
      }
      EXPECT_EQ(whole.status, Status::Error);
      EXPECT_NE(whole.error, ClientHelloError::None);
    }
  }
}

TEST(ClientHelloBuilt, LengthFieldErrorsNameTheField) {
  Writer good = build(HelloSpec{});
  auto bump = [&](const std::string& name, int delta) {
    for (const LengthField& f : good.fields) {
      if (f.name == name) {
        Bytes bad = good.bytes;
        bad[f.offset + f.width - 1] = static_cast<uint8_t>(bad[f.offset + f.width - 1] + delta);
        return feedWhole(bad).error;
      }
    }
    ADD_FAILURE() << name;
    return ClientHelloError::None;
  };
  EXPECT_EQ(bump("record", +1), ClientHelloError::RecordOverrun);
  EXPECT_EQ(bump("record", -1), ClientHelloError::RecordType);  // next "record" starts at '1'
  EXPECT_EQ(bump("handshake", -1), ClientHelloError::RecordOverrun);
  EXPECT_EQ(bump("session_id", +1), ClientHelloError::SessionId);
  EXPECT_EQ(bump("cipher_suites", +1), ClientHelloError::CipherSuites);
  EXPECT_EQ(bump("cipher_suites", -1), ClientHelloError::CipherSuites);
  EXPECT_EQ(bump("extensions", +1), ClientHelloError::Extensions);
  EXPECT_EQ(bump("extensions", -1), ClientHelloError::Extensions);
  EXPECT_EQ(bump("server_name list", -1), ClientHelloError::ServerName);
  EXPECT_EQ(bump("host_name", +1), ClientHelloError::ServerName);
  EXPECT_EQ(bump("alpn list", +1), ClientHelloError::Alpn);
  EXPECT_EQ(bump("alpn name h2", -1), ClientHelloError::Alpn);
  EXPECT_EQ(bump("supported_versions list", +1), ClientHelloError::SupportedVersions);
}

TEST(ClientHelloBuilt, TruncatedAtEveryOffsetNeverCompletes) {
  Bytes good = build(HelloSpec{}).bytes;
  for (size_t n = 0; n < good.size(); ++n) {
    Outcome o = feedWhole(Bytes(good.begin(), good.begin() + static_cast<long>(n)));
    ASSERT_EQ(o.status, Status::NeedMore) << n;
  }
}

TEST(ClientHelloBuilt, NoExtensionsBlockIsAllowed) {
  HelloSpec s;
  s.hasExtensions = false;
  s.legacyVersion = 0x0301;
  Outcome o = parse(s);
  ASSERT_EQ(o.status, Status::Done) << toString(o.error);
  EXPECT_FALSE(o.hello.sni);
  EXPECT_EQ(o.hello.legacyVersion, 0x0301);
  EXPECT_EQ(o.hello.extensionCount, 0);
}

TEST(ClientHelloBuilt, EmptyExtensionsBlockIsAllowed) {
  HelloSpec s;
  s.extensions.clear();
  EXPECT_EQ(parse(s).status, Status::Done);
}

TEST(ClientHelloBuilt, BodyFieldErrors) {
  struct Case {
    std::string name;
    std::function<void(HelloSpec&)> mutate;
    ClientHelloError want;
  };
  std::vector<Case> cases = {
      {"ssl3 client version", [](HelloSpec& s) { s.legacyVersion = 0x0300; },
       ClientHelloError::ClientVersion},
      {"tls major 2", [](HelloSpec& s) { s.legacyVersion = 0x0203; },
       ClientHelloError::ClientVersion},
      {"session id 33", [](HelloSpec& s) { s.sessionId = Bytes(33, 1); },
       ClientHelloError::SessionId},
      {"no cipher suites", [](HelloSpec& s) { s.suites.clear(); }, ClientHelloError::CipherSuites},
      {"odd cipher suites",
       [](HelloSpec& s) {
         s.suites = {0x13, 0x01, 0x13};
       },
       ClientHelloError::CipherSuites},
      {"no compression", [](HelloSpec& s) { s.compression.clear(); },
       ClientHelloError::Compression},
      {"compression without null", [](HelloSpec& s) { s.compression = {1}; },
       ClientHelloError::Compression},
      {"duplicate alpn", [](HelloSpec& s) { s.extensions.push_back(alpnExt({"h2"})); },
       ClientHelloError::DuplicateExtension},
      {"duplicate unknown",
       [](HelloSpec& s) {
         s.extensions.push_back(opaqueExt(0x1234, {}));
         s.extensions.push_back(opaqueExt(0x1234, {1}));
       },
       ClientHelloError::DuplicateExtension},
      {"duplicate sni", [](HelloSpec& s) { s.extensions.push_back(sniExt("b.example.com")); },
       ClientHelloError::DuplicateExtension},
      {"psk not last",
       [](HelloSpec& s) {
         s.extensions.insert(s.extensions.begin(), opaqueExt(41, {0, 0, 0, 0}));
       },
       ClientHelloError::PreSharedKeyNotLast},
      {"empty server_name", [](HelloSpec& s) { s.extensions[0] = rawExt(0, {}); },
       ClientHelloError::ServerName},
      {"empty server_name list",
       [](HelloSpec& s) {
         s.extensions[0] = rawExt(0, {0, 0});
       },
       ClientHelloError::ServerName},
      {"server_name type 1",
       [](HelloSpec& s) {
         s.extensions[0] = rawExt(0, {0, 4, 1, 0, 1, 'a'});
       },
       ClientHelloError::ServerName},
      {"two host names",
       [](HelloSpec& s) {
         s.extensions[0] = rawExt(0, {0, 8, 0, 0, 1, 'a', 0, 0, 1, 'b'});
       },
       ClientHelloError::ServerName},
      {"empty host name",
       [](HelloSpec& s) {
         s.extensions[0] = rawExt(0, {0, 3, 0, 0, 0});
       },
       ClientHelloError::ServerName},
      {"underscore", [](HelloSpec& s) { s.extensions[0] = sniExt("a_b.example.com"); },
       ClientHelloError::ServerName},
      {"ipv6 literal", [](HelloSpec& s) { s.extensions[0] = sniExt("::1"); },
       ClientHelloError::ServerName},
      {"nul in host name",
       [](HelloSpec& s) { s.extensions[0] = sniExt(std::string("a\0b.com", 7)); },
       ClientHelloError::ServerName},
      {"empty alpn", [](HelloSpec& s) { s.extensions[3] = rawExt(16, {}); },
       ClientHelloError::Alpn},
      {"empty alpn list",
       [](HelloSpec& s) {
         s.extensions[3] = rawExt(16, {0, 0});
       },
       ClientHelloError::Alpn},
      {"empty alpn name",
       [](HelloSpec& s) {
         s.extensions[3] = alpnExt({"h2", ""});
       },
       ClientHelloError::Alpn},
      {"alpn trailing byte",
       [](HelloSpec& s) {
         s.extensions[3] = rawExt(16, {0, 3, 2, 'h', '2', 9});
       },
       ClientHelloError::Alpn},
      {"odd supported_versions",
       [](HelloSpec& s) {
         s.extensions[2] = rawExt(43, {3, 3, 4, 3});
       },
       ClientHelloError::SupportedVersions},
      {"empty supported_versions", [](HelloSpec& s) { s.extensions[2] = rawExt(43, {0}); },
       ClientHelloError::SupportedVersions},
      {"not a client hello", [](HelloSpec& s) { s.handshakeType = 2; },
       ClientHelloError::HandshakeType},
      {"alert record", [](HelloSpec& s) { s.recordType = 21; }, ClientHelloError::NotTls},
      {"record version 3.0", [](HelloSpec& s) { s.recordVersion = 0x0300; },
       ClientHelloError::RecordVersion},
      {"record version 3.5", [](HelloSpec& s) { s.recordVersion = 0x0305; },
       ClientHelloError::RecordVersion},
      {"record version 2.1", [](HelloSpec& s) { s.recordVersion = 0x0201; },
       ClientHelloError::RecordVersion},
  };
  for (const Case& c : cases) {
    HelloSpec s;
    c.mutate(s);
    Outcome o = parse(s);
    EXPECT_EQ(o.status, Status::Error) << c.name;
    EXPECT_EQ(o.error, c.want) << c.name << ": got " << toString(o.error);
    EXPECT_FALSE(o.hello.sni) << c.name << ": nothing half-parsed is visible";
  }
}

TEST(ClientHelloBuilt, AcceptedVariations) {
  std::vector<std::function<void(HelloSpec&)>> ok = {
      [](HelloSpec& s) { s.recordVersion = 0x0303; },
      [](HelloSpec& s) { s.recordVersion = 0x0304; },
      [](HelloSpec& s) { s.legacyVersion = 0x0304; },  // version-tolerant, RFC 8446 §4.1.2
      [](HelloSpec& s) { s.sessionId.clear(); },
      [](HelloSpec& s) {
        s.compression = {1, 0};
      },
      [](HelloSpec& s) {
        s.extensions.push_back(opaqueExt(41, {0, 0, 0, 0}));
      },                                                                               // psk last
      [](HelloSpec& s) { s.extensions.push_back(opaqueExt(0x0A0A, {})); },             // GREASE
      [](HelloSpec& s) { s.extensions.push_back(opaqueExt(0xFE0D, Bytes(200, 7))); },  // ECH
  };
  for (size_t i = 0; i < ok.size(); ++i) {
    HelloSpec s;
    ok[i](s);
    Outcome o = parse(s);
    EXPECT_EQ(o.status, Status::Done) << i << ": " << toString(o.error);
  }
}

TEST(ClientHelloBuilt, MultipleAlpnIncludingAcme) {
  HelloSpec s;
  s.extensions[3] = alpnExt({"http/1.1", "acme-tls/1", std::string(255, 'x')});
  Outcome o = parse(s);
  ASSERT_EQ(o.status, Status::Done);
  EXPECT_TRUE(o.hello.alpn.contains(kAlpnAcmeTls));
  EXPECT_EQ(o.hello.alpn.size(), 3u);
  EXPECT_EQ(o.hello.alpn.names()[2].size(), 255u);
}

TEST(ClientHelloBuilt, AlertBetweenFragmentsIsRefused) {
  Bytes message = handshakeMessage(build(HelloSpec{}).bytes);
  Bytes framed = reframe(message, {10, 10000});
  framed[15] = 21;  // the second record's type
  Outcome o = feedWhole(framed);
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::RecordType);
}

TEST(ClientHelloBuilt, RecordOverrunInALaterRecord) {
  Bytes message = handshakeMessage(build(HelloSpec{}).bytes);
  Bytes framed = reframe(message, {10, 10000});
  size_t second = 15;  // 5 + 10
  size_t len = (size_t{framed[second + 3]} << 8) | framed[second + 4];
  framed[second + 4] = static_cast<uint8_t>(len + 1);
  Outcome o = feedWhole(framed);
  EXPECT_EQ(o.error, ClientHelloError::RecordOverrun);
}

// ---------------------------------------------------------------------------------------------
// Not a hello at all, and sizes.

TEST(ClientHelloGarbage, HttpRequestIsRefusedAtTheFirstByte) {
  ClientHelloParser p;
  auto r = p.feed(std::string_view("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"));
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.consumed, 1u);
  EXPECT_EQ(p.error(), ClientHelloError::NotTls);
  EXPECT_EQ(p.errorReason(), "not_tls");
  auto after = p.feed(std::string_view("more"));
  EXPECT_EQ(after.status, Status::Error);
  EXPECT_EQ(after.consumed, 0u);
}

TEST(ClientHelloGarbage, Sslv2CompatibleHello) {
  // SSLv2 record header (2-byte length, high bit set), CLIENT-HELLO, version 3.1.
  Bytes v2 = {0x80, 0x2E, 0x01, 0x03, 0x01, 0x00, 0x15, 0x00, 0x00, 0x00, 0x10};
  Outcome o = feedWhole(v2);
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::Sslv2Hello);
  EXPECT_EQ(o.consumed, 3u);
  EXPECT_EQ(feedWhole({0x80, 0x2E}).status, Status::NeedMore);
  EXPECT_EQ(feedWhole({0xFF, 0xFF, 0x00}).error, ClientHelloError::NotTls);
}

TEST(ClientHelloGarbage, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    Bytes junk(rng() % 64);
    for (uint8_t& b : junk) {
      b = static_cast<uint8_t>(rng());
    }
    if (!junk.empty() && i % 2 == 0) {
      junk[0] = 22;  // get past the first byte half of the time
    }
    Outcome o = feedWhole(junk);
    EXPECT_NE(o.status, Status::Done);
  }
}

TEST(ClientHelloGarbage, RecordLengths) {
  EXPECT_EQ(feedWhole({22, 3, 1, 0, 0}).error, ClientHelloError::RecordLength);
  EXPECT_EQ(feedWhole({22, 3, 1, 0x40, 0x01}).error, ClientHelloError::RecordLength);
  // 2^14 is a valid record length, but with its header it exceeds the default 16 KiB bound
  // on raw bytes (what the engine must buffer for replay).
  EXPECT_EQ(feedWhole({22, 3, 1, 0x40, 0x00}, 32 * 1024).status, Status::NeedMore);
  EXPECT_EQ(feedWhole({22, 3, 1, 0x40, 0x00}).error, ClientHelloError::TooLarge);
}

TEST(ClientHelloSize, DeclaredOversizeIsRefusedAtTheHeader) {
  // A handshake message of 20000 bytes cannot fit in 16 KiB: no need to wait for it.
  Bytes head = {22, 3, 1, 0x10, 0x00, 1, 0x00, 0x4E, 0x20};
  Outcome o = feedWhole(head);
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::TooLarge);
  EXPECT_EQ(o.consumed, head.size());
}

TEST(ClientHelloSize, TooSmallToBeAHello) {
  Bytes head = {22, 3, 1, 0, 14, 1, 0, 0, 10};
  EXPECT_EQ(feedWhole(head).error, ClientHelloError::HandshakeLength);
}

TEST(ClientHelloSize, OpenSslHelloAbove16KiB) {
  Bytes hello = opensslClientHello({.sni = "huge.example.com", .paddingExtSize = 17000});
  Outcome o = feedWhole(hello);
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::TooLarge);
  EXPECT_LE(o.consumed, ClientHelloParser::kDefaultMaxBytes);
}

TEST(ClientHelloSize, RecordOverheadCountsTowardsTheLimit) {
  // A 5000-byte message fits in 16 KiB once, but not framed as 1-byte records (6x).
  HelloSpec s;
  s.extensions.push_back(opaqueExt(0x4444, Bytes(4800, 1)));
  Bytes message = handshakeMessage(build(s).bytes);
  EXPECT_EQ(feedWhole(reframe(message, {16384})).status, Status::Done);
  Outcome o = feedWhole(reframe(message, {1}));
  EXPECT_EQ(o.status, Status::Error);
  EXPECT_EQ(o.error, ClientHelloError::TooLarge);
  EXPECT_LE(o.consumed, ClientHelloParser::kDefaultMaxBytes);
}

TEST(ClientHelloSize, ExactlyAtTheLimit) {
  Bytes hello = build(HelloSpec{}).bytes;
  EXPECT_EQ(feedWhole(hello, hello.size()).status, Status::Done);
  EXPECT_EQ(feedWhole(hello, hello.size() - 1).error, ClientHelloError::TooLarge);
  Bytes framed = reframe(handshakeMessage(hello), {5});
  EXPECT_EQ(feedWhole(framed, framed.size()).status, Status::Done);
  EXPECT_EQ(feedWhole(framed, framed.size() - 1).error, ClientHelloError::TooLarge);
}

TEST(ClientHelloSize, LargestHelloThatFits) {
  // One record of 2^14 - 4 body bytes... framed in two records to stay within 2^14 each.
  HelloSpec s;
  Bytes base = build(s).bytes;
  size_t room = ClientHelloParser::kDefaultMaxBytes - base.size() - 5 /*2nd record*/ - 4;
  s.extensions.push_back(opaqueExt(0x4444, Bytes(room, 1)));
  Bytes message = handshakeMessage(build(s).bytes);
  Bytes framed = reframe(message, {8000, 16384});
  ASSERT_EQ(framed.size(), ClientHelloParser::kDefaultMaxBytes);
  Outcome o = feedChunks(framed, {1000});
  EXPECT_EQ(o.status, Status::Done) << toString(o.error);
}

// ---------------------------------------------------------------------------------------------
// Host name normalization (RFC 6066 §3, choices documented in clienthello.h).

TEST(SniHostName, Normalization) {
  struct Case {
    std::string in;
    std::optional<std::string> want;
  };
  std::string label63(63, 'a');
  std::string name253 = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name253.size(), 253u);
  std::vector<Case> cases = {
      {"example.com", "example.com"},
      {"EXAMPLE.Com", "example.com"},
      {"example.com.", "example.com"},
      {"xn--bcher-kva.example", "xn--bcher-kva.example"},
      {"a", "a"},
      {"localhost", "localhost"},
      {"123.com", "123.com"},
      {"a-b.c-d.e", "a-b.c-d.e"},
      {label63 + ".com", label63 + ".com"},
      {name253, name253},
      {name253 + ".", name253},
      {"", std::nullopt},
      {".", std::nullopt},
      {"..", std::nullopt},
      {"example.com..", std::nullopt},
      {".example.com", std::nullopt},
      {"a..b", std::nullopt},
      {"1.2.3.4", std::nullopt},
      {"1.2.3.4.", std::nullopt},
      {"123", std::nullopt},
      {"example.123", std::nullopt},
      {"::1", std::nullopt},
      {"[::1]", std::nullopt},
      {"a_b.com", std::nullopt},
      {"-a.com", std::nullopt},
      {"a-.com", std::nullopt},
      {"a b.com", std::nullopt},
      {"*.example.com", std::nullopt},
      {"\xC3\xA9.com", std::nullopt},
      {std::string(64, 'a') + ".com", std::nullopt},
      {name253 + "c", std::nullopt},
      {name253.substr(0, 252) + "..", std::nullopt},
  };
  for (const Case& c : cases) {
    std::string out;
    bool ok = normalizeSniHostName(c.in, out);
    EXPECT_EQ(ok, c.want.has_value()) << "'" << c.in << "'";
    if (ok && c.want) {
      EXPECT_EQ(out, *c.want);
    }
  }
}

TEST(ClientHelloBody, ParsedDirectly) {
  ClientHello h;
  EXPECT_EQ(parseClientHelloBody({}, h), ClientHelloError::ClientVersion);
  Bytes shortBody = {0x03, 0x03, 1, 2, 3};
  EXPECT_EQ(parseClientHelloBody(shortBody, h), ClientHelloError::HandshakeLength);
  Bytes body = handshakeMessage(build(HelloSpec{}).bytes);
  body.erase(body.begin(), body.begin() + 4);
  ASSERT_EQ(parseClientHelloBody(body, h), ClientHelloError::None);
  EXPECT_EQ(h.sni, "www.example.com");
  // Wire form, as PP2_TYPE_ALPN wants it; iteration both ways.
  EXPECT_EQ(h.alpn.wire(), std::string("\x02h2\x08http/1.1", 12));
  auto it = h.alpn.begin();
  EXPECT_EQ(*it++, "h2");
  EXPECT_EQ(*it, "http/1.1");
  EXPECT_EQ(++it, h.alpn.end());
  EXPECT_EQ(AlpnList().size(), 0u);
  EXPECT_FALSE(AlpnList().contains("h2"));
}

TEST(ClientHelloErrors, EveryReasonHasADistinctName) {
  std::vector<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(ClientHelloError::PreSharedKeyNotLast); ++i) {
    std::string_view name = toString(static_cast<ClientHelloError>(i));
    EXPECT_NE(name, "unknown");
    EXPECT_EQ(std::find(seen.begin(), seen.end(), name), seen.end()) << name;
    seen.push_back(name);
  }
}

}  // namespace
}  // namespace edgeplane::proxy
