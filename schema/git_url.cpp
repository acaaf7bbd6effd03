// Git source urls (see git_url.h).
#include "schema/git_url.h"

#include <algorithm>
#include <utility>

namespace edgeplane {

namespace {

// The password of the url's userinfo ("scheme://user:PASSWORD@host…"); empty when none.
// Returns its offset and length in `url`.
std::pair<size_t, size_t> passwordSpan(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return {0, 0};
  }
  const size_t start = scheme + 3;
  const size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const std::string_view authority = url.substr(start, end - start);
  const size_t at = authority.rfind('@');
  if (at == std::string_view::npos) {
    return {0, 0};
  }
  const size_t colon = authority.substr(0, at).find(':');
  if (colon == std::string_view::npos || colon + 1 == at) {
    return {0, 0};
  }
  return {start + colon + 1, at - colon - 1};
}

void replaceAll(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) {
    return;
  }
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

}  // namespace

bool isScpLike(std::string_view url) {
  const size_t colon = url.find(':');
  const size_t slash = url.find('/');
  return colon != std::string_view::npos && colon > 0 &&
         (slash == std::string_view::npos || colon < slash);
}

bool isSshUrl(std::string_view url) {
  return url.starts_with("ssh://") || (url.find("://") == std::string_view::npos && isScpLike(url));
}

bool hasPassword(std::string_view url) {
  return passwordSpan(url).second != 0;
}

std::string redactUrl(std::string_view url) {
  const auto [at, len] = passwordSpan(url);
  if (len == 0) {
    return std::string(url);
  }
  return std::string(url.substr(0, at)) + "***" + std::string(url.substr(at + len));
}

std::string scrubCredentials(std::string text, std::string_view url) {
  const auto [at, len] = passwordSpan(url);
  if (len == 0) {
    return text;
  }
  replaceAll(text, url, redactUrl(url));
  replaceAll(text, url.substr(at, len), "***");
  return text;
}

}  // namespace edgeplane
