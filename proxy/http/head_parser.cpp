// The line scanner and field-line parser shared by request and response heads, and the
// message facts both derive from their fields (Content-Length, Transfer-Encoding, Connection).
#include "proxy/http/head_parser.h"

#include "proxy/http/syntax.h"

namespace edgeplane::proxy::http {

LineScan scanLine(std::span<const char> buf, size_t at) {
  for (size_t i = at; i < buf.size(); ++i) {
    if (buf[i] == '\n') {
      return {LineScan::Kind::BareLf, i - at};
    }
    if (buf[i] == '\r') {
      if (i + 1 == buf.size()) {
        return {LineScan::Kind::Incomplete, i - at};
      }
      if (buf[i + 1] != '\n') {
        return {LineScan::Kind::BareCr, i - at};
      }
      return {LineScan::Kind::Complete, i - at};
    }
  }
  return {LineScan::Kind::Incomplete, buf.size() - at};
}

namespace {

// "Content_Length", "Transfer_Encoding", "Host" with underscores: some backends (CGI-style
// environments) fold '_' and '-' together and would read them as the real field, which the
// proxy did not check. Refused rather than forwarded (nginx drops them by default).
bool isFramingLookalike(std::string_view name) {
  if (name.find('_') == std::string_view::npos) {
    return false;
  }
  for (std::string_view real : {"content-length", "transfer-encoding", "host"}) {
    if (sameFoldedFieldName(name, real)) {
      return true;
    }
  }
  return false;
}

// One complete, non-empty field line (CRLF excluded).
ParseResult parseFieldLine(std::string_view line, HeaderField& field) {
  if (isOws(line.front())) {
    return ParseResult::error(400, "obsolete line folding");
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    return ParseResult::error(400, "field line without colon");
  }
  std::string_view name = line.substr(0, colon);
  if (!isToken(name)) {
    return ParseResult::error(400, "invalid field name");
  }
  if (isFramingLookalike(name)) {
    return ParseResult::error(400, "underscore in a framing field name");
  }
  std::string_view value = trimOws(line.substr(colon + 1));
  for (char c : value) {
    if (!isFieldValueChar(c)) {
      return ParseResult::error(400, "control character in field value");
    }
  }
  field = {name, value};
  return ParseResult::done(0);
}

}  // namespace

ParseResult parseFieldLines(std::span<const char> buf, size_t headerStart, const Limits& limits,
                            std::vector<HeaderField>& headers) {
  if (headers.capacity() < limits.maxFields) {
    headers.reserve(limits.maxFields);
  }
  headers.clear();
  size_t at = headerStart;
  for (;;) {
    LineScan line = scanLine(buf, at);
    // `line.length` is exact for a complete line and a lower bound otherwise; +2 for CRLF.
    if (at + line.length + 2 - headerStart > limits.maxHeaderBytes) {
      return ParseResult::error(431, "header section too large");
    }
    switch (line.kind) {
      case LineScan::Kind::Incomplete:
        return ParseResult::needMore();
      case LineScan::Kind::BareLf:
        return ParseResult::error(400, "bare LF in header section");
      case LineScan::Kind::BareCr:
        return ParseResult::error(400, "bare CR in header section");
      case LineScan::Kind::Complete:
        break;
    }
    if (line.length == 0) {
      return ParseResult::done(at + 2);
    }
    HeaderField field;
    ParseResult r = parseFieldLine(std::string_view(buf.data() + at, line.length), field);
    if (r.status == ParseStatus::Error) {
      return r;
    }
    if (headers.size() >= limits.maxFields) {
      return ParseResult::error(431, "too many header fields");
    }
    headers.push_back(field);
    at += line.length + 2;
  }
}

namespace {

// Content-Length (RFC 9110 8.6): every element of every field is 1*DIGIT and all are equal.
ParseResult contentLength(std::span<const HeaderField> headers, std::optional<uint64_t>& out) {
  out.reset();
  for (const HeaderField& f : headers) {
    if (!equalsIgnoreCase(f.name, "content-length")) {
      continue;
    }
    ListCursor cursor(f.value);
    std::string_view element;
    while (cursor.next(element)) {
      if (element.empty() || element.size() > 15) {
        return ParseResult::error(400, "invalid Content-Length");
      }
      uint64_t n = 0;
      for (char c : element) {
        if (c < '0' || c > '9') {
          return ParseResult::error(400, "invalid Content-Length");
        }
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (out && *out != n) {
        return ParseResult::error(400, "conflicting Content-Length");
      }
      out = n;
    }
  }
  return ParseResult::done(0);
}

// Transfer-Encoding: all fields form one list; only the single coding "chunked" is accepted.
ParseResult transferEncoding(std::span<const HeaderField> headers, bool& present) {
  present = false;
  size_t count = 0;
  size_t chunkedCount = 0;
  bool lastChunked = false;
  for (const HeaderField& f : headers) {
    if (!equalsIgnoreCase(f.name, "transfer-encoding")) {
      continue;
    }
    present = true;
    ListCursor cursor(f.value);
    std::string_view element;
    while (cursor.next(element)) {
      if (!isToken(element)) {
        return ParseResult::error(400, "invalid Transfer-Encoding");
      }
      ++count;
      lastChunked = equalsIgnoreCase(element, "chunked");
      chunkedCount += lastChunked ? 1 : 0;
    }
  }
  if (!present || (count == 1 && lastChunked)) {
    return ParseResult::done(0);
  }
  if (lastChunked && chunkedCount == 1) {
    return ParseResult::error(501, "unsupported transfer coding");
  }
  return ParseResult::error(400, "invalid Transfer-Encoding");
}

}  // namespace

ParseResult deriveFraming(std::span<const HeaderField> headers, Version version,
                          MessageFraming& out) {
  ParseResult r = contentLength(headers, out.declaredLength);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  r = transferEncoding(headers, out.chunked);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  if (out.chunked && out.declaredLength) {
    return ParseResult::error(400, "both Transfer-Encoding and Content-Length");
  }
  if (out.chunked && version == Version::Http10) {
    return ParseResult::error(400, "Transfer-Encoding in HTTP/1.0");
  }
  return ParseResult::done(0);
}

ConnectionFacts connectionFacts(std::span<const HeaderField> headers, Version version) {
  ConnectionFacts facts;
  bool close = false;
  bool keepAliveToken = false;
  bool upgradeToken = false;
  for (const HeaderField& f : headers) {
    if (equalsIgnoreCase(f.name, "connection")) {
      close = close || listHasToken(f.value, "close");
      keepAliveToken = keepAliveToken || listHasToken(f.value, "keep-alive");
      upgradeToken = upgradeToken || listHasToken(f.value, "upgrade");
    }
  }
  facts.keepAlive = !close && (version == Version::Http11 || keepAliveToken);
  if (upgradeToken && version == Version::Http11) {
    if (const HeaderField* upgrade = findHeader(headers, "upgrade")) {
      facts.upgrade = upgrade->value;
    }
  }
  return facts;
}

ParseResult parseVersion(std::string_view text, Version& out) {
  if (text.size() != 8 || text.substr(0, 5) != "HTTP/" || text[6] != '.' || text[5] < '0' ||
      text[5] > '9' || text[7] < '0' || text[7] > '9') {
    return ParseResult::error(400, "malformed HTTP version");
  }
  if (text == "HTTP/1.1") {
    out = Version::Http11;
  } else if (text == "HTTP/1.0") {
    out = Version::Http10;
  } else {
    return ParseResult::error(505, "HTTP version not supported");
  }
  return ParseResult::done(0);
}

const HeaderField* findHeader(std::span<const HeaderField> headers, std::string_view name) {
  for (const HeaderField& f : headers) {
    if (equalsIgnoreCase(f.name, name)) {
      return &f;
    }
  }
  return nullptr;
}

bool isValidFieldName(std::string_view name) {
  return isToken(name);
}

bool isValidFieldValue(std::string_view value) {
  if (!value.empty() && (isOws(value.front()) || isOws(value.back()))) {
    return false;
  }
  for (char c : value) {
    if (!isFieldValueChar(c)) {
      return false;
    }
  }
  return true;
}

}  // namespace edgeplane::proxy::http
