// The proxy's head serializers (see serialize.h for what each writes and drops).
#include "proxy/http/serialize.h"

#include <algorithm>
#include <charconv>

#include "proxy/http/syntax.h"

namespace edgeplane::proxy::http {
namespace {

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append("\r\n");
}

void appendNumber(std::string& out, uint64_t n) {
  char digits[24];
  auto r = std::to_chars(digits, digits + sizeof(digits), n);
  out.append(digits, r.ptr);
}

bool inList(std::span<const std::string_view> names, std::string_view name) {
  for (std::string_view n : names) {
    if (sameFoldedFieldName(n, name)) {
      return true;
    }
  }
  return false;
}

// A client's field that a backend folding '_' into '-' would read as one the proxy sets itself
// (Host, the forwarding fields, the fields added for this route): never passed on.
bool setByProxy(std::string_view name, std::span<const HeaderField> added) {
  for (std::string_view own :
       {"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"}) {
    if (sameFoldedFieldName(name, own)) {
      return true;
    }
  }
  return std::any_of(added.begin(), added.end(),
                     [name](const HeaderField& f) { return sameFoldedFieldName(f.name, name); });
}

// Named in any Connection field of the message: hop-by-hop by declaration.
bool namedByConnection(std::span<const HeaderField> headers, std::string_view name) {
  for (const HeaderField& f : headers) {
    if (equalsIgnoreCase(f.name, "connection") && listHasToken(f.value, name)) {
      return true;
    }
  }
  return false;
}

bool dropFromMessage(std::span<const HeaderField> headers, std::string_view name,
                     std::span<const std::string_view> dropList) {
  return isHopByHop(name) || equalsIgnoreCase(name, "content-length") ||
         namedByConnection(headers, name) || inList(dropList, name);
}

void appendAdded(std::string& out, std::span<const HeaderField> add) {
  for (const HeaderField& f : add) {
    if (isValidFieldName(f.name) && isValidFieldValue(f.value)) {
      appendField(out, f.name, f.value);
    }
  }
}

// Joins the values of every field `name` with ", " (RFC 9110 5.3) and appends `last`.
void appendJoined(std::string& out, std::span<const HeaderField> headers, std::string_view name,
                  std::string_view lastPrefix, std::string_view last, std::string_view lastSuffix) {
  out.append(name).append(": ");
  for (const HeaderField& f : headers) {
    if (equalsIgnoreCase(f.name, name) && !f.value.empty()) {
      out.append(f.value).append(", ");
    }
  }
  out.append(lastPrefix).append(last).append(lastSuffix).append("\r\n");
}

// A Forwarded parameter value (RFC 7239 4): a token as is, else a quoted-string.
void appendForwardedValue(std::string& out, std::string_view value, bool bracket) {
  if (!bracket && isToken(value)) {
    out.append(value);
    return;
  }
  out.push_back('"');
  if (bracket) {
    out.push_back('[');
  }
  for (char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  if (bracket) {
    out.push_back(']');
  }
  out.push_back('"');
}

// A Forwarded value that parses (RFC 7239 4): pairs token=(token|quoted-string), separated by
// ';' and ',' (OWS around them tolerated, empty elements allowed as the list rule has them).
bool wellFormedForwarded(std::string_view v) {
  size_t i = 0;
  auto skipOws = [&] {
    while (i < v.size() && isOws(v[i])) {
      ++i;
    }
  };
  auto token = [&] {
    const size_t start = i;
    while (i < v.size() && isTchar(v[i])) {
      ++i;
    }
    return i > start;
  };
  for (skipOws(); i < v.size(); skipOws()) {
    if (v[i] == ',' || v[i] == ';') {
      ++i;
      continue;
    }
    if (!token() || i >= v.size() || v[i++] != '=') {
      return false;
    }
    if (i < v.size() && v[i] == '"') {
      i = quotedStringEnd(v, i);
      if (i == std::string_view::npos) {
        return false;
      }
    } else if (!token()) {
      return false;
    }
    skipOws();
    if (i < v.size() && v[i] != ',' && v[i] != ';') {
      return false;
    }
  }
  return true;
}

// The client's Forwarded elements, then the proxy's; the client's are kept only when every one
// of its Forwarded fields parses: an unterminated quote would swallow the proxy's element.
void appendForwarded(std::string& out, const RequestHead& head, std::string_view host,
                     const UpstreamRequestOptions& options) {
  out.append("Forwarded: ");
  const bool keep = std::all_of(head.headers.begin(), head.headers.end(), [](const HeaderField& f) {
    return !equalsIgnoreCase(f.name, "forwarded") || wellFormedForwarded(f.value);
  });
  for (const HeaderField& f : head.headers) {
    if (keep && equalsIgnoreCase(f.name, "forwarded") && !f.value.empty()) {
      out.append(f.value).append(", ");
    }
  }
  out.append("for=");
  appendForwardedValue(out, options.clientIp, options.clientIp.find(':') != std::string_view::npos);
  out.append(";proto=");
  appendForwardedValue(out, options.proto, false);
  if (!host.empty()) {
    out.append(";host=");
    appendForwardedValue(out, host, false);
  }
  out.append("\r\n");
}

void appendFraming(std::string& out, BodyFraming framing, uint64_t length) {
  if (framing == BodyFraming::Chunked) {
    appendField(out, "Transfer-Encoding", "chunked");
  } else if (framing == BodyFraming::ContentLength) {
    out.append("Content-Length: ");
    appendNumber(out, length);
    out.append("\r\n");
  }
}

}  // namespace

bool isHopByHop(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                             "transfer-encoding", "upgrade"}) {
    if (equalsIgnoreCase(name, h)) {
      return true;
    }
  }
  return false;
}

