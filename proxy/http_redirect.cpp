// The :80 listener's answers (see http_redirect.h).
#include "proxy/http_redirect.h"

namespace edgeplane::proxy {

std::string redirectHost(std::string_view host) {
  if (host.empty() || host.front() == '[') {
    return {};
  }
  size_t colon = host.rfind(':');
  if (colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
    if (!host.empty() && host.back() == '.') {
      return {};  // "a.example.com..": an empty label, no name
    }
  }
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

std::string httpRedirectResponse(std::string_view host, std::string_view target) {
  std::string r;
  r.reserve(128 + host.size() + target.size());
  r += "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://";
  r += host;
  r += target;
  r += "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  return r;
}

std::string httpChallengeResponse(std::string_view keyAuthorization, bool head) {
  std::string r = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ";
  r += std::to_string(keyAuthorization.size());
  r += "\r\nConnection: close\r\n\r\n";
  if (!head) {
    r += keyAuthorization;
  }
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
