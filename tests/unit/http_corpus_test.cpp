// Replays every case of tests/unit/http_corpus/ (format in its README.md) through the codec
// as the proxy would: head, then body, request after request, until an error or a close.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/http/chunked.h"
#include "proxy/http/message.h"
#include "tests/support/http_corpus.h"

namespace edgeplane::proxy::http {
namespace {

using edgeplane::testing::HttpCorpusCase;
using edgeplane::testing::loadCorpus;
using edgeplane::testing::unescapeCorpus;

struct Replay {
  std::vector<std::string> verdicts;
  bool close = false;
  bool stalled = false;  // the bytes ended inside a request: the proxy would wait
};

// The proxy's reading loop over one connection's bytes, verdict by verdict.
Replay replay(std::string_view bytes) {
  Replay r;
  while (!bytes.empty()) {
    RequestHead head;
    ParseResult p = parseRequestHead(bytes, head, Limits{});
    if (p.status == ParseStatus::NeedMore) {
      r.stalled = true;
      return r;
    }
    if (p.status == ParseStatus::Error) {
      r.verdicts.push_back(std::to_string(p.code));
      r.close = true;
      return r;
    }
    bytes.remove_prefix(p.length);
    if (head.framing == BodyFraming::ContentLength) {
      if (bytes.size() < head.contentLength) {
        r.stalled = true;
        return r;
      }
      bytes.remove_prefix(head.contentLength);
    } else if (head.framing == BodyFraming::Chunked) {
      ChunkedDecoder decoder;
      size_t used = 0;
      ChunkedDecoder::Step s;
      do {
        s = decoder.feed(bytes.substr(used));
        used += s.consumed;
      } while (s.status == ChunkedDecoder::Status::Ok && used < bytes.size());
      if (s.status == ChunkedDecoder::Status::Error) {
        r.verdicts.push_back("400");
        r.close = true;
        return r;
      }
      if (s.status != ChunkedDecoder::Status::Done) {
        r.stalled = true;
        return r;
      }
      bytes.remove_prefix(used);
    }
    r.verdicts.push_back("ok");
    if (!head.keepAlive) {
      r.close = true;
      return r;
    }
  }
  return r;
}

TEST(HttpCorpus, EveryCaseGetsItsVerdict) {
  std::vector<HttpCorpusCase> cases = loadCorpus(EDGEPLANE_HTTP_CORPUS_DIR);
  ASSERT_GE(cases.size(), 35u);
  for (const HttpCorpusCase& c : cases) {
    ASSERT_FALSE(c.description.empty()) << c.name;
    ASSERT_FALSE(c.expect.empty()) << c.name;
    Replay r = replay(c.bytes);
    EXPECT_FALSE(r.stalled) << c.name << ": the bytes end inside a request";
    EXPECT_EQ(r.verdicts, c.expect) << c.name << ": " << c.description;
    EXPECT_EQ(r.close, c.close) << c.name << ": " << c.description;
  }
}

TEST(HttpCorpus, EscapesDecode) {
  EXPECT_EQ(unescapeCorpus("a\\r\\n\\t\\0\\\\\\x41"), std::string("a\r\n\t\0\\A", 7));
  EXPECT_EQ(unescapeCorpus("\\R{3}{ab\\x7d}"), "ab}ab}ab}");
  EXPECT_FALSE(unescapeCorpus("\\q").has_value());
  EXPECT_FALSE(unescapeCorpus("\\x4").has_value());
}

}  // namespace
}  // namespace edgeplane::proxy::http
