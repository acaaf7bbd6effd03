// Character classes and small string helpers of RFC 9110/9112 shared by the codec's parts.
//
// Internal to proxy/http: the handler uses the parse/serialize headers, not this one.
#pragma once

#include <cstdint>
#include <string_view>

namespace edgeplane::proxy::http {

// tchar (RFC 9110 5.6.2): the characters of a token (method, field name, coding name).
constexpr bool isTchar(char c) {
  auto u = static_cast<unsigned char>(c);
  if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z')) {
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

// field-vchar / SP / HTAB: what a field value may hold (obs-text included, CTLs and DEL not).
constexpr bool isFieldValueChar(char c) {
  auto u = static_cast<unsigned char>(c);
  return u == '\t' || (u >= 0x20 && u != 0x7F);
}

constexpr bool isOws(char c) {
  return c == ' ' || c == '\t';
}

constexpr bool isToken(std::string_view s) {
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

// The end of the quoted-string (RFC 9110 5.6.4) that starts at s[at] (a '"'): the offset just
// past its closing quote, or npos when it is not one (unterminated, a CTL, a bad quoted-pair).
constexpr size_t quotedStringEnd(std::string_view s, size_t at) {
  if (at >= s.size() || s[at] != '"') {
    return std::string_view::npos;
  }
  for (size_t i = at + 1; i < s.size(); ++i) {
    if (s[i] == '"') {
      return i + 1;
    }
    if (s[i] == '\\') {
      ++i;  // quoted-pair: any field character follows
    }
    if (i >= s.size() || !isFieldValueChar(s[i])) {
      return std::string_view::npos;
    }
  }
  return std::string_view::npos;
}

constexpr char asciiLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}

constexpr bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (asciiLower(a[i]) != asciiLower(b[i])) {
      return false;
    }
  }
  return true;
}

// Field names as a backend that folds '_' into '-' (CGI-style environments) reads them: equal
// regardless of case and of '_' for '-'.
constexpr bool sameFoldedFieldName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    const char x = a[i] == '_' ? '-' : asciiLower(a[i]);
    const char y = b[i] == '_' ? '-' : asciiLower(b[i]);
    if (x != y) {
      return false;
    }
  }
  return true;
}

constexpr std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && isOws(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// The token of an `Authorization` field value of the Bearer scheme (RFC 6750 2.1: "Bearer",
// any case, then spaces or tabs, then the token); "" for another scheme or no token.
constexpr std::string_view bearerCredentials(std::string_view value) {
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() ||
      !equalsIgnoreCase(value.substr(0, kScheme.size()), kScheme) ||
      !isOws(value[kScheme.size()])) {
    return {};
  }
  return trimOws(value.substr(kScheme.size()));
}

// Iterates the elements of a comma-separated list field value (RFC 9110 5.6.1), OWS trimmed.
// Empty elements ("a,,b", a leading or trailing comma) are reported as empty views so that a
// caller may refuse them where the grammar wants 1#element.
class ListCursor {
 public:
  explicit constexpr ListCursor(std::string_view value) : rest_(value) {}
  constexpr bool next(std::string_view& element) {
    if (done_) {
      return false;
    }
    size_t comma = rest_.find(',');
    if (comma == std::string_view::npos) {
      element = trimOws(rest_);
      done_ = true;
      return true;
    }
    element = trimOws(rest_.substr(0, comma));
    rest_.remove_prefix(comma + 1);
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

// True if `value` (a Connection-style list) holds `token`, case-insensitively.
constexpr bool listHasToken(std::string_view value, std::string_view token) {
  ListCursor cursor(value);
  std::string_view element;
  while (cursor.next(element)) {
    if (equalsIgnoreCase(element, token)) {
      return true;
    }
  }
  return false;
}

}  // namespace edgeplane::proxy::http
