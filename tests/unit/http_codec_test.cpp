// proxy/http request and response head parsers: every RFC 9112 rule of message.h, and
// incremental feeding (any split point gives the whole input's result).
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"

namespace edgeplane::proxy::http {
namespace {

ParseResult parse(std::string_view s, RequestHead& head, const Limits& limits = {}) {
  return parseRequestHead(std::span<const char>(s.data(), s.size()), head, limits);
}

ParseResult parse(std::string_view s, const Limits& limits = {}) {
  RequestHead head;
  return parse(s, head, limits);
}

ParseResult parseResponse(std::string_view s, ResponseHead& head, std::string_view method = "GET") {
  return parseResponseHead(std::span<const char>(s.data(), s.size()), head, Limits{}, method);
}

// The status of a request head; 0 when accepted.
int status(std::string_view s, const Limits& limits = {}) {
  ParseResult r = parse(s, limits);
  if (r.status == ParseStatus::NeedMore) {
    return -1;
  }
  return r.status == ParseStatus::Done ? 0 : r.code;
}

// A GET with Host and the given field lines.
std::string withHeaders(std::string_view fields) {
  return "GET /p HTTP/1.1\r\nHost: example.com\r\n" + std::string(fields) + "\r\n";
}

TEST(HttpRequest, ParsesASimpleGet) {
  std::string s = "GET /a/b?c=d HTTP/1.1\r\nHost: Example.com:8443\r\nAccept: */*\r\n\r\nNEXT";
  RequestHead head;
  ParseResult r = parse(s, head);
  ASSERT_EQ(r.status, ParseStatus::Done) << r.reason;
  EXPECT_EQ(r.length, s.size() - 4);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/a/b?c=d");
  EXPECT_EQ(head.originTarget, "/a/b?c=d");
  EXPECT_EQ(head.path, "/a/b");
  EXPECT_EQ(head.version, Version::Http11);
  EXPECT_EQ(head.host, "Example.com:8443");
  ASSERT_EQ(head.headers.size(), 2u);
  EXPECT_EQ(head.headers[1].name, "Accept");
  EXPECT_EQ(head.headers[1].value, "*/*");
  EXPECT_EQ(head.framing, BodyFraming::None);
  EXPECT_TRUE(head.keepAlive);
  EXPECT_FALSE(head.expectContinue);
  EXPECT_TRUE(head.upgrade.empty());
  // Views point into the caller's buffer.
  EXPECT_EQ(head.method.data(), s.data());
}

TEST(HttpRequest, TrimsOwsAroundValuesAndKeepsOrderAndDuplicates) {
  RequestHead head;
  ASSERT_EQ(parse("GET / HTTP/1.1\r\nHost:a\r\nX: \t 1 2 \t\r\nX:3\r\nEmpty:\r\n\r\n", head).status,
            ParseStatus::Done);
  ASSERT_EQ(head.headers.size(), 4u);
  EXPECT_EQ(head.headers[1].value, "1 2");
  EXPECT_EQ(head.headers[2].value, "3");
  EXPECT_EQ(head.headers[3].value, "");
  EXPECT_EQ(findHeader(head.headers, "x")->value, "1 2");
  EXPECT_EQ(findHeader(head.headers, "absent"), nullptr);
}

TEST(HttpRequest, IncompleteHeadNeedsMore) {
  EXPECT_EQ(status(""), -1);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a\r\n"), -1);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a\r\n\r"), -1);
}

