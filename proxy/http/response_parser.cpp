// parseResponseHead: the status line and the response's framing (RFC 9112 6.3) as a proxy
// reading an upstream needs them; every refusal is a 502 for the handler to send downstream.
#include <string_view>

#include "proxy/http/head_parser.h"
#include "proxy/http/message.h"
#include "proxy/http/syntax.h"

namespace edgeplane::proxy::http {

ParseResult parseStatusLine(std::string_view line, ResponseHead& out) {
  if (line.size() < 12 || line[8] != ' ') {
    return ParseResult::error(400, "malformed status line");
  }
  ParseResult r = parseVersion(line.substr(0, 8), out.version);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  int status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') {
      return ParseResult::error(400, "malformed status code");
    }
    status = status * 10 + (c - '0');
  }
  if (status < 100 || status > 599) {
    return ParseResult::error(400, "status code out of range");
  }
  out.status = status;
  std::string_view rest = line.substr(12);
  if (!rest.empty() && rest.front() != ' ') {
    return ParseResult::error(400, "malformed status line");
  }
  out.reason = rest.empty() ? rest : rest.substr(1);
  for (char c : out.reason) {
    if (!isFieldValueChar(c)) {
      return ParseResult::error(400, "control character in reason phrase");
    }
  }
  return ParseResult::done(0);
}

namespace {

ParseResult deriveResponseFacts(ResponseHead& out, std::string_view requestMethod) {
  MessageFraming framing;
  ParseResult r = deriveFraming(out.headers, out.version, framing);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  out.declaredLength = framing.declaredLength;
  out.contentLength = 0;
  ConnectionFacts facts = connectionFacts(out.headers, out.version);
  out.keepAlive = facts.keepAlive;
  out.upgrade = out.status == 101 ? facts.upgrade : std::string_view();
  if (requestMethod == "HEAD" || out.status < 200 || out.status == 204 || out.status == 304) {
    out.framing = BodyFraming::None;
  } else if (framing.chunked) {
    out.framing = BodyFraming::Chunked;
  } else if (framing.declaredLength) {
    out.framing = BodyFraming::ContentLength;
    out.contentLength = *framing.declaredLength;
  } else {
    out.framing = BodyFraming::UntilClose;
    out.keepAlive = false;
  }
  return ParseResult::done(0);
}

ParseResult parseResponse(std::span<const char> buf, ResponseHead& out, const Limits& limits,
                          std::string_view requestMethod) {
  LineScan line = scanLine(buf, 0);
  if (line.length + 2 > limits.maxRequestLine) {
    return ParseResult::error(400, "status line too long");
  }
  switch (line.kind) {
    case LineScan::Kind::Incomplete:
      return ParseResult::needMore();
    case LineScan::Kind::BareLf:
      return ParseResult::error(400, "bare LF in status line");
    case LineScan::Kind::BareCr:
      return ParseResult::error(400, "bare CR in status line");
    case LineScan::Kind::Complete:
      break;
  }
  ParseResult r = parseStatusLine(std::string_view(buf.data(), line.length), out);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  r = parseFieldLines(buf, line.length + 2, limits, out.headers);
  if (r.status != ParseStatus::Done) {
    return r;
  }
  ParseResult facts = deriveResponseFacts(out, requestMethod);
  return facts.status == ParseStatus::Error ? facts : r;
}

}  // namespace

ParseResult parseResponseHead(std::span<const char> buf, ResponseHead& out, const Limits& limits,
                              std::string_view requestMethod) {
  ParseResult r = parseResponse(buf, out, limits, requestMethod);
  if (r.status == ParseStatus::Error) {
    r.code = 502;
  }
  return r;
}

}  // namespace edgeplane::proxy::http
