// The codec's smuggling/malformed-request corpus replayed over a real TLS connection through
// the https handler: every case's statuses, and whether the proxy closed the connection.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/http_corpus.h"
#include "tests/support/https_fixture.h"

namespace edgeplane::proxy {
namespace {

using namespace std::chrono_literals;
using testing_https::HttpsTest;

TEST_F(HttpsTest, SmugglingCorpusOverTls) {
  edgeplane::testing::TestBackend backend(
      edgeplane::testing::keepAliveBackend([](const edgeplane::testing::BackendRequest&) {
        return edgeplane::testing::okResponse("forwarded");
      }));
  start();
  configure({{"app", {"app.example.com"}, {backend.endpoint()}}});
  std::vector<edgeplane::testing::HttpCorpusCase> cases =
      edgeplane::testing::loadCorpus(EDGEPLANE_HTTP_CORPUS_DIR);
  ASSERT_GE(cases.size(), 35u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name + ": " + c.description);
    edgeplane::testing::TlsClient client(engine_->httpsPort(), "app.example.com", 3s);
    ASSERT_TRUE(client.connected());
    ASSERT_TRUE(client.write(c.bytes));
    for (const std::string& verdict : c.expect) {
      auto r = client.readResponse();
      ASSERT_TRUE(r) << "no response for verdict " << verdict;
      if (verdict == "ok") {
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->body, "forwarded");
      } else {
        EXPECT_EQ(r->status, std::stoi(verdict));
      }
    }
    if (c.close) {
      EXPECT_TRUE(client.closedByPeer());
    } else {
      EXPECT_FALSE(client.closedWithin(200ms)) << "closed, should stay open";
    }
  }
}

}  // namespace
}  // namespace edgeplane::proxy
