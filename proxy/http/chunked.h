// Incremental decoder of the chunked transfer coding (RFC 9112 7.1): validates the framing
// byte by byte and reports where the data bytes are, without copying them.
//
// The caller loops over the bytes it has:
//
//   while (!in.empty()) {
//     ChunkedDecoder::Step s = decoder.feed(in);
//     if (s.dataLength > 0) { use in.subspan(s.dataOffset, s.dataLength); }   // data bytes
//     if (s.status != ChunkedDecoder::Status::Ok) { break; }   // Done or Error
//     in = in.subspan(s.consumed);
//   }
//
// A feed stops right after one run of data bytes (so at most one range per call), at the end of
// the message (Done: `consumed` is where the next message starts) or at the offending byte
// (Error). To forward the chunked body verbatim, send in[0, consumed) of each step; to re-frame
// it, send only the data ranges. Trailer fields are checked (field syntax, bounded) but not
// reported: a re-framing caller drops them, a verbatim one forwards them.
//
// Refused: a chunk size that is empty, non-hex, has more than 16 digits or exceeds
// maxChunkSize; whitespace not allowed by the grammar (BWS is allowed only before ";" and
// around "="); extensions not of the form `;name[=token|quoted-string]`, or longer than
// maxExtensionBytes per chunk line or maxTotalExtensionBytes per body; anything but CRLF after
// the size line and after the data; a bare CR or LF; obs-fold, a bad name or a CTL in a
// trailer; trailers over maxTrailerBytes or maxTrailerFields. No allocation, no exceptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace edgeplane::proxy::http {

struct ChunkedLimits {
  uint64_t maxChunkSize = uint64_t{1} << 62;
  size_t maxExtensionBytes = 1024;        // per chunk line, from the first BWS or ";"
  size_t maxTotalExtensionBytes = 16384;  // per body: bounds work done on no data
  size_t maxTrailerBytes = 8192;
  size_t maxTrailerFields = 32;
};

class ChunkedDecoder {
 public:
  enum class Status : uint8_t { Ok, Done, Error };
  struct Step {
    Status status = Status::Ok;
    size_t consumed = 0;    // bytes of the input used by this call
    size_t dataOffset = 0;  // a run of data bytes inside the input, when dataLength > 0
    size_t dataLength = 0;
    std::string_view error;  // Error: a short static reason
  };

  explicit ChunkedDecoder(const ChunkedLimits& limits = {}) : limits_(limits) {}

  Step feed(std::span<const char> in);
  void reset() { *this = ChunkedDecoder(limits_); }

  bool done() const { return state_ == State::Done; }
  bool failed() const { return state_ == State::Error; }
  uint64_t dataBytes() const { return dataBytes_; }  // decoded data so far

 private:
  enum class State : uint8_t {
    SizeStart,
    Size,
    SizeBws,
    ExtNameStart,
    ExtName,
    ExtAfterName,
    ExtValueStart,
    ExtValueToken,
    ExtQuoted,
    ExtQuotedPair,
    ExtAfterValue,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    FinalLf,
    Done,
    Error,
  };

  // One byte of every state but Data; returns an error reason or "".
  std::string_view step(char c);
  std::string_view extensionByte(char c);
  std::string_view lineEnd(char c);
  std::string_view trailerByte(char c);

  ChunkedLimits limits_;
  State state_ = State::SizeStart;
  uint64_t size_ = 0;
  size_t digits_ = 0;
  size_t extBytes_ = 0;
  size_t totalExtBytes_ = 0;
  bool sawWs_ = false;
  size_t trailerBytes_ = 0;
  size_t trailerFields_ = 0;
  uint64_t dataBytes_ = 0;
};

}  // namespace edgeplane::proxy::http
