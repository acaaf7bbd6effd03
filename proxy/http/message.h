// HTTP/1.1 message heads (RFC 9110/9112): the parsed request and response heads and their
// strict, incremental parsers. The contract between the codec and the https handler.
//
// Pure: no I/O, no exceptions, no POCO. Views in a parsed head point into the caller's buffer,
// which must outlive the head and not move. Parsing is stateless and restartable: call
// parseRequestHead with all bytes received so far (from the first byte of the message) each
// time more arrive; the result is NeedMore until the head is complete. Splitting the bytes at
// any point never changes the outcome: a prefix gives NeedMore or the very result the whole
// input gives (complete lines are checked as soon as they arrive, so garbage is refused early;
// the size limits are checked on partial lines too). A head fills `headers` (reserve()d once
// to Limits::maxFields, reused across calls), nothing else is allocated.
//
// Cost: each call rescans from the first byte, so a head that trickles in costs
// O(bytes so far) per call, bounded by the limits (at most ~40 KiB scanned per call).
//
// Decisions (where RFC 9112 leaves a choice, the strict one; every refusal closes the
// connection, ParseResult::close is always true for errors):
//  - Leading empty lines (CRLF) before the request line are skipped (RFC 9112 2.2 SHOULD);
//    they count toward maxRequestLine. A bare LF anywhere is refused (400), as is a bare CR.
//  - Request line: `token SP target SP HTTP/d.d CRLF`, exactly one SP each. HTTP/1.0 and 1.1
//    accepted; any other well-formed HTTP/d.d -> 505; anything else (lower case, HTTP/0.9
//    `GET /`, extra spaces) -> 400. Line over maxRequestLine -> 414.
//  - Targets: origin-form, absolute-form (http/https, no userinfo), asterisk-form (OPTIONS
//    only). authority-form/CONNECT -> 501 (this is a reverse proxy, not a forward proxy).
//    Visible ASCII only in a target (no obs-text, no CTL, no SP).
//  - Fields: `token ":" OWS value OWS CRLF`. Whitespace before the colon, obs-fold (a line
//    starting with SP/HTAB), an empty name, CTLs (NUL, CR, DEL, ...) other than HTAB in a
//    value -> 400. Header block (after the request line, up to and including the final CRLF)
//    over maxHeaderBytes or more than maxFields fields -> 431. A name that reads as
//    Content-Length, Transfer-Encoding or Host once '_' is taken for '-' ("Content_Length")
//    -> 400: backends that fold them would see framing the proxy never checked.
//  - Host: exactly one, a valid uri-host[:port]; missing in HTTP/1.1 -> 400. With an
//    absolute-form target the authority is the host and a Host field must agree with it.
//  - Content-Length: 1*DIGIT, a list of identical values ("5, 5", or repeated fields) is one
//    value; differing values, a sign, empty elements or more than 15 digits -> 400.
//  - Transfer-Encoding: accepted only as the single coding `chunked` (case-insensitive,
//    OWS around it allowed as the list grammar says; several fields are one list). Both TE and
//    CL -> 400. TE in an HTTP/1.0 request -> 400. `gzip, chunked` (valid, other coding
//    unsupported) -> 501; anything else (`chunked, gzip`, `identity`, `xchunked`,
//    `chunked, chunked`, empty elements) -> 400.
//  - Expect: `100-continue` sets expectContinue; any other expectation -> 417.
//  - Responses: the same field rules; every error is reported as 502 (the handler's answer to
//    a bad upstream). A missing SP after the status code ("HTTP/1.1 200\r\n") is accepted.
//    Transfer-Encoding other than `chunked` is refused here too (RFC 9112 would read such a
//    body until close; the proxy would then forward a coding it cannot frame).
//    Framing: HEAD requests and 1xx/204/304 have none; 101 is a protocol switch; chunked TE;
//    Content-Length; otherwise the body runs until the upstream closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace edgeplane::proxy::http {

