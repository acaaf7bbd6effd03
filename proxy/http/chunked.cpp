// ChunkedDecoder: the chunked transfer coding's state machine (see chunked.h for the rules).
#include "proxy/http/chunked.h"

#include <algorithm>

#include "proxy/http/syntax.h"
#include "schema/encoding.h"

namespace edgeplane::proxy::http {
namespace {

// qdtext (RFC 9110 5.6.4) less the quote and backslash, handled by the caller.
bool isQdText(char c) {
  auto u = static_cast<unsigned char>(c);
  return c == '\t' || c == ' ' || (u >= 0x21 && u != 0x7F);
}

}  // namespace

ChunkedDecoder::Step ChunkedDecoder::feed(std::span<const char> in) {
  Step s;
  size_t i = 0;
  while (i < in.size()) {
    if (state_ == State::Done || state_ == State::Error) {
      break;
    }
    if (state_ == State::Data) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(size_, in.size() - i));
      s.dataOffset = i;
      s.dataLength = n;
      size_ -= n;
      dataBytes_ += n;
      i += n;
      if (size_ == 0) {
        state_ = State::DataCr;
      }
      break;
    }
    std::string_view error = step(in[i]);
    if (!error.empty()) {
      state_ = State::Error;
      s.error = error;
      break;
    }
    ++i;
  }
  s.consumed = i;
  s.status = state_ == State::Done    ? Status::Done
             : state_ == State::Error ? Status::Error
                                      : Status::Ok;
  if (state_ == State::Error && s.error.empty()) {
    s.error = "chunked body already failed";
  }
  return s;
}

std::string_view ChunkedDecoder::step(char c) {
  switch (state_) {
    case State::SizeStart:
    case State::Size: {
      int v = hexValue(c);
      if (v >= 0) {
        if (++digits_ > 16) {
          return "chunk size has too many digits";
        }
        size_ = size_ * 16 + static_cast<uint64_t>(v);
        if (size_ > limits_.maxChunkSize) {
          return "chunk size too large";
        }
        state_ = State::Size;
        return {};
      }
      if (state_ == State::SizeStart) {
        return "invalid chunk size";
      }
      return lineEnd(c);
    }
    case State::SizeLf:
      if (c != '\n') {
        return "bare CR in chunk size line";
      }
      digits_ = 0;
      extBytes_ = 0;
      sawWs_ = false;
      state_ = size_ == 0 ? State::TrailerLineStart : State::Data;
      return {};
    case State::DataCr:
      if (c != '\r') {
        return "missing CRLF after chunk data";
      }
      state_ = State::DataLf;
      return {};
    case State::DataLf:
      if (c != '\n') {
        return "bare CR after chunk data";
      }
      state_ = State::SizeStart;
      return {};
    case State::TrailerLineStart:
    case State::TrailerName:
    case State::TrailerValue:
    case State::TrailerLf:
    case State::FinalLf:
      return trailerByte(c);
    case State::Data:
    case State::Done:
    case State::Error:
      return "unexpected state";
    default:
      return extensionByte(c);
  }
}

// After the size digits or an extension element: CR ends the line, ";" starts an extension,
// BWS may precede ";" or "=" but not the CR.
std::string_view ChunkedDecoder::lineEnd(char c) {
  if (c == '\r' && !sawWs_) {
    state_ = State::SizeLf;
    return {};
  }
  if (c == '\r') {
    return "whitespace at end of chunk size line";
  }
  if (c == '\n') {
    return "bare LF in chunk size line";
  }
  if (c == ';' || isOws(c)) {
    state_ = State::SizeBws;  // re-dispatched below as an extension byte
    return extensionByte(c);
  }
  return "invalid character in chunk size line";
}

std::string_view ChunkedDecoder::extensionByte(char c) {
  if (++extBytes_ > limits_.maxExtensionBytes) {
    return "chunk extension too long";
  }
  if (++totalExtBytes_ > limits_.maxTotalExtensionBytes) {
    return "too many chunk extension bytes";
  }
  switch (state_) {
    case State::SizeBws:
    case State::ExtAfterName:
    case State::ExtAfterValue:
      if (isOws(c)) {
        sawWs_ = true;
        return {};
      }
      if (c == ';') {
        sawWs_ = false;
        state_ = State::ExtNameStart;
        return {};
      }
      if (c == '=' && state_ == State::ExtAfterName) {
        state_ = State::ExtValueStart;
        return {};
      }
      if (c == '\r' && state_ != State::SizeBws && !sawWs_) {
        state_ = State::SizeLf;
        return {};
      }
      return "malformed chunk extension";
    case State::ExtNameStart:
    case State::ExtValueStart:
      if (isOws(c)) {
        return {};
      }
      if (isTchar(c)) {
        state_ = state_ == State::ExtNameStart ? State::ExtName : State::ExtValueToken;
        return {};
      }
      if (c == '"' && state_ == State::ExtValueStart) {
        state_ = State::ExtQuoted;
        return {};
      }
      return "malformed chunk extension";
    case State::ExtName:
    case State::ExtValueToken:
      if (isTchar(c)) {
        return {};
      }
      if (c == '=' && state_ == State::ExtName) {
        state_ = State::ExtValueStart;
        return {};
      }
      state_ = state_ == State::ExtName ? State::ExtAfterName : State::ExtAfterValue;
      sawWs_ = false;
      return extensionByte(c);
    case State::ExtQuoted:
      if (c == '"') {
        state_ = State::ExtAfterValue;
        sawWs_ = false;
      } else if (c == '\\') {
        state_ = State::ExtQuotedPair;
      } else if (!isQdText(c)) {
        return "invalid character in chunk extension";
      }
      return {};
    case State::ExtQuotedPair:
      if (!isQdText(c) && c != '"' && c != '\\') {
        return "invalid quoted-pair in chunk extension";
      }
      state_ = State::ExtQuoted;
      return {};
    default:
      return "unexpected state";
  }
}

std::string_view ChunkedDecoder::trailerByte(char c) {
  if (++trailerBytes_ > limits_.maxTrailerBytes) {
    return "trailer section too large";
  }
  switch (state_) {
    case State::TrailerLineStart:
      if (c == '\r') {
        state_ = State::FinalLf;
        return {};
      }
      if (!isTchar(c)) {
        return isOws(c) ? "obsolete line folding in trailer" : "invalid trailer field name";
      }
      if (++trailerFields_ > limits_.maxTrailerFields) {
        return "too many trailer fields";
      }
      state_ = State::TrailerName;
      return {};
    case State::TrailerName:
      if (c == ':') {
        state_ = State::TrailerValue;
      } else if (!isTchar(c)) {
        return "invalid trailer field name";
      }
      return {};
    case State::TrailerValue:
      if (c == '\r') {
        state_ = State::TrailerLf;
      } else if (!isFieldValueChar(c)) {
        return "control character in trailer field";
      }
      return {};
    case State::TrailerLf:
    case State::FinalLf:
      if (c != '\n') {
        return "bare CR in trailer section";
      }
      state_ = state_ == State::FinalLf ? State::Done : State::TrailerLineStart;
      return {};
    default:
      return "unexpected state";
  }
}

}  // namespace edgeplane::proxy::http
