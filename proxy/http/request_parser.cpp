// parseRequestHead: the request line, the request target forms and the request's derived facts
// (Host, framing, keep-alive, Expect, Upgrade), per RFC 9112 with the choices in message.h.
#include <string_view>

#include "proxy/http/head_parser.h"
#include "proxy/http/message.h"
#include "proxy/http/syntax.h"

namespace edgeplane::proxy::http {
namespace {

bool isRegNameChar(char c) {
  auto u = static_cast<unsigned char>(c);
  if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
    return true;
  }
  return std::string_view("-._~%!$&'()*+,;=").find(c) != std::string_view::npos;
}

// uri-host [ ":" port ] (RFC 9110 7.2); the host non-empty, the port at most 5 digits.
bool isValidAuthority(std::string_view s) {
  std::string_view host = s;
  std::string_view port;
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos || close < 3) {
      return false;
    }
    for (char c : s.substr(1, close - 1)) {
      bool hex = (c >= '0' && c <= '9') || (asciiLower(c) >= 'a' && asciiLower(c) <= 'f');
      if (!hex && c != ':' && c != '.') {
        return false;
      }
    }
    host = s.substr(0, close + 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return false;
    }
    port = rest.empty() ? rest : rest.substr(1);
  } else {
    size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      host = s.substr(0, colon);
      port = s.substr(colon + 1);
      if (port.empty()) {
        return false;
      }
    }
    for (char c : host) {
      if (!isRegNameChar(c)) {
        return false;
      }
    }
  }
  if (host.empty() || port.size() > 5) {
    return false;
  }
  for (char c : port) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  return true;
}

// Splits an absolute-form target into its authority and origin-form remainder.
ParseResult parseAbsoluteForm(std::string_view target, size_t schemeLength, RequestHead& out) {
  std::string_view rest = target.substr(schemeLength);
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  if (authority.find('@') != std::string_view::npos || !isValidAuthority(authority)) {
    return ParseResult::error(400, "invalid authority in request target");
  }
  out.targetForm = TargetForm::Absolute;
  out.host = authority;
  if (end == std::string_view::npos) {
    out.originTarget = "/";
  } else if (rest[end] == '?') {
    return ParseResult::error(400, "absolute-form target without path");
  } else {
    out.originTarget = rest.substr(end);
  }
  return ParseResult::done(0);
}

ParseResult parseTarget(std::string_view target, RequestHead& out) {
  for (char c : target) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7F || c == '#') {
      return ParseResult::error(400, "invalid character in request target");
    }
  }
  out.targetForm = TargetForm::Origin;
  out.host = {};
  if (target.front() == '/') {
    out.originTarget = target;
  } else if (target == "*") {
    if (out.method != "OPTIONS") {
      return ParseResult::error(400, "asterisk-form target with a method other than OPTIONS");
    }
    out.targetForm = TargetForm::Asterisk;
    out.originTarget = target;
  } else if (out.method == "CONNECT") {
    return ParseResult::error(501, "CONNECT not supported");
  } else {
    size_t scheme = 0;
    if (target.size() > 7 && equalsIgnoreCase(target.substr(0, 7), "http://")) {
      scheme = 7;
    } else if (target.size() > 8 && equalsIgnoreCase(target.substr(0, 8), "https://")) {
      scheme = 8;
    } else {
      return ParseResult::error(400, "invalid request target");
    }
    ParseResult r = parseAbsoluteForm(target, scheme, out);
    if (r.status == ParseStatus::Error) {
      return r;
    }
  }
  out.path = out.originTarget.substr(0, out.originTarget.find('?'));
  return ParseResult::done(0);
}

// `METHOD SP target SP version` (CRLF excluded).
ParseResult parseRequestLine(std::string_view line, RequestHead& out) {
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) {
    return ParseResult::error(400, "malformed request line");
  }
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1 ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return ParseResult::error(400, "malformed request line");
  }
  out.method = line.substr(0, sp1);
  if (!isToken(out.method)) {
    return ParseResult::error(400, "invalid method");
  }
  ParseResult r = parseVersion(line.substr(sp2 + 1), out.version);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  out.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  return parseTarget(out.target, out);
}

