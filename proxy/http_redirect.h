// The :80 listener's request-head reader: strict HTTP/1.x head parsing for the HTTPS redirect.
//
// Only what a redirect needs is accepted, and nothing ambiguous: a request line
// `METHOD SP origin-form SP HTTP/1.0|1.1 CRLF`, header fields `name: value CRLF` (no obs-fold,
// no bare LF, no control characters), exactly one Host field, then an empty line. The engine
// reads up to kMaxHttpHead bytes, finds the end of the head and calls parseHttpHead once; it
// then answers 308 to https://<host><target> when the host has a route, 404 otherwise, 400 on
// any parse error, always with `Connection: close`. No exceptions, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgeplane::proxy {

inline constexpr size_t kMaxHttpHead = 8192;

struct HttpHead {
  std::string host;    // lower-case, port and one trailing dot removed ("example.com")
  std::string target;  // the origin-form request target, path and query ("/a?b=c")
};

// `head` is everything up to and including the CRLF CRLF that ends it. False if malformed.
bool parseHttpHead(std::string_view head, HttpHead& out);

// Where the head ends (one past the blank line's LF) in the bytes read so far; 0 if not yet.
size_t findHttpHeadEnd(std::string_view data, size_t searchFrom = 0);

// The complete responses the listener sends (status line, headers, short body).
std::string httpRedirectResponse(const HttpHead& head);
std::string_view httpNotFoundResponse();
std::string_view httpBadRequestResponse();

}  // namespace edgeplane::proxy
