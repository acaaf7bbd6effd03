// The :80 listener's answers: the 308 to HTTPS, 404 and 400, always with `Connection: close`.
// The request head itself is parsed by the one HTTP/1.1 codec (proxy/http/message.h); see
// proxy/handlers/http80.h for the listener's behaviour. No exceptions, no I/O.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace edgeplane::proxy {

// The most the :80 listener reads for a request head (no end of head within it: 400).
inline constexpr size_t kMaxHttpHead = 8192;

// A Host value as a routing-table key: lower-case, the port and one trailing dot removed
// ("Example.COM.:8080" -> "example.com"). "" for an IP literal in brackets and for a name that
// ends in two dots (an empty label).
std::string redirectHost(std::string_view host);

// 308 to https://<host><target>; `host` from redirectHost() and known to the routing table
// (so a plain DNS name), `target` the origin-form path and query (the codec checked it).
std::string httpRedirectResponse(std::string_view host, std::string_view target);
std::string_view httpNotFoundResponse();
// 200 with an ACME HTTP-01 key authorization as the body (HEAD: the head only).
std::string httpChallengeResponse(std::string_view keyAuthorization, bool head);
std::string_view httpBadRequestResponse();

}  // namespace edgeplane::proxy