// Host rules: exactly one field, valid, required in 1.1, agreeing with an absolute-form target.
ParseResult deriveHost(RequestHead& out) {
  const HeaderField* host = nullptr;
  for (const HeaderField& f : out.headers) {
    if (equalsIgnoreCase(f.name, "host")) {
      if (host != nullptr) {
        return ParseResult::error(400, "more than one Host field");
      }
      host = &f;
    }
  }
  if (host == nullptr) {
    if (out.version == Version::Http11) {
      return ParseResult::error(400, "missing Host field");
    }
    return ParseResult::done(0);
  }
  if (!isValidAuthority(host->value)) {
    return ParseResult::error(400, "invalid Host field");
  }
  if (out.targetForm == TargetForm::Absolute) {
    if (!equalsIgnoreCase(host->value, out.host)) {
      return ParseResult::error(400, "Host field differs from the target's authority");
    }
  } else {
    out.host = host->value;
  }
  return ParseResult::done(0);
}

ParseResult deriveRequestFacts(RequestHead& out) {
  ParseResult r = deriveHost(out);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  MessageFraming framing;
  r = deriveFraming(out.headers, out.version, framing);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  out.contentLength = framing.declaredLength.value_or(0);
  out.framing = framing.chunked          ? BodyFraming::Chunked
                : framing.declaredLength ? BodyFraming::ContentLength
                                         : BodyFraming::None;
  ConnectionFacts facts = connectionFacts(out.headers, out.version);
  out.keepAlive = facts.keepAlive;
  out.upgrade = facts.upgrade;
  out.expectContinue = false;
  for (const HeaderField& f : out.headers) {
    if (equalsIgnoreCase(f.name, "expect")) {
      if (!equalsIgnoreCase(f.value, "100-continue")) {
        return ParseResult::error(417, "unsupported expectation");
      }
      // RFC 9110 10.1.1: a 100-continue from an HTTP/1.0 client is ignored.
      out.expectContinue = out.version == Version::Http11;
    }
  }
  return ParseResult::done(0);
}

}  // namespace

ParseResult parseRequestHead(std::span<const char> buf, RequestHead& out, const Limits& limits) {
  size_t at = 0;
  // Leading empty lines (RFC 9112 2.2): skipped, but within the request line's budget.
  while (at < buf.size() && buf[at] == '\r') {
    if (at + 2 > limits.maxRequestLine) {
      return ParseResult::error(414, "request line too long");
    }
    if (at + 1 == buf.size()) {
      return ParseResult::needMore();
    }
    if (buf[at + 1] != '\n') {
      return ParseResult::error(400, "bare CR before request line");
    }
    at += 2;
  }
  LineScan line = scanLine(buf, at);
  if (at + line.length + 2 > limits.maxRequestLine) {
    return ParseResult::error(414, "request line too long");
  }
  switch (line.kind) {
    case LineScan::Kind::Incomplete:
      return ParseResult::needMore();
    case LineScan::Kind::BareLf:
      return ParseResult::error(400, "bare LF in request line");
    case LineScan::Kind::BareCr:
      return ParseResult::error(400, "bare CR in request line");
    case LineScan::Kind::Complete:
      break;
  }
  ParseResult r = parseRequestLine(std::string_view(buf.data() + at, line.length), out);
  if (r.status == ParseStatus::Error) {
    return r;
  }
  r = parseFieldLines(buf, at + line.length + 2, limits, out.headers);
  if (r.status != ParseStatus::Done) {
    return r;
  }
  ParseResult facts = deriveRequestFacts(out);
  return facts.status == ParseStatus::Error ? facts : r;
}

}  // namespace edgeplane::proxy::http