struct Limits {
  size_t maxRequestLine = 8 * 1024;   // request/status line incl. CRLF (and leading CRLFs)
  size_t maxHeaderBytes = 32 * 1024;  // the field lines and the final CRLF
  size_t maxFields = 100;
};

struct HeaderField {
  std::string_view name;   // as received (compare case-insensitively)
  std::string_view value;  // OWS trimmed
};

enum class Version : uint8_t { Http10, Http11 };

// How the message body is delimited (RFC 9112 6.3).
enum class BodyFraming : uint8_t {
  None,           // no body (GET without CL/TE, HEAD response, 1xx/204/304)
  ContentLength,  // exactly contentLength bytes (may be 0)
  Chunked,        // chunked transfer coding; feed the body to a ChunkedDecoder
  UntilClose,     // responses only: the body ends when the upstream closes
};

enum class TargetForm : uint8_t { Origin, Absolute, Asterisk };

struct RequestHead {
  std::string_view method;  // case-sensitive token ("GET")
  std::string_view target;  // as received
  TargetForm targetForm = TargetForm::Origin;
  std::string_view originTarget;  // path + query in origin form ("/a?b"; "*" for asterisk)
  std::string_view path;          // originTarget without its query, for logs
  Version version = Version::Http11;
  std::vector<HeaderField> headers;  // in order, duplicates kept
  std::string_view host;             // the Host field, or the absolute-form authority; "" for a 1.0
                                     // request without Host. As received (case and port kept).
  BodyFraming framing = BodyFraming::None;
  uint64_t contentLength = 0;  // when framing == ContentLength
  bool keepAlive = true;       // 1.1 unless "Connection: close"; 1.0 only with "keep-alive"
  bool expectContinue = false;
  std::string_view upgrade;  // the Upgrade value when Connection has "upgrade"; else ""
};

struct ResponseHead {
  Version version = Version::Http11;
  int status = 0;
  std::string_view reason;
  std::vector<HeaderField> headers;
  BodyFraming framing = BodyFraming::None;
  uint64_t contentLength = 0;  // when framing == ContentLength
  // A valid Content-Length field, also where it frames nothing (a HEAD response, 304).
  std::optional<uint64_t> declaredLength;
  bool keepAlive = true;     // false: the upstream will close (Connection: close, 1.0, ...)
  std::string_view upgrade;  // 101 responses: the Upgrade value
};

enum class ParseStatus : uint8_t { NeedMore, Done, Error };

struct ParseResult {
  ParseStatus status = ParseStatus::NeedMore;
  size_t length = 0;        // Done: bytes of the head, the final CRLF included
  int code = 0;             // Error: the status to answer with (400, 414, 431, 501, 505..)
  std::string_view reason;  // Error: short text for logs and the error body (static)
  bool close = false;       // Error: always true (framing cannot be trusted any more)
  static ParseResult needMore() { return {}; }
  static ParseResult done(size_t n) { return {ParseStatus::Done, n, 0, {}, false}; }
  static ParseResult error(int status, std::string_view why) {
    return {ParseStatus::Error, 0, status, why, true};
  }
  bool operator==(const ParseResult&) const = default;
};

// Parses a request head from the first bytes of `buf`; bytes past the head are not looked at.
ParseResult parseRequestHead(std::span<const char> buf, RequestHead& out, const Limits& limits);

// Parses a response head; `requestMethod` is the method of the request it answers (HEAD
// responses have no body). Errors carry code 502.
ParseResult parseResponseHead(std::span<const char> buf, ResponseHead& out, const Limits& limits,
                              std::string_view requestMethod);

// The first field named `name` (case-insensitive), or nullptr.
const HeaderField* findHeader(std::span<const HeaderField> headers, std::string_view name);

// Field syntax checks, for callers building fields from configuration.
bool isValidFieldName(std::string_view name);
bool isValidFieldValue(std::string_view value);  // no leading/trailing OWS, no CTL

}  // namespace edgeplane::proxy::http
