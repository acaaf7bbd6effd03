// proxy/http ChunkedDecoder: data ranges, extensions, trailers, every refusal of chunked.h,
// and incremental feeding (any split gives the same data and verdict).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "proxy/http/chunked.h"

namespace edgeplane::proxy::http {
namespace {

struct Decoded {
  ChunkedDecoder::Status status = ChunkedDecoder::Status::Ok;
  std::string data;
  size_t consumed = 0;  // total input used
  std::string_view error;
};

// Feeds `input` in pieces of at most `piece` bytes, as a caller would.
Decoded decode(std::string_view input, size_t piece = 0, const ChunkedLimits& limits = {}) {
  ChunkedDecoder decoder(limits);
  Decoded out;
  if (piece == 0) {
    piece = input.size() + 1;
  }
  for (size_t at = 0; at < input.size() && out.status == ChunkedDecoder::Status::Ok;) {
    std::string_view in = input.substr(at, std::min(piece, input.size() - at));
    while (!in.empty()) {
      ChunkedDecoder::Step s = decoder.feed(std::span<const char>(in.data(), in.size()));
      out.data.append(in.substr(s.dataOffset, s.dataLength));
      out.consumed += s.consumed;
      out.status = s.status;
      out.error = s.error;
      if (s.status != ChunkedDecoder::Status::Ok) {
        break;
      }
      in.remove_prefix(s.consumed);
    }
    at += std::min(piece, input.size() - at);
  }
  return out;
}

bool refused(std::string_view input, const ChunkedLimits& limits = {}) {
  return decode(input, 0, limits).status == ChunkedDecoder::Status::Error;
}

TEST(HttpChunked, DecodesDataAndStopsAtTheEnd) {
  std::string body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  Decoded d = decode(body + "GET / HTTP/1.1\r\n");
  EXPECT_EQ(d.status, ChunkedDecoder::Status::Done);
  EXPECT_EQ(d.data, "hello world");
  EXPECT_EQ(d.consumed, body.size());
}

TEST(HttpChunked, EverySplitAndByteAtATimeGiveTheSameResult) {
  for (std::string_view body : {
           std::string_view("a;x=1;y=\"q\\\"z\"\r\n0123456789\r\n1\r\n!\r\n0\r\nT: v\r\n\r\n"),
           std::string_view("A\r\nshort\r\n"),          // incomplete
           std::string_view("3\r\nabcX\r\n0\r\n\r\n"),  // missing CRLF after data
           std::string_view("FFFFFFFFFFFFFFFFF\r\n"),   // too many digits
       }) {
    Decoded whole = decode(body);
    for (size_t piece = 1; piece <= body.size(); ++piece) {
      Decoded d = decode(body, piece);
      ASSERT_EQ(d.status, whole.status) << body << " piece " << piece;
      ASSERT_EQ(d.data, whole.data) << body << " piece " << piece;
      ASSERT_EQ(d.consumed, whole.consumed) << body << " piece " << piece;
    }
  }
  EXPECT_EQ(decode("A\r\nshort\r\n").status, ChunkedDecoder::Status::Ok);  // waits for more
}

TEST(HttpChunked, ChunkSizes) {
  EXPECT_EQ(decode("00000000000000A\r\n0123456789\r\n0\r\n\r\n").data, "0123456789");
  EXPECT_EQ(decode("fF\r\n").status, ChunkedDecoder::Status::Ok);
  EXPECT_TRUE(refused("\r\n"));
  EXPECT_TRUE(refused("g\r\n"));
  EXPECT_TRUE(refused("0x5\r\n"));
  EXPECT_TRUE(refused("-1\r\n"));
  EXPECT_TRUE(refused("+1\r\n"));
  EXPECT_TRUE(refused(" 5\r\n"));
  EXPECT_TRUE(refused("5 \r\n"));
  EXPECT_TRUE(refused("5\n"));
  EXPECT_TRUE(refused("5\rX"));
  EXPECT_TRUE(refused("10000000000000000\r\n"));  // 17 digits
  EXPECT_FALSE(refused("FFFFFFFFFFFFFFFF\r\n", ChunkedLimits{.maxChunkSize = ~uint64_t{0}}));
  EXPECT_TRUE(refused("FFFFFFFFFFFFFFFF\r\n"));  // over the default maxChunkSize
  EXPECT_TRUE(refused("401\r\n", ChunkedLimits{.maxChunkSize = 1024}));
  EXPECT_FALSE(refused("400\r\n", ChunkedLimits{.maxChunkSize = 1024}));
}

TEST(HttpChunked, Extensions) {
  for (std::string_view ok :
       {"1;a\r\nx\r\n0\r\n\r\n", "1;a=b\r\nx\r\n0\r\n\r\n", "1 ; a = b ;c\r\nx\r\n0\r\n\r\n",
        "1;a=\"\"\r\nx\r\n0\r\n\r\n", "1;a=\"s p\\\"\\\\\"\r\nx\r\n0;last\r\n\r\n"}) {
    Decoded d = decode(ok);
    EXPECT_EQ(d.status, ChunkedDecoder::Status::Done) << ok << ": " << d.error;
    EXPECT_EQ(d.data, "x");
  }
  for (std::string_view bad :
       {"1;\r\nx\r\n", "1;=b\r\nx\r\n", "1;a=\r\nx\r\n", "1;a b\r\nx\r\n", "1;a=b \r\nx\r\n",
        "1;a=\"b\r\nx\r\n", "1;a=\"\x01\"\r\nx\r\n", "1;a\n", "1;a=b\"c\"\r\n", "1;a=\"b\"c\r\n",
        "1;a=b;;\r\n", "1,a\r\n"}) {
    EXPECT_TRUE(refused(bad)) << bad;
  }
  std::string longExt = "1;a=" + std::string(2000, 'b') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_TRUE(refused(longExt));
  // Many small chunks each with an extension: bounded per body, not only per line.
  std::string many;
  for (int i = 0; i < 200; ++i) {
    many += "1;" + std::string(100, 'e') + "\r\nx\r\n";
  }
  EXPECT_TRUE(refused(many));
}

TEST(HttpChunked, CrlfAfterData) {
  EXPECT_TRUE(refused("3\r\nabc0\r\n\r\n"));
  EXPECT_TRUE(refused("3\r\nabc\n0\r\n\r\n"));
  EXPECT_TRUE(refused("3\r\nabc\rX"));
  EXPECT_TRUE(refused("3\r\nabcd\r\n"));
}

TEST(HttpChunked, Trailers) {
  std::string_view message = "2\r\nok\r\n0\r\nExpires: never\r\nX-Sum:abc\r\n\r\n";
  Decoded d = decode(std::string(message) + "NEXT");
  EXPECT_EQ(d.status, ChunkedDecoder::Status::Done);
  EXPECT_EQ(d.data, "ok");
  EXPECT_EQ(d.consumed, message.size());
  EXPECT_TRUE(refused("0\r\nX: a\r\n b\r\n\r\n"));  // obs-fold
  EXPECT_TRUE(refused("0\r\n b\r\n\r\n"));
  EXPECT_TRUE(refused("0\r\nX : a\r\n\r\n"));
  EXPECT_TRUE(refused("0\r\nX\r\n\r\n"));
  EXPECT_TRUE(refused(std::string("0\r\nX: a\0\r\n\r\n", 12)));
  EXPECT_TRUE(refused("0\r\nX: a\n\r\n"));
  EXPECT_TRUE(refused("0\r\n\n"));
  EXPECT_TRUE(refused("0\r\nX: " + std::string(9000, 'v') + "\r\n\r\n"));
  std::string fields;
  for (int i = 0; i < 33; ++i) {
    fields += "X: v\r\n";
  }
  EXPECT_TRUE(refused("0\r\n" + fields + "\r\n"));
}

TEST(HttpChunked, FailedAndDoneDecodersConsumeNothingMore) {
  ChunkedDecoder decoder;
  std::string_view bad = "z";
  EXPECT_EQ(decoder.feed(bad).status, ChunkedDecoder::Status::Error);
  EXPECT_TRUE(decoder.failed());
  ChunkedDecoder::Step again = decoder.feed(std::string_view("5\r\n"));
  EXPECT_EQ(again.status, ChunkedDecoder::Status::Error);
  EXPECT_EQ(again.consumed, 0u);
  decoder.reset();
  std::string_view done = "0\r\n\r\n";
  EXPECT_EQ(decoder.feed(done).status, ChunkedDecoder::Status::Done);
  EXPECT_TRUE(decoder.done());
  EXPECT_EQ(decoder.feed(done).consumed, 0u);
  EXPECT_EQ(decoder.dataBytes(), 0u);
}

}  // namespace
}  // namespace edgeplane::proxy::http
