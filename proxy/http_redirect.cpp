// Strict HTTP/1.x request-head parsing for the :80 redirect listener (see http_redirect.h).
#include "proxy/http_redirect.h"

#include <cstdint>

namespace edgeplane::proxy {
namespace {

constexpr size_t kMaxTargetLength = 4096;
constexpr size_t kMaxMethodLength = 32;

// RFC 9110 §5.6.2 tchar.
bool isTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool isToken(std::string_view s) {
  if (s.empty()) {
    return false;
  }
  for (char c : s) {
    if (!isTchar(c)) {
      return false;
    }
  }
  return true;
}

// Field values: VCHAR, SP, HTAB, obs-text; never CR, LF, NUL or other controls.
bool isFieldValue(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<uint8_t>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7F) {
      return false;
    }
  }
  return true;
}

// origin-form: "/" then visible ASCII only (no spaces, no controls, no obs-text: a Location
// header built from it must stay a single clean line).
bool isOriginForm(std::string_view s) {
  if (s.empty() || s[0] != '/' || s.size() > kMaxTargetLength) {
    return false;
  }
  for (char c : s) {
    auto u = static_cast<uint8_t>(c);
    if (u <= 0x20 || u >= 0x7F) {
      return false;
    }
  }
  return true;
}

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') {
      x = static_cast<char>(x - 'A' + 'a');
    }
    if (y >= 'A' && y <= 'Z') {
      y = static_cast<char>(y - 'A' + 'a');
    }
    if (x != y) {
      return false;
    }
  }
  return true;
}

bool isPort(std::string_view s) {
  if (s.empty() || s.size() > 5) {
    return false;
  }
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  return v <= 65535;
}

// Host = uri-host [ ":" port ]. A reg-name is kept to DNS characters (the routing table can only
// match those); an IP literal is accepted as syntax and simply matches no route.
bool parseHostField(std::string_view value, std::string& host) {
  std::string_view name = value;
  if (!name.empty() && name.front() == '[') {
    size_t close = name.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    for (char c : name.substr(1, close - 1)) {
      bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') {
        return false;
      }
    }
    std::string_view rest = name.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || !isPort(rest.substr(1)))) {
      return false;
    }
    host.assign(name.substr(0, close + 1));
    return close > 1;
  }
  size_t colon = name.find(':');
  if (colon != std::string_view::npos) {
    if (!isPort(name.substr(colon + 1))) {
      return false;
    }
    name = name.substr(0, colon);
  }
  if (!name.empty() && name.back() == '.') {
    name.remove_suffix(1);
  }
  if (name.empty() || name.size() > 253) {
    return false;
  }
  host.clear();
  for (char c : name) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
    if (!ok) {
      return false;
    }
    host.push_back(c);
  }
  return true;
}

}  // namespace

size_t findHttpHeadEnd(std::string_view data, size_t searchFrom) {
  size_t from = searchFrom >= 3 ? searchFrom - 3 : 0;
  size_t at = data.find("\r\n\r\n", from);
  return at == std::string_view::npos ? 0 : at + 4;
}

bool parseHttpHead(std::string_view head, HttpHead& out) {
  if (head.size() < 4 || head.size() > kMaxHttpHead || !head.ends_with("\r\n\r\n")) {
    return false;
  }
  // Every line must end in CRLF; a lone CR or LF anywhere is refused (smuggling vectors).
  for (size_t i = 0; i < head.size(); ++i) {
    if (head[i] == '\r' && (i + 1 >= head.size() || head[i + 1] != '\n')) {
      return false;
    }
    if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r')) {
      return false;
    }
  }
  size_t lineEnd = head.find("\r\n");
  std::string_view requestLine = head.substr(0, lineEnd);
  size_t sp1 = requestLine.find(' ');
  if (sp1 == std::string_view::npos) {
    return false;
  }
  size_t sp2 = requestLine.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) {
    return false;
  }
  std::string_view method = requestLine.substr(0, sp1);
  std::string_view target = requestLine.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = requestLine.substr(sp2 + 1);
  if (!isToken(method) || method.size() > kMaxMethodLength || !isOriginForm(target) ||
      (version != "HTTP/1.1" && version != "HTTP/1.0")) {
    return false;
  }

  bool haveHost = false;
  size_t pos = lineEnd + 2;
  while (true) {
    size_t end = head.find("\r\n", pos);
    if (end == pos) {
      break;  // the blank line
    }
    std::string_view line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.front() == ' ' || line.front() == '\t') {
      return false;  // obs-fold
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    std::string_view name = line.substr(0, colon);  // no space allowed before the colon
    std::string_view value = line.substr(colon + 1);
    if (!isToken(name) || !isFieldValue(value)) {
      return false;
    }
    if (equalsIgnoreCase(name, "host")) {
      if (haveHost || !parseHostField(trimOws(value), out.host)) {
        return false;
      }
      haveHost = true;
    }
  }
  if (!haveHost || pos + 2 != head.size()) {
    return false;
  }
  out.target.assign(target);
  return true;
}

std::string httpRedirectResponse(const HttpHead& head) {
  std::string r;
  r.reserve(128 + head.host.size() + head.target.size());
  r += "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://";
  r += head.host;
  r += head.target;
  r += "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  return r;
}

std::string_view httpNotFoundResponse() {
  return "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n"
         "Connection: close\r\n\r\nnot found\n";
}

std::string_view httpBadRequestResponse() {
  return "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n"
         "Connection: close\r\n\r\nbad request\n";
}

}  // namespace edgeplane::proxy