void writeUpstreamRequest(const RequestHead& head, const UpstreamRequestOptions& options,
                          std::string& out) {
  std::string_view host = options.host.empty() ? head.host : options.host;
  out.append(head.method).append(" ").append(head.originTarget).append(" HTTP/1.1\r\n");
  if (!host.empty()) {
    appendField(out, "Host", host);
  }
  for (const HeaderField& f : head.headers) {
    if (dropFromMessage(head.headers, f.name, options.dropHeaders) ||
        setByProxy(f.name, options.addHeaders)) {
      continue;
    }
    appendField(out, f.name, f.value);
  }
  appendJoined(out, head.headers, "X-Forwarded-For", "", options.clientIp, "");
  appendField(out, "X-Forwarded-Proto", options.proto);
  if (!host.empty()) {
    appendField(out, "X-Forwarded-Host", host);
  }
  appendForwarded(out, head, host, options);
  appendAdded(out, options.addHeaders);
  appendFraming(out, head.framing, head.contentLength);
  if (options.forwardUpgrade && !head.upgrade.empty()) {
    appendField(out, "Connection", "upgrade");
    appendField(out, "Upgrade", head.upgrade);
  } else if (options.close) {
    appendField(out, "Connection", "close");
  }
  out.append("\r\n");
}

void writeClientResponse(const ResponseHead& head, const ClientResponseOptions& options,
                         std::string& out) {
  out.append("HTTP/1.1 ");
  appendNumber(out, static_cast<uint64_t>(head.status));
  out.append(" ").append(head.reason).append("\r\n");
  for (const HeaderField& f : head.headers) {
    if (dropFromMessage(head.headers, f.name, options.dropHeaders)) {
      continue;
    }
    appendField(out, f.name, f.value);
  }
  appendAdded(out, options.addHeaders);
  if (head.framing == BodyFraming::None && head.declaredLength && head.status >= 200 &&
      head.status != 204) {
    out.append("Content-Length: ");
    appendNumber(out, *head.declaredLength);
    out.append("\r\n");
  } else {
    appendFraming(out, head.framing, head.contentLength);
  }
  if (options.forwardUpgrade && head.status == 101 && !head.upgrade.empty()) {
    appendField(out, "Connection", "upgrade");
    appendField(out, "Upgrade", head.upgrade);
  } else if (options.close || head.framing == BodyFraming::UntilClose) {
    appendField(out, "Connection", "close");
  }
  out.append("\r\n");
}

void writeSimpleResponse(int status, std::string_view body, bool close,
                         std::span<const HeaderField> extraHeaders, std::string& out) {
  out.append("HTTP/1.1 ");
  appendNumber(out, static_cast<uint64_t>(status));
  out.append(" ").append(reasonPhrase(status)).append("\r\n");
  bool typed = std::any_of(extraHeaders.begin(), extraHeaders.end(), [](const HeaderField& f) {
    return equalsIgnoreCase(f.name, "Content-Type");
  });
  if (!typed) {
    appendField(out, "Content-Type", "text/plain; charset=utf-8");
  }
  out.append("Content-Length: ");
  appendNumber(out, body.size());
  out.append("\r\n");
  if (close) {
    appendField(out, "Connection", "close");
  }
  appendAdded(out, extraHeaders);
  out.append("\r\n").append(body);
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "";
  }
}

}  // namespace edgeplane::proxy::http
