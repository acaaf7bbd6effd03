// Internal parts of the head parsers shared by requests and responses (not part of the
// handler's contract; see message.h).
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"

namespace edgeplane::proxy::http {

struct LineScan {
  enum class Kind : uint8_t { Complete, Incomplete, BareLf, BareCr };
  Kind kind = Kind::Incomplete;
  size_t length = 0;  // bytes before the CR/LF; for Incomplete, the bytes seen so far
};

// Scans the line starting at `at` up to its first CR or LF.
LineScan scanLine(std::span<const char> buf, size_t at);

// Parses field lines from `headerStart` through the empty line; Done carries the offset one
// past the final CRLF.
ParseResult parseFieldLines(std::span<const char> buf, size_t headerStart, const Limits& limits,
                            std::vector<HeaderField>& headers);

struct MessageFraming {
  std::optional<uint64_t> declaredLength;
  bool chunked = false;
};

// Content-Length and Transfer-Encoding checks common to both directions.
ParseResult deriveFraming(std::span<const HeaderField> headers, Version version,
                          MessageFraming& out);

struct ConnectionFacts {
  bool keepAlive = true;
  std::string_view upgrade;
};
ConnectionFacts connectionFacts(std::span<const HeaderField> headers, Version version);

// "HTTP/1.0" or "HTTP/1.1"; another HTTP/d.d -> 505; anything else -> 400.
ParseResult parseVersion(std::string_view text, Version& out);

// `HTTP/d.d SP 3DIGIT [SP reason]` (CRLF excluded): the status line of a response (status
// 100-599, no control bytes in the reason) into out.version, out.status, out.reason.
ParseResult parseStatusLine(std::string_view line, ResponseHead& out);

}  // namespace edgeplane::proxy::http