TEST(HttpRequest, LeadingEmptyLinesAreSkippedWithinTheLineBudget) {
  RequestHead head;
  std::string s = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  ParseResult r = parse(s, head);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.length, s.size());
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(status("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("\rGET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  std::string many;
  for (int i = 0; i < 5000; ++i) {
    many += "\r\n";
  }
  EXPECT_EQ(status(many), 414);
}

TEST(HttpRequest, RequestLineSyntax) {
  EXPECT_EQ(status("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /\r\n\r\n"), 400);  // HTTP/0.9
  EXPECT_EQ(status("GET / http/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(status("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(status("GET / HTTP/0.9\r\nHost: a\r\n\r\n"), 505);
  EXPECT_EQ(status("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /\xC3\xA9 HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("get / HTTP/1.1\r\nHost: a\r\n\r\n"), 0);  // methods are case-sensitive
}

TEST(HttpRequest, HttpTenDefaultsToClose) {
  RequestHead head;
  ASSERT_EQ(parse("GET / HTTP/1.0\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.version, Version::Http10);
  EXPECT_FALSE(head.keepAlive);
  EXPECT_EQ(head.host, "");
  ASSERT_EQ(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_TRUE(head.keepAlive);
  EXPECT_EQ(head.host, "a");
}

TEST(HttpRequest, TargetForms) {
  RequestHead head;
  ASSERT_EQ(parse("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.targetForm, TargetForm::Asterisk);
  EXPECT_EQ(status("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n"), 501);
  EXPECT_EQ(status("GET a.com HTTP/1.1\r\nHost: a.com\r\n\r\n"), 400);
  EXPECT_EQ(status("GET ftp://a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n"), 400);

  ASSERT_EQ(parse("GET http://A.com:80/x?y HTTP/1.1\r\nHost: a.COM:80\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.targetForm, TargetForm::Absolute);
  EXPECT_EQ(head.host, "A.com:80");
  EXPECT_EQ(head.originTarget, "/x?y");
  EXPECT_EQ(head.path, "/x");
  ASSERT_EQ(parse("GET https://a.com HTTP/1.1\r\nHost: a.com\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.originTarget, "/");
  EXPECT_EQ(status("GET http://a.com/ HTTP/1.1\r\nHost: b.com\r\n\r\n"), 400);
  EXPECT_EQ(status("GET http://a.com/ HTTP/1.1\r\n\r\n"), 400);  // Host still required
  EXPECT_EQ(status("GET http://u@a.com/ HTTP/1.1\r\nHost: a.com\r\n\r\n"), 400);
  EXPECT_EQ(status("GET http://a.com?x HTTP/1.1\r\nHost: a.com\r\n\r\n"), 400);
  EXPECT_EQ(status("GET http:///x HTTP/1.1\r\nHost: a.com\r\n\r\n"), 400);
}

TEST(HttpRequest, HostRules) {
  EXPECT_EQ(status("GET / HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a\r\nhOsT: b\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n"), 0);  // reg-name allows sub-delims
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n\r\n"), 0);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: [2001:db8::1]x\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n"), 400);
}

TEST(HttpRequest, FieldSyntax) {
  EXPECT_EQ(status(withHeaders("X: a\r\n y\r\n")), 400);   // obs-fold
  EXPECT_EQ(status(withHeaders("X: a\r\n\ty\r\n")), 400);  // obs-fold with HTAB
  EXPECT_EQ(status("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400);
  EXPECT_EQ(status(withHeaders("X : a\r\n")), 400);  // space before colon
  EXPECT_EQ(status(withHeaders("X\t: a\r\n")), 400);
  EXPECT_EQ(status(withHeaders(": a\r\n")), 400);
  EXPECT_EQ(status(withHeaders("X a\r\n")), 400);
  EXPECT_EQ(status(withHeaders("X(: a\r\n")), 400);
  EXPECT_EQ(status(withHeaders(std::string("X: a\0b\r\n", 8))), 400);
  EXPECT_EQ(status(withHeaders("X: a\x7f\r\n")), 400);
  EXPECT_EQ(status(withHeaders("X: a\x01\r\n")), 400);
  EXPECT_EQ(status(withHeaders("X: a\rb\r\n")), 400);     // bare CR
  EXPECT_EQ(status(withHeaders("X: a\nY: b\r\n")), 400);  // bare LF
  EXPECT_EQ(status("GET / HTTP/1.1\r\nHost: a\r\n\n"), 400);
  EXPECT_EQ(status(withHeaders("Content_Length: 5\r\n")), 400);
  EXPECT_EQ(status(withHeaders("transfer_encoding: chunked\r\n")), 400);
  EXPECT_EQ(status(withHeaders("X_Host: a\r\n")), 0);       // other underscores pass
  EXPECT_EQ(status(withHeaders("X: caf\xC3\xA9\r\n")), 0);  // obs-text is allowed
  EXPECT_EQ(status(withHeaders("X: a\tb\r\n")), 0);
}

TEST(HttpRequest, SizeLimits) {
  std::string longLine = "GET /" + std::string(8200, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(status(longLine), 414);
  EXPECT_EQ(status(longLine.substr(0, 8195)), 414);  // refused before the line ends
  std::string fits = "GET /" + std::string(8192 - 16, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n";
  EXPECT_EQ(status(fits), 0);
  EXPECT_EQ(status("GET /" + std::string(8192 - 15, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n"), 414);

  std::string big = withHeaders("X: " + std::string(33000, 'v') + "\r\n");
  EXPECT_EQ(status(big), 431);
  EXPECT_EQ(status(big.substr(0, 33500)), 431);

  std::string hundred;
  for (int i = 0; i < 99; ++i) {
    hundred += "X-" + std::to_string(i) + ": v\r\n";
  }
  EXPECT_EQ(status(withHeaders(hundred)), 0);  // Host + 99 = 100 fields
  EXPECT_EQ(status(withHeaders(hundred + "One-More: v\r\n")), 431);

  Limits small;
  small.maxFields = 2;
  EXPECT_EQ(status(withHeaders("A: 1\r\nB: 2\r\n"), small), 431);
}

TEST(HttpRequest, ContentLength) {
  RequestHead head;
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::ContentLength);
  EXPECT_EQ(head.contentLength, 42u);
  ASSERT_EQ(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::ContentLength);
  EXPECT_EQ(head.contentLength, 0u);
  ASSERT_EQ(
      parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n", head)
          .status,
      ParseStatus::Done);
  EXPECT_EQ(head.contentLength, 5u);
  EXPECT_EQ(status(withHeaders("Content-Length: 5, 6\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 5\r\nContent-Length: 6\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: +5\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: -5\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 0x5\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 5 5\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: \r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 5,\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 99999999999999999999\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 1000000000000000\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 999999999999999\r\n")), 0);
}

TEST(HttpRequest, TransferEncoding) {
  RequestHead head;
  for (std::string_view te : {"chunked", "Chunked", "CHUNKED", "\tchunked", "chunked \t"}) {
    std::string s =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:" + std::string(te) + "\r\n\r\n";
    ASSERT_EQ(parse(s, head).status, ParseStatus::Done) << te;
    EXPECT_EQ(head.framing, BodyFraming::Chunked);
  }
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: chunked, gzip\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: gzip, chunked\r\n")), 501);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n")), 501);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: identity\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: xchunked\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: chunked, chunked\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n")),
            400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: chunked;q=1\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: \"chunked\"\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: ,chunked\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding:\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding : chunked\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n")), 400);
  EXPECT_EQ(status(withHeaders("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n")), 400);
  EXPECT_EQ(status("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400);
}

TEST(HttpRequest, ConnectionExpectAndUpgrade) {
  RequestHead head;
  ASSERT_EQ(parse(withHeaders("Connection: keep-alive, Close\r\n"), head).status,
            ParseStatus::Done);
  EXPECT_FALSE(head.keepAlive);
  ASSERT_EQ(parse(withHeaders("Expect: 100-Continue\r\n"), head).status, ParseStatus::Done);
  EXPECT_TRUE(head.expectContinue);
  EXPECT_EQ(status(withHeaders("Expect: something-else\r\n")), 417);
  ASSERT_EQ(parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_FALSE(head.expectContinue);
  // The head's views point into the bytes parsed: keep them alive while reading it.
  const std::string upgrade = withHeaders("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  ASSERT_EQ(parse(upgrade, head).status, ParseStatus::Done);
  EXPECT_EQ(head.upgrade, "websocket");
  ASSERT_EQ(parse(withHeaders("Upgrade: websocket\r\n"), head).status, ParseStatus::Done);
  EXPECT_EQ(head.upgrade, "");  // without the Connection token it is not an upgrade
}

// Every split point of these inputs: a prefix is NeedMore or the whole input's result.
TEST(HttpRequest, EverySplitPointGivesTheWholeResult) {
  std::vector<std::string> inputs = {
      "\r\nPOST /x?y HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nX: 1\r\n\r\nabc",
      "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX : b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET /" + std::string(9000, 'a') + "\r\x01 HTTP/1.1\r\n\r\n",
      withHeaders("X: " + std::string(33000, 'v') + "\r\n"),
  };
  for (const std::string& input : inputs) {
    RequestHead whole;
    ParseResult expected = parse(input, whole);
    ASSERT_NE(expected.status, ParseStatus::NeedMore) << input.substr(0, 60);
    for (size_t n = 0; n <= input.size(); ++n) {
      RequestHead head;
      ParseResult r = parse(std::string_view(input).substr(0, n), head);
      if (r.status == ParseStatus::NeedMore) {
        ASSERT_TRUE(expected.status == ParseStatus::Error || n < expected.length)
            << "prefix " << n << " of " << input.substr(0, 60);
        continue;
      }
      ASSERT_EQ(r, expected) << "prefix " << n << " of " << input.substr(0, 60);
      if (r.status == ParseStatus::Done) {
        EXPECT_EQ(head.host, whole.host);
        EXPECT_EQ(head.headers.size(), whole.headers.size());
      }
    }
  }
}

TEST(HttpResponse, Framing) {
  ResponseHead head;
  std::string s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n";
  ParseResult r = parseResponse(s, head);
  ASSERT_EQ(r.status, ParseStatus::Done);
  EXPECT_EQ(r.length, s.size());
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.reason, "OK");
  EXPECT_EQ(head.framing, BodyFraming::ContentLength);
  EXPECT_EQ(head.contentLength, 12u);
  EXPECT_TRUE(head.keepAlive);

  ASSERT_EQ(parseResponse(s, head, "HEAD").status, ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::None);
  EXPECT_EQ(head.declaredLength, 12u);

  ASSERT_EQ(parseResponse("HTTP/1.1 204 No Content\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::None);
  ASSERT_EQ(parseResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::None);
  EXPECT_EQ(head.declaredLength, 7u);
  ASSERT_EQ(parseResponse("HTTP/1.1 100 Continue\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::None);
  ASSERT_EQ(parseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::Chunked);
  ASSERT_EQ(parseResponse("HTTP/1.1 200 OK\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.framing, BodyFraming::UntilClose);
  EXPECT_FALSE(head.keepAlive);
  ASSERT_EQ(parseResponse("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", head).status,
            ParseStatus::Done);
  EXPECT_FALSE(head.keepAlive);
  ASSERT_EQ(parseResponse("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                          "Upgrade: websocket\r\n\r\n",
                          head)
                .status,
            ParseStatus::Done);
  EXPECT_EQ(head.upgrade, "websocket");
  EXPECT_EQ(head.framing, BodyFraming::None);
}

TEST(HttpResponse, StatusLineAndStrictness) {
  ResponseHead head;
  ASSERT_EQ(parseResponse("HTTP/1.1 200\r\n\r\n", head).status, ParseStatus::Done);
  EXPECT_EQ(head.reason, "");
  ASSERT_EQ(parseResponse("HTTP/1.1 404 \r\n\r\n", head).status, ParseStatus::Done);
  ASSERT_EQ(parseResponse("HTTP/1.1 500 Oh no: \xC3\xA9\r\n\r\n", head).status, ParseStatus::Done);
  for (std::string_view bad : {
           "HTTP/1.1 20 OK\r\n\r\n",
           "HTTP/1.1 2000 OK\r\n\r\n",
           "HTTP/1.1 099 X\r\n\r\n",
           "HTTP/1.1 600 X\r\n\r\n",
           "HTTP/1.1  200 OK\r\n\r\n",
           "HTTP/2.0 200 OK\r\n\r\n",
           "ICY 200 OK\r\n\r\n",
           "HTTP/1.1 200 OK\nX: 1\r\n\r\n",
           "HTTP/1.1 200 O\x01K\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
           "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
       }) {
    ParseResult r = parseResponse(bad, head);
    EXPECT_EQ(r.status, ParseStatus::Error) << bad;
    EXPECT_EQ(r.code, 502) << bad;
    EXPECT_TRUE(r.close);
  }
  EXPECT_EQ(parseResponse("HTTP/1.1 200 OK\r\n", head).status, ParseStatus::NeedMore);
}

TEST(HttpFields, Validators) {
  EXPECT_TRUE(isValidFieldName("Retry-After"));
  EXPECT_FALSE(isValidFieldName("Retry After"));
  EXPECT_FALSE(isValidFieldName(""));
  EXPECT_TRUE(isValidFieldValue("Bearer realm=\"x\""));
  EXPECT_TRUE(isValidFieldValue(""));
  EXPECT_FALSE(isValidFieldValue("a\r\nX: y"));
  EXPECT_FALSE(isValidFieldValue(" a"));
}

}  // namespace
}  // namespace edgeplane::proxy::http
