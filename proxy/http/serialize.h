// Head serializers for the reverse proxy: the request head sent upstream, the response head
// sent to the client, and small complete responses for errors. Append to a caller's string
// (reused across messages, so steady state allocates nothing).
//
// Upstream request (writeUpstreamRequest): `METHOD origin-target HTTP/1.1`, Host first (the
// parsed host), then the client's fields in order minus the hop-by-hop ones (Connection,
// Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, every field named in
// a Connection field) and minus Content-Length, the fields the proxy writes itself (Host,
// X-Forwarded-For, -Proto, -Host, Forwarded, the caller's added fields; for these and the
// caller's drop list, spellings with '_' for '-' too: some backends fold the two). Then
// X-Forwarded-For (the client's values joined, ", <ip>" appended), X-Forwarded-Proto,
// X-Forwarded-Host, Forwarded (the client's values kept when every one parses as RFC 7239
// elements, else dropped; `for=<ip>;proto=<proto>;host=<host>`
// appended per RFC 7239, IPv6 as "[v6]", quoted where not a token), the caller's added fields, the
// framing (`Content-Length: N` or `Transfer-Encoding: chunked`), and when forwarding an upgrade
// `Connection: upgrade` + `Upgrade`, else `Connection: close` when the caller asks. Always HTTP/1.1
// upstream.
//
// Client response (writeClientResponse): `HTTP/1.1 status reason`, fields minus the
// hop-by-hop ones (Upgrade and `Connection: upgrade` kept for a forwarded 101), the framing
// re-emitted (a declared Content-Length kept on HEAD/304 answers), `Connection: close` when
// the proxy will close.
//
// Added fields whose name or value is invalid (CR, LF, CTL; see isValidFieldValue) are skipped,
// so a bad configuration cannot split a head.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "proxy/http/message.h"

namespace edgeplane::proxy::http {

struct UpstreamRequestOptions {
  std::string_view clientIp;  // textual IPv4 or IPv6 address, no port
  std::string_view proto = "https";
  // The Host to send; "" means head.host. Set it for an HTTP/1.0 request without Host (the
  // TLS server name), so that the HTTP/1.1 request upstream has one.
  std::string_view host;
  bool forwardUpgrade = false;  // true: pass head.upgrade on (WebSocket)
  bool close = false;           // true: ask the upstream to close after this exchange
  std::span<const std::string_view> dropHeaders;  // e.g. "Authorization" for the gateway
  std::span<const HeaderField> addHeaders;
};

struct ClientResponseOptions {
  bool close = false;           // the proxy closes the client connection after this response
  bool forwardUpgrade = false;  // a 101 being passed on: keep Upgrade and Connection: upgrade
  std::span<const std::string_view> dropHeaders;
  std::span<const HeaderField> addHeaders;
};

void writeUpstreamRequest(const RequestHead& head, const UpstreamRequestOptions& options,
                          std::string& out);

// A response whose framing is UntilClose always gets `Connection: close`.
void writeClientResponse(const ResponseHead& head, const ClientResponseOptions& options,
                         std::string& out);

// A complete small response: status line, Content-Type: text/plain; charset=utf-8,
// Content-Length, `Connection: close` if asked, the extra fields (Retry-After, Allow,
// WWW-Authenticate, ...), then the body.
void writeSimpleResponse(int status, std::string_view body, bool close,
                         std::span<const HeaderField> extraHeaders, std::string& out);

// The standard reason phrase of a status code ("Bad Request"); "" if unknown.
std::string_view reasonPhrase(int status);

// True for the fields a proxy never forwards as such (RFC 9110 7.6.1 plus Proxy-Connection).
bool isHopByHop(std::string_view name);

}  // namespace edgeplane::proxy::http
